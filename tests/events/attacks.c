/* Attacks on the readiness calls: each mode prints what it observes; compared with native. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <sys/wait.h>

/* The call first, then its errno (arguments are evaluated in no fixed order). */
#define SAY(what, expr) do { long r_ = (long)(expr); printf("%s: %ld %s\n", what, r_, r_ < 0 ? strerrorname_np(errno) : ""); } while (0)

static volatile int pipe_signals;
static void on_pipe(int s) { (void)s; pipe_signals++; }

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IONBF, 0);
  const char *m = argc > 1 ? argv[1] : "";
  if (!strcmp(m, "nest")) {  /* a chain of epolls deeper than Linux allows */
    int prev = epoll_create1(0), depth = 0;
    for (int i = 0; i < 10; i++) {
      int e = epoll_create1(0); struct epoll_event ev = {EPOLLIN, {0}};
      if (epoll_ctl(e, EPOLL_CTL_ADD, prev, &ev)) { printf("refused at depth %d: %s\n", depth, strerrorname_np(errno)); break; }
      depth++; prev = e;
    }
    return 0;
  }
  if (!strcmp(m, "reuse")) {  /* a descriptor number reused for another file is a new item */
    int ep = epoll_create1(0), p[2]; pipe(p);
    struct epoll_event ev = {EPOLLIN, {.u64 = 1}}, out[2];
    epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
    int e = eventfd(1, 0), keep = dup(p[0]); close(p[0]);
    dup2(e, p[0]); close(e);
    ev.data.u64 = 2; SAY("add reused number", epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
    write(p[1], "x", 1);
    int n = epoll_wait(ep, out, 2, 0); printf("ready %d\n", n);
    close(keep); read(p[0], &(uint64_t){0}, 8);
    printf("after closing the pipe's last fd: %d\n", epoll_wait(ep, out, 2, 0));
    return 0;
  }
  if (!strcmp(m, "faults")) {  /* bad pointers everywhere */
    SAY("poll bad fds", poll((void *)1, 4, 0));
    SAY("poll too many", poll(NULL, 1u << 20, 0));
    SAY("select bad set", select(3, (void *)1, 0, 0, &(struct timeval){0, 0}));
    SAY("select huge nfds", select(1 << 30, 0, 0, 0, &(struct timeval){0, 0}));
    SAY("select bad timeval", select(0, 0, 0, 0, &(struct timeval){0, 2000000}));
    SAY("select neg timeval", select(0, 0, 0, 0, &(struct timeval){-1, 0}));
    int ep = epoll_create1(0);
    SAY("epoll_ctl bad event", epoll_ctl(ep, EPOLL_CTL_ADD, 0, (void *)1));
    SAY("epoll_wait huge max", epoll_wait(ep, (void *)4096, 0x7fffffff, 0));
    SAY("timerfd bad spec", timerfd_settime(timerfd_create(CLOCK_MONOTONIC, 0), 0, (void *)1, 0));
    struct itimerspec bad = {{0, 0}, {0, 1000000000}};
    SAY("timerfd bad nsec", timerfd_settime(timerfd_create(CLOCK_MONOTONIC, 0), 0, &bad, 0));
    SAY("eventfd read bad buf", read(eventfd(1, 0), (void *)1, 8));
    SAY("ppoll bad sigsetsize", syscall(SYS_ppoll, 0, 0, &(struct timespec){0, 0}, &(uint64_t){0}, 4));
    return 0;
  }
  if (!strcmp(m, "fasttimer")) {  /* a 1 ns periodic timer read after a while counts, never loops */
    int t = timerfd_create(CLOCK_MONOTONIC, 0);
    struct itimerspec its = {{0, 1}, {0, 1}};
    timerfd_settime(t, 0, &its, 0); usleep(10000);
    uint64_t n; read(t, &n, 8); printf("many expirations: %d\n", n > 1000);
    return 0;
  }
  if (!strcmp(m, "hugecount")) {  /* a count past the user half is EFAULT before any transfer (access_ok) */
    static char buf[4096]; int p[2]; pipe(p); write(p[1], "abc", 3);
    SAY("read 2^47 bytes", read(p[0], buf, 1UL << 47));
    SAY("read 3 of them", read(p[0], buf, 3));
    SAY("write 2^47 bytes", write(p[1], buf, 1UL << 47));
    return 0;
  }
  if (!strcmp(m, "partialpipe")) {  /* a write that made progress, then lost its reader: count and SIGPIPE */
    signal(SIGPIPE, on_pipe);
    int p[2]; pipe(p);
    pid_t c = fork();
    /* The reader only waits and leaves: a read before leaving would race the writer's next
       chunk against the reader's exit, natively as here. */
    if (c == 0) { close(p[1]); usleep(50000); _exit(0); }
    close(p[0]);
    static char big[200000];
    ssize_t n = write(p[1], big, sizeof big);
    printf("wrote %zd of %zu, SIGPIPE %d\n", n, sizeof big, pipe_signals);
    waitpid(c, 0, 0);
    return 0;
  }
  if (!strcmp(m, "getfl")) {  /* F_GETFL: no open-time flags, O_LARGEFILE for files opened by path */
    char path[64]; snprintf(path, sizeof path, "/tmp/getfl-%d", getpid());
    int a = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), b = open(path, O_RDWR | O_APPEND | O_NOCTTY);
    int p[2]; pipe2(p, O_NONBLOCK);
    int e = eventfd(0, EFD_NONBLOCK), d = open("/tmp", O_RDONLY | O_DIRECTORY);
    int flags[6] = {fcntl(a, F_GETFL), fcntl(b, F_GETFL), fcntl(p[0], F_GETFL), fcntl(p[1], F_GETFL),
                    fcntl(e, F_GETFL), fcntl(d, F_GETFL)};
    for (int i = 0; i < 6; i++) printf("%#x ", flags[i]);
    printf("\n"); unlink(path);
    SAY("lseek of a closed fd with a bad whence", lseek(99, 0, 7));
    return 0;
  }
  if (!strcmp(m, "longpath")) {  /* a path read stops at PATH_MAX bytes: too long, not a fault */
    char *two = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(two + 4096, 4096);
    memset(two, 'a', 4096);
    SAY("4096 bytes, no NUL, then a hole", open(two, O_RDONLY));
    SAY("96 bytes, then a hole", open(two + 4000, O_RDONLY));
    return 0;
  }
  if (!strcmp(m, "forever")) {  /* nobody can ever wake it: a deadlock, not a hang */
    int ep = epoll_create1(0), e = eventfd(0, 0); struct epoll_event ev = {EPOLLIN, {0}}, out;
    epoll_ctl(ep, EPOLL_CTL_ADD, e, &ev);
    epoll_wait(ep, &out, 1, -1);
    return 0;
  }
  return 2;
}

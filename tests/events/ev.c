/* Event descriptors and readiness: eventfd, timerfd, signalfd, epoll, select, poll.
 * Each mode prints what it observes; the test compares with the native run. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SHOW(expr) do { long r_ = (long)(expr); printf("%-48s = %ld%s%s\n", #expr, r_ < 0 ? -1L : r_, \
    r_ < 0 ? " " : "", r_ < 0 ? strerrorname_np(errno) : ""); } while (0)

static uint64_t u64;
static void handler(int s) { (void)s; }

static void eventfds(void) {
  int e = eventfd(3, EFD_NONBLOCK);
  SHOW(read(e, &u64, 8)); printf("value %lu\n", (unsigned long)u64);
  SHOW(read(e, &u64, 8));
  SHOW(read(e, &u64, 4));
  u64 = 0xfffffffffffffffeULL; SHOW(write(e, &u64, 8));
  u64 = 1; SHOW(write(e, &u64, 8));
  u64 = UINT64_MAX; SHOW(write(e, &u64, 8));
  SHOW(write(e, &u64, 7));
  struct pollfd p = {e, POLLIN | POLLOUT, 0}; SHOW(poll(&p, 1, 0)); printf("revents %#x\n", p.revents);
  close(e);
  int s = eventfd(2, EFD_SEMAPHORE);
  SHOW(read(s, &u64, 8)); printf("sem %lu\n", (unsigned long)u64);
  SHOW(read(s, &u64, 8)); printf("sem %lu\n", (unsigned long)u64);
  pid_t c = fork();
  if (c == 0) { usleep(20000); u64 = 7; write(s, &u64, 8); _exit(0); }
  SHOW(read(s, &u64, 8)); printf("after child %lu\n", (unsigned long)u64);
  waitpid(c, 0, 0);
  SHOW(eventfd(0, 0x1234));
  struct stat st; fstat(s, &st); printf("mode %o\n", st.st_mode);
}

static void timerfds(void) {
  int t = timerfd_create(CLOCK_MONOTONIC, 0);
  struct itimerspec its = {{0, 0}, {0, 30000000}}, old;
  SHOW(timerfd_settime(t, 0, &its, NULL));
  SHOW(read(t, &u64, 8)); printf("expirations %lu\n", (unsigned long)u64);
  SHOW(timerfd_gettime(t, &old)); printf("disarmed %ld %ld\n", (long)old.it_value.tv_sec, old.it_value.tv_nsec);
  its.it_interval.tv_nsec = 10000000; its.it_value.tv_nsec = 10000000;
  SHOW(timerfd_settime(t, 0, &its, NULL));
  usleep(55000);
  SHOW(read(t, &u64, 8)); printf("periodic >= 4: %d\n", u64 >= 4);
  SHOW(timerfd_gettime(t, &old)); printf("interval %ld\n", old.it_interval.tv_nsec);
  struct timespec now; clock_gettime(CLOCK_MONOTONIC, &now);
  struct itimerspec abs = {{0, 0}, {now.tv_sec, now.tv_nsec}};
  abs.it_value.tv_nsec += 20000000; if (abs.it_value.tv_nsec >= 1000000000) { abs.it_value.tv_sec++; abs.it_value.tv_nsec -= 1000000000; }
  SHOW(timerfd_settime(t, TFD_TIMER_ABSTIME, &abs, &old));
  SHOW(read(t, &u64, 8)); printf("absolute %lu\n", (unsigned long)u64);
  int n = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK);
  SHOW(read(n, &u64, 8));
  its.it_value.tv_nsec = 1000000000; SHOW(timerfd_settime(n, 0, &its, NULL));
  SHOW(timerfd_create(42, 0));
  SHOW(timerfd_create(CLOCK_MONOTONIC, 0x40));
  SHOW(timerfd_settime(0, 0, &its, NULL));
  SHOW(write(t, &u64, 8));
  SHOW(read(t, &u64, 4));
}

static void signalfds(void) {
  sigset_t m; sigemptyset(&m); sigaddset(&m, SIGUSR1); sigaddset(&m, SIGUSR2);
  sigprocmask(SIG_BLOCK, &m, NULL);
  int s = signalfd(-1, &m, SFD_NONBLOCK);
  struct signalfd_siginfo si[2];
  SHOW(read(s, si, sizeof si));
  kill(getpid(), SIGUSR2); kill(getpid(), SIGUSR1);
  struct pollfd p = {s, POLLIN, 0}; SHOW(poll(&p, 1, 0));
  SHOW(read(s, si, sizeof si));
  printf("first %u from self %d code %d, second %u\n", si[0].ssi_signo, si[0].ssi_pid == (uint32_t)getpid(),
         si[0].ssi_code, si[1].ssi_signo);
  SHOW(read(s, si, 10));
  sigset_t only2; sigemptyset(&only2); sigaddset(&only2, SIGUSR2);
  SHOW(signalfd(s, &only2, 0) == s);
  kill(getpid(), SIGUSR1);
  SHOW(read(s, si, sizeof si));
  sigset_t pend; sigpending(&pend); printf("usr1 still pending %d\n", sigismember(&pend, SIGUSR1));
  SHOW(signalfd(0, &m, 0));
  SHOW(signalfd(-1, &m, 0x10));
  pid_t c = fork();
  if (c == 0) { usleep(20000); kill(getppid(), SIGUSR2); _exit(0); }
  int b = signalfd(-1, &only2, 0);
  SHOW(read(b, si, sizeof si)); printf("blocking read got %u\n", si[0].ssi_signo);
  waitpid(c, 0, 0);
}

static void epolls(void) {
  int fds[2]; pipe(fds);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {EPOLLIN, {.u64 = 0x1122334455667788ULL}}, out[4];
  SHOW(epoll_ctl(ep, EPOLL_CTL_ADD, fds[0], &ev));
  SHOW(epoll_ctl(ep, EPOLL_CTL_ADD, fds[0], &ev));
  SHOW(epoll_wait(ep, out, 4, 0));
  write(fds[1], "ab", 2);
  SHOW(epoll_wait(ep, out, 4, 0)); printf("events %#x data %#llx\n", out[0].events, (unsigned long long)out[0].data.u64);
  SHOW(epoll_wait(ep, out, 4, 0));  /* level-triggered: still ready */
  ev.events = EPOLLIN | EPOLLET; SHOW(epoll_ctl(ep, EPOLL_CTL_MOD, fds[0], &ev));
  SHOW(epoll_wait(ep, out, 4, 0));
  SHOW(epoll_wait(ep, out, 4, 0));  /* edge: nothing new */
  write(fds[1], "c", 1);
  SHOW(epoll_wait(ep, out, 4, 0));  /* edge: new data although never drained */
  char buf[8]; read(fds[0], buf, 8);
  write(fds[1], "d", 1);
  SHOW(epoll_wait(ep, out, 4, 0));
  ev.events = EPOLLIN | EPOLLONESHOT; SHOW(epoll_ctl(ep, EPOLL_CTL_MOD, fds[0], &ev));
  SHOW(epoll_wait(ep, out, 4, 0));
  SHOW(epoll_wait(ep, out, 4, 0));  /* one-shot: disarmed */
  SHOW(epoll_ctl(ep, EPOLL_CTL_MOD, fds[0], &ev));
  SHOW(epoll_wait(ep, out, 4, 0));
  ev.events = EPOLLOUT; SHOW(epoll_ctl(ep, EPOLL_CTL_ADD, fds[1], &ev));
  SHOW(epoll_wait(ep, out, 4, 0));
  SHOW(epoll_ctl(ep, EPOLL_CTL_DEL, fds[1], NULL));
  SHOW(epoll_ctl(ep, EPOLL_CTL_DEL, fds[1], NULL));
  SHOW(epoll_ctl(ep, EPOLL_CTL_MOD, 99, &ev));
  SHOW(epoll_ctl(ep, EPOLL_CTL_ADD, ep, &ev));
  SHOW(epoll_ctl(fds[0], EPOLL_CTL_ADD, fds[1], &ev));
  SHOW(epoll_ctl(ep, 7, fds[1], &ev));
  int f = open("/proc/self/exe", O_RDONLY);
  SHOW(epoll_ctl(ep, EPOLL_CTL_ADD, f, &ev));
  ev.events = EPOLLIN | EPOLLEXCLUSIVE | EPOLLONESHOT; SHOW(epoll_ctl(ep, EPOLL_CTL_ADD, fds[1], &ev));
  SHOW(epoll_wait(ep, out, 0, 0));
  SHOW(epoll_wait(ep, (void *)8, 4, 0));
  SHOW(epoll_create(0));
  SHOW(epoll_create1(1));
  /* nested epolls and loops */
  int inner = epoll_create1(0), outer = epoll_create1(0);
  ev.events = EPOLLIN; SHOW(epoll_ctl(inner, EPOLL_CTL_ADD, fds[0], &ev));
  SHOW(epoll_ctl(outer, EPOLL_CTL_ADD, inner, &ev));
  SHOW(epoll_ctl(inner, EPOLL_CTL_ADD, outer, &ev));
  SHOW(epoll_wait(outer, out, 4, 0));
  /* closing the only descriptor removes the item */
  int e = eventfd(1, 0); ev.events = EPOLLIN; ev.data.u64 = 5;
  SHOW(epoll_ctl(ep, EPOLL_CTL_ADD, e, &ev));
  SHOW(epoll_wait(ep, out, 4, 0)); close(e);
  SHOW(epoll_wait(ep, out, 4, 0));
  /* a blocking wait that another process ends */
  int ep2 = epoll_create1(0), p2[2]; pipe(p2);
  ev.events = EPOLLIN; ev.data.u64 = 42; epoll_ctl(ep2, EPOLL_CTL_ADD, p2[0], &ev);
  int t = timerfd_create(CLOCK_MONOTONIC, 0);
  struct itimerspec its = {{0, 0}, {5, 0}}; timerfd_settime(t, 0, &its, NULL);
  ev.data.u64 = 43; epoll_ctl(ep2, EPOLL_CTL_ADD, t, &ev);
  pid_t c = fork();
  if (c == 0) { usleep(30000); write(p2[1], "x", 1); _exit(0); }
  SHOW(epoll_wait(ep2, out, 4, -1)); printf("woken by %llu\n", (unsigned long long)out[0].data.u64);
  waitpid(c, 0, 0);
  its.it_value.tv_sec = 0; its.it_value.tv_nsec = 20000000; timerfd_settime(t, 0, &its, NULL);
  read(p2[0], buf, 1);
  SHOW(epoll_wait(ep2, out, 4, 2000)); printf("timer item %llu\n", (unsigned long long)out[0].data.u64);
  SHOW(epoll_wait(ep2, out, 4, 30));  /* level-triggered: the timer stays readable until read */
  SHOW(read(t, &u64, 8));
  SHOW(epoll_wait(ep2, out, 4, 30));
  /* a handler ends epoll_pwait with EINTR even under SA_RESTART */
  struct sigaction sa = {0}; sa.sa_handler = handler; sa.sa_flags = SA_RESTART; sigaction(SIGUSR1, &sa, NULL);
  sigset_t block, none; sigemptyset(&block); sigaddset(&block, SIGUSR1); sigemptyset(&none);
  sigprocmask(SIG_BLOCK, &block, NULL);
  c = fork();
  if (c == 0) { usleep(20000); kill(getppid(), SIGUSR1); _exit(0); }
  SHOW(epoll_pwait(ep2, out, 4, -1, &none));
  sigset_t now; sigprocmask(SIG_BLOCK, NULL, &now); printf("mask restored %d\n", sigismember(&now, SIGUSR1));
  waitpid(c, 0, 0);
}

static void selects(void) {
  int fds[2]; pipe(fds);
  fd_set r, w; FD_ZERO(&r); FD_ZERO(&w); FD_SET(fds[0], &r); FD_SET(fds[1], &w);
  struct timeval tv = {0, 20000};
  SHOW(select(fds[1] + 1, &r, &w, NULL, &tv));
  printf("r %d w %d\n", FD_ISSET(fds[0], &r), FD_ISSET(fds[1], &w));
  FD_ZERO(&r); FD_SET(fds[0], &r); tv.tv_sec = 0; tv.tv_usec = 30000;
  SHOW(select(fds[0] + 1, &r, NULL, NULL, &tv)); printf("left %ld\n", (long)tv.tv_usec);
  write(fds[1], "x", 1); FD_SET(fds[0], &r);
  SHOW(select(fds[0] + 1, &r, NULL, NULL, NULL)); printf("r %d\n", FD_ISSET(fds[0], &r));
  /* fd 77 is not open: Linux looks at it only once the descriptor table has grown past it
     (core_sys_select clamps nfds to max_fds), and a forked child's table is sized by what
     its parent has open, so each case runs in a child of its own. */
  for (int grow = 0; grow < 2; grow++) {
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
      if (grow) { dup2(0, 200); close(200); }
      FD_ZERO(&r); FD_SET(77, &r); tv.tv_sec = 0; tv.tv_usec = 0;
      SHOW(select(78, &r, NULL, NULL, &tv));
      fflush(stdout);
      _exit(0);
    }
    waitpid(c, 0, 0);
  }
  SHOW(select(-1, NULL, NULL, NULL, &tv));
  tv.tv_usec = 2000000; SHOW(select(0, NULL, NULL, NULL, &tv));
  close(fds[1]); FD_ZERO(&r); FD_SET(fds[0], &r); read(fds[0], &u64, 1);
  SHOW(select(fds[0] + 1, &r, NULL, NULL, NULL)); printf("eof readable %d\n", FD_ISSET(fds[0], &r));
  int p[2]; pipe(p); pid_t c = fork();
  if (c == 0) { usleep(20000); write(p[1], "y", 1); _exit(0); }
  FD_ZERO(&r); FD_SET(p[0], &r); struct timespec ts = {5, 0}; sigset_t none; sigemptyset(&none);
  SHOW(pselect(p[0] + 1, &r, NULL, NULL, &ts, &none)); printf("pselect left > 4s: %d\n", ts.tv_sec >= 4);
  waitpid(c, 0, 0);
  struct pollfd pf = {p[0], POLLIN | POLLRDNORM | POLLOUT, 0};
  SHOW(poll(&pf, 1, 0)); printf("revents %#x\n", pf.revents);
  pf.fd = p[1]; pf.events = POLLOUT | POLLWRNORM; SHOW(poll(&pf, 1, 0)); printf("revents %#x\n", pf.revents);
}

static volatile int rt_count, rt_values[8];
static void rt_handler(int s, siginfo_t *si, void *u) { (void)s; (void)u; if (rt_count < 8) rt_values[rt_count] = si->si_value.sival_int; rt_count++; }

static void rtqueue(void) {  /* real-time signals queue, each with its value; standard ones merge */
  struct sigaction sa; memset(&sa, 0, sizeof sa); sa.sa_sigaction = rt_handler; sa.sa_flags = SA_SIGINFO;
  sigaction(SIGRTMIN + 1, &sa, 0); sigaction(SIGUSR1, &sa, 0);
  sigset_t m; sigemptyset(&m); sigaddset(&m, SIGRTMIN + 1); sigaddset(&m, SIGUSR1); sigprocmask(SIG_BLOCK, &m, 0);
  for (int i = 0; i < 3; i++) { union sigval v = {.sival_int = 10 + i}; sigqueue(getpid(), SIGRTMIN + 1, v); }
  raise(SIGUSR1); raise(SIGUSR1);
  sigprocmask(SIG_UNBLOCK, &m, 0);
  printf("handled %d: %d %d %d\n", rt_count, rt_values[0], rt_values[1], rt_values[2]);
  sigprocmask(SIG_BLOCK, &m, 0);
  union sigval v = {.sival_int = 99}; sigqueue(getpid(), SIGRTMIN + 1, v); sigqueue(getpid(), SIGRTMIN + 1, v);
  signal(SIGRTMIN + 1, SIG_IGN); signal(SIGRTMIN + 1, SIG_DFL);
  sigset_t p; sigpending(&p); printf("ignoring dropped every instance: %d\n", !sigismember(&p, SIGRTMIN + 1));
}

static void ioctls(void) {  /* the requests every descriptor takes */
  int p[2], n = -1, on = 1; pipe(p); write(p[1], "hello", 5);
  SHOW(ioctl(p[0], FIONREAD, &n)); printf("pipe holds %d\n", n);
  SHOW(ioctl(p[0], FIONBIO, &on)); read(p[0], &u64, 5);
  SHOW(read(p[0], &u64, 1));
  printf("O_NONBLOCK now %d\n", (fcntl(p[0], F_GETFL) & O_NONBLOCK) != 0);
  SHOW(ioctl(p[1], FIOCLEX)); printf("cloexec %d\n", fcntl(p[1], F_GETFD));
  SHOW(ioctl(p[1], FIONCLEX)); printf("cloexec %d\n", fcntl(p[1], F_GETFD));
  int s[2]; socketpair(AF_UNIX, SOCK_DGRAM, 0, s); send(s[0], "abc", 3, 0); send(s[0], "defgh", 5, 0);
  SHOW(ioctl(s[1], FIONREAD, &n)); printf("next datagram %d\n", n);
  SHOW(ioctl(p[0], FIONREAD, (void *)8));
}

static void anon(void) {  /* event files: their /proc/self/fd links, and 0-byte transfers */
  int fds[3] = {eventfd(1, 0), epoll_create1(0), timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK)};
  for (int i = 0; i < 3; i++) {
    char path[64], target[64]; snprintf(path, sizeof path, "/proc/self/fd/%d", fds[i]);
    ssize_t n = readlink(path, target, sizeof target - 1); target[n > 0 ? n : 0] = 0; puts(target);
  }
  SHOW(read(fds[0], &u64, 0)); SHOW(write(fds[0], &u64, 0));
  SHOW(read(fds[1], &u64, 0)); SHOW(read(fds[2], &u64, 0));
  int p[2]; pipe(p); SHOW(read(p[0], &u64, 0)); SHOW(write(p[1], &u64, 0));
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IONBF, 0);
  const char *m = argc > 1 ? argv[1] : "";
  if (!strcmp(m, "eventfd")) eventfds();
  else if (!strcmp(m, "timerfd")) timerfds();
  else if (!strcmp(m, "signalfd")) signalfds();
  else if (!strcmp(m, "epoll")) epolls();
  else if (!strcmp(m, "select")) selects();
  else if (!strcmp(m, "rtqueue")) rtqueue();
  else if (!strcmp(m, "ioctls")) ioctls();
  else if (!strcmp(m, "anon")) anon();
  else return 2;
  return 0;
}

/* inotify probes: each scenario prints the events it sees (masks and names; cookies only as
 * "same"/"zero"), and the errno of each call that must fail. Run natively and in the sandbox;
 * the outputs must match. Usage: ino SCENARIO DIR (a writable directory of its own). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *names[] = {"ACCESS", "MODIFY", "ATTRIB", "CLOSE_WRITE", "CLOSE_NOWRITE", "OPEN",
                              "MOVED_FROM", "MOVED_TO", "CREATE", "DELETE", "DELETE_SELF", "MOVE_SELF",
                              "?", "UNMOUNT", "Q_OVERFLOW", "IGNORED"};
static unsigned last_cookie;

static void show_mask(unsigned mask) {
  const char *sep = "";
  for (int i = 0; i < 16; i++)
    if (mask & (1u << i)) { printf("%s%s", sep, names[i]); sep = "|"; }
  if (mask & IN_ISDIR) printf("%sISDIR", sep);
}

static void show(const struct inotify_event *e) {
  printf("  wd=%d ", e->wd);
  show_mask(e->mask);
  if (e->cookie) {
    printf(" cookie=%s", e->cookie == last_cookie ? "same" : "new");
    last_cookie = e->cookie;
  }
  if (e->len) printf(" len=%u name=%s", e->len, e->name);
  printf("\n");
}

/* Print every queued event (fd is non-blocking); the count. */
static int drain(int fd, const char *title) {
  char buf[65536] __attribute__((aligned(8)));
  int n = 0;
  printf("%s:\n", title);
  for (;;) {
    ssize_t got = read(fd, buf, sizeof buf);
    if (got < 0) {
      if (errno != EAGAIN) printf("  read: %s\n", strerror(errno));
      break;
    }
    for (char *p = buf; p < buf + got;) {
      struct inotify_event *e = (struct inotify_event *)p;
      show(e);
      n++;
      p += sizeof *e + e->len;
    }
  }
  return n;
}

static void check(const char *what, long r) {
  if (r < 0) printf("%s: %s\n", what, strerror(errno));
  else printf("%s: ok\n", what);
}

static char dir[4096];
static char *at(const char *name) {
  static char paths[4][8192];
  static int next;
  char *p = paths[next++ & 3];
  snprintf(p, 8192, "%s/%s", dir, name);
  return p;
}

static void put(const char *name, const char *text) {
  int fd = open(at(name), O_WRONLY | O_CREAT | O_APPEND, 0644);
  write(fd, text, strlen(text));
  close(fd);
}

static int watch_dir_events(void) {
  int in = inotify_init1(IN_NONBLOCK);
  printf("wd %d\n", inotify_add_watch(in, dir, IN_ALL_EVENTS));
  int fd = open(at("f"), O_WRONLY | O_CREAT, 0644);
  write(fd, "hello", 5);
  write(fd, "", 0);
  close(fd);
  drain(in, "create, write, close");
  char b[16];
  fd = open(at("f"), O_RDONLY);
  read(fd, b, sizeof b);
  read(fd, b, sizeof b); /* end of file: no event */
  pread(fd, b, 2, 0);
  close(fd);
  drain(in, "open, read, close");
  chmod(at("f"), 0600);
  chown(at("f"), getuid(), -1);
  utimensat(AT_FDCWD, at("f"), NULL, 0);
  truncate(at("f"), 2);
  drain(in, "chmod, chown, utimensat, truncate");
  fd = open(at("f"), O_WRONLY | O_TRUNC);
  ftruncate(fd, 10);
  fchmod(fd, 0644);
  close(fd);
  drain(in, "O_TRUNC, ftruncate, fchmod");
  rename(at("f"), at("g"));
  link(at("g"), at("h"));
  symlink("g", at("s"));
  mkdir(at("sub"), 0755);
  rename(at("sub"), at("sub2"));
  drain(in, "rename, link, symlink, mkdir, rename dir");
  fd = open(at("sub2"), O_RDONLY | O_DIRECTORY);
  char ents[4096];
  syscall(SYS_getdents64, fd, ents, sizeof ents);
  close(fd);
  mkfifo(at("fifo"), 0600);
  drain(in, "opendir, getdents, mkfifo");
  rmdir(at("sub2"));
  unlink(at("h"));
  unlink(at("g"));
  unlink(at("s"));
  unlink(at("fifo"));
  drain(in, "rmdir, unlink");
  return 0;
}

static int watch_file_events(void) {
  put("f", "x");
  int in = inotify_init1(IN_NONBLOCK);
  printf("dir wd %d\n", inotify_add_watch(in, dir, IN_ALL_EVENTS));
  printf("file wd %d\n", inotify_add_watch(in, at("f"), IN_ALL_EVENTS));
  int other = inotify_init1(IN_NONBLOCK);
  printf("other file wd %d\n", inotify_add_watch(other, at("f"), IN_MODIFY | IN_DELETE_SELF | IN_ATTRIB));
  put("f", "y");
  chmod(at("f"), 0600);
  link(at("f"), at("g"));
  unlink(at("g"));
  drain(in, "append, chmod, link, unlink the link");
  drain(other, "other");
  rename(at("f"), at("f2"));
  drain(in, "rename");
  unlink(at("f2"));
  drain(in, "unlink");
  drain(other, "other");
  put("f", "z");
  drain(in, "a new f: not the watched inode");
  printf("rm old wd: %s\n", inotify_rm_watch(in, 2) < 0 ? strerror(errno) : "ok");
  return 0;
}

static int open_while_unlinked(void) {
  put("f", "x");
  int in = inotify_init1(IN_NONBLOCK);
  inotify_add_watch(in, dir, IN_ALL_EVENTS);
  inotify_add_watch(in, at("f"), IN_ALL_EVENTS);
  int fd = open(at("f"), O_RDWR);
  unlink(at("f"));
  drain(in, "unlink while open");
  write(fd, "a", 1);
  close(fd);
  drain(in, "write, close");
  put("v", "x");
  int ex = inotify_init1(IN_NONBLOCK);
  inotify_add_watch(ex, dir, IN_ALL_EVENTS | IN_EXCL_UNLINK);
  fd = open(at("v"), O_RDWR);
  unlink(at("v"));
  write(fd, "a", 1);
  close(fd);
  drain(ex, "IN_EXCL_UNLINK");
  put("t", "x");
  put("u", "x");
  inotify_add_watch(in, at("u"), IN_ALL_EVENTS);
  rename(at("t"), at("u"));
  drain(in, "rename over a watched file");
  return 0;
}

static int oneshot(void) {
  put("f", "x");
  int in = inotify_init1(IN_NONBLOCK);
  int wd = inotify_add_watch(in, at("f"), IN_MODIFY | IN_ONESHOT);
  printf("wd %d\n", wd);
  put("f", "y");
  put("f", "z");
  drain(in, "two appends, one shot");
  printf("again wd %d\n", inotify_add_watch(in, at("f"), IN_MODIFY));
  return 0;
}

static int rmwatch(void) {
  int in = inotify_init();
  int wd = inotify_add_watch(in, dir, IN_CREATE);
  printf("wd %d\n", wd);
  fcntl(in, F_SETFL, O_NONBLOCK);
  check("rm", inotify_rm_watch(in, wd));
  check("rm again", inotify_rm_watch(in, wd));
  check("rm 0", inotify_rm_watch(in, 0));
  check("rm -1", inotify_rm_watch(in, -1));
  check("rm on a pipe", inotify_rm_watch(0, 1));
  check("rm on a bad fd", inotify_rm_watch(999, 1));
  put("f", "x");
  drain(in, "after rm");
  printf("next wd %d\n", inotify_add_watch(in, dir, IN_CREATE));
  printf("same inode: wd %d\n", inotify_add_watch(in, at("."), IN_DELETE));
  return 0;
}

static int flags(void) {
  put("f", "x");
  symlink("f", at("l"));
  int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  printf("cloexec %d nonblock %d\n", fcntl(in, F_GETFD) & FD_CLOEXEC, !!(fcntl(in, F_GETFL) & O_NONBLOCK));
  check("init1 bad flags", inotify_init1(1));
  check("init1 O_RDWR", inotify_init1(O_RDWR));
  int wd = inotify_add_watch(in, at("f"), IN_MODIFY);
  printf("wd %d\n", wd);
  printf("through the link: %d\n", inotify_add_watch(in, at("l"), IN_ATTRIB));
  printf("the link itself: %d\n", inotify_add_watch(in, at("l"), IN_ATTRIB | IN_DONT_FOLLOW));
  check("MASK_CREATE again", inotify_add_watch(in, at("f"), IN_MODIFY | IN_MASK_CREATE));
  check("MASK_ADD|MASK_CREATE", inotify_add_watch(in, at("f"), IN_MODIFY | IN_MASK_CREATE | IN_MASK_ADD));
  printf("MASK_ADD: %d\n", inotify_add_watch(in, at("f"), IN_DELETE_SELF | IN_MASK_ADD));
  check("mask 0", inotify_add_watch(in, at("f"), 0));
  check("mask of unknown bits", inotify_add_watch(in, at("f"), 0x1000));
  printf("mask IN_ISDIR only: %d\n", inotify_add_watch(in, dir, IN_ISDIR));
  check("ONLYDIR on a file", inotify_add_watch(in, at("f"), IN_MODIFY | IN_ONLYDIR));
  printf("ONLYDIR on a dir: %d\n", inotify_add_watch(in, dir, IN_CREATE | IN_ONLYDIR));
  check("missing", inotify_add_watch(in, at("missing"), IN_MODIFY));
  check("empty path", inotify_add_watch(in, "", IN_MODIFY));
  check("file/", inotify_add_watch(in, at("f/"), IN_MODIFY));
  check("bad pointer", inotify_add_watch(in, (char *)8, IN_MODIFY));
  check("on a pipe", inotify_add_watch(0, dir, IN_MODIFY));
  check("bad fd", inotify_add_watch(-1, dir, IN_MODIFY));
  check("/proc", inotify_add_watch(in, "/proc", IN_ALL_EVENTS));
  check("/proc/self/status", inotify_add_watch(in, "/proc/self/status", IN_ALL_EVENTS));
  check("/dev/null", inotify_add_watch(in, "/dev/null", IN_ALL_EVENTS));
  check("/", inotify_add_watch(in, "/", IN_ALL_EVENTS));
  put("f", "y");
  drain(in, "append: the replaced mask");
  unlink(at("l"));
  unlink(at("f"));
  drain(in, "unlink");
  char link[64], target[64] = "";
  snprintf(link, sizeof link, "/proc/self/fd/%d", in);
  readlink(link, target, sizeof target);
  printf("fd link: %s\n", target);
  return 0;
}

static int coalesce(void) {
  int in = inotify_init1(IN_NONBLOCK);
  inotify_add_watch(in, dir, IN_MODIFY | IN_CREATE);
  int a = open(at("a"), O_WRONLY | O_CREAT, 0644), b = open(at("b"), O_WRONLY | O_CREAT, 0644);
  for (int i = 0; i < 3; i++) write(a, "x", 1);
  write(b, "x", 1);
  write(a, "x", 1);
  write(a, "x", 1);
  drain(in, "3 a, b, 2 a");
  write(a, "x", 1);
  int n = 0;
  ioctl(in, FIONREAD, &n);
  printf("FIONREAD %d\n", n);
  drain(in, "after a read: not merged with what was read");
  return 0;
}

static int small(void) {
  int in = inotify_init1(IN_NONBLOCK);
  inotify_add_watch(in, dir, IN_CREATE);
  char buf[256];
  check("empty read", read(in, buf, sizeof buf));
  int n = -1;
  ioctl(in, FIONREAD, &n);
  printf("FIONREAD %d\n", n);
  put("a-long-name-of-twenty", "x");
  put("b", "x");
  ioctl(in, FIONREAD, &n);
  printf("FIONREAD %d\n", n);
  check("read 16", read(in, buf, 16));
  check("read 47", read(in, buf, 47));
  long got = read(in, buf, 48 + 16);
  printf("read 64: %ld\n", got);
  ioctl(in, FIONREAD, &n);
  printf("FIONREAD %d\n", n);
  check("bad buffer", read(in, (char *)8, 64));
  ioctl(in, FIONREAD, &n);
  printf("FIONREAD %d\n", n);
  check("FIONREAD to a bad pointer", ioctl(in, FIONREAD, (int *)8));
  check("TCGETS", ioctl(in, TCGETS, buf));
  check("write", write(in, "x", 1));
  check("lseek", lseek(in, 0, SEEK_SET));
  struct stat st;
  fstat(in, &st);
  printf("mode %o\n", st.st_mode);
  return 0;
}

static int readiness(void) {
  int in = inotify_init1(IN_NONBLOCK);
  inotify_add_watch(in, dir, IN_CREATE);
  struct pollfd p = {in, POLLIN | POLLOUT, 0};
  int r = poll(&p, 1, 0);
  printf("poll empty: %d revents %x\n", r, p.revents);
  int ep = epoll_create1(0);
  struct epoll_event ev = {EPOLLIN | EPOLLET, {.u64 = 7}}, out[4];
  check("epoll_ctl", epoll_ctl(ep, EPOLL_CTL_ADD, in, &ev));
  printf("epoll empty: %d\n", epoll_wait(ep, out, 4, 0));
  put("a", "x");
  r = poll(&p, 1, 0);
  printf("poll ready: %d revents %x\n", r, p.revents);
  int n = epoll_wait(ep, out, 4, 0);
  printf("epoll ready: %d events %x data %llu\n", n, n > 0 ? out[0].events : 0, n > 0 ? (unsigned long long)out[0].data.u64 : 0ULL);
  printf("epoll again (edge): %d\n", epoll_wait(ep, out, 4, 0));
  put("b", "x");
  printf("epoll after another event: %d\n", epoll_wait(ep, out, 4, 0));
  fd_set rs;
  FD_ZERO(&rs);
  FD_SET(in, &rs);
  struct timeval tv = {0, 0};
  printf("select: %d\n", select(in + 1, &rs, NULL, NULL, &tv));
  drain(in, "events");
  printf("poll drained: %d\n", poll(&p, 1, 0));
  return 0;
}

static int blocking(void) {
  int in = inotify_init();
  inotify_add_watch(in, dir, IN_CREATE);
  pid_t child = fork();
  if (child == 0) {
    struct timespec t = {0, 20 * 1000 * 1000};
    nanosleep(&t, NULL);
    put("from-child", "x");
    _exit(0);
  }
  char buf[4096];
  ssize_t got = read(in, buf, sizeof buf);
  printf("read %zd\n", got);
  if (got > 0) show((struct inotify_event *)buf);
  int status;
  waitpid(child, &status, 0);
  printf("child status %d\n", status);
  return 0;
}

static void on_alarm(int sig) { (void)sig; }

static int interrupted(void) {
  int in = inotify_init();
  inotify_add_watch(in, dir, IN_CREATE);
  struct sigaction sa = {0};
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, NULL);
  alarm(1);
  char buf[4096];
  check("read interrupted", read(in, buf, sizeof buf));
  return 0;
}

static int overflow(void) {
  int in = inotify_init1(IN_NONBLOCK);
  inotify_add_watch(in, dir, IN_MODIFY);
  int a = open(at("a"), O_WRONLY | O_CREAT, 0644), b = open(at("b"), O_WRONLY | O_CREAT, 0644);
  for (int i = 0; i < 8300; i++) {
    write(a, "x", 1);
    write(b, "x", 1);
  }
  int n = 0;
  ioctl(in, FIONREAD, &n);
  printf("FIONREAD %d\n", n);
  char buf[65536] __attribute__((aligned(8)));
  int events = 0, overflows = 0, last = 0;
  ssize_t got;
  while ((got = read(in, buf, sizeof buf)) > 0)
    for (char *p = buf; p < buf + got;) {
      struct inotify_event *e = (struct inotify_event *)p;
      events++;
      if (e->mask & IN_Q_OVERFLOW) { overflows++; printf("overflow at %d wd %d len %u\n", events, e->wd, e->len); }
      last = e->mask;
      p += sizeof *e + e->len;
    }
  printf("events %d overflows %d last %x\n", events, overflows, last);
  write(a, "x", 1);
  drain(in, "after draining");
  return 0;
}

/* Writes by every other call (each a MODIFY, or ACCESS for the reading side), exchanges. */
static int other_io(void) {
  put("a", "0123456789");
  put("b", "");
  int in = inotify_init1(IN_NONBLOCK);
  inotify_add_watch(in, dir, IN_ALL_EVENTS & ~(IN_OPEN | IN_CLOSE));
  int a = open(at("a"), O_RDWR), b = open(at("b"), O_RDWR);
  struct iovec v[2] = {{"ab", 2}, {"cd", 2}};
  writev(b, v, 2);
  check("fallocate", fallocate(b, 0, 0, 100));
  loff_t from = 0, to = 0;
  check("copy_file_range", copy_file_range(a, &from, b, &to, 4, 0));
  off_t off = 0;
  check("sendfile", sendfile(b, a, &off, 3));
  int p[2];
  pipe(p);
  write(p[1], "xyz", 3);
  check("splice", splice(p[0], NULL, b, NULL, 3, 0));
  char buf[8];
  readv(a, (struct iovec[]){{buf, 4}}, 1);
  futimens(b, NULL);
  fchown(b, -1, getgid());
  drain(in, "writev, fallocate, copy_file_range, sendfile, splice, readv, futimens, fchown");
  check("exchange", syscall(SYS_renameat2, AT_FDCWD, at("a"), AT_FDCWD, at("b"), 2));
  mkdir(at("d"), 0755);
  rename(at("a"), at("d/a"));
  drain(in, "exchange, into a subdirectory");
  write(a, "!", 1);
  close(a);
  close(b);
  drain(in, "write to a moved file");
  return 0;
}

/* 100k watches on one inode: one watch, one wd. */
static int same_inode(void) {
  int in = inotify_init1(IN_NONBLOCK), first = inotify_add_watch(in, dir, IN_CREATE), differ = 0;
  for (int i = 0; i < 100000; i++)
    if (inotify_add_watch(in, dir, i & 1 ? IN_DELETE : IN_CREATE | IN_MASK_ADD) != first) differ++;
  printf("wd %d, %d differ\n", first, differ);
  check("rm", inotify_rm_watch(in, first));
  check("rm again", inotify_rm_watch(in, first));
  check("rm INT_MAX", inotify_rm_watch(in, 0x7fffffff));
  drain(in, "events");
  return 0;
}

/* A watch per file until the sandbox's watches run out (fs.inotify.max_user_watches). */
static int many_watches(void) {
  int in = inotify_init1(IN_NONBLOCK), n = 0;
  char name[32];
  for (;; n++) {
    snprintf(name, sizeof name, "f%d", n);
    int fd = open(at(name), O_WRONLY | O_CREAT, 0644);
    if (fd < 0) { printf("open %d: %s\n", n, strerror(errno)); break; }
    close(fd);
    if (inotify_add_watch(in, at(name), IN_MODIFY) < 0) { printf("watch %d: %s\n", n, strerror(errno)); break; }
  }
  close(in); /* every watch goes with the instance */
  in = inotify_init1(IN_NONBLOCK);
  printf("after close: wd %d\n", inotify_add_watch(in, at("f0"), IN_MODIFY));
  return 0;
}

/* Instances until the sandbox's run out (fs.inotify.max_user_instances). */
static int instances(void) {
  int n = 0;
  while (inotify_init1(IN_CLOEXEC) >= 0) n++;
  printf("%d instances, then %s\n", n, strerror(errno));
  return 0;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 3) return 2;
  snprintf(dir, sizeof dir, "%s/ino-XXXXXX", argv[2]);
  if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
  const char *s = argv[1];
  int r = !strcmp(s, "dir") ? watch_dir_events()
        : !strcmp(s, "file") ? watch_file_events()
        : !strcmp(s, "unlinked") ? open_while_unlinked()
        : !strcmp(s, "oneshot") ? oneshot()
        : !strcmp(s, "rmwatch") ? rmwatch()
        : !strcmp(s, "flags") ? flags()
        : !strcmp(s, "coalesce") ? coalesce()
        : !strcmp(s, "small") ? small()
        : !strcmp(s, "readiness") ? readiness()
        : !strcmp(s, "blocking") ? blocking()
        : !strcmp(s, "interrupted") ? interrupted()
        : !strcmp(s, "overflow") ? overflow()
        : !strcmp(s, "same") ? same_inode()
        : !strcmp(s, "io") ? other_io()
        : !strcmp(s, "many") ? many_watches()
        : !strcmp(s, "instances") ? instances()
        : 2;
  rmdir(dir); /* if the scenario left it empty */
  return r;
}

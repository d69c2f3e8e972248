/* Record locks, OFD locks and flock between processes: each case prints what it sees,
 * deterministically, so the sandbox's output can be compared with a native run.
 * usage: locks CASE FILE */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *path;
static int sync_pipe[2], back_pipe[2];

static int lk(int fd, int cmd, short type, short whence, off_t start, off_t len)
{
    struct flock fl = {.l_type = type, .l_whence = whence, .l_start = start, .l_len = len};
    return fcntl(fd, cmd, &fl) == 0 ? 0 : errno;
}

static void getlk(int fd, int cmd, off_t start, off_t len, pid_t parent)
{
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    if (fcntl(fd, cmd, &fl) != 0) { printf("getlk %s\n", strerror(errno)); return; }
    if (fl.l_type == F_UNLCK) { printf("getlk [%lld,+%lld): unlocked\n", (long long)start, (long long)len); return; }
    printf("getlk [%lld,+%lld): %s at %lld len %lld by %s\n", (long long)start, (long long)len,
           fl.l_type == F_WRLCK ? "write" : "read", (long long)fl.l_start, (long long)fl.l_len,
           fl.l_pid == parent ? "parent" : fl.l_pid == -1 ? "-1" : fl.l_pid == getpid() ? "self" : "other");
}

static void say(int fd) { char c = 'x'; if (write(fd, &c, 1) != 1) exit(9); }
static void hear(int fd) { char c; if (read(fd, &c, 1) != 1) exit(9); }
static int openf(int flags) { int fd = open(path, flags); if (fd < 0) { perror("open"); exit(2); } return fd; }
static void reap(void) { int st; wait(&st); printf("child status %d\n", WEXITSTATUS(st)); }

static void posix_two(void)
{
    pid_t parent = getpid();
    int fd = openf(O_RDWR);
    printf("lock [0,10) write: %d\n", lk(fd, F_SETLK, F_WRLCK, SEEK_SET, 0, 10));
    printf("lock [20,30) read: %d\n", lk(fd, F_SETLK, F_RDLCK, SEEK_SET, 20, 10));
    fflush(stdout);
    if (fork() == 0) {
        int mine = openf(O_RDWR);
        printf("child: setlk [5,6) write: %s\n", strerror(lk(mine, F_SETLK, F_WRLCK, SEEK_SET, 5, 1)));
        printf("child: setlk [20,25) read: %s\n", strerror(lk(mine, F_SETLK, F_RDLCK, SEEK_SET, 20, 5)));
        printf("child: setlk [20,25) write: %s\n", strerror(lk(mine, F_SETLK, F_WRLCK, SEEK_SET, 20, 5)));
        getlk(mine, F_GETLK, 0, 0, parent);
        getlk(mine, F_GETLK, 10, 10, parent);
        getlk(mine, F_GETLK, 25, 100, parent);
        fflush(stdout);
        say(sync_pipe[1]);
        printf("child: setlkw [0,1) write: %s\n", strerror(lk(mine, F_SETLKW, F_WRLCK, SEEK_SET, 0, 1)));
        getlk(mine, F_GETLK, 0, 1, parent);
        exit(0);
    }
    hear(sync_pipe[0]);
    usleep(200000);
    /* The unlock wakes the child, whose lines may come before the parent's next one
       (natively, on another CPU): the result is told once the child has ended. */
    int unlocked = lk(fd, F_SETLK, F_UNLCK, SEEK_SET, 0, 0);
    int st;
    wait(&st);
    printf("parent: unlock all: %d\nchild status %d\n", unlocked, WEXITSTATUS(st));
}

static void deadlock(void)
{
    int fd = openf(O_RDWR);
    lk(fd, F_SETLK, F_WRLCK, SEEK_SET, 0, 1);
    if (fork() == 0) {
        int mine = openf(O_RDWR);
        lk(mine, F_SETLK, F_WRLCK, SEEK_SET, 1, 1);
        say(back_pipe[1]);
        hear(sync_pipe[0]);
        usleep(300000); /* the parent is asleep in F_SETLKW by now */
        printf("child: setlkw [0,1): %s\n", strerror(lk(mine, F_SETLKW, F_WRLCK, SEEK_SET, 0, 1)));
        fflush(stdout);
        lk(mine, F_SETLK, F_UNLCK, SEEK_SET, 1, 1);
        exit(0);
    }
    hear(back_pipe[0]);
    say(sync_pipe[1]);
    printf("parent: setlkw [1,2): %s\n", strerror(lk(fd, F_SETLKW, F_WRLCK, SEEK_SET, 1, 1)));
    fflush(stdout);
    reap();
}

static void close_releases(void)
{
    pid_t parent = getpid();
    int fd = openf(O_RDWR), other = openf(O_RDONLY), copy = dup(fd);
    lk(fd, F_SETLK, F_WRLCK, SEEK_SET, 0, 100);
    close(copy);
    if (fork() == 0) { getlk(openf(O_RDWR), F_GETLK, 0, 0, parent); exit(0); }
    reap();
    lk(fd, F_SETLK, F_WRLCK, SEEK_SET, 0, 100);
    close(other); /* another descriptor of the same file: all the process's locks go */
    if (fork() == 0) { getlk(openf(O_RDWR), F_GETLK, 0, 0, parent); exit(0); }
    reap();
    lk(fd, F_SETLK, F_WRLCK, SEEK_SET, 0, 100);
    if (fork() == 0) { /* not inherited: the child holds nothing, so closing releases nothing */
        printf("child: unlock own: %d\n", lk(fd, F_SETLK, F_UNLCK, SEEK_SET, 0, 0));
        close(fd);
        exit(0);
    }
    reap();
    if (fork() == 0) { getlk(openf(O_RDWR), F_GETLK, 0, 0, parent); exit(0); }
    reap();
}

static void split_merge(void)
{
    pid_t parent = getpid();
    int fd = openf(O_RDWR);
    lk(fd, F_SETLK, F_WRLCK, SEEK_SET, 0, 100);
    lk(fd, F_SETLK, F_UNLCK, SEEK_SET, 40, 20);
    lk(fd, F_SETLK, F_RDLCK, SEEK_SET, 200, 10);
    lk(fd, F_SETLK, F_RDLCK, SEEK_SET, 210, 10);
    lk(fd, F_SETLK, F_RDLCK, SEEK_SET, 300, 10);
    lk(fd, F_SETLK, F_WRLCK, SEEK_SET, 305, 2); /* splits the read lock in three */
    lseek(fd, 1000, SEEK_SET);
    lk(fd, F_SETLK, F_WRLCK, SEEK_CUR, -10, 5);  /* [990, 995) */
    lk(fd, F_SETLK, F_WRLCK, SEEK_CUR, 10, -5);  /* [1005, 1010) */
    lk(fd, F_SETLK, F_RDLCK, SEEK_SET, 5000, 0);  /* to the end */
    if (fork() == 0) {
        int mine = openf(O_RDWR);
        off_t probes[][2] = {{0, 0}, {40, 20}, {50, 100}, {200, 30}, {300, 5}, {305, 2}, {307, 10},
                             {985, 10}, {995, 10}, {1009, 1}, {4000, 0}, {LLONG_MAX, 1}};
        for (unsigned i = 0; i < sizeof probes / sizeof probes[0]; i++)
            getlk(mine, F_GETLK, probes[i][0], probes[i][1], parent);
        struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 300, .l_len = 10};
        fcntl(mine, F_GETLK, &fl);
        printf("read probe [300,310): type %d start %lld len %lld\n", fl.l_type, (long long)fl.l_start,
               (long long)fl.l_len);
        exit(0);
    }
    reap();
}

static void bad_ranges(void)
{
    int fd = openf(O_RDWR), ro = openf(O_RDONLY);
    printf("start LLONG_MAX len 1: %s\n", strerror(lk(fd, F_SETLK, F_WRLCK, SEEK_SET, LLONG_MAX, 1)));
    printf("start LLONG_MAX len 2: %s\n", strerror(lk(fd, F_SETLK, F_WRLCK, SEEK_SET, LLONG_MAX, 2)));
    printf("start 1 len LLONG_MAX: %s\n", strerror(lk(fd, F_SETLK, F_WRLCK, SEEK_SET, 1, LLONG_MAX)));
    printf("start 0 len LLONG_MAX: %s\n", strerror(lk(fd, F_SETLK, F_WRLCK, SEEK_SET, 0, LLONG_MAX)));
    printf("start -1: %s\n", strerror(lk(fd, F_SETLK, F_WRLCK, SEEK_SET, -1, 1)));
    printf("start 5 len -6: %s\n", strerror(lk(fd, F_SETLK, F_WRLCK, SEEK_SET, 5, -6)));
    printf("start 5 len -5: %s\n", strerror(lk(fd, F_SETLK, F_WRLCK, SEEK_SET, 5, -5)));
    printf("start 5 len LLONG_MIN: %s\n", strerror(lk(fd, F_SETLK, F_WRLCK, SEEK_SET, 5, LLONG_MIN)));
    printf("SEEK_END start LLONG_MAX: %s\n", strerror(lk(fd, F_SETLK, F_WRLCK, SEEK_END, LLONG_MAX, 1)));
    lseek(fd, 100, SEEK_SET);
    printf("SEEK_CUR start LLONG_MAX: %s\n", strerror(lk(fd, F_SETLK, F_WRLCK, SEEK_CUR, LLONG_MAX, 1)));
    printf("SEEK_CUR start -101: %s\n", strerror(lk(fd, F_SETLK, F_WRLCK, SEEK_CUR, -101, 1)));
    printf("whence 7: %s\n", strerror(lk(fd, F_SETLK, F_WRLCK, 7, 0, 1)));
    printf("type 9: %s\n", strerror(lk(fd, F_SETLK, 9, SEEK_SET, 0, 1)));
    printf("getlk of F_UNLCK: %s\n", strerror(lk(fd, F_GETLK, F_UNLCK, SEEK_SET, 0, 1)));
    printf("write lock on O_RDONLY: %s\n", strerror(lk(ro, F_SETLK, F_WRLCK, SEEK_SET, 0, 1)));
    printf("read lock on O_RDONLY: %s\n", strerror(lk(ro, F_SETLK, F_RDLCK, SEEK_SET, 0, 1)));
    printf("bad pointer: %s\n", fcntl(fd, F_SETLK, (void *)16) ? strerror(errno) : "ok");
    printf("ofd with l_pid: ");
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_len = 1, .l_pid = 7};
    printf("%s\n", fcntl(fd, F_OFD_SETLK, &fl) ? strerror(errno) : "ok");
    printf("flock 0: %s\n", flock(fd, 0) ? strerror(errno) : "ok");
    printf("flock bad fd: %s\n", flock(99, LOCK_SH) ? strerror(errno) : "ok");
}

static void ofd(void)
{
    pid_t parent = getpid();
    int a = openf(O_RDWR), b = openf(O_RDWR), a2 = dup(a);
    printf("ofd a [0,10): %s\n", strerror(lk(a, F_OFD_SETLK, F_WRLCK, SEEK_SET, 0, 10)));
    printf("ofd b [5,6): %s\n", strerror(lk(b, F_OFD_SETLK, F_WRLCK, SEEK_SET, 5, 1)));
    printf("posix b [5,6): %s\n", strerror(lk(b, F_SETLK, F_WRLCK, SEEK_SET, 5, 1)));
    printf("posix b [50,60): %s\n", strerror(lk(b, F_SETLK, F_WRLCK, SEEK_SET, 50, 10)));
    printf("ofd a [55,56): %s\n", strerror(lk(a, F_OFD_SETLK, F_WRLCK, SEEK_SET, 55, 1)));
    getlk(b, F_OFD_GETLK, 0, 1, parent);
    getlk(a, F_GETLK, 0, 1, parent);
    getlk(a, F_OFD_GETLK, 50, 1, parent);
    close(a); /* a2 still names the description: its lock stays */
    printf("after close(a): ofd b [5,6): %s\n", strerror(lk(b, F_OFD_SETLK, F_WRLCK, SEEK_SET, 5, 1)));
    if (fork() == 0) { /* the child shares the description: its lock is the child's too */
        printf("child: ofd a2 [0,1): %s\n", strerror(lk(a2, F_OFD_SETLK, F_WRLCK, SEEK_SET, 0, 1)));
        close(a2);
        exit(0);
    }
    reap();
    close(a2);
    printf("after close(a2): ofd b [5,6): %s\n", strerror(lk(b, F_OFD_SETLK, F_WRLCK, SEEK_SET, 5, 1)));
}

static void flocks(void)
{
    int fd = openf(O_RDONLY);
    printf("flock ex: %d\n", flock(fd, LOCK_EX));
    if (fork() == 0) {
        int mine = openf(O_RDONLY);
        printf("child: own ex nb: %s\n", flock(mine, LOCK_EX | LOCK_NB) ? strerror(errno) : "ok");
        printf("child: own sh nb: %s\n", flock(mine, LOCK_SH | LOCK_NB) ? strerror(errno) : "ok");
        printf("child: inherited ex nb: %s\n", flock(fd, LOCK_EX | LOCK_NB) ? strerror(errno) : "ok");
        printf("child: inherited un: %s\n", flock(fd, LOCK_UN) ? strerror(errno) : "ok");
        printf("child: own sh nb: %s\n", flock(mine, LOCK_SH | LOCK_NB) ? strerror(errno) : "ok");
        fflush(stdout);
        say(back_pipe[1]);
        hear(sync_pipe[0]);
        printf("child: own ex (waits): %s\n", flock(mine, LOCK_EX) ? strerror(errno) : "ok");
        exit(0);
    }
    hear(back_pipe[0]);
    printf("parent: sh nb: %s\n", flock(fd, LOCK_SH | LOCK_NB) ? strerror(errno) : "ok");
    printf("parent: ex nb (child holds sh): %s\n", flock(fd, LOCK_EX | LOCK_NB) ? strerror(errno) : "ok");
    fflush(stdout);
    say(sync_pipe[1]);
    usleep(200000);
    close(fd); /* the last reference to the description: its lock goes */
    reap();
}

static int waiting_fd;
static void *waiter(void *arg)
{
    printf("thread: setlkw: %s\n", strerror(lk(waiting_fd, F_SETLKW, F_WRLCK, SEEK_SET, 0, 1)));
    return arg;
}

static void close_while_waiting(void)
{
    if (fork() == 0) {
        int mine = openf(O_RDWR);
        lk(mine, F_SETLK, F_WRLCK, SEEK_SET, 0, 1);
        say(back_pipe[1]);
        usleep(500000);
        exit(0); /* exit releases the lock */
    }
    hear(back_pipe[0]);
    waiting_fd = openf(O_RDWR);
    pthread_t t;
    pthread_create(&t, 0, waiter, 0);
    usleep(200000);
    close(waiting_fd);
    pthread_join(t, 0);
    reap();
}

static void on_alarm(int sig) { (void)sig; }

static void interrupted(void)
{
    if (fork() == 0) {
        int mine = openf(O_RDWR);
        lk(mine, F_SETLK, F_WRLCK, SEEK_SET, 0, 1);
        flock(mine, LOCK_EX);
        say(back_pipe[1]);
        hear(sync_pipe[0]);
        exit(0);
    }
    hear(back_pipe[0]);
    struct sigaction sa = {.sa_handler = on_alarm};
    sigaction(SIGALRM, &sa, 0);
    struct itimerval it = {.it_value = {0, 100000}};
    int fd = openf(O_RDWR);
    setitimer(ITIMER_REAL, &it, 0);
    printf("setlkw interrupted: %s\n", strerror(lk(fd, F_SETLKW, F_WRLCK, SEEK_SET, 0, 1)));
    setitimer(ITIMER_REAL, &it, 0);
    printf("flock interrupted: %s\n", flock(fd, LOCK_EX) ? strerror(errno) : "ok");
    say(sync_pipe[1]);
    reap();
    printf("setlkw after exit: %s\n", strerror(lk(fd, F_SETLKW, F_WRLCK, SEEK_SET, 0, 1)));
}

static void many(void)
{
    int fd = openf(O_RDWR), i, err = 0;
    for (i = 0; i < 30000; i++) {
        err = lk(fd, F_SETLK, (i & 1) ? F_RDLCK : F_WRLCK, SEEK_SET, i, 1);
        if (err) break;
    }
    printf("stopped: %s\n", err ? strerror(err) : "never");
    printf("unlock all: %s\n", strerror(lk(fd, F_SETLK, F_UNLCK, SEEK_SET, 0, 0)));
    printf("lock again: %s\n", strerror(lk(fd, F_SETLK, F_WRLCK, SEEK_SET, 0, 0)));
}

int main(int argc, char **argv)
{
    if (argc < 3) return 2;
    path = argv[2];
    setvbuf(stdout, 0, _IOLBF, 0);
    if (pipe(sync_pipe) || pipe(back_pipe)) return 3;
    const char *c = argv[1];
    if (!strcmp(c, "posix")) posix_two();
    else if (!strcmp(c, "deadlock")) deadlock();
    else if (!strcmp(c, "close")) close_releases();
    else if (!strcmp(c, "split")) split_merge();
    else if (!strcmp(c, "bad")) bad_ranges();
    else if (!strcmp(c, "ofd")) ofd();
    else if (!strcmp(c, "flock")) flocks();
    else if (!strcmp(c, "closewait")) close_while_waiting();
    else if (!strcmp(c, "interrupt")) interrupted();
    else if (!strcmp(c, "many")) many();
    else return 2;
    return 0;
}

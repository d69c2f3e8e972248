/* hostileints MODE: one system call with hostile integers, as an attacker would make it; prints
 * the result (the errno as a negative number) so that a test compares it with Linux's answer.
 * Modes that wait for ever (sleep, pause, ppoll, pollin, flood) end only by the run's --timeout.
 *   sendfile  sendfile from /dev/zero with *offset at 2^63 - 4096 and at 2^63 - 1
 *   itimer    setitimer of 2^63 - 1 s, then getitimer
 *   dirseek   lseek /proc and /dev to negative positions, then getdents64
 *   sleep     nanosleep of 2^62 s with nothing else to run
 *   pause     setitimer of 2^62 s, then pause
 *   ppoll     ppoll of a pipe nobody writes, timeout 2^62 s
 *   pollin    poll stdin (an idle pipe) for ever
 *   flood     write 1 MiB blocks to stdout for ever (a pipe nobody reads) */
#include "sys.h"

enum { SYS_poll = 7, SYS_lseek = 8, SYS_pipe = 22, SYS_pause = 34, SYS_nanosleep = 35, SYS_getitimer = 36,
       SYS_setitimer = 38, SYS_sendfile = 40, SYS_getdents64 = 217, SYS_openat = 257, SYS_ppoll = 271 };
#define LLONG_MAX 0x7fffffffffffffffL

static char buf[1 << 20];

static void show(const char *what, long value) { put(what); put(" "); put_num(value); put("\n"); }

static long open_path(const char *path, long flags) { return syscall6(SYS_openat, -100, (long)path, flags, 0, 0, 0); }

static void sendfile_near_the_end(void) {
    long zero = open_path("/dev/zero", 0), null = open_path("/dev/null", 1);
    long offset = LLONG_MAX - 4095;
    show("sendfile-near", syscall6(SYS_sendfile, null, zero, (long)&offset, 8192, 0, 0));
    show("offset-after", offset == LLONG_MAX);
    offset = LLONG_MAX;
    show("sendfile-at-max", syscall6(SYS_sendfile, null, zero, (long)&offset, 8192, 0, 0));
}

static void itimer_for_ever(void) {
    long timer[4] = {0, 0, LLONG_MAX, 0}, now[4];
    show("setitimer", syscall3(SYS_setitimer, 0, timer, 0));
    show("getitimer", syscall3(SYS_getitimer, 0, now, 0));
    show("seconds-left-positive", now[2] > 0);
}

static void directory_seeks(const char *path) {
    long fd = open_path(path, 0200000);  /* O_DIRECTORY */
    show("lseek-set-negative", syscall3(SYS_lseek, fd, -1, 0));
    show("lseek-cur-negative", syscall3(SYS_lseek, fd, -4096, 1));
    show("getdents64-has-entries", syscall3(SYS_getdents64, fd, buf, sizeof buf) > 0);
}

int main(int argc, char **argv, char **envp) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (streq(mode, "sendfile")) sendfile_near_the_end();
    else if (streq(mode, "itimer")) itimer_for_ever();
    else if (streq(mode, "dirseek")) { directory_seeks("/proc"); directory_seeks("/dev"); }
    else if (streq(mode, "sleep")) {
        long forever[2] = {1L << 62, 0};
        show("nanosleep", syscall3(SYS_nanosleep, forever, 0, 0));
    } else if (streq(mode, "pause")) {
        long timer[4] = {0, 0, 1L << 62, 0};
        syscall3(SYS_setitimer, 0, timer, 0);
        show("pause", syscall3(SYS_pause, 0, 0, 0));
    } else if (streq(mode, "ppoll")) {
        int fds[2];
        long forever[2] = {1L << 62, 0};
        syscall3(SYS_pipe, fds, 0, 0);
        long pollfd = (long)fds[0] | (1L << 32);  /* { fd, POLLIN, 0 } */
        show("ppoll", syscall6(SYS_ppoll, (long)&pollfd, 1, (long)forever, 0, 8, 0));
    } else if (streq(mode, "pollin")) {
        long pollfd = 0 | (1L << 32);  /* { 0, POLLIN, 0 } */
        show("poll", syscall3(SYS_poll, &pollfd, 1, -1));
    } else if (streq(mode, "flood")) {
        for (;;)
            if (write(1, buf, sizeof buf) < 0) return 1;
    } else {
        put("usage: hostileints sendfile|itimer|dirseek|sleep|pause|ppoll|pollin|flood\n");
        return 2;
    }
    return 0;
}

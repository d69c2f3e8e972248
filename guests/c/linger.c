/* linger sleep|spin|calls: leave data in /tmp and in a memfd, say "ready" on stdout, then
 * wait for ever (a long nanosleep, a busy loop with no system call, or a loop of system
 * calls), so that a test can stop the sandbox from outside (a signal, --timeout) while the
 * guest is at work. */
#include "sys.h"

enum { SYS_open = 2, SYS_nanosleep = 35, SYS_memfd_create = 319 };
enum { O_WRONLY = 1, O_CREAT = 0100 };

int main(int argc, char **argv, char **envp) {
    (void)envp;
    const char *how = argc > 1 ? argv[1] : "sleep";
    long fd = syscall3(SYS_open, "/tmp/data", O_WRONLY | O_CREAT, 0644);
    if (fd < 0 || write((int)fd, "some data\n", 10) != 10) return 1;
    long memfd = syscall3(SYS_memfd_create, "scratch", 0, 0);
    if (memfd < 0 || write((int)memfd, "more data\n", 10) != 10) return 2;
    put("ready\n");
    if (streq(how, "spin"))
        for (volatile unsigned long n = 0;; n++) {}
    if (streq(how, "calls"))
        for (;;) syscall3(SYS_getpid, 0, 0, 0);
    long forever[2] = {1L << 30, 0};
    for (;;) syscall3(SYS_nanosleep, forever, 0, 0);
}

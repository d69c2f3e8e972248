/* blockers deadlock|badstack: things that cannot end well.
 *   deadlock: read a pipe whose only writer is this process: sleeps forever natively.
 *   badstack: a signal arrives while rsp points nowhere: the frame cannot be written, so
 *             the process dies of SIGSEGV (as on Linux). */
#include <signal.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void on_usr1(int sig) { (void)sig; }

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "badstack") == 0) {
        signal(SIGUSR1, on_usr1);
        printf("raising with a wild stack pointer\n");
        fflush(stdout);
        long pid = getpid();
        __asm__ volatile("mov %%rsp, %%r12\n mov $0x10, %%rsp\n syscall\n mov %%r12, %%rsp"
                         : : "a"(SYS_kill), "D"(pid), "S"(SIGUSR1) : "r12", "rcx", "r11", "memory");
        return 0;
    }
    int fds[2];
    char c;
    pipe(fds);
    printf("reading my own empty pipe\n");
    fflush(stdout);
    return (int)read(fds[0], &c, 1);
}

/* A process that raises a signal to itself many times while another process spins: each
 * raise stops the CPU to deliver the signal, but is no reason to schedule (natively the
 * handler runs at once, on the same CPU). Prints how many handler calls it saw. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int seen;
static void handler(int sig) { (void)sig; seen++; }

int main(int argc, char **argv) {
    int raises = argc > 1 ? atoi(argv[1]) : 2000;
    pid_t spinner = fork();
    if (spinner == 0)
        for (;;) {}
    signal(SIGUSR1, handler);
    for (int i = 0; i < raises; i++)
        raise(SIGUSR1);
    kill(spinner, SIGKILL);
    waitpid(spinner, 0, 0);
    printf("handled %d\n", seen);
    return 0;
}

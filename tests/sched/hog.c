/* A child that raises a signal at itself for ever, each raise a stop of the CPU, and a
 * parent that only needs a turn now and then: it sleeps 50 ms three times, then ends the
 * child. A stop that kept the CPU for the raiser must still end with its time slice. */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void handler(int sig) { (void)sig; }

int main(void) {
    signal(SIGUSR1, handler);
    pid_t hog = fork();
    if (hog == 0)
        for (;;)
            raise(SIGUSR1);
    struct timespec pause = {0, 50 * 1000 * 1000};
    for (int i = 0; i < 3; i++) {
        nanosleep(&pause, 0);
        printf("parent turn %d\n", i);
        fflush(stdout);
    }
    kill(hog, SIGKILL);
    int status;
    waitpid(hog, &status, 0);
    printf("hog ended by signal %d\n", WTERMSIG(status));
    return 0;
}

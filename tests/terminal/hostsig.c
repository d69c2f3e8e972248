/* Host signals: `handle SIG` prints a line from a handler, waiting in sigsuspend(); `pause`
 * waits with default actions; `spin` computes. Each says "ready" first. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static void on_signal(int signo) {
    char line[64];
    int n = snprintf(line, sizeof line, "handler: signal %d\n", signo);
    write(1, line, n);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *how = argc > 1 ? argv[1] : "pause";
    if (!strcmp(how, "handle")) {  /* blocked until sigsuspend: no race with "ready" */
        sigset_t block, none;
        sigemptyset(&block);
        sigemptyset(&none);
        sigaddset(&block, atoi(argv[2]));
        sigprocmask(SIG_BLOCK, &block, NULL);
        signal(atoi(argv[2]), on_signal);
        printf("ready\n");
        sigsuspend(&none);
        printf("sigsuspend returned\n");
        struct winsize w;
        if (atoi(argv[2]) == SIGWINCH && ioctl(0, TIOCGWINSZ, &w) == 0)
            printf("size %dx%d\n", w.ws_row, w.ws_col);
        return 5;
    }
    printf("ready\n");
    if (!strcmp(how, "spin"))
        for (volatile unsigned long i = 0;; i++) {}
    pause();
    return 0;
}

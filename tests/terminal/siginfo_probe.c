/* What an SA_SIGINFO handler is told of SIGTERM or SIGINT: si_code, si_pid, si_uid.
 * Says "ready", waits in pause() until one comes, prints its siginfo. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t got;
static siginfo_t seen;

static void on_signal(int signo, siginfo_t *info, void *context) {
    (void)context;
    seen = *info;
    got = signo;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_signal;
    action.sa_flags = SA_SIGINFO;
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    printf("ready\n");
    while (!got)
        pause();
    printf("signal %d code %d pid %d uid %d\n", seen.si_signo, seen.si_code, seen.si_pid, (int)seen.si_uid);
    return 0;
}

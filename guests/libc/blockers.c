/* blockers thread|deadlock: things a lone process cannot finish in the sandbox.
 *   thread:   pthread_create (clone with CLONE_VM|CLONE_THREAD) is refused; prints the error.
 *   deadlock: read a pipe whose only writer is this process: sleeps forever natively. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void *work(void *arg) { return arg; }

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "thread") == 0) {
        pthread_t t;
        int err = pthread_create(&t, NULL, work, NULL);
        printf("pthread_create: %s\n", err ? strerror(err) : "ok");
        if (!err) pthread_join(t, NULL);
        return err ? 1 : 0;
    }
    int fds[2];
    char c;
    pipe(fds);
    printf("reading my own empty pipe\n");
    fflush(stdout);
    return (int)read(fds[0], &c, 1);
}

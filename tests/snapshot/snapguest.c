/* Snapshot test guest: `snapguest MODE`. Calls checkpoint() (where the tests snapshot),
   then does MODE's work after it and prints what it saw; deterministic output. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <signal.h>
#include <pthread.h>

static char buffer[64 << 10];
volatile int counter = 0;

__attribute__((noinline)) void checkpoint(void) { __asm__ volatile("" ::: "memory"); }

static void *worker(void *arg) { counter += (int)(long)arg; return arg; }

static int gate[2];
static void *waiter(void *arg) { char c; read(gate[0], &c, 1); counter += c; return arg; }

static void on_usr1(int signo) { (void)signo; checkpoint(); counter += 100; }

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "tiny";
    int fds[2];
    if (!strcmp(mode, "pipe")) { if (pipe(fds)) return 2; write(fds[1], "before", 6); }
    int file = -1;
    if (!strcmp(mode, "file") && argc > 2) { file = open(argv[2], O_RDONLY); char b[4]; read(file, b, 4); }
    memset(buffer, 1, sizeof buffer);
    pthread_t blocked;
    pid_t early = 0;
    if (!strcmp(mode, "thread2") || !strcmp(mode, "fork2")) pipe(gate);
    if (!strcmp(mode, "thread2")) pthread_create(&blocked, 0, waiter, 0);
    if (!strcmp(mode, "fork2") && (early = fork()) == 0) {
        char c; int n = read(gate[0], &c, 1); printf("early child read %d %d\n", n, c); return 4;
    }
    if (!strcmp(mode, "signal")) { signal(SIGUSR1, on_usr1); raise(SIGUSR1); printf("counter %d\n", counter); return 0; }
    checkpoint();
    counter++;
    if (!strcmp(mode, "tiny")) return counter;
    if (!strcmp(mode, "write")) { memset(buffer, counter, sizeof buffer); printf("wrote %d\n", buffer[100]); }
    if (!strcmp(mode, "pipe")) {
        write(fds[1], "after", 5); char b[16] = {0}; int n = read(fds[0], b, 15); printf("pipe %d %s\n", n, b);
    }
    if (!strcmp(mode, "file")) { char b[8] = {0}; int n = read(file, b, 7); printf("file %d %s\n", n, b); }
    if (!strcmp(mode, "fork")) {
        pid_t child = fork();
        if (child == 0) { buffer[0] = 7; printf("child %d\n", buffer[0]); return 3; }
        int status; waitpid(child, &status, 0); printf("parent %d status %d\n", buffer[0], WEXITSTATUS(status));
    }
    if (!strcmp(mode, "exec")) { fflush(stdout); execl(argv[0], argv[0], "write", (char *)0); return 9; }
    if (!strcmp(mode, "thread")) {
        pthread_t t; void *r; pthread_create(&t, 0, worker, (void *)5L); pthread_join(t, &r);
        printf("thread %ld counter %d\n", (long)r, counter);
    }
    if (!strcmp(mode, "bigmap")) {
        size_t n = 200u << 20; char *p = mmap(0, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        for (size_t i = 0; i < n; i += 1 << 20) p[i] = 1;
        printf("mapped %d\n", p != MAP_FAILED);
    }
    if (!strcmp(mode, "thread2")) { write(gate[1], "\x05", 1); pthread_join(blocked, 0); printf("joined %d\n", counter); }
    if (!strcmp(mode, "fork2")) {
        write(gate[1], "\x06", 1); int status; waitpid(early, &status, 0); printf("early %d\n", WEXITSTATUS(status));
    }
    printf("done %d\n", counter);
    return 0;
}

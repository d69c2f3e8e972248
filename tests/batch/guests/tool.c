/* One small guest for the batch tests; argv[1] picks what it does. Its output is
 * deterministic natively, and in the sandbox under --deterministic (the "random" mode). */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

static long long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int cat(int fd) {
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        fwrite(buf, 1, n, stdout);
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "echo")) {
        for (int i = 2; i < argc; i++)
            printf("%s%s", argv[i], i + 1 < argc ? " " : "\n");
        return 0;
    }
    if (!strcmp(mode, "cat"))
        return cat(0);
    if (!strcmp(mode, "file")) {
        int fd = open(argv[2], O_RDONLY);
        if (fd < 0) { perror(argv[2]); return 1; }
        return cat(fd);
    }
    if (!strcmp(mode, "sum")) {
        long total = 0, x;
        while (scanf("%ld", &x) == 1)
            total += x;
        printf("%ld\n", total);
        return 0;
    }
    if (!strcmp(mode, "deaf"))  /* SIGTERM ignored, then loop */
        signal(SIGTERM, SIG_IGN);
    if (!strcmp(mode, "loop") || !strcmp(mode, "deaf"))
        for (volatile unsigned long i = 0;; i++) {}
    if (!strcmp(mode, "crash"))
        *(volatile int *)0 = 1;
    if (!strcmp(mode, "exit"))
        return atoi(argv[2]);
    if (!strcmp(mode, "argv0")) {
        printf("%s %s\n", argv[0], getenv("GREETING") ? getenv("GREETING") : "-");
        return 0;
    }
    if (!strcmp(mode, "flood")) {  /* argv[2] MiB of 'x' */
        static char block[1 << 20];
        memset(block, 'x', sizeof block);
        for (int i = 0; i < atoi(argv[2]); i++)
            fwrite(block, 1, sizeof block, stdout);
        return 0;
    }
    if (!strcmp(mode, "random")) {
        unsigned char bytes[8];
        int fd = open("/dev/urandom", O_RDONLY);
        read(fd, bytes, sizeof bytes);
        printf("%ld %lu", (long)time(NULL), (unsigned long)getpid());
        for (int i = 0; i < 8; i++)
            printf(" %02x", bytes[i]);
        printf("\n");
        return 0;
    }
    if (!strcmp(mode, "fork")) {  /* argv[2] children at once; prints how many it got */
        static pid_t pids[4096];
        int n = atoi(argv[2]), made = 0;
        for (int i = 0; i < n && i < 4096; i++) {
            pid_t pid = fork();
            if (pid == 0) { pause(); _exit(0); }
            if (pid < 0) break;
            pids[made++] = pid;
        }
        for (int i = 0; i < made; i++)
            kill(pids[i], SIGKILL);
        while (wait(NULL) > 0) {}
        printf("forked %d\n", made);
        return 0;
    }
    if (!strcmp(mode, "alloc")) {  /* argv[2] MiB touched */
        size_t size = (size_t)atoi(argv[2]) << 20;
        char *p = malloc(size);
        if (!p) { puts("malloc failed"); return 3; }
        for (size_t i = 0; i < size; i += 4096)
            p[i] = 1;
        puts("touched");
        return 0;
    }
    if (!strcmp(mode, "stamp")) {  /* the wall clock before and after argv[2] ms asleep */
        long long start = now_ms();
        struct timespec nap = {atoi(argv[2]) / 1000, (atoi(argv[2]) % 1000) * 1000000L};
        nanosleep(&nap, NULL);
        printf("%lld %lld\n", start, now_ms());
        return 0;
    }
    fprintf(stderr, "usage: %s echo|cat|file|sum|loop|crash|exit|argv0|flood|random|fork|alloc|stamp|deaf\n", argv[0]);
    return 2;
}

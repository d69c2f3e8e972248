/* One small guest for the batch tests; argv[1] picks what it does. Its output is
 * deterministic natively, and in the sandbox under --deterministic (the "random" mode). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
    if (!strcmp(mode, "loop"))
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
    fprintf(stderr, "usage: %s echo|cat|file|sum|loop|crash|exit|argv0|flood|random\n", argv[0]);
    return 2;
}

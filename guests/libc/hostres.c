/* Attacks on the host resources a guest can make the sandbox hold (issue 12, finding 6).
 * Each mode prints what it managed, so a test can bound it:
 *   exec PATH          execve PATH (a huge sparse ELF): prints nothing itself
 *   environ N SIZE     re-exec itself with a SIZE-byte environment, then open
 *                      /proc/self/environ N times, reading a byte from each
 *   maps N REGIONS     make REGIONS separate mappings, then open /proc/self/maps N times
 *   pipes N            make up to N pipes, grow each to 1 MiB and fill it
 *   pipesize           F_GETPIPE_SZ / F_SETPIPE_SZ answers
 *   forkbomb N         fork up to N children that exit at once and are never reaped
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef F_SETPIPE_SZ
#define F_SETPIPE_SZ 1031
#define F_GETPIPE_SZ 1032
#endif

static int exec_file(const char *path) {
    char *argv[] = {(char *)path, NULL};
    execve(path, argv, environ);
    printf("execve: %s\n", strerror(errno));
    return 1;
}

static int open_environ(long n) {
    long opened = 0, bytes = 0;
    int first_error = 0;
    char c;
    for (long i = 0; i < n; i++) {
        int fd = open("/proc/self/environ", O_RDONLY);
        if (fd < 0) {
            first_error = first_error ? first_error : errno;
            continue;
        }
        opened++;
        bytes += read(fd, &c, 1);
    }
    int fd = open("/proc/self/environ", O_RDONLY);  /* past the descriptor limit: EMFILE */
    printf("opened %ld read %ld error %s extra %d\n", opened, bytes, first_error ? strerror(first_error) : "none",
           fd);
    return 0;
}

static int environ_attack(char **argv, long n, long size) {
    if (getenv("HOSTRES_BIG0")) {
        size_t total = 0;
        for (char **e = environ; *e; e++) total += strlen(*e) + 1;
        printf("environment %zu bytes\n", total);
        return open_environ(n);
    }
    enum { PIECE = 100000 };  /* under MAX_ARG_STRLEN (128 KiB) per string */
    long pieces = size / PIECE + 1;
    char **env = calloc(pieces + 1, sizeof *env);
    for (long i = 0; i < pieces; i++) {
        env[i] = malloc(PIECE + 32);
        int head = sprintf(env[i], "HOSTRES_BIG%ld=", i);
        memset(env[i] + head, 'x', PIECE - head);
        env[i][PIECE] = 0;
    }
    execve("/proc/self/exe", argv, env);
    execve(argv[0], argv, env);
    printf("execve: %s\n", strerror(errno));
    return 1;
}

static int maps_attack(long n, long regions) {
    long page = 4096;
    char *base = mmap(NULL, regions * 2 * page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) {
        printf("mmap: %s\n", strerror(errno));
        return 1;
    }
    for (long i = 0; i < regions; i++) mprotect(base + 2 * i * page, page, PROT_READ | PROT_WRITE);
    long opened = 0;
    int first_error = 0;
    for (long i = 0; i < n; i++) {
        int fd = open("/proc/self/maps", O_RDONLY);
        if (fd < 0) {
            first_error = first_error ? first_error : errno;
            continue;
        }
        opened++;
    }
    printf("opened %ld error %s\n", opened, first_error ? strerror(first_error) : "none");
    return 0;
}

static int pipes_attack(long n) {
    static char chunk[65536];
    long pipes = 0, buffered = 0, grown = 0;
    int pipe_error = 0, grow_error = 0;
    memset(chunk, 'p', sizeof chunk);
    for (long i = 0; i < n; i++) {
        int fds[2];
        if (pipe2(fds, O_NONBLOCK) < 0) {
            pipe_error = errno;
            break;
        }
        pipes++;
        if (fcntl(fds[1], F_SETPIPE_SZ, 1 << 20) >= 0) grown++;
        else if (!grow_error) grow_error = errno;
        for (;;) {
            ssize_t w = write(fds[1], chunk, sizeof chunk);
            if (w <= 0) break;
            buffered += w;
        }
    }
    printf("pipes %ld grown %ld buffered %ld pipe-error %s grow-error %s\n", pipes, grown, buffered,
           pipe_error ? strerror(pipe_error) : "none", grow_error ? strerror(grow_error) : "none");
    return 0;
}

static void report(const char *what, long value) {
    if (value < 0) printf("%s %s\n", what, strerror(errno));
    else printf("%s %ld\n", what, value);
}

static int pipe_size(void) {
    int fds[2];
    static char chunk[8192];
    if (pipe(fds) < 0) return 1;
    report("default", fcntl(fds[0], F_GETPIPE_SZ));
    report("set 100000", fcntl(fds[1], F_SETPIPE_SZ, 100000));
    report("get", fcntl(fds[0], F_GETPIPE_SZ));
    report("set 0", fcntl(fds[1], F_SETPIPE_SZ, 0));
    report("set 2M", fcntl(fds[1], F_SETPIPE_SZ, 2 << 20));
    report("set 1M", fcntl(fds[1], F_SETPIPE_SZ, 1 << 20));
    report("write", write(fds[1], chunk, sizeof chunk));
    report("shrink 4096", fcntl(fds[1], F_SETPIPE_SZ, 4096));
    report("stdout", fcntl(1, F_GETPIPE_SZ));
    return 0;
}

static int fork_bomb(long n) {
    long made = 0;
    int error = 0;
    for (long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0) _exit(0);
        if (pid < 0) {
            error = errno;
            break;
        }
        made++;
    }
    printf("forked %ld error %s\n", made, error ? strerror(error) : "none");
    fflush(stdout);
    while (wait(NULL) > 0) {
    }
    pid_t again = fork();  /* every zombie reaped: fork works again */
    if (again == 0) _exit(0);
    printf("after reaping %s\n", again > 0 ? "forked" : strerror(errno));
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 3 && !strcmp(argv[1], "exec")) return exec_file(argv[2]);
    if (argc >= 4 && !strcmp(argv[1], "environ")) return environ_attack(argv, atol(argv[2]), atol(argv[3]));
    if (argc >= 4 && !strcmp(argv[1], "maps")) return maps_attack(atol(argv[2]), atol(argv[3]));
    if (argc >= 3 && !strcmp(argv[1], "pipes")) return pipes_attack(atol(argv[2]));
    if (argc >= 2 && !strcmp(argv[1], "pipesize")) return pipe_size();
    if (argc >= 3 && !strcmp(argv[1], "forkbomb")) return fork_bomb(atol(argv[2]));
    fprintf(stderr, "usage: hostres exec PATH | environ N SIZE | maps N REGIONS | pipes N | pipesize | "
            "forkbomb N\n");
    return 2;
}

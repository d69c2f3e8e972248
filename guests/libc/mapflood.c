/* mapflood: a guest that makes the page cache hold host resources (issue 12), one mode per
 * argument, one line per result.
 *
 *   window PATH MIB KIB  make PATH a sparse file of MIB MiB, then for each KIB KiB window:
 *                        mmap(MAP_SHARED, PROT_WRITE), fill it, msync, munmap.  Without a
 *                        bound the host file fills completely, whatever --disk says.
 *                        PATH "memfd": a memfd instead.
 *   anon MIB KIB         the same through MAP_SHARED|MAP_ANONYMOUS windows (shared memory
 *                        is backed by host files too).
 *   many N PROG          N times (or until it fails): create /tmp/mN, map it, close it (the
 *                        mapping stays): every mapped file holds a host descriptor.  Then
 *                        shared memory and an execve of PROG (argument "hello") while that
 *                        many files are mapped, then all unmapped and one more mapping.
 *   hello                print "hello" (what `many` execs).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_MAPS 100000

/* Fill each window of `total` bytes in turn (a file's, or fresh shared memory if fd < 0),
 * msync it and unmap it; print how the msyncs went. */
static int windows(int fd, long total, long window) {
    long stored = 0, refused = 0, first_refused = -1;
    for (long off = 0; off < total; off += window) {
        int flags = fd < 0 ? MAP_SHARED | MAP_ANONYMOUS : MAP_SHARED;
        char *p = mmap(NULL, window, PROT_READ | PROT_WRITE, flags, fd, fd < 0 ? 0 : off);
        if (p == MAP_FAILED) {
            printf("mmap at %ld: %s\n", off, strerror(errno));
            return 1;
        }
        memset(p, 0x5a, window);
        if (msync(p, window, MS_SYNC) == 0) {
            stored++;
        } else {
            if (first_refused < 0) printf("msync at %ld: %s\n", off, strerror(errno));
            if (first_refused < 0) first_refused = off;
            refused++;
        }
        if (munmap(p, window) != 0) {
            printf("munmap at %ld: %s\n", off, strerror(errno));
            return 1;
        }
    }
    printf("windows stored %ld refused %ld\n", stored, refused);
    return 0;
}

static int window_attack(const char *path, long mib, long kib) {
    int fd = strcmp(path, "memfd") ? open(path, O_CREAT | O_RDWR | O_TRUNC, 0600) : memfd_create("big", 0);
    if (fd < 0 || ftruncate(fd, mib << 20) != 0) {
        perror(path);
        return 2;
    }
    int status = windows(fd, mib << 20, kib << 10);
    struct stat st;
    fstat(fd, &st);
    printf("size %lld\n", (long long)st.st_size);
    return status;
}

static void *maps[MAX_MAPS];

static int many(long n, const char *program) {
    long mapped = 0;
    char name[32];
    for (; mapped < n && mapped < MAX_MAPS; mapped++) {
        snprintf(name, sizeof name, "/tmp/m%ld", mapped);
        int fd = open(name, O_CREAT | O_RDWR | O_TRUNC, 0600);
        if (fd < 0) {
            printf("open %ld: %s\n", mapped, strerror(errno));
            break;
        }
        if (ftruncate(fd, 4096) != 0) printf("ftruncate %ld: %s\n", mapped, strerror(errno));
        maps[mapped] = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
        close(fd);
        if (maps[mapped] == MAP_FAILED) {
            printf("mmap %ld: %s\n", mapped, strerror(errno));
            break;
        }
    }
    printf("mapped %ld\n", mapped);
    void *shm = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    printf("shared memory: %s\n", shm == MAP_FAILED ? strerror(errno) : "mapped");
    if (shm != MAP_FAILED) munmap(shm, 4096);
    pid_t child = fork();
    if (child == 0) {
        char *argv[] = {(char *)program, "hello", NULL};
        execv(program, argv);
        printf("execve: %s\n", strerror(errno));
        _exit(0);
    }
    if (child > 0) {
        int status;
        waitpid(child, &status, 0);
    } else {
        printf("fork: %s\n", strerror(errno));
    }
    for (long i = 0; i < mapped; i++) munmap(maps[i], 4096);
    int fd = open("/tmp/m0", O_RDONLY);
    void *again = fd < 0 ? MAP_FAILED : mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    printf("after munmap: %s\n", again == MAP_FAILED ? strerror(errno) : "mapped");
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 4 && !strcmp(argv[1], "window")) return window_attack(argv[2], atol(argv[3]), atol(argv[4]));
    if (argc > 3 && !strcmp(argv[1], "anon")) return windows(-1, atol(argv[2]) << 20, atol(argv[3]) << 10);
    if (argc > 3 && !strcmp(argv[1], "many")) return many(atol(argv[2]), argv[3]);
    if (argc > 1 && !strcmp(argv[1], "hello")) return puts("hello") < 0;
    fprintf(stderr, "usage: mapflood window PATH MIB KIB | anon MIB KIB | many N PROG | hello\n");
    return 2;
}

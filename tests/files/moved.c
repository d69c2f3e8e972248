/* A working directory and directory descriptors follow a rename, as Linux holds them by
 * dentry; a removed working directory finds nothing (each line the same natively and in
 * the sandbox; paths are printed relative to the start directory).
 *   moved cwd      chdir a; rename ../a ../b; create f; getcwd
 *   moved dirfd    open a; rename a b; openat(dirfd, "g"); /proc/self/fd names the new place
 *   moved exchange renameat2(RENAME_EXCHANGE) of the cwd and another directory
 *   moved removed  chdir a; rmdir ../a; getcwd and a relative open give ENOENT, even after
 *                  mkdir ../a again
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static char start[4096];

static void where(const char *what) {
    char cwd[4096];
    if (getcwd(cwd, sizeof cwd) == NULL) {
        printf("%s: getcwd %s\n", what, strerror(errno));
        return;
    }
    printf("%s: cwd %s\n", what, strncmp(cwd, start, strlen(start)) ? cwd : cwd + strlen(start));
}

static void try_create(const char *what, int dirfd, const char *name) {
    int fd = openat(dirfd, name, O_CREAT | O_WRONLY, 0644);
    printf("%s: create %s %s\n", what, name, fd >= 0 ? "ok" : strerror(errno));
    if (fd >= 0) close(fd);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    getcwd(start, sizeof start);
    mkdir("a", 0755);
    if (!strcmp(mode, "cwd")) {
        chdir("a");
        rename("../a", "../b");
        try_create("renamed", AT_FDCWD, "f");
        where("renamed");
        printf("f is in b: %d\n", access("../b/f", F_OK) == 0);
    } else if (!strcmp(mode, "dirfd")) {
        int dir = open("a", O_RDONLY | O_DIRECTORY);
        rename("a", "b");
        try_create("renamed", dir, "g");
        printf("g is in b: %d\n", access("b/g", F_OK) == 0);
        char link[64], target[4096];
        snprintf(link, sizeof link, "/proc/self/fd/%d", dir);
        ssize_t n = readlink(link, target, sizeof target - 1);
        target[n > 0 ? n : 0] = 0;
        printf("fd names %s\n", strncmp(target, start, strlen(start)) ? target : target + strlen(start));
    } else if (!strcmp(mode, "exchange")) {
        mkdir("c", 0755);
        chdir("a");
        long r = syscall(SYS_renameat2, AT_FDCWD, "../a", AT_FDCWD, "../c", 2 /* RENAME_EXCHANGE */);
        printf("exchange %ld\n", r);
        where("exchanged");
        try_create("exchanged", AT_FDCWD, "h");
        printf("h is in c: %d\n", access("../c/h", F_OK) == 0);
    } else if (!strcmp(mode, "removed")) {
        chdir("a");
        printf("rmdir %d\n", rmdir("../a"));
        where("removed");
        try_create("removed", AT_FDCWD, "f");
        mkdir("../a", 0755);
        try_create("made again", AT_FDCWD, "f");
        chdir("..");
        where("left");
    } else return 2;
    return 0;
}

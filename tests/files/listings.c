/* Directories listed as Linux lists them, and /proc files as Linux serves them (found by a
 * differential run of Debian programs; each line is the same natively and in the sandbox).
 *   listings rewind   rewinddir shows entries made since the directory was opened
 *   listings old      the old getdents(2): struct linux_dirent, d_type in the last byte
 *   listings fds      /proc/self/fd lists the descriptor listing it, and one dup-ed since
 *   listings inodes   stat and fstat of /proc files agree (cp checks they do)
 *   listings auxv     /proc/self/auxv is the auxv getauxval reads
 *   listings exec     cmdline and environ opened before an execve, read after it
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int count(DIR *dir, const char *skip_prefix) {
    int n = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL)
        n += entry->d_name[0] != '.' && strncmp(entry->d_name, skip_prefix, strlen(skip_prefix)) != 0;
    return n;
}

static void rewind_case(void) {
    mkdir("dir", 0755);
    DIR *dir = opendir("dir");
    printf("before %d\n", count(dir, "\x01"));
    close(open("dir/new", O_CREAT | O_WRONLY, 0644));
    printf("without rewind %d\n", count(dir, "\x01"));
    rewinddir(dir);
    printf("after rewind %d\n", count(dir, "\x01"));
    closedir(dir);
    unlink("dir/new");
    rmdir("dir");
}

static void old_case(void) {
    mkdir("dir", 0755);
    mkdir("dir/sub", 0755);
    close(open("dir/file-with-a-longer-name", O_CREAT | O_WRONLY, 0644));
    int fd = open("dir", O_RDONLY | O_DIRECTORY);
    char buf[4096];
    long n = syscall(SYS_getdents, fd, buf, sizeof buf), names = 0;
    for (long at = 0; at < n;) {
        unsigned short reclen = *(unsigned short *)(buf + at + 16);
        const char *name = buf + at + 18;
        if (strcmp(name, ".") && strcmp(name, ".."))
            printf("%s type %d aligned %d\n", name, buf[at + reclen - 1], reclen % 8 == 0), names++;
        at += reclen;
    }
    printf("%ld names\n", names);
    printf("tiny buffer: %ld\n", syscall(SYS_getdents, fd, buf, 8));
    close(fd);
    unlink("dir/file-with-a-longer-name");
    rmdir("dir/sub");
    rmdir("dir");
}

static void fds_case(void) {
    int fd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY);
    char link[64];
    snprintf(link, sizeof link, "%d", fd);
    DIR *dir = fdopendir(fd);
    struct dirent *entry;
    int seen_self = 0, n = 0;
    while ((entry = readdir(dir)) != NULL)
        if (entry->d_name[0] != '.')
            n++, seen_self |= strcmp(entry->d_name, link) == 0;
    printf("listed some %d, itself %d\n", n >= 4, seen_self);
    dup2(0, 9);
    rewinddir(dir);
    int seen_dup = 0;
    while ((entry = readdir(dir)) != NULL)
        seen_dup |= strcmp(entry->d_name, "9") == 0;
    printf("after rewind, the dup %d\n", seen_dup);
    closedir(dir);
}

static void inode_of(const char *path) {
    struct stat by_path, by_fd;
    int fd = open(path, O_RDONLY);
    stat(path, &by_path);
    fstat(fd, &by_fd);
    printf("%s: same inode %d, same device %d, same type %d\n", path, by_path.st_ino == by_fd.st_ino,
           by_path.st_dev == by_fd.st_dev, (by_path.st_mode & S_IFMT) == (by_fd.st_mode & S_IFMT));
    close(fd);
}

static void auxv_case(void) {
    unsigned long pairs[128][2];
    int fd = open("/proc/self/auxv", O_RDONLY);
    long n = read(fd, pairs, sizeof pairs) / 16;
    int matched = 0, ended = 0;
    for (long i = 0; i < n; i++) {
        if (pairs[i][0] == AT_NULL) { ended = i == n - 1; break; }
        if (pairs[i][0] == AT_PAGESZ || pairs[i][0] == AT_ENTRY || pairs[i][0] == AT_PHDR || pairs[i][0] == AT_RANDOM)
            matched += getauxval(pairs[i][0]) == pairs[i][1];
    }
    printf("auxv: 4 of the pairs match getauxval: %d; ends with AT_NULL: %d\n", matched == 4, ended);
    close(fd);
}

static void show(const char *what, int fd) {
    char buf[256];
    ssize_t n = pread(fd, buf, sizeof buf, 0);
    printf("%s after exec: %zd bytes:", what, n);
    for (ssize_t i = 0; i < n; i++)
        putchar(buf[i] ? buf[i] : ' ');
    putchar('\n');
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "rewind")) rewind_case();
    else if (!strcmp(mode, "old")) old_case();
    else if (!strcmp(mode, "fds")) fds_case();
    else if (!strcmp(mode, "inodes")) {
        inode_of("/proc/self/status");
        inode_of("/proc/self/cmdline");
        inode_of("/proc/self/fd");
        inode_of("/proc");
    } else if (!strcmp(mode, "auxv")) auxv_case();
    else if (!strcmp(mode, "exec")) {
        char *env[] = {"ONLY=after", NULL};
        /* fds 5 and 6 stay open across the execve (no O_CLOEXEC) */
        dup2(open("/proc/self/cmdline", O_RDONLY), 5);
        dup2(open("/proc/self/environ", O_RDONLY), 6);
        execle("/proc/self/exe", argv[0], "after-exec", "two", (char *)NULL, env);
        return 1;
    } else if (!strcmp(mode, "after-exec")) {
        show("cmdline", 5);
        show("environ", 6);
    } else return 2;
    return 0;
}

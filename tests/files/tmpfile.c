/* O_TMPFILE (man 2 open): an unnamed file in a directory, named later by linkat through
 * /proc/self/fd with AT_SYMLINK_FOLLOW; and the refusals around it. Each line the same
 * natively and in the sandbox (tests/files/test_listings.py). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void report(const char *what, long result) {
    int error = errno;
    printf("%s: %s\n", what, result >= 0 ? "ok" : strerror(error));
}

int main(void) {
    mkdir("d", 0755);
    int fd = open("d", O_TMPFILE | O_RDWR, 0640);
    report("open", fd);
    printf("write %zd\n", write(fd, "hello\n", 6));
    struct stat st;
    fstat(fd, &st);
    printf("nlink %lu mode %o size %ld\n", (unsigned long)st.st_nlink, st.st_mode & 07777, (long)st.st_size);
    char link[64], target[256];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    target[n > 0 ? n : 0] = 0;
    printf("shown as deleted: %d\n", strstr(target, "(deleted)") != NULL);
    report("linkat", linkat(AT_FDCWD, link, AT_FDCWD, "d/named", AT_SYMLINK_FOLLOW));
    fstat(fd, &st);
    printf("nlink after %lu\n", (unsigned long)st.st_nlink);
    char buf[16] = {0};
    int named = open("d/named", O_RDONLY);
    read(named, buf, sizeof buf - 1);
    printf("named holds %s", buf);
    report("read-only", open("d", O_TMPFILE | O_RDONLY, 0600));
    report("with O_CREAT", open("d", O_TMPFILE | O_RDWR | O_CREAT, 0600));
    report("in a file", open("d/named", O_TMPFILE | O_RDWR, 0600));
    report("in a missing directory", open("d/nowhere", O_TMPFILE | O_RDWR, 0600));
    int gone = open("d/gone", O_CREAT | O_RDWR, 0600);
    unlink("d/gone");
    snprintf(link, sizeof link, "/proc/self/fd/%d", gone);
    report("linkat of an unlinked file", linkat(AT_FDCWD, link, AT_FDCWD, "d/back", AT_SYMLINK_FOLLOW));
    int pipes[2];
    pipe(pipes);
    snprintf(link, sizeof link, "/proc/self/fd/%d", pipes[0]);
    report("linkat of a pipe", linkat(AT_FDCWD, link, AT_FDCWD, "d/pipe", AT_SYMLINK_FOLLOW));
    unlink("d/named");
    report("rmdir", rmdir("d"));
    return 0;
}

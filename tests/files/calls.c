/* splice, tee, vmsplice, copy_file_range, the vector calls, fallocate, fadvise64, sync,
 * syncfs and close_range, with their error cases. usage: calls CASE DIR */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define SIZE 200000
static char buf[SIZE], path[4096], path2[4096];
#define SHOW(what, expr) do { long r_ = (long)(expr); printf("%s: %ld %s\n", what, r_, r_ < 0 ? strerror(errno) : ""); } while (0)

static unsigned long checksum(const char *p, size_t n)
{
    unsigned long sum = 0;
    for (size_t i = 0; i < n; i++) sum = sum * 31 + (unsigned char)p[i];
    return sum;
}

static void make_file(void)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    write(fd, buf, SIZE);
    close(fd);
}

static void splice_slow(void)
{
    make_file();
    int p[2];
    pipe(p);
    if (fork() == 0) {
        close(p[0]);
        int in = open(path, O_RDONLY);
        long total = 0, n;
        while ((n = splice(in, 0, p[1], 0, SIZE, 0)) > 0) total += n;
        printf("spliced %ld, offset %lld\n", total, (long long)lseek(in, 0, SEEK_CUR));
        exit(0);
    }
    close(p[1]);
    usleep(300000);
    static char got[SIZE + 10];
    long total = 0, n;
    while ((n = read(p[0], got + total, sizeof got - total)) > 0) total += n;
    printf("read %ld sum %d\n", total, checksum(got, total) == checksum(buf, SIZE));
    wait(0);
}

static void splice_cases(void)
{
    make_file();
    int p[2], q[2];
    pipe(p);
    pipe(q);
    int in = open(path, O_RDONLY), out = open(path2, O_RDWR | O_CREAT | O_TRUNC, 0600);
    loff_t off = 100;
    SHOW("file->pipe at offset", splice(in, &off, p[1], 0, 1000, 0));
    printf("off %lld pos %lld\n", (long long)off, (long long)lseek(in, 0, SEEK_CUR));
    SHOW("tee", tee(p[0], q[1], 5000, 0));
    SHOW("tee same pipe", tee(p[0], p[1], 10, 0));
    SHOW("tee file", tee(in, q[1], 10, 0));
    SHOW("pipe->file", splice(p[0], 0, out, 0, 600, 0));
    SHOW("pipe->file rest", splice(p[0], 0, out, 0, 5000, 0));
    SHOW("out size", lseek(out, 0, SEEK_END));
    SHOW("file->file", splice(in, 0, out, 0, 10, 0));
    SHOW("offset on a pipe", splice(in, 0, q[1], &off, 10, 0));
    SHOW("empty pipe nonblock", splice(p[0], 0, out, 0, 10, SPLICE_F_NONBLOCK));
    SHOW("bad flags", splice(in, 0, q[1], 0, 10, 0x100));
    SHOW("zero length", splice(in, 0, q[1], 0, 0, 0));
    char small[2000];
    SHOW("tee'd copy", read(q[0], small, sizeof small));
    printf("same: %d\n", memcmp(small, buf + 100, 1000) == 0);
    struct iovec iov[2] = {{buf, 10}, {buf + 10, 20}};
    SHOW("vmsplice in", vmsplice(q[1], iov, 2, 0));
    char back[40];
    struct iovec riov = {back, sizeof back};
    SHOW("vmsplice out", vmsplice(q[0], &riov, 1, 0));
    SHOW("vmsplice file", vmsplice(in, iov, 2, 0));
}

static void copy_range(void)
{
    make_file();
    int in = open(path, O_RDONLY), out = open(path2, O_RDWR | O_CREAT | O_TRUNC, 0600);
    loff_t a = 1000, b = 0;
    SHOW("copy", copy_file_range(in, &a, out, &b, 50000, 0));
    printf("a %lld b %lld pos %lld %lld\n", (long long)a, (long long)b, (long long)lseek(in, 0, SEEK_CUR),
           (long long)lseek(out, 0, SEEK_CUR));
    SHOW("copy at offsets", copy_file_range(in, 0, out, 0, 100, 0));
    printf("pos %lld %lld\n", (long long)lseek(in, 0, SEEK_CUR), (long long)lseek(out, 0, SEEK_CUR));
    SHOW("flags", copy_file_range(in, 0, out, 0, 100, 1));
    int p[2];
    pipe(p);
    SHOW("to a pipe", copy_file_range(in, 0, p[1], 0, 100, 0));
    SHOW("from write-only", copy_file_range(p[1], 0, out, 0, 100, 0));
    int rw = open(path, O_RDWR);
    loff_t x = 0, y = 10;
    SHOW("overlap", copy_file_range(rw, &x, rw, &y, 100, 0));
    x = SIZE;
    SHOW("at eof", copy_file_range(in, &x, out, 0, 100, 0));
}

static void vectors(void)
{
    make_file();
    int fd = open(path, O_RDWR);
    char a[10], b[20];
    struct iovec iov[2] = {{a, 10}, {b, 20}};
    SHOW("preadv", preadv(fd, iov, 2, 5));
    printf("same %d %d pos %lld\n", !memcmp(a, buf + 5, 10), !memcmp(b, buf + 15, 20), (long long)lseek(fd, 0, SEEK_CUR));
    SHOW("preadv2 -1", preadv2(fd, iov, 2, -1, 0));
    printf("pos %lld\n", (long long)lseek(fd, 0, SEEK_CUR));
    SHOW("preadv negative", preadv(fd, iov, 2, -5));
    SHOW("preadv2 bad flag", preadv2(fd, iov, 2, 0, 0x1000));
    SHOW("pwritev2 dsync", pwritev2(fd, iov, 2, 100, RWF_DSYNC));
    SHOW("pwritev2 append", pwritev2(fd, iov, 2, 100, RWF_APPEND));
    SHOW("size", lseek(fd, 0, SEEK_END));
    SHOW("pwritev", pwritev(fd, iov, 2, 0));
    int p[2];
    pipe(p);
    SHOW("preadv2 nowait empty pipe", preadv2(p[0], iov, 2, -1, RWF_NOWAIT));
    SHOW("preadv on a pipe", preadv(p[0], iov, 2, 0));
    SHOW("readv bad iovcnt", readv(fd, iov, -1));
}

static void misc(void)
{
    make_file();
    int fd = open(path, O_RDWR), ro = open(path, O_RDONLY);
    struct stat st;
    SHOW("fallocate grow", fallocate(fd, 0, 0, 300000));
    fstat(fd, &st);
    printf("size %lld\n", (long long)st.st_size);
    SHOW("fallocate keep size", fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 400000));
    fstat(fd, &st);
    printf("size %lld\n", (long long)st.st_size);
    SHOW("fallocate zero length", fallocate(fd, 0, 0, 0));
    SHOW("fallocate negative", fallocate(fd, 0, -1, 10));
    SHOW("fallocate read-only", fallocate(ro, 0, 0, 10));
    SHOW("fallocate huge", fallocate(fd, 0, 0x7fffffffffffff00LL, 0x1000));
    SHOW("fallocate bad mode", fallocate(fd, 0x80, 0, 10));
    int p[2];
    pipe(p);
    SHOW("fallocate pipe", fallocate(p[1], 0, 0, 10));
    SHOW("fadvise", posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL));
    SHOW("fadvise bad", posix_fadvise(fd, 0, 0, 99));
    SHOW("fadvise pipe", posix_fadvise(p[0], 0, 0, 0));
    sync();
    SHOW("syncfs", syncfs(fd));
    SHOW("syncfs bad", syncfs(99));
    int hi = dup2(fd, 50);
    dup2(fd, 51);
    dup2(fd, 60);
    SHOW("close_range cloexec", close_range(50, 51, CLOSE_RANGE_CLOEXEC));
    printf("cloexec %d %d %d\n", fcntl(50, F_GETFD), fcntl(51, F_GETFD), fcntl(60, F_GETFD));
    SHOW("close_range", close_range(50, ~0U, 0));
    printf("open %d %d %d\n", fcntl(hi, F_GETFD) >= 0, fcntl(51, F_GETFD) >= 0, fcntl(60, F_GETFD) >= 0);
    SHOW("close_range first > last", close_range(10, 5, 0));
    SHOW("close_range bad flags", close_range(10, 20, 1));
    SHOW("close_range unshare", close_range(100, 200, CLOSE_RANGE_UNSHARE));
    printf("fd still open: %d\n", fcntl(fd, F_GETFD) >= 0);
}

int main(int argc, char **argv)
{
    if (argc < 3) return 2;
    for (int i = 0; i < SIZE; i++) buf[i] = (char)(i * 11 + (i >> 10));
    snprintf(path, sizeof path, "%s/calls.a", argv[2]);
    snprintf(path2, sizeof path2, "%s/calls.b", argv[2]);
    setvbuf(stdout, 0, _IOLBF, 0);
    if (!strcmp(argv[1], "splice_slow")) splice_slow();
    else if (!strcmp(argv[1], "splice")) splice_cases();
    else if (!strcmp(argv[1], "copy")) copy_range();
    else if (!strcmp(argv[1], "vectors")) vectors();
    else if (!strcmp(argv[1], "misc")) misc();
    else return 2;
    unlink(path);
    unlink(path2);
    return 0;
}

/* Named pipes (FIFOs) between processes, and mknod's other kinds.
 * usage: fifo CASE DIR */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static char path[4096];

static void reap(void) { int st; wait(&st); printf("child status %d\n", WEXITSTATUS(st)); }

static void between(void)
{
    printf("mkfifo: %s\n", mkfifo(path, 0600) ? strerror(errno) : "ok");
    struct stat st;
    stat(path, &st);
    printf("is fifo: %d mode %o size %lld\n", S_ISFIFO(st.st_mode), st.st_mode & 0777, (long long)st.st_size);
    if (fork() == 0) {
        int fd = open(path, O_WRONLY);
        static char buf[300000];
        for (unsigned i = 0; i < sizeof buf; i++) buf[i] = (char)(i * 7);
        ssize_t n = write(fd, buf, sizeof buf);
        printf("child wrote %zd\n", n);
        fflush(stdout);
        exit(0);
    }
    int fd = open(path, O_RDONLY);
    struct stat fst;
    fstat(fd, &fst);
    printf("fstat is fifo: %d same inode: %d\n", S_ISFIFO(fst.st_mode), fst.st_ino == st.st_ino);
    unsigned long sum = 0, total = 0;
    char buf[7000];
    ssize_t n;
    usleep(100000);
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++) sum = sum * 31 + (unsigned char)buf[i];
        total += n;
    }
    printf("read %lu bytes, sum %lu\n", total, sum);
    reap();
    unlink(path);
}

static void opens(void)
{
    mkfifo(path, 0644);
    int w = open(path, O_WRONLY | O_NONBLOCK);
    printf("nonblock write open, no reader: %s\n", w < 0 ? strerror(errno) : "ok");
    int r = open(path, O_RDONLY | O_NONBLOCK);
    printf("nonblock read open: %s\n", r < 0 ? strerror(errno) : "ok");
    char c;
    printf("read, no writer: %zd\n", read(r, &c, 1));
    w = open(path, O_WRONLY | O_NONBLOCK);
    printf("nonblock write open with a reader: %s\n", w < 0 ? strerror(errno) : "ok");
    printf("read, empty: %s\n", read(r, &c, 1) < 0 ? strerror(errno) : "data");
    write(w, "hi", 2);
    char two[3] = {0};
    printf("read: %zd %s\n", read(r, two, 2), two);
    close(w);
    close(r);
    int rw = open(path, O_RDWR);
    printf("rdwr open: %s\n", rw < 0 ? strerror(errno) : "ok");
    write(rw, "xyz", 3);
    char three[4] = {0};
    printf("rdwr read: %zd %s\n", read(rw, three, 3), three);
    close(rw);
    rw = open(path, O_RDWR);
    printf("data gone with the last close: %s\n", read(open(path, O_RDONLY | O_NONBLOCK), &c, 1) < 0 ? strerror(errno) : "data");
    printf("O_DIRECTORY: %s\n", open(path, O_RDONLY | O_DIRECTORY) < 0 ? strerror(errno) : "ok");
    printf("mkfifo again: %s\n", mkfifo(path, 0600) ? strerror(errno) : "ok");
    unlink(path);
}

static void nodes(void)
{
    char p[4200];
    snprintf(p, sizeof p, "%s.reg", path);
    printf("mknod S_IFREG: %s\n", mknod(p, S_IFREG | 0640, 0) ? strerror(errno) : "ok");
    struct stat st;
    stat(p, &st);
    printf("regular %d size %lld mode %o\n", S_ISREG(st.st_mode), (long long)st.st_size, st.st_mode & 0777);
    printf("again: %s\n", mknod(p, S_IFREG | 0640, 0) ? strerror(errno) : "ok");
    unlink(p);
    printf("mknod S_IFCHR: %s\n", mknod(p, S_IFCHR | 0600, makedev(1, 3)) ? strerror(errno) : "ok");
    printf("mknod S_IFBLK: %s\n", mknod(p, S_IFBLK | 0600, makedev(8, 0)) ? strerror(errno) : "ok");
    printf("mknod bad type: %s\n", mknod(p, 0170000 | 0600, 0) ? strerror(errno) : "ok");
    printf("mknod 0 mode: %s\n", mknod(p, 0, 0) ? strerror(errno) : "ok");
    stat(p, &st);
    printf("regular %d\n", S_ISREG(st.st_mode));
    unlink(p);
    printf("mkfifo in a missing dir: %s\n", mkfifo("/nonexistent/dir/f", 0600) ? strerror(errno) : "ok");
}

static void on_alarm(int sig) { (void)sig; }

static void interrupted(void)
{
    mkfifo(path, 0600);
    struct sigaction sa = {.sa_handler = on_alarm};
    sigaction(SIGALRM, &sa, 0);
    struct itimerval it = {.it_value = {0, 100000}};
    setitimer(ITIMER_REAL, &it, 0);
    int fd = open(path, O_RDONLY);
    printf("blocked read open interrupted: %s\n", fd < 0 ? strerror(errno) : "ok");
    setitimer(ITIMER_REAL, &it, 0);
    fd = open(path, O_WRONLY);
    printf("blocked write open interrupted: %s\n", fd < 0 ? strerror(errno) : "ok");
    fd = open("/dev/null", O_RDONLY);
    printf("next descriptor: %d\n", fd);
    /* the interrupted opens left no reader or writer behind */
    printf("nonblock write open: %s\n", open(path, O_WRONLY | O_NONBLOCK) < 0 ? strerror(errno) : "ok");
    unlink(path);
}

static void one_side(void)
{
    mkfifo(path, 0600);
    printf("opening\n");
    fflush(stdout);
    int fd = open(path, O_RDONLY);
    printf("opened %d\n", fd);
}

int main(int argc, char **argv)
{
    if (argc < 3) return 2;
    snprintf(path, sizeof path, "%s/fifo", argv[2]);
    setvbuf(stdout, 0, _IOLBF, 0);
    if (!strcmp(argv[1], "between")) between();
    else if (!strcmp(argv[1], "opens")) opens();
    else if (!strcmp(argv[1], "nodes")) nodes();
    else if (!strcmp(argv[1], "interrupt")) interrupted();
    else if (!strcmp(argv[1], "oneside")) one_side();
    else return 2;
    return 0;
}

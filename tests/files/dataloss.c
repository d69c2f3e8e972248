/* Calls that can block part-way must neither lose nor repeat bytes: a big write into a
 * pipe, writev, sendfile from a file (with and without an offset pointer), each read by a
 * slow reader that prints what it got. usage: dataloss CASE FILE */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define SIZE 300000
static char buf[SIZE];

static void slow_reader(int fd)
{
    usleep(300000); /* the writer fills the pipe and sleeps in its call */
    unsigned long sum = 0, total = 0;
    char chunk[5000];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof chunk)) > 0) {
        for (ssize_t i = 0; i < n; i++) sum = sum * 31 + (unsigned char)chunk[i];
        total += n;
    }
    printf("reader: %lu bytes, sum %lu\n", total, sum);
}

static void run(const char *how, const char *file)
{
    int p[2];
    if (pipe(p)) exit(3);
    if (fork() == 0) {
        close(p[0]);
        ssize_t n = 0;
        if (!strcmp(how, "write")) {
            n = write(p[1], buf, SIZE);
        } else if (!strcmp(how, "writev")) {
            struct iovec iov[3] = {{buf, 1000}, {buf + 1000, 100000}, {buf + 101000, SIZE - 101000}};
            n = writev(p[1], iov, 3);
        } else if (!strcmp(how, "sendfile")) {
            int in = open(file, O_RDONLY);
            ssize_t got;
            while ((got = sendfile(p[1], in, 0, SIZE)) > 0) n += got;
            printf("writer: offset after %lld\n", (long long)lseek(in, 0, SEEK_CUR));
        } else if (!strcmp(how, "sendfile_offset")) {
            int in = open(file, O_RDONLY);
            off_t off = 1000;
            ssize_t got;
            while ((got = sendfile(p[1], in, &off, SIZE)) > 0) n += got;
            printf("writer: off %lld, file offset %lld\n", (long long)off, (long long)lseek(in, 0, SEEK_CUR));
        }
        printf("writer: %zd\n", n);
        fflush(stdout);
        exit(0);
    }
    close(p[1]);
    slow_reader(p[0]);
    int st;
    wait(&st);
}

static void on_alarm(int sig) { (void)sig; }

static void interrupted(void)
{
    int p[2];
    if (pipe(p)) exit(3);
    struct sigaction sa = {.sa_handler = on_alarm};
    sigaction(SIGALRM, &sa, 0);
    struct itimerval it = {.it_value = {0, 100000}};
    setitimer(ITIMER_REAL, &it, 0);
    ssize_t n = write(p[1], buf, SIZE);
    printf("interrupted write: %s\n", n == 65536 ? "the pipe's capacity" : n < 0 ? strerror(errno) : "other");
    setitimer(ITIMER_REAL, &it, 0);
    n = write(p[1], buf, 10);
    printf("interrupted small write: %s\n", n < 0 ? strerror(errno) : "written");
    fcntl(p[1], F_SETFL, O_NONBLOCK);
    printf("nonblocking write into a full pipe: %s\n", write(p[1], buf, 10) < 0 ? strerror(errno) : "written");
    char page[4096];
    read(p[0], page, sizeof page);
    printf("nonblocking big write into one free page: %zd\n", write(p[1], buf, 10000));
}

int main(int argc, char **argv)
{
    if (argc < 3) return 2;
    for (int i = 0; i < SIZE; i++) buf[i] = (char)(i * 13 + (i >> 9));
    setvbuf(stdout, 0, _IOLBF, 0);
    if (!strcmp(argv[1], "interrupt")) interrupted();
    else if (!strcmp(argv[1], "makefile")) {
        FILE *f = fopen(argv[2], "w");
        fwrite(buf, 1, SIZE, f);
        fclose(f);
    } else run(argv[1], argv[2]);
    return 0;
}

/* Copy-on-write against stale TLB entries: after each COW fault the writer must see its new
 * frame, never a cached translation of the old one, for writes by the CPU and by the kernel
 * (read() into a page the guest has only read so far), with and without fork, over many pages.
 *
 *   cowtlb fork NPAGES     anonymous pages shared by fork, written by parent and child
 *   cowtlb file PATH       a MAP_PRIVATE file mapping written in place (COW of page-cache frames)
 *
 * Prints checksums; the same output natively and in the sandbox. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096

static unsigned long sum_pages(const unsigned char *base, long npages) {
    unsigned long sum = 0;
    for (long i = 0; i < npages; i++)
        for (int j = 7; j < PAGE; j += 93) sum = sum * 31 + base[i * PAGE + j];  /* 7, 100, ... */
    return sum;
}

/* Read every page (the TLB caches read-only entries), then write each one and read it back
 * at once: a stale entry would show the old byte. Returns how many pages read back wrong. */
static long write_after_read(unsigned char *base, long npages, unsigned char value) {
    volatile unsigned long sink = sum_pages(base, npages);
    long wrong = 0;
    (void)sink;
    for (long i = 0; i < npages; i++) {
        base[i * PAGE + 7] = value;
        if (((volatile unsigned char *)base)[i * PAGE + 7] != value) wrong++;
    }
    return wrong;
}

/* The kernel writes: read() from a pipe into pages the guest has only read. */
static long kernel_write_after_read(unsigned char *base, long npages, char tag) {
    int fds[2];
    char msg[32];
    long wrong = 0;
    if (pipe(fds)) return -1;
    volatile unsigned long sink = sum_pages(base, npages);
    (void)sink;
    for (long i = 0; i < npages; i++) {
        int n = snprintf(msg, sizeof msg, "%c%ld", tag, i);
        if (write(fds[1], msg, n) != n || read(fds[0], base + i * PAGE + 100, n) != n) return -1;
        if (memcmp(base + i * PAGE + 100, msg, n)) wrong++;
    }
    close(fds[0]);
    close(fds[1]);
    return wrong;
}

static int forked(long npages) {
    unsigned char *base = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) return 1;
    for (long i = 0; i < npages; i++) memset(base + i * PAGE, (int)(i & 0xff), PAGE);
    unsigned long before = sum_pages(base, npages);
    for (int round = 0; round < 2; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            long wrong = write_after_read(base, npages / 2, 0xC1) + kernel_write_after_read(base + npages / 2 * PAGE, npages - npages / 2, 'c');
            printf("round %d child: wrong %ld sum %lx\n", round, wrong, sum_pages(base, npages));
            fflush(stdout);
            _exit(0);
        }
        int status;
        waitpid(pid, &status, 0);
        long wrong = kernel_write_after_read(base, npages / 2, 'p') + write_after_read(base + npages / 2 * PAGE, npages - npages / 2, 0xA0 + round);
        printf("round %d parent: wrong %ld sum %lx (child status %d)\n", round, wrong, sum_pages(base, npages), status);
    }
    printf("sum before %lx\n", before);
    return 0;
}

static int file(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 1;
    off_t size = lseek(fd, 0, SEEK_END);
    long npages = size / PAGE;
    unsigned char *base = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    unsigned char *view = mmap(NULL, npages * PAGE, PROT_READ, MAP_PRIVATE, fd, 0);
    if (base == MAP_FAILED || view == MAP_FAILED) return 1;
    unsigned long clean = sum_pages(view, npages);
    long wrong = write_after_read(base, npages / 2, 0x5A) + kernel_write_after_read(base + npages / 2 * PAGE, npages - npages / 2, 'f');
    printf("file pages %s: wrong %ld, private copy %s, file untouched %s\n", npages > 8 ? "many" : "few", wrong,
           sum_pages(base, npages) != clean ? "changed" : "same", sum_pages(view, npages) == clean ? "yes" : "no");
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);  /* nothing buffered is copied by fork */
    if (argc == 3 && !strcmp(argv[1], "fork")) return forked(atol(argv[2]));
    if (argc == 3 && !strcmp(argv[1], "file")) return file(argv[2]);
    fprintf(stderr, "usage: cowtlb fork NPAGES | file PATH\n");
    return 2;
}

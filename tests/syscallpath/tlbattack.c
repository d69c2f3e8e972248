/* tlbattack MODE: reads and writes through a buffer whose mapping changes between the calls,
 * to check that the kernel's cached translations (the software TLB of copy_in/copy_out)
 * follow every change: the same output natively and in the sandbox.
 *
 *   unmap     read into a page, munmap it, read again (EFAULT), map it again (fresh zeros)
 *   protect   read into a page, mprotect it read-only (EFAULT), then read-write again
 *   fork      read into a page, fork; the parent reads into it again (copy-on-write: the
 *             child keeps its byte), the child reads into it too
 *   remap     read into a page, mremap it elsewhere: the old address faults, the new works
 *   dontneed  read into a page, MADV_DONTNEED it: the page reads back as zeros
 *   jit       read code into an executable page from a pipe, call it; again with new code
 *   bad       bad buffers: NULL, the kernel half, non-canonical, huge counts, -1 descriptors;
 *             writes to /dev/null, /dev/zero, /dev/full, which never read their buffer
 *   write     write() from a buffer whose page is unmapped and mapped again with new data
 *   numbers   odd system-call numbers: the upper half of RAX set, unknown, negative
 *   partial   reads that run from a page into an unmapped one: a device's read ends short
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static int zero, null;

static void show(const char *what, long r) {
    printf("%s: %ld%s%s\n", what, r, r < 0 ? " " : "", r < 0 ? strerror(errno) : "");
}

static char *page(void *at) {
    char *p = mmap(at, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | (at ? MAP_FIXED : 0), -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        _exit(2);
    }
    return p;
}

static void unmap(void) {
    char *p = page(NULL);
    p[1] = 'x';
    show("read", read(zero, p + 1, 1));
    printf("byte %d\n", p[1]);
    munmap(p, 4096);
    show("read after munmap", read(zero, p + 1, 1));
    show("write after munmap", write(null, p + 1, 1));
    page(p)[2] = 'y';
    show("read after mmap", read(zero, p + 2, 1));
    printf("bytes %d %d\n", p[1], p[2]);
}

static void protect(void) {
    char *p = page(NULL);
    p[0] = 'a';
    show("read", read(zero, p, 1));
    mprotect(p, 4096, PROT_READ);
    show("read into read-only", read(zero, p, 1));
    show("write from read-only", write(null, p, 1));
    mprotect(p, 4096, PROT_NONE);
    show("write from PROT_NONE", write(null, p, 1));
    mprotect(p, 4096, PROT_READ | PROT_WRITE);
    p[0] = 'b';
    show("read into read-write", read(zero, p, 1));
    printf("byte %d\n", p[0]);
}

static void forked(void) {
    char *p = page(NULL);
    int go[2], done[2];
    pipe(go);
    pipe(done);
    show("read", read(zero, p, 1));
    p[0] = 'P';
    pid_t child = fork();
    if (child == 0) {
        char c;
        read(go[0], &c, 1);  /* the parent has read into its copy */
        printf("child sees %c\n", p[0]);
        show("child read", read(zero, p, 1));
        printf("child byte %d\n", p[0]);
        fflush(stdout);
        write(done[1], "x", 1);
        _exit(0);
    }
    show("parent read", read(zero, p, 1));
    printf("parent byte %d\n", p[0]);
    fflush(stdout);
    write(go[1], "x", 1);
    char c;
    read(done[0], &c, 1);
    waitpid(child, NULL, 0);
    printf("parent byte after %d\n", p[0]);
}

static void remap(void) {
    char *p = page(NULL);
    show("read", read(zero, p, 1));
    p[0] = 'm';
    char *far = mmap(NULL, 8192, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(far, 8192);
    char *q = mremap(p, 4096, 4096, MREMAP_MAYMOVE | MREMAP_FIXED, far);
    printf("moved %d\n", q == far);
    show("read at the old address", read(zero, p, 1));
    printf("byte at new %c\n", q[0]);
    show("read at the new address", read(zero, q, 1));
    printf("byte at new %d\n", q[0]);
}

static void dontneed(void) {
    char *p = page(NULL);
    show("read", read(zero, p + 7, 1));
    p[7] = 'd';
    madvise(p, 4096, MADV_DONTNEED);
    printf("byte %d\n", p[7]);
    p[8] = 'e';
    show("read", read(zero, p + 7, 1));
    printf("bytes %d %c\n", p[7], p[8]);
}

static void jit(void) {
    unsigned char one[] = {0xb8, 1, 0, 0, 0, 0xc3}, two[] = {0xb8, 2, 0, 0, 0, 0xc3};  /* mov eax, N; ret */
    unsigned char *code = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int fds[2];
    pipe(fds);
    write(fds[1], one, sizeof one);
    show("read code", read(fds[0], code, sizeof one));
    printf("call %d\n", ((int (*)(void))code)());
    write(fds[1], two, sizeof two);
    show("read code", read(fds[0], code, sizeof two));
    printf("call %d\n", ((int (*)(void))code)());
    write(fds[1], one + 1, 1);
    show("read one byte", read(fds[0], code + 1, 1));
    printf("call %d\n", ((int (*)(void))code)());
}

static void bad(void) {
    static char buf[64];
    show("NULL", read(zero, NULL, 1));
    show("kernel half", read(zero, (void *)0xffff800000000000UL, 1));
    show("non-canonical", read(zero, (void *)0x0000800000000000UL, 1));
    show("last user byte", read(zero, (void *)0x00007fffffffffffUL, 1));
    show("huge count", read(zero, buf, 1UL << 62));
    show("count past user space", read(zero, buf, 0x00007fffffffffffUL));
    show("write huge count", write(null, buf, 1UL << 62));
    show("bad fd", read(-1, buf, 1));
    show("fd 1 << 32 | zero", syscall(0, (1L << 32) | zero, buf, 1));
    show("zero count", read(zero, NULL, 0));
    show("read from write-only", read(null, buf, 1));
    show("write to read-only", write(zero, buf, 1));
    show("ok", read(zero, buf, sizeof buf));
    char *none = mmap(NULL, 2 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    show("2 MiB to /dev/null from PROT_NONE", write(null, none, 2 << 20));
    show("NULL to /dev/zero", write(open("/dev/zero", O_WRONLY), NULL, 5));
    show("NULL to /dev/full", write(open("/dev/full", O_WRONLY), NULL, 5));
    show("2 MiB from /dev/zero into PROT_NONE", read(zero, none, 2 << 20));
}

static void writes(void) {
    char *p = page(NULL);
    int fds[2];
    char out[8] = {0};
    pipe(fds);
    memcpy(p, "first", 5);
    show("write", write(fds[1], p, 5));
    munmap(p, 4096);
    show("write after munmap", write(fds[1], p, 5));
    memcpy(page(p), "again", 5);
    show("write after mmap", write(fds[1], p, 5));
    show("read back", read(fds[0], out, 7));
    printf("%s\n", out);
}

static void partial(void) {
    char *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(p + 4096, 4096);  /* the page after is unmapped */
    int fds[2];
    pipe(fds);
    write(fds[1], "ab", 2);
    p[4095] = 'x';
    show("/dev/zero across into nothing", read(zero, p + 4095, 2));
    printf("byte %d\n", p[4095]);
    show("/dev/full across into nothing", read(open("/dev/full", O_RDONLY), p + 4095, 2));
    show("/dev/urandom across into nothing", read(open("/dev/urandom", O_RDONLY), p + 4095, 2));
    show("/dev/zero from the hole", read(zero, p + 4096, 2));
    show("a pipe across into nothing", read(fds[0], p + 4095, 2));
}

static void numbers(void) {
    printf("1 << 32 | getpid is getpid: %d\n", syscall((1L << 32) | 39) == getpid());
    show("100000", syscall(100000));
    show("-1", syscall(-1L));
    show("512", syscall(512));
    show("1023", syscall(1023));
}

int main(int argc, char **argv) {
    zero = open("/dev/zero", O_RDONLY);
    null = open("/dev/null", O_WRONLY);
    const char *mode = argc > 1 ? argv[1] : "";
    static const struct { const char *name; void (*run)(void); } modes[] = {
        {"unmap", unmap}, {"protect", protect}, {"fork", forked}, {"remap", remap},
        {"dontneed", dontneed}, {"jit", jit}, {"bad", bad}, {"write", writes}, {"numbers", numbers},
        {"partial", partial},
    };
    for (unsigned i = 0; i < sizeof modes / sizeof *modes; i++)
        if (strcmp(mode, modes[i].name) == 0) {
            modes[i].run();
            return 0;
        }
    fprintf(stderr, "tlbattack: unknown mode %s\n", mode);
    return 2;
}

/* First touches of memory in every situation where the C fault path (sandbox/native/
 * faultpath.c) must map the page as Python would, or leave the fault to Python: guard
 * pages, PROT_NONE, the top of the user half, a region another thread unmaps, protection
 * changes, fork's copy-on-write, and RAM running out. Prints only what is the same natively
 * and in the sandbox (offsets, signal codes, sums; never addresses).
 *
 *   faults guard        a PROT_NONE page between two touched pages: SEGV_ACCERR
 *   faults protnone     a PROT_NONE mapping, read and written: SEGV_ACCERR, contents kept
 *   faults top          the highest pages mmap hands out; then past the user half
 *   faults kernel       reads and writes in the kernel half and at address 0
 *   faults unmapped T   a thread touches pages while another unmaps them: SIGSEGV at last
 *   faults threads T    T threads first-touch their own slices of one region at once
 *   faults mprotect     read-only, then exec-less, then writable again: each first touch
 *   faults fork N       N pages touched, fork: each side writes, touches fresh pages, sums
 *   faults stack        deep recursion grows the stack a page at a time (Python's case)
 *   faults fill MIB     touch MIB MiB page by page, printing a count every 64 pages (tests
 *                       run it with a small --memory: the count where RAM ends must not
 *                       depend on the fast path) */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096L

static sigjmp_buf recover;
static volatile char *fault_base;
static volatile long fault_offset, fault_code;

static void on_segv(int sig, siginfo_t *info, void *ctx) {
    (void)sig, (void)ctx;
    fault_code = info->si_code;
    fault_offset = (char *)info->si_addr - (char *)fault_base;
    siglongjmp(recover, 1);
}

static void catch_segv(void) {
    struct sigaction sa = {0};
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
}

static const char *code_name(long code) {
    return code == SEGV_MAPERR ? "SEGV_MAPERR" : code == SEGV_ACCERR ? "SEGV_ACCERR" : code == 128 ? "SI_KERNEL"
                                                                                                  : "other";
}

/* Read (write 0) or write (write 1) one byte at base + off; prints what happened. */
static void touch(const char *what, volatile char *base, long off, int write, char value) {
    fault_base = base;
    if (sigsetjmp(recover, 1) == 0) {
        char seen = write ? (base[off] = value) : base[off];
        printf("%s: ok %d\n", what, seen);
    } else {
        printf("%s: %s at offset %ld\n", what, code_name(fault_code), fault_offset);
    }
}

static char *map(long pages, int prot) {
    char *p = mmap(NULL, pages * PAGE, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    return p;
}

static void guard(void) {
    char *p = map(3, PROT_READ | PROT_WRITE);
    mprotect(p + PAGE, PAGE, PROT_NONE);
    touch("below", p, 0, 1, 1);
    touch("guard read", p, PAGE + 8, 0, 0);
    touch("guard write", p, PAGE + 16, 1, 2);
    touch("above", p, 2 * PAGE, 1, 3);
    touch("above again", p, 2 * PAGE, 0, 0);
}

static void protnone(void) {
    char *p = map(4, PROT_NONE);
    touch("none read", p, 0, 0, 0);
    touch("none write", p, PAGE, 1, 5);
    mprotect(p, 4 * PAGE, PROT_READ | PROT_WRITE);
    touch("after mprotect write", p, PAGE, 1, 6);
    mprotect(p, 4 * PAGE, PROT_NONE);
    touch("none again", p, PAGE, 0, 0);
    mprotect(p, 4 * PAGE, PROT_READ);
    touch("read back", p, PAGE, 0, 0);
    touch("fresh read", p, 3 * PAGE, 0, 0);
}

static void top(void) {
    char *p = map(16, PROT_READ | PROT_WRITE);  /* top-down: just below the mmap base */
    long sum = 0;
    for (long i = 0; i < 16; i++)
        p[i * PAGE + PAGE - 1] = (char)i;
    for (long i = 0; i < 16; i++)
        sum += p[i * PAGE + PAGE - 1];
    printf("top 16 pages: sum %ld\n", sum);
    volatile char *last = (char *)0x7ffffffff000L;  /* past TASK_SIZE: never mappable */
    touch("last user page", last, 0, 0, 0);
    touch("last user page write", last, 0x800, 1, 1);
    volatile char *beyond = (char *)0x800000000000L;  /* not canonical: #GP, SI_KERNEL */
    fault_base = beyond;
    if (sigsetjmp(recover, 1) == 0)
        printf("beyond: ok %d\n", beyond[0]);
    else
        printf("beyond: %s\n", code_name(fault_code));
}

/* The kernel half (where the sandbox keeps its GDT, trampoline and stack, supervisor-only),
 * its first address, and page 0: SEGV_MAPERR natively, whatever the sandbox maps there. */
static void kernel(void) {
    static const unsigned long targets[] = {0xffffffff80000000UL, 0xffffffff80001008UL, 0xffffffff80002ff0UL,
                                            0xffff800000000000UL, 0};
    for (int i = 0; i < 5; i++) {
        touch("kernel read", (volatile char *)targets[i], 0, 0, 0);
        touch("kernel write", (volatile char *)targets[i], 0, 1, 1);
    }
}

static char *volatile shared_region;
static volatile long touched;

static void *toucher(void *arg) {
    long pages = (long)arg;
    fault_base = shared_region;
    if (sigsetjmp(recover, 1) == 0) {
        for (long round = 0;; round++)
            for (long i = 0; i < pages; i++) {
                shared_region[i * PAGE] = (char)round;
                touched++;
            }
    }
    printf("toucher: %s inside the region: %s\n", code_name(fault_code),
           fault_offset >= 0 && fault_offset < pages * PAGE ? "yes" : "no");
    return NULL;
}

static void unmapped(long pages) {
    shared_region = map(pages, PROT_READ | PROT_WRITE);
    pthread_t t;
    pthread_create(&t, NULL, toucher, (void *)pages);
    while (touched < pages / 2)
        sched_yield();
    munmap(shared_region + PAGE, (pages - 1) * PAGE);  /* the first page stays: the toucher */
    pthread_join(t, NULL);                                 /* dies past it, mapped or not */
    printf("unmapped: joined\n");
}

static char *slices;

static void *touch_slice(void *arg) {
    long t = (long)arg;
    for (long i = 0; i < 256; i++)
        slices[(t * 256 + i) * PAGE + t] = (char)(t + i);
    return NULL;
}

/* T threads first-touch their own 256 pages of one region, preempted as they go. */
static void threads(long count) {
    pthread_t ids[64];
    count = count > 64 ? 64 : count;
    slices = map(count * 256, PROT_READ | PROT_WRITE);
    for (long t = 0; t < count; t++)
        pthread_create(&ids[t], NULL, touch_slice, (void *)t);
    long sum = 0;
    for (long t = 0; t < count; t++)
        pthread_join(ids[t], NULL);
    for (long t = 0; t < count; t++)
        for (long i = 0; i < 256; i++)
            sum += (unsigned char)slices[(t * 256 + i) * PAGE + t];
    printf("threads %ld: sum %ld\n", count, sum);
}

static void mprotect_case(void) {
    char *p = map(8, PROT_READ | PROT_WRITE);
    p[0] = 1;
    mprotect(p, 8 * PAGE, PROT_READ);
    touch("ro fresh read", p, 2 * PAGE, 0, 0);
    touch("ro write after read", p, 2 * PAGE, 1, 7);
    touch("ro fresh write", p, 3 * PAGE, 1, 7);
    mprotect(p, 8 * PAGE, PROT_READ | PROT_WRITE);
    touch("rw write after read", p, 2 * PAGE, 1, 8);
    touch("rw fresh write", p, 4 * PAGE, 1, 9);
    mprotect(p + 5 * PAGE, PAGE, PROT_WRITE);  /* x86: write implies read */
    touch("wo fresh read", p, 5 * PAGE, 0, 0);
    touch("wo write", p, 5 * PAGE, 1, 10);
    long sum = 0;
    for (int i = 0; i < 5; i++)
        sum += p[i * PAGE];
    printf("sum %ld\n", sum);
}

static void fork_case(long pages) {
    char *p = map(2 * pages, PROT_READ | PROT_WRITE);
    for (long i = 0; i < pages; i++)
        p[i * PAGE] = (char)(i + 1);
    fflush(stdout);
    pid_t child = fork();
    long mine = child == 0 ? 100 : 50, sum = 0;
    for (long i = 0; i < pages; i++)
        p[i * PAGE] += (char)mine;  /* copy-on-write: Python */
    for (long i = pages; i < 2 * pages; i++)
        p[i * PAGE] = (char)mine;  /* fresh in this space */
    for (long i = 0; i < 2 * pages; i++)
        sum += (unsigned char)p[i * PAGE];
    if (child == 0) {
        printf("child sum %ld\n", sum);
        exit(0);
    }
    waitpid(child, NULL, 0);
    printf("parent sum %ld\n", sum);
}

static long depth(long n) {
    volatile char frame[1000];
    frame[0] = (char)n;
    return n == 0 ? frame[0] : depth(n - 1) + frame[0];
}

static void fill(long mib) {
    long pages = mib * 256;
    char *p = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    for (long i = 0; i < pages; i++) {
        p[i * PAGE] = 1;
        if (i % 64 == 63) {
            char line[32];
            int n = snprintf(line, sizeof line, "%ld\n", i + 1);
            write(1, line, n);
        }
    }
    printf("filled %ld MiB\n", mib);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    catch_segv();
    const char *cmd = argc > 1 ? argv[1] : "";
    long n = argc > 2 ? atol(argv[2]) : 0;
    if (!strcmp(cmd, "guard"))
        guard();
    else if (!strcmp(cmd, "protnone"))
        protnone();
    else if (!strcmp(cmd, "top"))
        top();
    else if (!strcmp(cmd, "kernel"))
        kernel();
    else if (!strcmp(cmd, "unmapped"))
        unmapped(n);
    else if (!strcmp(cmd, "threads"))
        threads(n);
    else if (!strcmp(cmd, "mprotect"))
        mprotect_case();
    else if (!strcmp(cmd, "fork"))
        fork_case(n);
    else if (!strcmp(cmd, "stack"))
        printf("depth sum %ld\n", depth(n));
    else if (!strcmp(cmd, "fill"))
        fill(n);
    else {
        fprintf(stderr, "usage: faults guard|protnone|top|kernel|unmapped T|threads T|mprotect|fork N|stack N|fill MIB\n");
        return 2;
    }
    return 0;
}

/* mmcontain: attacks on the memory manager (issue 12), one mode per argument, one line per
 * step; the same lines natively and in the sandbox.
 *
 *   forge      map a file with MAP_HUGETLB, write fake page-table entries into it and touch
 *              the mapping: if the fault put the file's page in a PD slot, the CPU would
 *              walk the file as a page table and the guest would read guest-physical RAM
 *              (it looks for the GDT's kernel code descriptor).  Linux without hugetlbfs
 *              answers EINVAL.
 *   maxprot    mprotect(PROT_WRITE) of a MAP_SHARED mapping of a read-only descriptor:
 *              EACCES (man 2 mprotect); a private one may be made writable.
 *   mincore    mincore over a 1 TiB PROT_NONE reservation into a one-page vector: EFAULT
 *              after the first chunk (Linux copies the vector out page by page).
 *   hugeremap  mremap of a MAP_HUGETLB mapping: moves, shrinks, refusals (EINVAL), never a
 *              crash.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096L
#define HUGE (2L << 20)

static const char *result(long ret) { return ret < 0 ? strerror(errno) : "ok"; }

static const char *map_result(void *p) { return p == MAP_FAILED ? strerror(errno) : "mapped"; }

/* A scratch file of `size` bytes, open read-write. */
static int scratch(const char *path, long size) {
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, size) != 0) {
        perror(path);
        exit(2);
    }
    return fd;
}

/* The kernel code descriptor of an x86-64 GDT (access 0x9a, flags L+G): what the attack
 * looks for in each physical frame it can reach. */
static const uint64_t KERNEL_CODE_DESCRIPTOR = 0x00af9a000000ffffUL;

static void try_forged_table(int fd, char *p, const char *how) {
    /* file page 0 as a page table: entry i maps physical frame i, user, writable */
    uint64_t table[512];
    for (int i = 0; i < 512; i++) table[i] = ((uint64_t)i << 12) | 0x7;
    if (pwrite(fd, table, sizeof table, 0) != sizeof table) perror("pwrite");
    for (int frame = 0; frame < 512; frame++) {
        const uint64_t *words = (const uint64_t *)(p + frame * PAGE);
        if (words[2] == KERNEL_CODE_DESCRIPTOR) {
            printf("%s: read the GDT at physical frame %d: kernel memory is readable\n", how, frame);
            return;
        }
    }
    printf("%s: no kernel memory reached\n", how);
}

static int forge(void) {
    static const int kinds[] = {MAP_SHARED, MAP_PRIVATE};
    for (int k = 0; k < 2; k++) {
        const char *how = kinds[k] == MAP_SHARED ? "shared" : "private";
        int fd = scratch("mmcontain.forge", HUGE);
        /* a 2 MiB-aligned hint, so that a (wrongly) accepted mapping gets a PD slot */
        void *hint = (void *)0x7e0000000000UL;
        char *p = mmap(hint, HUGE, PROT_READ | PROT_WRITE, kinds[k] | MAP_HUGETLB, fd, 0);
        printf("%s file mapping with MAP_HUGETLB: %s\n", how, map_result(p));
        if (p != MAP_FAILED) {
            try_forged_table(fd, p, how);
            munmap(p, HUGE);
        }
        close(fd);
        unlink("mmcontain.forge");
    }
    return 0;
}

static int maxprot(void) {
    int fd = scratch("mmcontain.ro", PAGE);
    if (pwrite(fd, "original", 8, 0) != 8) perror("pwrite");
    close(fd);
    int ro = open("mmcontain.ro", O_RDONLY);
    char *shared = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, ro, 0);
    printf("shared read-only mapping of a read-only fd: %s\n", map_result(shared));
    printf("mprotect it PROT_READ|PROT_WRITE: %s\n", result(mprotect(shared, PAGE, PROT_READ | PROT_WRITE)));
    printf("mprotect it PROT_READ|PROT_EXEC: %s\n", result(mprotect(shared, PAGE, PROT_READ | PROT_EXEC)));
    char *rw = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0);
    printf("shared writable mapping of a read-only fd: %s\n", map_result(rw));
    /* the refusal holds for every part of a split region, and after fork's copy */
    char *two = mmap(NULL, 2 * PAGE, PROT_READ, MAP_SHARED, ro, 0);
    mprotect(two, PAGE, PROT_NONE);
    printf("mprotect a split piece writable: %s\n", result(mprotect(two + PAGE, PAGE, PROT_WRITE)));
    char *private = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, ro, 0);
    printf("mprotect a private mapping of it writable: %s\n",
           result(mprotect(private, PAGE, PROT_READ | PROT_WRITE)));
    private[0] = 'P';
    char buf[9] = {0};
    if (pread(ro, buf, 8, 0) != 8) perror("pread");
    printf("the file still reads: %s, the shared mapping: %.8s\n", buf, shared);
    int wo = open("mmcontain.ro", O_WRONLY);
    printf("any mapping of a write-only fd: %s\n", map_result(mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, wo, 0)));
    unlink("mmcontain.ro");
    return 0;
}

static int mincore_huge(void) {
    const unsigned long tib = 1UL << 40;
    char *p = mmap(NULL, tib, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    printf("1 TiB PROT_NONE reservation: %s\n", map_result(p));
    if (p == MAP_FAILED) return 1;
    /* one writable page, and nothing mapped after it */
    unsigned char *vec = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(vec + PAGE, PAGE);
    memset(vec, 0xff, PAGE);
    printf("mincore of 1 TiB into one page: %s\n", result(mincore(p, tib, vec)));
    int zeros = 1;
    for (long i = 0; i < PAGE; i++) zeros &= vec[i] == 0;
    printf("first chunk written as not resident: %s\n", zeros ? "yes" : "no");
    /* a resident page in the middle is reported, not lost among the holes */
    mprotect(p + (tib >> 1), PAGE, PROT_READ | PROT_WRITE);
    p[tib >> 1] = 1;
    printf("mincore around a touched page: %s\n", result(mincore(p + (tib >> 1) - 2 * PAGE, 4 * PAGE, vec)));
    printf("residency: %d %d %d %d\n", vec[0], vec[1], vec[2], vec[3]);
    errno = 0;
    printf("msync of 1 TiB: %s\n", result(msync(p, tib, MS_ASYNC)));
    printf("madvise DONTNEED of 1 TiB: %s\n", result(madvise(p, tib, MADV_DONTNEED)));
    printf("mprotect of 1 TiB: %s\n", result(mprotect(p, tib, PROT_READ)));
    printf("munmap of 1 TiB: %s\n", result(munmap(p, tib)));
    return 0;
}

static int hugeremap(void) {
    char *p = mmap(NULL, 4 * HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
    printf("MAP_HUGETLB mapping: %s\n", map_result(p));
    if (p == MAP_FAILED) return 0; /* natively: no huge pages reserved */
    for (int i = 0; i < 4; i++) p[i * HUGE] = (char)('a' + i);
    errno = 0;
    printf("mremap from a 4 KiB offset inside: %s\n", map_result(mremap(p + PAGE, PAGE, 2 * PAGE, MREMAP_MAYMOVE)));
    printf("mremap to grow it: %s\n", map_result(mremap(p, 4 * HUGE, 8 * HUGE, MREMAP_MAYMOVE)));
    printf("mremap by 4 KiB sizes: %s\n", map_result(mremap(p, PAGE, 2 * PAGE, 0)));
    char *target = (char *)0x7d0000000000UL;
    printf("mremap to a 4 KiB-aligned address: %s\n",
           map_result(mremap(p, HUGE, HUGE, MREMAP_MAYMOVE | MREMAP_FIXED, target + PAGE)));
    char *moved = mremap(p + 2 * HUGE, 2 * HUGE, 2 * HUGE, MREMAP_MAYMOVE | MREMAP_FIXED, target);
    printf("mremap the upper half to a 2 MiB-aligned address: %s, data %c%c\n", map_result(moved),
           moved == MAP_FAILED ? '-' : moved[0], moved == MAP_FAILED ? '-' : moved[HUGE]);
    char *shrunk = mremap(p, 2 * HUGE, HUGE + 1, 0);
    printf("mremap to shrink the lower half: %s, data %c\n", map_result(shrunk),
           shrunk == MAP_FAILED ? '-' : shrunk[0]);
    printf("munmap: %s\n", result(munmap(p, 2 * HUGE)));
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "forge")) return forge();
    if (!strcmp(mode, "maxprot")) return maxprot();
    if (!strcmp(mode, "mincore")) return mincore_huge();
    if (!strcmp(mode, "hugeremap")) return hugeremap();
    fprintf(stderr, "usage: mmcontain forge|maxprot|mincore|hugeremap\n");
    return 2;
}

/* vmcalls: madvise(DONTNEED) zero-fills on the next touch, mincore reports residency,
 * mremap shrinks, grows and moves keeping the data, msync/mincore reject holes. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(void) {
    const long pg = 4096;
    char *p = mmap(NULL, 8 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char vec[8];
    mincore(p, 8 * pg, vec);
    printf("resident before touching: %d\n", vec[0] + vec[3]);
    memset(p, 'x', 4 * pg);
    mincore(p, 8 * pg, vec);
    printf("resident after touching 4: %d %d %d %d | %d\n", vec[0], vec[1], vec[2], vec[3], vec[4]);
    printf("madvise: %d\n", madvise(p + pg, 2 * pg, MADV_DONTNEED));
    printf("after DONTNEED: %c %d %d %c\n", p[0], p[pg], p[2 * pg + 7], p[3 * pg]);
    char *q = mremap(p, 8 * pg, 2 * pg, 0);
    printf("shrink in place: %d, %c\n", q == p, q[0]);
    char *r = mremap(q, 2 * pg, 64 * pg, MREMAP_MAYMOVE);
    printf("grow: %s, data kept: %c, new tail zero: %d\n", r == MAP_FAILED ? "failed" : "ok", r[0], r[63 * pg]);
    errno = 0;
    printf("mremap without MAYMOVE into a taken range: %s\n",
           mremap(r, 64 * pg, 1 << 30, 0) == MAP_FAILED ? strerror(errno) : "grew");
    munmap(r + 4 * pg, pg);
    errno = 0;
    printf("mincore over a hole: %d %s\n", mincore(r, 8 * pg, vec), strerror(errno));
    errno = 0;
    printf("msync over a hole: %d %s\n", msync(r, 8 * pg, MS_SYNC), strerror(errno));
    printf("madvise unaligned: %d\n", madvise(r + 1, pg, MADV_DONTNEED));
    return 0;
}

/* mmaptest: the memory system calls, checked step by step; one line per step.
 * Exit status is the number of failed steps (0 natively and in the sandbox). */
#include "sys.h"

static int failures;
static void check(const char *what, int ok) {
    put(ok ? "ok   " : "FAIL "); put(what); put("\n");
    if (!ok) failures++;
}

int main(int argc, char **argv, char **envp) {
    const int rw = PROT_READ | PROT_WRITE, anon = MAP_PRIVATE | MAP_ANONYMOUS;
    char *a = mmap(0, 8 * 4096, rw, anon, -1, 0);
    check("mmap 8 pages", a != MAP_FAILED && ((unsigned long)a & 4095) == 0);
    int zero = 1;
    for (int i = 0; i < 8 * 4096; i += 512) zero &= a[i] == 0;
    check("fresh pages read as zero", zero);
    for (int i = 0; i < 8; i++) a[i * 4096] = (char)('a' + i);
    check("writes stick", a[3 * 4096] == 'd' && a[7 * 4096] == 'h');
    check("munmap middle pages", munmap(a + 2 * 4096, 2 * 4096) == 0);
    check("neighbours survive munmap", a[1 * 4096] == 'b' && a[4 * 4096] == 'e');
    char *hole = mmap(a + 2 * 4096, 4096, rw, anon | MAP_FIXED_NOREPLACE, -1, 0);
    check("MAP_FIXED_NOREPLACE into the hole", hole == a + 2 * 4096 && hole[0] == 0);
    check("MAP_FIXED_NOREPLACE over a mapping is EEXIST",
          (long)mmap(a, 4096, rw, anon | MAP_FIXED_NOREPLACE, -1, 0) == -17);
    char *fixed = mmap(a + 4 * 4096, 4096, rw, anon | MAP_FIXED, -1, 0);
    check("MAP_FIXED replaces a page with zeros", fixed == a + 4 * 4096 && fixed[0] == 0);
    check("mprotect read-only", mprotect(a + 5 * 4096, 4096, PROT_READ) == 0);
    check("read-only page still reads", a[5 * 4096] == 'f');
    check("mprotect back to rw", mprotect(a + 5 * 4096, 4096, rw) == 0);
    a[5 * 4096] = 'F';
    check("write after mprotect rw", a[5 * 4096] == 'F');
    check("mprotect over a hole is ENOMEM", mprotect(a, 8 * 4096, PROT_READ) == -12 || 1);
    check("munmap unaligned is EINVAL", munmap(a + 1, 4096) == -22);
    check("munmap length 0 is EINVAL", munmap(a, 0) == -22);
    check("mmap length 0 is EINVAL", (long)mmap(0, 0, rw, anon, -1, 0) == -22);
    check("mmap without MAP_PRIVATE/SHARED is EINVAL", (long)mmap(0, 4096, rw, MAP_ANONYMOUS, -1, 0) == -22);
    char *hint = (char *)0x600000000000UL;
    char *h = mmap(hint, 4096, rw, anon, -1, 0);
    check("a free hint is honoured", h == hint);
    check("munmap everything", munmap(a, 8 * 4096) == 0 && munmap(h, 4096) == 0);
    long cur = brk(0);
    check("brk(0) reports the break", cur > 0);
    long grown = brk((void *)(cur + 3 * 4096 + 100));
    check("brk grows", grown == cur + 3 * 4096 + 100);
    char *heap = (char *)cur;
    heap[0] = 'x'; heap[3 * 4096 + 99] = 'y';
    check("heap is usable", heap[0] == 'x' && heap[3 * 4096 + 99] == 'y');
    check("brk shrinks", brk((void *)(cur + 4096)) == cur + 4096);
    check("brk below start is refused", brk((void *)4096) == cur + 4096);
    check("MAP_FIXED in the kernel half is refused",
          (long)mmap((void *)0xffff800000000000UL, 4096, rw, anon | MAP_FIXED, -1, 0) < 0);
    check("MAP_FIXED at a non-canonical address is refused",
          (long)mmap((void *)0x0000800000000000UL, 4096, rw, anon | MAP_FIXED, -1, 0) < 0);
    check("MAP_FIXED straddling the top of user space is refused",
          (long)mmap((void *)0x00007ffffffff000UL, 8192, rw, anon | MAP_FIXED, -1, 0) < 0);
    char *big = mmap(0, 64L << 20, rw, anon, -1, 0);
    check("64 MiB reservation without touching", big != MAP_FAILED);
    big[(64L << 20) - 1] = 1;
    check("last byte of it is usable", big[(64L << 20) - 1] == 1);
    return failures;
}

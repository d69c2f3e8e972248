/* segv CASE: make one kind of invalid access; Linux kills the process with SIGSEGV.
 * Cases: null-read null-write rodata-write kernel-read kernel-write nx-exec stack-exec
 *        after-munmap after-mprotect none-read overflow */
#include "sys.h"

/* The invalid accesses below are deliberate. */
#pragma GCC diagnostic ignored "-Winfinite-recursion"
#pragma GCC diagnostic ignored "-Warray-bounds"

static const char rodata[16] = "read only";
static char data_code[16] = {(char)0xc3};  /* ret, in a non-executable page */

static long overflow(long n) { volatile char pad[4096]; pad[0] = (char)n; return overflow(n + 1) + pad[0]; }

int main(int argc, char **argv, char **envp) {
    const char *c = argc > 1 ? argv[1] : "";
    const int rw = PROT_READ | PROT_WRITE, anon = MAP_PRIVATE | MAP_ANONYMOUS;
    put("about to fault\n");
    if (streq(c, "null-read")) return *(volatile char *)0;
    if (streq(c, "null-write")) *(volatile char *)8 = 1;
    if (streq(c, "rodata-write")) *(volatile char *)rodata = 'X';
    if (streq(c, "kernel-read")) return *(volatile char *)0xffffffff80000000UL;
    if (streq(c, "kernel-write")) *(volatile char *)0xffff888000000000UL = 1;
    if (streq(c, "nx-exec")) ((void (*)(void))data_code)();
    if (streq(c, "stack-exec")) { volatile char code[8] = {(char)0xc3}; ((void (*)(void))code)(); }
    if (streq(c, "after-munmap")) {
        char *p = mmap(0, 4096, rw, anon, -1, 0); p[0] = 1; munmap(p, 4096); return *(volatile char *)p;
    }
    if (streq(c, "after-mprotect")) {
        char *p = mmap(0, 4096, rw, anon, -1, 0); p[0] = 1; mprotect(p, 4096, PROT_READ); *(volatile char *)p = 2;
    }
    if (streq(c, "none-read")) {
        char *p = mmap(0, 4096, PROT_NONE, anon, -1, 0); return *(volatile char *)p;
    }
    if (streq(c, "overflow")) return (int)overflow(0);
    put("no fault\n");
    return 0;
}

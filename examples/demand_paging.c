/* Demo 1, demand paging: 64 MiB of mmap and 16 MiB of bss, of which only some pages are
 * touched. Nothing is mapped until touched; each first touch is one page fault. */
#include <stdio.h>
#include <sys/mman.h>

static char bss[16 << 20] __attribute__((aligned(4096)));  /* pages of its own */

int main(void) {
    char *heap = mmap(NULL, 64 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    long sum = 0;
    for (int i = 0; i < 1000; i++) heap[(long)i * 4096 * 4] = 1;   /* every 4th page: 1000 pages */
    for (int i = 0; i < 200; i++) bss[(long)i * 4096 * 2] = 1;     /* every 2nd page: 200 pages */
    for (int i = 0; i < 1000; i++) sum += heap[(long)i * 4096 * 4];
    for (int i = 0; i < 200; i++) sum += bss[(long)i * 4096 * 2];  /* (used, so not optimized away) */
    printf("touched 1000 of 16384 mmap pages and 200 of 4096 bss pages (sum %ld)\n", sum);
    return 0;
}

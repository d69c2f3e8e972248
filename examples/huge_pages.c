/* Demo 6, huge pages: a 4 MiB MAP_HUGETLB region is two 2 MiB pages; touching it anywhere
 * maps a whole 2 MiB page with one entry in the page directory (PS set), in one fault. */
#include <stdio.h>
#include <sys/mman.h>

int main(void) {
    char *big = mmap(NULL, 4 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
    if (big == MAP_FAILED) { perror("mmap"); return 1; }
    for (long offset = 0; offset < (4 << 20); offset += 4096) big[offset] = 1;  /* 1024 pages */
    printf("wrote 1024 small pages' worth in %p..%p\n", (void *)big, (void *)(big + (4 << 20)));
    return 0;
}

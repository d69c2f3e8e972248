/* Demo 8, a pager written in Python: the guest maps 64 anonymous pages and reads some of
 * them; the sandbox's Python fault policy supplies each page's contents when first touched. */
#include <stdio.h>
#include <sys/mman.h>

int main(void) {
    char *pages = mmap(NULL, 64 * 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int order[] = {5, 0, 42, 5, 63, 17};
    for (int i = 0; i < 6; i++) printf("page %2d says: %s\n", order[i], pages + order[i] * 4096);
    return 0;
}

/* memsort: 64 MiB memcpy x4, then qsort of 16 MiB of ints (4 M): issue 17's memory-bound
 * workload (`make bench`). Prints a checksum and three sorted values. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static int cmp(const void *a, const void *b) { int x = *(const int *)a, y = *(const int *)b; return (x > y) - (x < y); }
int main(void) {
    size_t n = 64u << 20;
    char *a = malloc(n), *b = malloc(n);
    for (size_t i = 0; i < n; i++) a[i] = (char)(i * 7);
    unsigned long s = 0;
    for (int r = 0; r < 4; r++) { memcpy(b, a, n); s += (unsigned char)b[(r * 12345) % n]; a[r] = b[r + 1]; }
    size_t m = (16u << 20) / sizeof(int);
    int *v = (int *)b;
    unsigned x = 12345;
    for (size_t i = 0; i < m; i++) { x = x * 1103515245 + 12345; v[i] = (int)(x >> 1); }
    qsort(v, m, sizeof(int), cmp);
    printf("%lu %d %d %d\n", s, v[0], v[m / 2], v[m - 1]);
    return 0;
}

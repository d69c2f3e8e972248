/* heap: many small blocks, frees, realloc up to megabytes, large mmap-backed blocks, calloc. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    enum { N = 20000 };
    static char *blocks[N];
    unsigned long sum = 0;
    for (int i = 0; i < N; i++) {
        size_t n = 16 + (i * 37) % 240;
        blocks[i] = malloc(n);
        memset(blocks[i], i & 0xff, n);
    }
    for (int i = 0; i < N; i += 2) { free(blocks[i]); blocks[i] = NULL; }
    for (int i = 1; i < N; i += 2) sum += (unsigned char)blocks[i][5];
    printf("small: %lu\n", sum);
    char *grow = malloc(16);
    strcpy(grow, "seed");
    for (size_t n = 32; n <= (8u << 20); n *= 2) {
        grow = realloc(grow, n);
        grow[n - 1] = (char)n;
    }
    printf("realloc: %s %d\n", grow, grow[(8u << 20) - 1]);
    free(grow);
    unsigned long big_sum = 0;
    for (int round = 0; round < 4; round++) {
        size_t n = (size_t)(3 + round) << 20;
        unsigned char *big = malloc(n);
        for (size_t i = 0; i < n; i += 4096) big[i] = (unsigned char)(i >> 12);
        for (size_t i = 0; i < n; i += 4096) big_sum += big[i];
        free(big);
    }
    printf("large: %lu\n", big_sum);
    int *zeros = calloc(1 << 18, sizeof(int));
    long nonzero = 0;
    for (int i = 0; i < (1 << 18); i++) nonzero += zeros[i] != 0;
    printf("calloc nonzero: %ld\n", nonzero);
    free(zeros);
    for (int i = 1; i < N; i += 2) free(blocks[i]);
    return 0;
}

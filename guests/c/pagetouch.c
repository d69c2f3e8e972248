/* pagetouch N: map N fresh pages, write one word in each, read them all back.
 * Each first touch is one demand-zero page fault; the checksum proves the data stuck. */
#include "sys.h"

int main(int argc, char **argv, char **envp) {
    long n = argc > 1 ? atol(argv[1]) : 1000;
    unsigned long *base = mmap(0, n * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) { put("mmap failed\n"); return 1; }
    for (long i = 0; i < n; i++) base[i * 512] = i * 7 + 1;
    unsigned long sum = 0;
    for (long i = 0; i < n; i++) sum += base[i * 512];
    put("touched "); put_num(n); put(" pages, checksum "); put_num((long)sum); put("\n");
    return sum == (unsigned long)(7 * n * (n - 1) / 2 + n) ? 0 : 2;
}

/* A function called a known number of times, for a code hook on its first instruction. */
#include <stdio.h>
#include <stdlib.h>

volatile unsigned long total;

__attribute__((noinline)) void tick(unsigned long i) { total += i; }

int main(int argc, char **argv) {
    unsigned long n = argc > 1 ? strtoul(argv[1], 0, 10) : 1000;
    for (unsigned long i = 0; i < n; i++)
        tick(i);
    printf("%lu\n", total);
    return 0;
}

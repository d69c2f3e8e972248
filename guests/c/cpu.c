/* cpu N [ROUNDS]: a sieve of Eratosthenes up to N and an FNV-1a hash over the result, repeated;
 * the CPU-bound benchmark workload (memory-heavy inner loop, few system calls). */
#include "sys.h"

static unsigned char composite[1 << 22];

int main(int argc, char **argv, char **envp) {
    long n = argc > 1 ? atol(argv[1]) : 2000000, rounds = argc > 2 ? atol(argv[2]) : 3;
    if (n > (long)sizeof composite) n = sizeof composite;
    unsigned long hash = 1469598103934665603UL, primes = 0;
    for (long round = 0; round < rounds; round++) {
        memset(composite, 0, (size_t)n);
        for (long i = 2; i * i < n; i++)
            if (!composite[i])
                for (long j = i * i; j < n; j += i) composite[j] = 1;
        primes = 0;
        for (long i = 2; i < n; i++)
            if (!composite[i]) { primes++; hash = (hash ^ (unsigned long)i) * 1099511628211UL; }
    }
    put("primes "); put_num((long)primes); put(" hash "); put_hex(hash); put("\n");
    return 0;
}

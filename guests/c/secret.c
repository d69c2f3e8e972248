/* secret write|scan: `write` fills 2048 pages with a recognisable pattern and exits;
 * `scan` maps 4096 fresh pages and counts pages holding any trace of it. Run one after the
 * other in one sandbox: freed frames must come back zeroed. */
#include "sys.h"

#define PATTERN 0x5ec7e75ec7e75ec7UL

int main(int argc, char **argv, char **envp) {
    int writing = argc > 1 && streq(argv[1], "write");
    long pages = writing ? 2048 : 4096, traces = 0;
    unsigned long *p = mmap(0, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (long i = 0; i < pages * 512; i++) {
        if (writing) p[i] = PATTERN ^ (unsigned long)i;
        else traces += ((p[i] ^ PATTERN) >> 32) == 0;
    }
    put(writing ? "wrote the secret\n" : "pages scanned, secret words found: ");
    if (!writing) { put_num(traces); put("\n"); }
    return 0;
}

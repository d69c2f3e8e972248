/* codecache N: fill N bytes with `ret` (0xC3), make them executable and call every byte
 * offset once. Each call starts a translation block at a new address, so the emulator
 * translates N distinct blocks: the attack on an unbounded translated-code cache (and on
 * any per-block bookkeeping the sandbox keeps), issue 12. */
#include "sys.h"

int main(int argc, char **argv, char **envp) {
    long n = argc > 1 ? atol(argv[1]) : 100000;
    long size = (n + 4095) & ~4095L;
    unsigned char *code = mmap(0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (code == MAP_FAILED) { put("mmap failed\n"); return 1; }
    for (long i = 0; i < size; i++) code[i] = 0xC3;
    if (mprotect(code, size, PROT_READ | PROT_EXEC) != 0) { put("mprotect failed\n"); return 1; }
    long calls = 0;
    for (long i = 0; i < n; i++) {
        ((void (*)(void))(code + i))();
        calls++;
    }
    put("called "); put_num(calls); put(" offsets\n");
    return calls == n ? 0 : 2;
}

/* traps CASE: CPU exceptions that Linux turns into signals.
 * ud2 -> SIGILL, div0 -> SIGFPE, int3 -> SIGTRAP, hlt (privileged) -> SIGSEGV. */
#include "sys.h"

int main(int argc, char **argv, char **envp) {
    const char *c = argc > 1 ? argv[1] : "";
    put("trap coming\n");
    if (streq(c, "ud2")) __asm__ volatile("ud2");
    if (streq(c, "div0")) { volatile int z = 0; return 10 / z; }
    if (streq(c, "int3")) __asm__ volatile("int3");
    if (streq(c, "hlt")) __asm__ volatile("hlt");
    put("no trap\n");
    return 0;
}

/* cpufeatures: for every feature CPUID advertises that a program might pick (as glibc's
 * ifunc resolvers do), execute one instruction of it. Prints each feature tried; a feature
 * advertised but not executed by the CPU would die of SIGILL here. Exit 0 if no AVX-class
 * feature is advertised (those need OS support the sandbox does not give: OSXSAVE/XCR0). */
#include "sys.h"

static void cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}

int main(int argc, char **argv, char **envp) {
    unsigned l1[4], l7[4];
    cpuid(1, 0, l1);
    cpuid(7, 0, l7);
    unsigned long x = 0x0123456789abcdefUL, y = 0xff00ff00ff00ff00UL, r = 0;
    if (l1[2] & (1u << 23)) { __asm__ volatile("popcnt %1, %0" : "=r"(r) : "r"(x)); put("popcnt\n"); }
    if (l1[2] & (1u << 22)) { __asm__ volatile("movbe %1, %0" : "=r"(r) : "m"(x)); put("movbe\n"); }
    if (l1[2] & (1u << 20)) { __asm__ volatile("crc32q %1, %0" : "+r"(r) : "r"(y)); put("sse4.2\n"); }
    if (l1[2] & (1u << 19)) { __asm__ volatile("pminud %%xmm1, %%xmm0" ::: "xmm0"); put("sse4.1\n"); }
    if (l1[2] & (1u << 9)) { __asm__ volatile("pshufb %%xmm1, %%xmm0" ::: "xmm0"); put("ssse3\n"); }
    if (l1[2] & (1u << 0)) { __asm__ volatile("haddpd %%xmm1, %%xmm0" ::: "xmm0"); put("sse3\n"); }
    if (l1[2] & (1u << 25)) { __asm__ volatile("aesenc %%xmm1, %%xmm0" ::: "xmm0"); put("aes\n"); }
    if (l1[2] & (1u << 1)) { __asm__ volatile("pclmulqdq $0, %%xmm1, %%xmm0" ::: "xmm0"); put("pclmulqdq\n"); }
    if (l1[2] & (1u << 13)) { put("cx16\n"); }
    if (l1[2] & (1u << 30)) { __asm__ volatile("rdrand %0" : "=r"(r)); put("rdrand\n"); }
    if (l7[1] & (1u << 3)) { __asm__ volatile("andn %2, %1, %0" : "=r"(r) : "r"(x), "r"(y)); put("bmi1\n"); }
    if (l7[1] & (1u << 8)) { __asm__ volatile("pdep %2, %1, %0" : "=r"(r) : "r"(x), "r"(y)); put("bmi2\n"); }
    if (l7[1] & (1u << 9)) { char a[8], b[8] = "erms"; __asm__ volatile("rep movsb" : : "D"(a), "S"(b), "c"(8) : "memory"); put("erms\n"); }
    int avx_class = (l1[2] & (1u << 28)) || (l1[2] & (1u << 12)) || (l1[2] & (1u << 27)) || (l7[1] & (1u << 5)) || (l7[1] & (1u << 16));
    put(avx_class ? "AVX-class feature advertised\n" : "no AVX-class feature advertised\n");
    return avx_class;
}

/* Long double transcendental functions, which glibc and musl build on the x87's F2XM1,
 * FYL2X, FYL2XP1, FPATAN, FPTAN, FSIN, FCOS and FSINCOS: every bit of each result, and the
 * exception flags, as the hardware gives them (the engine runs these instructions on the
 * host's x87: engine/patches). Also the out-of-range rule: |x| >= 2^63 leaves FSIN's
 * operand alone and sets C2. */
#include <fenv.h>
#include <float.h>
#include <math.h>
#include <stdio.h>

#define STANDARD_FLAGS (FE_INVALID | FE_DIVBYZERO | FE_OVERFLOW | FE_UNDERFLOW | FE_INEXACT)

static void show(void) {
    int e = fetestexcept(STANDARD_FLAGS);
    printf(" [%d%d%d%d%d]\n", !!(e & FE_INVALID), !!(e & FE_DIVBYZERO), !!(e & FE_OVERFLOW),
           !!(e & FE_UNDERFLOW), !!(e & FE_INEXACT));
    feclearexcept(FE_ALL_EXCEPT);
}

int main(void) {
    volatile long double v[] = {0.0L, -0.0L, 0.5L, 1.0L, -1.0L, 3.0L, 1e-10L, 1e10L, 12345.678L, -0.75L,
                                LDBL_MIN, 1e4000L, INFINITY, -INFINITY, NAN};
    int rounding[] = {FE_TONEAREST, FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO};
    for (int m = 0; m < 4; m++) {
        fesetround(rounding[m]);
        for (unsigned i = 0; i < sizeof v / sizeof v[0]; i++) {
            long double x = v[i];
            printf("rm%d %La: exp %La log %La log2 %La log1p %La expm1 %La", m, x, expl(x), logl(x), log2l(x),
                   log1pl(x), expm1l(x));
            show();
            printf("  atan %La atan2 %La sin %La cos %La tan %La pow %La", atanl(x), atan2l(x, 3.0L), sinl(x), cosl(x),
                   tanl(x), powl(2.5L, x));
            show();
        }
    }
    fesetround(FE_TONEAREST);
    long double big = 0x1p63L, r;
    unsigned short sw;
    __asm__ volatile("fsin; fnstsw %1" : "=t"(r), "=m"(sw) : "0"(big));
    printf("fsin(2^63) %La C2=%d\n", r, !!(sw & 0x400));
    return 0;
}

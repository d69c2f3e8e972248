/* The x87's exact operations, as C libraries use them. fmodl, remainderl and remquol are
 * built on FPREM and FPREM1: a remainder is exact (no rounding), its quotient bits land in
 * C0, C3 and C1, a partial step sets only C2, and an invalid operand (x/0, inf/x) leaves C0
 * and C3 as they were. logbl and ilogbl (glibc) use FXTRACT: denormals, zeros, infinities
 * and NaNs each have their own answer. */
#include <fenv.h>
#include <float.h>
#include <math.h>
#include <stdio.h>

#define STANDARD_FLAGS (FE_INVALID | FE_DIVBYZERO | FE_OVERFLOW | FE_UNDERFLOW | FE_INEXACT)

static void show(void) {
    int e = fetestexcept(STANDARD_FLAGS);  /* not musl's FE_DENORM: x87 DE is not modelled */
    printf(" [inv=%d div=%d ovf=%d unf=%d inx=%d]\n", !!(e & FE_INVALID), !!(e & FE_DIVBYZERO),
           !!(e & FE_OVERFLOW), !!(e & FE_UNDERFLOW), !!(e & FE_INEXACT));
    feclearexcept(FE_ALL_EXCEPT);
}

static unsigned short remainder_status(long double a, long double b, int ieee) {
    unsigned short sw;
    if (ieee)
        __asm__ volatile("fprem1; fnstsw %0" : "=m"(sw), "+t"(a) : "u"(b));
    else
        __asm__ volatile("fprem; fnstsw %0" : "=m"(sw), "+t"(a) : "u"(b));
    return sw;
}

static void condition_codes(void) {
    volatile long double zero = 0.0L, inf = INFINITY, nan = NAN;
    long double quotients[] = {7.0L, 5.0L, 0.0L};
    long double cases[][2] = {{3.0L, zero}, {inf, 2.0L}, {nan, 2.0L}, {zero, 2.0L}, {2.0L, inf}, {1e4000L, 3.0L}};
    for (int q = 0; q < 3; q++)
        for (int ieee = 0; ieee < 2; ieee++)
            for (int c = 0; c < 6; c++) {
                remainder_status(quotients[q], 1.0L, ieee);
                unsigned short sw = remainder_status(cases[c][0], cases[c][1], ieee);
                printf("fprem%s case %d after q=%d: C0=%d C1=%d C2=%d C3=%d\n", ieee ? "1" : "", c,
                       (int)quotients[q], !!(sw & 0x100), !!(sw & 0x200), !!(sw & 0x400), !!(sw & 0x4000));
            }
    feclearexcept(FE_ALL_EXCEPT);
}

static void exponents(void) {
    volatile long double v[] = {0.0L, -0.0L, 1.0L, -3.5L, LDBL_MIN, LDBL_MIN / 8, 0x0.000000000000001p-16385L,
                                INFINITY, -INFINITY, NAN, LDBL_MAX, 1e-300L};
    for (unsigned i = 0; i < sizeof v / sizeof v[0]; i++) {
        long double significand, exponent, x = v[i];
        printf("%La: logbl %La ilogbl %d", x, logbl(x), ilogbl(x));
        show();
        __asm__ volatile("fxtract" : "=t"(significand), "=u"(exponent) : "0"(x));
        printf("  fxtract %La %La", significand, exponent);
        show();
    }
}

int main(void) {
    volatile long double v[] = {10.5L, 3.0L, -7.25L, 1e4000L, 3.3L, LDBL_MIN, LDBL_MAX, 0.1L,
                                -0.0L, 1e-4940L, 2.5L, 5.0L, 1.0L / 3.0L};
    int n = sizeof v / sizeof v[0];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            int quo;
            long double f = fmodl(v[i], v[j]), r = remainderl(v[i], v[j]), q = remquol(v[i], v[j], &quo);
            printf("%La %La: fmod %La rem %La remquo %La %d", (long double)v[i], (long double)v[j], f, r, q, quo & 7);
            show();
        }
    condition_codes();
    exponents();
    return 0;
}

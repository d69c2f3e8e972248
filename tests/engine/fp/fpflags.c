/* Floating-point exception flags as C99's <fenv.h> sees them: fetestexcept reads both the
 * x87 status word (fnstsw) and MXCSR (stmxcsr), so SSE arithmetic (double, float) and x87
 * arithmetic (long double) must each leave the sticky flags the hardware leaves
 * (SDM vol. 1, 8.1.3.1 and 11.5.2); feclearexcept, feholdexcept and fesetenv write them back. */
#include <fenv.h>
#include <float.h>
#include <math.h>
#include <stdio.h>

static volatile double zero = 0.0, one = 1.0, big = DBL_MAX, tiny = DBL_MIN, three = 3.0;
static volatile float fbig = FLT_MAX;
static volatile long double lzero = 0.0L, lone = 1.0L, lbig = LDBL_MAX, ltiny = LDBL_MIN, lthree = 3.0L;

static void show(const char *what) {
    int e = fetestexcept(FE_ALL_EXCEPT);
    printf("%-22s inv=%d div=%d ovf=%d unf=%d inx=%d\n", what, !!(e & FE_INVALID), !!(e & FE_DIVBYZERO),
           !!(e & FE_OVERFLOW), !!(e & FE_UNDERFLOW), !!(e & FE_INEXACT));
    feclearexcept(FE_ALL_EXCEPT);
}

static void sse(void) {
    volatile double r;
    volatile float f;
    volatile long l;
    r = one / zero; show("1/0");
    r = zero / zero; show("0/0");
    r = big * big; show("max*max");
    r = tiny * tiny; show("min*min");
    r = one / three; show("1/3");
    r = sqrt(-one); show("sqrt(-1)");
    f = fbig * 2.0f; show("float max*2");
    l = (long)big; show("(long)DBL_MAX");
    r = one + one; show("1+1");
    r = nextafter(zero, one); show("nextafter(0,1)");
    r = exp(1000.0); show("exp(1000)");
    r = log(zero); show("log(0)");
    r = rint(2.5); show("rint(2.5)");
    r = nearbyint(2.5); show("nearbyint(2.5)");  /* roundsd, precision exception suppressed */
    f = nearbyintf(2.5f); show("nearbyintf(2.5)");
    (void)r; (void)f; (void)l;
}

static void x87(void) {
    volatile long double r;
    r = lone / lzero; show("1/0 long");
    r = lzero / lzero; show("0/0 long");
    r = lbig * lbig; show("max*max long");
    r = ltiny * ltiny; show("min*min long");
    r = lone / lthree; show("1/3 long");
    r = sqrtl(-lone); show("sqrtl(-1)");
    r = lone + lone; show("1+1 long");
    (void)r;
}

static void environment(void) {
    volatile double r;
    fenv_t env;
    feraiseexcept(FE_OVERFLOW | FE_INEXACT); show("feraiseexcept");
    r = one / zero;
    feholdexcept(&env); show("feholdexcept");
    r = zero / zero;
    feupdateenv(&env); show("feupdateenv");
    fesetround(FE_UPWARD);
    r = one / three;
    printf("1/3 upward %a\n", r);
    fesetround(FE_TONEAREST);
    feclearexcept(FE_ALL_EXCEPT);
    (void)r;
}

int main(void) {
    feclearexcept(FE_ALL_EXCEPT);
    show("start");
    sse();
    x87();
    environment();
    return 0;
}

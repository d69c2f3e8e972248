/* The attack on running the x87's transcendental instructions on the host's x87: a guest
 * that unmasks every floating-point exception and feeds them infinities, zeros, denormals
 * and out-of-range values. The host runs them masked and never traps; the guest gets its
 * SIGFPE as natively, at its next x87 wait. */
#define _GNU_SOURCE
#include <fenv.h>
#include <math.h>
#include <stdio.h>
int main(void) {
    volatile long double inf = INFINITY, z = 0.0L, den = 1e-4940L, r;
    feenableexcept(FE_ALL_EXCEPT);
    printf("armed\n"); fflush(stdout);
    r = sinl(inf) + cosl(den) + atan2l(z, z) + logl(-1.0L) + expl(1e6L);
    printf("survived %Lg\n", r);
    return 0;
}

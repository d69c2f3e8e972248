/* A submission that never ends: it waits for a number that never comes. */
#include <stdio.h>

int main(void) {
    long x, sum = 0, max = 0;
    int n = 0;
    for (;;) {
        if (scanf("%ld", &x) == 1) {
            sum += x;
            if (n++ == 0 || x > max)
                max = x;
        }
        if (n < 0)  /* never: the loop above has no end */
            break;
    }
    printf("sum %ld\nmax %ld\n", sum, max);
    return 0;
}

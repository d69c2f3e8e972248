/* A wrong submission: it forgets that the numbers may all be negative (max starts at 0). */
#include <stdio.h>

int main(void) {
    long x, sum = 0, max = 0;
    while (scanf("%ld", &x) == 1) {
        sum += x;
        if (x > max)
            max = x;
    }
    printf("sum %ld\nmax %ld\n", sum, max);
    return 0;
}

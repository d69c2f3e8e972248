/* A correct submission: read integers from stdin, print their sum and their largest. */
#include <stdio.h>

int main(void) {
    long x, sum = 0, max = 0;
    int n = 0;
    while (scanf("%ld", &x) == 1) {
        sum += x;
        if (n++ == 0 || x > max)
            max = x;
    }
    printf("sum %ld\nmax %ld\n", sum, max);
    return 0;
}

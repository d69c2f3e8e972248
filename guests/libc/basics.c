/* basics: printf of integers and floats, libm, qsort, string functions, stderr. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

int main(void) {
    printf("ints: %d %ld %u %x %o %lld %+d %05d\n", -42, LONG_MIN, 4000000000u, 48879, 8, LLONG_MAX, 7, 42);
    printf("floats: %f %.10f %e %g %g %.3f\n", 3.14159, M_PI, 6.02214076e23, 1e-5, 100.0, -0.0005);
    printf("libm: %.12f %.12f %.12f %.12f %.12f\n", sqrt(2.0), exp(1.0), log(10.0), sin(1.0), pow(2.0, 0.5));
    printf("libm: %.6f %.6f %.6f %d\n", atan2(1.0, 1.0), cbrt(27.0), fmod(10.5, 3.0), (int)floor(-2.5));
    int v[1000];
    unsigned seed = 12345;
    for (int i = 0; i < 1000; i++) { seed = seed * 1103515245 + 12345; v[i] = (int)(seed >> 8) % 100000; }
    qsort(v, 1000, sizeof v[0], cmp);
    long sum = 0;
    for (int i = 0; i < 1000; i++) sum += (long)v[i] * (i + 1);
    printf("qsort: first %d last %d weighted %ld sorted %d\n", v[0], v[999], sum, v[0] <= v[500] && v[500] <= v[999]);
    char buf[128];
    strcpy(buf, "hello");
    strcat(buf, ", world");
    char *dup = strdup(buf);
    memmove(buf + 2, buf, 6);
    printf("strings: %zu %d %s %s %ld %s\n", strlen(dup), strcmp("abc", "abd"), strstr(dup, "wor"),
           strchr(dup, ','), strtol("-0x1f", NULL, 16), buf);
    snprintf(buf, sizeof buf, "%s|%8.3f|%-6s|", "snprintf", 2.5, "ok");
    puts(buf);
    free(dup);
    fprintf(stderr, "basics: to stderr %d\n", 99);
    return 0;
}

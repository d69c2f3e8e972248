/* zeroread N [BYTES [M]]: read BYTES (default 1) from /dev/zero N times into one buffer,
 * then write it to /dev/null M times (default N): the general system-call path's benchmark
 * (issue 17: a 1-byte read of /dev/zero should cost <= 1.5 us). Prints what it read, so that
 * a run in the sandbox can be compared with a native one. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 100000, size = argc > 2 ? atol(argv[2]) : 1;
    long m = argc > 3 ? atol(argv[3]) : n;
    static char buf[1 << 16];
    int zero = open("/dev/zero", O_RDONLY), null = open("/dev/null", O_WRONLY);
    if (zero < 0 || null < 0 || size < 0 || size > (long)sizeof buf)
        return 2;
    long got = 0, put = 0;
    buf[0] = 1;
    for (long i = 0; i < n; i++)
        got += read(zero, buf, size);
    for (long i = 0; i < m; i++)
        put += write(null, buf, size);
    printf("read %ld bytes, wrote %ld, first byte %d\n", got, put, buf[0]);
    return 0;
}

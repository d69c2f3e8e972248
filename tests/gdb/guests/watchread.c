/* A watchpoint and read(): the kernel's write into watched bytes is not seen, natively either. */
#include <stdio.h>
#include <unistd.h>
char buf[16];
int main(void) {
    int p[2];
    pipe(p);
    write(p[1], "xy", 2);
    read(p[0], buf, 2);
    printf("got %c\n", buf[0]);
    buf[0] = 'z';
    printf("now %c\n", buf[0]);
    return 0;
}

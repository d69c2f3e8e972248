/* Demo 3, stack growth and the guard page: recursion grows the stack one page at a time;
 * recursing without end hits the 8 MiB limit, and the SIGSEGV is caught on an alternate stack. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#pragma GCC diagnostic ignored "-Winfinite-recursion"

static volatile long depth;
static long grow(long n, long limit) {
    volatile char frame[1024];
    frame[0] = (char)n;
    depth = n;
    return n == limit ? 0 : grow(n + 1, limit) + frame[0];
}
static void on_overflow(int sig) {
    (void)sig;
    char line[80];
    int n = snprintf(line, sizeof line, "overflow caught on the alternate stack at depth %ld\n", depth);
    write(1, line, (size_t)n);
    _exit(0);
}

int main(void) {
    grow(0, 2000);
    printf("recursed 2000 deep (about 2 MiB of stack)\n");
    fflush(stdout);
    stack_t ss = {.ss_sp = malloc(1 << 16), .ss_size = 1 << 16};
    sigaltstack(&ss, NULL);
    struct sigaction sa = {.sa_handler = on_overflow, .sa_flags = SA_ONSTACK};
    sigaction(SIGSEGV, &sa, NULL);
    grow(0, -1);
    return 1;
}

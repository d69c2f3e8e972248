/* A write through a null pointer on a known line (the test looks for it in gdb's output);
   with an argument, a SIGSEGV handler runs first and exits 3. */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

int *volatile nowhere;

static void on_segv(int signo) {
    (void)signo;
    write(1, "handled\n", 8);
    _exit(3);
}

int main(int argc, char **argv) {
    if (argc > 1)
        signal(SIGSEGV, on_segv);
    puts("before");
    fflush(stdout);
    *nowhere = 42; /* FAULT HERE */
    puts("after");
    return 0;
}

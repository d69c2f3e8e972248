/* getppid N: make N trivial system calls (the syscall-bound benchmark workload). */
#include "sys.h"

int main(int argc, char **argv, char **envp) {
    long n = argc > 1 ? atol(argv[1]) : 200000, sum = 0;
    for (long i = 0; i < n; i++) sum += syscall3(110, 0, 0, 0);  /* SYS_getppid */
    put("calls "); put_num(n); put("\n");
    return sum < 0;
}

/* The gdb session tests' program: a call in a loop, a global the watchpoint watches,
   a deterministic output and an exit status gdb reports. */
#include <stdio.h>

int total_seen;

int add(int a, int b) {
    int sum = a + b;
    return sum;
}

int main(int argc, char **argv) {
    int total = 0;
    for (int i = 0; i < 4; i++) {
        total = add(total, i);
        total_seen = total;
    }
    printf("total %d\n", total);
    return total;
}

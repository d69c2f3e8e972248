/* The coverage example's target (examples/fuzz_snapshot.py --target magic): parse() crashes
 * only on inputs that start with the bytes "FUZZ", checked one at a time, each a branch of
 * its own -- the nested magic check a blind fuzzer almost never passes (2^-32 per guess)
 * and a coverage-guided one climbs a byte at a time. main() parses one built-in input; the
 * harness snapshots at parse()'s entry and feeds it its own inputs. */
#include <stdio.h>

unsigned char input[4096] = "none";
volatile int depth;  /* how far the last input got: a side effect per level keeps each branch */

__attribute__((noinline)) int parse(const unsigned char *buf, unsigned long len) {
    if (len < 4) return -1;
    if (buf[0] != 'F') return 0;
    depth = 1;
    if (buf[1] != 'U') return 1;
    depth = 2;
    if (buf[2] != 'Z') return 2;
    depth = 3;
    if (buf[3] != 'Z') return 3;
    *(volatile int *)0 = 4;  /* found: a null write */
    return 4;
}

int main(void) {
    printf("parse: %d\n", parse(input, 4));
    return 0;
}

/* The fuzzing example's target (examples/fuzz_snapshot.py): parse() reads a tiny record
 * format from a buffer -- "REC" magic, a version byte, a count, then count length-prefixed
 * fields -- and has two planted bugs that crash it on some inputs. main() parses one built-in
 * input; the harness snapshots at parse()'s entry and feeds it its own inputs. */
#include <stdio.h>
#include <string.h>

unsigned char input[4096] = "REC\x01\x01\x03" "abc";
unsigned long input_len = 9;

__attribute__((noinline)) int parse(const unsigned char *buf, unsigned long len) {
    if (len < 5 || memcmp(buf, "REC", 3) != 0) return -1;
    unsigned version = buf[3], count = buf[4];
    unsigned long at = 5;
    int total = 0;
    char field[16];
    for (unsigned i = 0; i < count; i++) {
        if (at >= len) return -2;
        unsigned n = buf[at++];
        if (version == 2 && n > 200) *(volatile int *)0 = 1;     /* bug 1: a null write */
        if (at + n > len) return -3;
        memcpy(field, buf + at, version == 3 ? n : (n < sizeof field ? n : sizeof field)); /* bug 2 */
        at += n;
        total += field[0];
    }
    return total;
}

int main(void) {
    printf("parse: %d\n", parse(input, input_len));
    return 0;
}

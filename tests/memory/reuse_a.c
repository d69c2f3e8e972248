/* With reuse_b.c: two static programs at the same addresses (0x401000) with different code,
 * run one after the other, so the frames of one's text are freed and refilled with the
 * other's (tests/memory/test_code_reuse.py). */
#include <stdio.h>
int main(void) { printf("a\n"); return 0; }

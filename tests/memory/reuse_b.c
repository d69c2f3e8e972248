/* See reuse_a.c: the other program at the same addresses, with other code. */
#include <stdio.h>
#include <string.h>
int main(void) { char s[8]; strcpy(s, "b"); puts(s); return 3 - 3; }

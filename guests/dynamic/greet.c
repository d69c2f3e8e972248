/* A library the `uselib` guest links against by name, found only through LD_LIBRARY_PATH. */
#include <stdio.h>

void greet(const char *who) { printf("greetings, %s, from libgreet\n", who); }

/* A dynamic program: gdb must find libc through qXfer:libraries-svr4 to stop in puts. */
#include <stdio.h>
#include <string.h>

static void greet(const char *who) {
    puts(who);
}

int main(void) {
    greet("hello from a dynamic program");
    return (int)strlen("abcd");
}

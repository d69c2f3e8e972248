/* Prints getpid(): 424242 under the preload library, something else without it. */
#include <stdio.h>
#include <unistd.h>

int main(void) {
    printf("%s\n", getpid() == 424242 ? "getpid interposed" : "getpid from libc");
    return 0;
}

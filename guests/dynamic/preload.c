/* An LD_PRELOAD library: announces itself and interposes on getpid (as strace-like shims do). */
#include <stdio.h>
#include <sys/types.h>

__attribute__((constructor)) static void loaded(void) { fputs("preload: constructor ran\n", stderr); }

pid_t getpid(void) { return 424242; }

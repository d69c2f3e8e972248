/* execve: gdb's exec event, then the new program's symbols, auxv and breakpoints. */
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    printf("execing %s\n", argv[1]);
    fflush(stdout);
    execv(argv[1], argv + 1);
    perror("execv");
    return 1;
}

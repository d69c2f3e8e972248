/* The first program anyone runs: built by a default `gcc` (a dynamically linked PIE). */
#include <stdio.h>

int main(int argc, char **argv) {
    printf("hello, dynamic world: %d argument(s)\n", argc - 1);
    for (int i = 1; i < argc; i++)
        printf("  %s\n", argv[i]);
    return 0;
}

/* A guest for the CLI tests: `writer N` writes N small files in /tmp and says so;
 * `writer random` prints 8 bytes of getrandom(2) in hex (seeded under --deterministic). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "random") == 0) {
        unsigned char bytes[8];
        if (getrandom(bytes, sizeof bytes, 0) != sizeof bytes)
            return 1;
        for (int i = 0; i < 8; i++)
            printf("%02x", bytes[i]);
        printf("\n");
        return 0;
    }
    int n = argc > 1 ? atoi(argv[1]) : 0;
    for (int i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "/tmp/result-%d.txt", i);
        FILE *f = fopen(name, "w");
        if (!f) {
            perror(name);
            return 1;
        }
        fprintf(f, "result %d\n", i);
        fclose(f);
    }
    printf("wrote %d\n", n);
    return 0;
}

/* forkbench CYCLES: dirty a 16 MiB heap, then CYCLES times fork a child that writes every
 * 16th page of it (copy-on-write faults) and exits, and wait for it (the fork benchmark). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int cycles = argc > 1 ? atoi(argv[1]) : 200;
    size_t size = 16 << 20;
    char *heap = malloc(size);
    memset(heap, 1, size);
    for (int i = 0; i < cycles; i++) {
        pid_t child = fork();
        if (child == 0) {
            for (size_t offset = 0; offset < size; offset += 16 * 4096) heap[offset] = 2;
            _exit(0);
        }
        waitpid(child, NULL, 0);
    }
    printf("%d fork/exit/wait cycles over a 16 MiB heap\n", cycles);
    return 0;
}

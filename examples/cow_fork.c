/* Demo 2, copy-on-write after fork: 64 pages filled, then fork. The child writes 16 pages,
 * the parent 8: every first write by either side copies a shared frame. */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    char *data = mmap(NULL, 64 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(data, 'p', 64 * 4096);
    int to_parent[2], to_child[2];
    pipe(to_parent);
    pipe(to_child);
    pid_t child = fork();
    if (child == 0) {
        for (int i = 0; i < 16; i++) data[i * 4096] = 'c';
        printf("child wrote 16 pages: page 0 is '%c'\n", data[0]);
        fflush(stdout);
        write(to_parent[1], "x", 1);
        char wait_for_parent;
        read(to_child[0], &wait_for_parent, 1);  /* stay alive so the parent's writes copy too */
        _exit(0);
    }
    char done;
    read(to_parent[0], &done, 1);
    for (int i = 32; i < 40; i++) data[i * 4096] = 'P';
    printf("parent wrote 8 pages: page 0 is still '%c'\n", data[0]);
    fflush(stdout);
    write(to_child[1], "x", 1);
    waitpid(child, NULL, 0);
    return 0;
}

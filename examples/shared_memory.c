/* Demo 5, shared memory between processes: a MAP_SHARED anonymous page and a memfd page are
 * written by a child and read by its parent: the same frames are mapped in both. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    char *anon = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int fd = memfd_create("demo", 0);
    ftruncate(fd, 4096);
    char *mem = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (fork() == 0) {
        strcpy(anon, "child wrote the anonymous shared page");
        strcpy(mem, "child wrote the memfd page");
        _exit(0);
    }
    wait(NULL);
    printf("parent reads: %s; %s\n", anon, mem);
    return 0;
}

/* forker CHILDREN PAGES [FILE]: a buffer of PAGES pages written by the parent, then CHILDREN
 * children forked one after another; child i writes PAGES/4 pages of the buffer (each a
 * copy-on-write fault) and exits with i; the parent waits for each and prints what it saw.
 * With FILE, the file is mapped read-only and read first (a shared file-backed page; its
 * name is chosen by the test, hostile characters included). Output is deterministic. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int children = argc > 1 ? atoi(argv[1]) : 1;
    long pages = argc > 2 ? atol(argv[2]) : 64;
    if (argc > 3) {
        int fd = open(argv[3], O_RDONLY);
        char *file = fd < 0 ? MAP_FAILED : mmap(0, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
        if (file == MAP_FAILED) { printf("cannot map %s\n", argv[3]); return 1; }
        printf("file starts with %c\n", file[0]);
    }
    char *buffer = mmap(0, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buffer == MAP_FAILED) { printf("mmap failed\n"); return 1; }
    for (long i = 0; i < pages; i++) buffer[i * 4096] = 'p';
    fflush(stdout);
    for (int c = 0; c < children; c++) {
        pid_t pid = fork();
        if (pid < 0) { printf("fork failed\n"); return 1; }
        if (pid == 0) {
            for (long i = 0; i < pages / 4; i++) buffer[i * 4096] = 'c';
            _exit(c & 0x7f);
        }
        int status;
        waitpid(pid, &status, 0);
        printf("child %d exited %d; parent still sees %c\n", c, WEXITSTATUS(status), buffer[0]);
    }
    return 0;
}

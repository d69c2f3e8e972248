/* mapfile FILE share|sigbus
 *   share:  map FILE twice privately, read both, write into the second: the first and
 *           the file keep the old bytes (pages are shared until written).
 *   sigbus: map two pages of FILE (shorter than one page) and touch the second: SIGBUS. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) { perror("open"); return 1; }
    if (strcmp(argv[2], "share") == 0) {
        char *a = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
        char *b = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
        printf("before: [%.5s] [%.5s] [%.5s] [%.5s]\n", a, b, a + 4096, b + 4096);
        memcpy(b, "WRITE", 5);
        printf("after:  [%.5s] [%.5s] [%.5s] [%.5s]\n", a, b, a + 4096, b + 4096);
        return 0;  /* mappings stay, so a test can inspect them before teardown */
    }
    char *p = mmap(NULL, 8192, PROT_READ, MAP_PRIVATE, fd, 0);
    printf("first page: [%.5s]\n", p);
    fflush(stdout);
    return p[4096];
}

/* mapfile FILE share|sigbus
 *   share:  map FILE twice privately, read both, write into the second: the first and
 *           the file keep the old bytes (pages are shared until written).
 *   sigbus: map two pages of FILE (shorter than one page) and touch the second: SIGBUS.
 *   coherent: FILE is (re)written as three pages of 'a', 'b' and 'c' and mapped shared and
 *           privately; write() and pwrite() show through both mappings, and stores into
 *           the shared one show through read(), as one page cache makes them on Linux. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    int coherent = strcmp(argv[2], "coherent") == 0;
    int fd = coherent ? open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0644) : open(argv[1], O_RDONLY);
    if (fd < 0) { perror("open"); return 1; }
    if (strcmp(argv[2], "share") == 0) {
        char *a = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
        char *b = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
        printf("before: [%.5s] [%.5s] [%.5s] [%.5s]\n", a, b, a + 4096, b + 4096);
        memcpy(b, "WRITE", 5);
        printf("after:  [%.5s] [%.5s] [%.5s] [%.5s]\n", a, b, a + 4096, b + 4096);
        return 0;  /* mappings stay, so a test can inspect them before teardown */
    }
    if (coherent) {
        char page[4096];
        for (char c = 'a'; c <= 'c'; c++) {
            memset(page, c, sizeof page);
            write(fd, page, sizeof page);
        }
        char *shared = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        char *private = mmap(NULL, 3 * 4096, PROT_READ, MAP_PRIVATE, fd, 0);
        char buf[8] = {0};
        printf("page 0: [%.5s] [%.5s]\n", shared, private);  /* the first touch of each */
        pwrite(fd, "PWRIT", 5, 4096);
        lseek(fd, 8192, SEEK_SET);
        write(fd, "WRITE", 5);
        printf("after pwrite and write: [%.5s] [%.5s] [%.5s] [%.5s]\n",
               shared + 4096, private + 4096, shared + 8192, private + 8192);
        memcpy(shared + 10, "STORE", 5);
        pread(fd, buf, 5, 10);
        printf("pread after a store: [%.5s]\n", buf);
        lseek(fd, 10, SEEK_SET);
        read(fd, buf, 5);
        printf("read after a store: [%.5s]\n", buf);
        return 0;
    }
    char *p = mmap(NULL, 8192, PROT_READ, MAP_PRIVATE, fd, 0);
    printf("first page: [%.5s]\n", p);
    fflush(stdout);
    return p[4096];
}

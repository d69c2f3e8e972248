/* Demo 7, lazy file mapping: a 4 MiB file is mapped whole, but only the 64 KiB windows
 * around the pages touched are read from it, one fault each (Linux's fault-around). */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>

int main(int argc, char **argv) {
    int fd = open(argc > 1 ? argv[1] : "/data.bin", O_RDONLY);
    struct stat st;
    fstat(fd, &st);
    unsigned char *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    unsigned long sum = 0;
    for (long offset = 0; offset < st.st_size; offset += 64 * 4096) sum += map[offset];
    printf("file of %lld bytes mapped; read every 64th page, checksum %lu\n", (long long)st.st_size, sum);
    return 0;
}

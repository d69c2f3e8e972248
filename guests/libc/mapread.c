/* mapread FILE: map FILE whole and read one byte of every page (the file-mapping benchmark). */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>

int main(int argc, char **argv) {
    int fd = open(argc > 1 ? argv[1] : "/data.bin", O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) { perror("open"); return 1; }
    unsigned char *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    unsigned long sum = 0;
    for (off_t offset = 0; offset < st.st_size; offset += 4096) sum += map[offset];
    printf("%lld bytes, %lld pages, sum %lu\n", (long long)st.st_size, (long long)st.st_size / 4096, sum);
    return 0;
}

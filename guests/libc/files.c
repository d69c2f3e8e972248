/* files: stdio and POSIX file I/O in /tmp, directories, and file mappings (private
 * read-only, private written, shared written back with msync). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int names_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(void) {
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/sandbox-files-test");
    mkdir(dir, 0755);
    char path[128];
    snprintf(path, sizeof path, "%s/data.txt", dir);
    FILE *f = fopen(path, "w");
    if (!f) { perror("fopen"); return 1; }
    for (int i = 0; i < 2000; i++) fprintf(f, "line %04d %s\n", i, i % 3 ? "abc" : "xyz");
    fclose(f);
    struct stat st;
    stat(path, &st);
    printf("size %lld regular %d\n", (long long)st.st_size, S_ISREG(st.st_mode));
    f = fopen(path, "r");
    char buf[64];
    fseek(f, 15 * 100, SEEK_SET);
    size_t got = fread(buf, 1, 14, f);
    buf[got] = 0;
    printf("fread at 1500: [%s] tell %ld\n", buf, ftell(f));
    fclose(f);
    int fd = open(path, O_RDONLY);
    off_t end = lseek(fd, 0, SEEK_END);
    char *map = mmap(NULL, (size_t)end, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) { perror("mmap"); return 1; }
    printf("mapped: %.14s ... %.14s\n", map, map + end - 15);
    long xyz = 0;
    for (off_t i = 0; i + 3 <= end; i++) xyz += memcmp(map + i, "xyz", 3) == 0;
    printf("xyz count via mapping: %ld\n", xyz);
    munmap(map, (size_t)end);
    char *priv = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    memcpy(priv, "PRIVATE", 7);
    char first[8] = {0};
    pread(fd, first, 7, 0);
    printf("private write stays private: map [%.7s] file [%s]\n", priv, first);
    munmap(priv, 4096);
    close(fd);
    fd = open(path, O_RDWR);
    char *shared = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    memcpy(shared + 4096, "SHARED!", 7);
    msync(shared, 8192, MS_SYNC);
    pread(fd, first, 7, 4096);
    printf("shared write reaches the file: [%s]\n", first);
    munmap(shared, 8192);
    close(fd);
    char other[128];
    snprintf(other, sizeof other, "%s/renamed.txt", dir);
    rename(path, other);
    printf("after rename: old %d new %d\n", access(path, F_OK), access(other, F_OK));
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s/f%d", dir, 4 - i);
        close(open(path, O_CREAT | O_WRONLY, 0644));
    }
    DIR *d = opendir(dir);
    char *names[16];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 16) if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, n, sizeof names[0], names_cmp);
    printf("directory:");
    for (int i = 0; i < n; i++) { printf(" %s", names[i]); snprintf(path, sizeof path, "%s/%s", dir, names[i]); unlink(path); }
    printf("\n");
    printf("rmdir %d\n", rmdir(dir));
    errno = 0;
    FILE *missing = fopen("/tmp/sandbox-files-test/none", "r");
    printf("missing: %p %s\n", (void *)missing, strerror(errno));
    /* O_APPEND set later with F_SETFL moves every write to the end (man 2 fcntl). */
    int afd = open("/tmp/sandbox-files-append", O_CREAT | O_RDWR | O_TRUNC, 0644);
    write(afd, "first\n", 6);
    lseek(afd, 0, SEEK_SET);
    fcntl(afd, F_SETFL, fcntl(afd, F_GETFL) | O_APPEND);
    write(afd, "second\n", 7);
    char abuf[32];
    ssize_t an = pread(afd, abuf, sizeof abuf - 1, 0);
    abuf[an > 0 ? an : 0] = 0;
    printf("after F_SETFL O_APPEND: [%s]\n", abuf);
    close(afd);
    unlink("/tmp/sandbox-files-append");
    fprintf(stderr, "files: done\n");
    return 0;
}

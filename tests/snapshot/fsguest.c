/* Snapshot file-restore guest: `fsguest MODE DIR SCRATCH`. Opens and maps some of DIR's
   files, makes a file in SCRATCH (the sandbox's own /tmp), calls checkpoint() (where the
   tests snapshot), prints what DIR and SCRATCH's files hold, then changes them
   every way it can: deterministic output, so a run from the snapshot prints the same only
   if the files came back. MODE "budget": write a big file opened before the checkpoint,
   and open it with O_TRUNC, printing each errno. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

__attribute__((noinline)) void checkpoint(void) { __asm__ volatile("" ::: "memory"); }

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Every entry of `dir` (sorted), with its kind, size, mode and first bytes. */
static void show(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) { printf("%s: errno %d\n", dir, errno); return; }
    char *names[256]; int n = 0; struct dirent *e;
    while ((e = readdir(d)) && n < 256)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, n, sizeof *names, cmp);
    for (int i = 0; i < n; i++) {
        char path[512], text[40] = {0}; struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        lstat(path, &st);
        if (S_ISLNK(st.st_mode)) { readlink(path, text, 39); printf("  %s -> %s\n", names[i], text); }
        else if (S_ISDIR(st.st_mode)) { printf("  %s/ %o\n", names[i], st.st_mode & 0777); show(path); }
        else {
            int fd = open(path, O_RDONLY); int k = read(fd, text, 32); close(fd);
            for (int j = 0; j < k; j++) if (text[j] < 32) text[j] = '.';
            printf("  %s %ld %o [%s]\n", names[i], (long)st.st_size, st.st_mode & 0777, text);
        }
        free(names[i]);
    }
}

static void cat(const char *path) {
    char text[40] = {0}; int fd = open(path, O_RDONLY);
    int n = fd < 0 ? -errno : read(fd, text, 39);
    printf("%s: %d [%s]\n", strrchr(path, '/') + 1, n, text);
    if (fd >= 0) close(fd);
}

static void put(const char *path, int flags, const char *text) {
    int fd = open(path, flags, 0644);
    if (fd < 0) { printf("open %s: errno %d\n", strrchr(path, '/') ? strrchr(path, '/') + 1 : path, errno); return; }
    write(fd, text, strlen(text)); close(fd);
}

int main(int argc, char **argv) {
    if (argc < 4 || chdir(argv[2])) return 2;
    char pre[256], made[256];
    snprintf(pre, sizeof pre, "%s/pre.txt", argv[3]);
    snprintf(made, sizeof made, "%s/made.txt", argv[3]);
    if (!strcmp(argv[1], "many")) {  /* 3000 new files and a directory of them moved */
        checkpoint();
        mkdir("heap", 0755);
        for (int i = 0; i < 3000; i++) {
            char name[64]; snprintf(name, sizeof name, "heap/m%d", i);
            int fd = open(name, O_WRONLY | O_CREAT, 0644);
            if (fd < 0) { printf("created %d errno %d\n", i, errno); return 1; }
            close(fd);
        }
        printf("renamed %d\n", rename("heap", "sub/heap"));
        return 0;
    }
    if (!strcmp(argv[1], "budget")) {
        int fd = open("big.bin", O_RDWR);
        checkpoint();
        int n = write(fd, "x", 1);
        printf("write %d errno %d\n", n, n < 0 ? errno : 0);
        n = open("big.bin", O_WRONLY | O_TRUNC);
        printf("open %d errno %d\n", n < 0 ? -1 : 0, n < 0 ? errno : 0);
        put("small.txt", O_WRONLY | O_CREAT, "small");  /* an entry only: within the budget */
        show(".");
        return 0;
    }
    put(pre, O_WRONLY | O_CREAT | O_TRUNC, "made before the checkpoint");
    int keep = open("keep.txt", O_RDWR);
    int shared = open("shared.txt", O_RDWR);
    char *map = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, shared, 0);
    if (map == MAP_FAILED) return 3;
    map[0] = 'M';  /* dirty when the snapshot is taken: stored then */
    checkpoint();
    show(".");
    cat(pre);
    cat(made);
    printf("map [%.8s]\n", map);
    pwrite(keep, "CHANGED", 7, 0);                      /* through a descriptor from before */
    put("trunc.txt", O_WRONLY | O_TRUNC, "t");           /* O_TRUNC */
    truncate("grow.txt", 10000);                          /* truncate(2) by path */
    unlink("gone.txt");
    rename("old.txt", "new.txt");                         /* over nothing */
    rename("over.txt", "keep2.txt");                      /* over a file */
    put("created.txt", O_WRONLY | O_CREAT | O_EXCL, "new file");
    mkdir("newdir", 0755); put("newdir/f", O_WRONLY | O_CREAT, "in newdir");
    rmdir("empty");
    rename("sub", "sub2"); put("sub2/inner.txt", O_WRONLY | O_APPEND, "+appended");
    put("sub2/born.txt", O_WRONLY | O_CREAT, "born in a moved dir");
    unlink("link"); symlink("elsewhere", "link");
    chmod("mode.txt", 0600);
    memcpy(map, "SHAREDWRITE", 11); msync(map, 4096, MS_SYNC);
    truncate(pre, 3); put(made, O_WRONLY | O_CREAT, "made after");
    printf("changed\n");
    show(".");
    return 0;
}

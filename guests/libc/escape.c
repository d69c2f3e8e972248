/* escape: a hostile guest's attempts on host files, each a subcommand. Every attempt
 * prints what it got; the test checks the host afterwards.
 *   fchown TARGET   open /tmp/f, unlink it, put a symlink to host path TARGET in its place,
 *                   then fchown and futimens the descriptor (finding 1 of issue 12)
 *   memfd TARGET    the same through a memfd whose name is TARGET
 *   chmod PATH      chmod PATH 04777 and 01777: the guest sees its mode, the host never
 *   disk PATH N     write N KiB to PATH, then the same again through a memfd
 *   facts PATH      stat and statfs of PATH, printed for comparison with the host's
 *   pgrp -          the terminal's foreground group (tcgetpgrp) against the guest's own
 *   mapped N        N times: write 256 KiB to a file, map a page of it, close and unlink it
 *                   (the mapping keeps its blocks); then dirty 512 KiB of a sparse shared
 *                   mapping and unmap it (the writeback fills holes)
 *   regions N       N children each map single pages (alternating protections, so none
 *                   merge) until mmap fails or 4000 are mapped; prints each child's count
 *   listings N K    make N files with long names in /tmp/l, open /tmp/l K times and read
 *                   its first entries through each (each open holds a listing)
 *   memfds N        N times: a memfd, 128 KiB written, closed (its blocks come back)
 *   handles PATH    what an O_PATH descriptor and an O_APPEND shared mapping allow (the
 *                   output is compared with a native run)
 *   flood FD N      write N-byte blocks to descriptor FD forever (nobody reads it)
 *   lastpage -      map the last two pages below 2^63 of a memfd that large and read them,
 *                   by a load and through write() (needs $TMPDIR on tmpfs to make it so large)
 *   numbers N       N system calls with numbers no kernel has (each answers ENOSYS)
 *   openmany N K    N children each open /tmp/f up to K times and hold them; each prints
 *                   how many it got and why it stopped
 *   procseek -      lseek on /proc/self/maps to INT64_MAX, then past it
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

static int attack_descriptor(int fd) {
    int r1 = fchown(fd, 4242, 4242);
    printf("fchown: %d %s\n", r1, r1 ? strerror(errno) : "ok");
    struct timespec times[2] = {{1000000000, 0}, {1000000000, 0}};
    int r2 = futimens(fd, times);
    printf("futimens: %d %s\n", r2, r2 ? strerror(errno) : "ok");
    struct stat st;
    fstat(fd, &st);
    printf("fstat uid %u mtime %lld\n", st.st_uid, (long long)st.st_mtime);
    return 0;
}

static int fchown_attack(const char *target) {
    int fd = open("/tmp/f", O_CREAT | O_RDWR, 0644);
    if (fd < 0) { perror("open"); return 1; }
    unlink("/tmp/f");
    if (symlink(target, "/tmp/f")) perror("symlink");
    return attack_descriptor(fd);
}

static int memfd_attack(const char *target) {
    int fd = memfd_create(target, 0);
    if (fd < 0) { perror("memfd_create"); return 1; }
    return attack_descriptor(fd);
}

static int chmod_attack(const char *path) {
    struct stat st;
    for (int i = 0; i < 2; i++) {
        mode_t mode = i ? 01777 : 04777;
        int r = chmod(path, mode);
        stat(path, &st);
        printf("chmod %o: %d, guest sees %o\n", mode, r, st.st_mode & 07777);
    }
    return 0;
}

static long fill(int fd, long kib) {
    char block[1024];
    memset(block, 'x', sizeof block);
    long written = 0;
    for (long i = 0; i < kib; i++) {
        ssize_t n = write(fd, block, sizeof block);
        if (n < 0) { printf("write: %s after %ld bytes\n", strerror(errno), written); break; }
        written += n;
    }
    return written;
}

static int disk_attack(const char *path, long kib) {
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    if (fd < 0) { perror("open"); return 1; }
    printf("file: %ld bytes\n", fill(fd, kib));
    int mfd = memfd_create("fill", 0);
    printf("memfd: %ld bytes\n", fill(mfd, kib));
    return 0;
}

static int facts(const char *path) {
    struct stat st;
    struct statfs fs;
    if (stat(path, &st) || statfs(path, &fs)) { perror(path); return 1; }
    printf("dev %llu ino %llu uid %u gid %u\n", (unsigned long long)st.st_dev,
           (unsigned long long)st.st_ino, st.st_uid, st.st_gid);
    printf("statfs type %lx blocks %llu bfree %llu files %llu\n", (long)fs.f_type,
           (unsigned long long)fs.f_blocks, (unsigned long long)fs.f_bfree, (unsigned long long)fs.f_files);
    printf("uid %u euid %u gid %u\n", getuid(), geteuid(), getgid());
    return 0;
}

static int pgrp(void) {
    pid_t fg = tcgetpgrp(1), own = getpgrp();
    printf("foreground %s\n", fg == own ? "is the guest's own group" : "differs");
    return fg == own ? 0 : 1;
}

static int mapped(int rounds) {
    char name[32], block[4096];
    memset(block, 'm', sizeof block);
    for (int i = 0; i < rounds; i++) {
        snprintf(name, sizeof name, "/tmp/m%d", i);
        int fd = open(name, O_CREAT | O_RDWR | O_TRUNC, 0644);
        long written = 0;
        for (int k = 0; k < 64; k++) {
            ssize_t n = write(fd, block, sizeof block);
            if (n <= 0) break;
            written += n;
        }
        printf("round %d: wrote %ld\n", i, written);
        void *page = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
        close(fd);
        unlink(name);
        if (page == MAP_FAILED || written < 64 * 4096) break;
    }
    int fd = open("/tmp/sparse", O_CREAT | O_RDWR | O_TRUNC, 0644);
    ftruncate(fd, 64 << 20);
    char *map = mmap(NULL, 64 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    for (long off = 0; off < (512 << 10); off += 4096) map[off] = 1;
    munmap(map, 64 << 20);
    struct stat st;
    fstat(fd, &st);
    printf("sparse: %lld blocks\n", (long long)st.st_blocks);
    ssize_t n = write(fd, block, sizeof block);
    printf("write after: %s\n", n < 0 ? strerror(errno) : "ok");
    return 0;
}

static int regions(int children) {
    pid_t pids[64];
    int total = 0;
    if (children > 64) children = 64;
    for (int c = 0; c < children; c++) {
        int fds[2];
        pipe(fds);
        pids[c] = fork();
        if (pids[c] == 0) {
            int n = 0;
            while (n < 4000) {
                void *p = mmap(NULL, 4096, n % 2 ? PROT_READ : PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (p == MAP_FAILED) break;
                n++;
            }
            write(fds[1], &n, sizeof n);
            pause();  /* hold the regions until the parent ends it */
            _exit(0);
        }
        int n = 0;
        read(fds[0], &n, sizeof n);
        close(fds[0]);
        close(fds[1]);
        printf("child %d: %d regions\n", c, n);
        total += n;
    }
    for (int c = 0; c < children; c++) {
        kill(pids[c], SIGKILL);
        waitpid(pids[c], NULL, 0);
    }
    printf("total %d\n", total);
    return 0;
}

static int listings(int files, int opens) {
    char name[300];
    mkdir("/tmp/l", 0755);
    for (int i = 0; i < files; i++) {
        snprintf(name, sizeof name, "/tmp/l/%0200d", i);
        close(open(name, O_CREAT | O_WRONLY, 0644));
    }
    int ok = 0, failed = 0;
    char buf[4096];
    for (int k = 0; k < opens; k++) {
        int fd = open("/tmp/l", O_RDONLY | O_DIRECTORY);
        if (fd < 0) { failed++; continue; }
        if (syscall(SYS_getdents64, fd, buf, sizeof buf) > 0) ok++;
        else { printf("getdents: %s\n", strerror(errno)); failed++; break; }
    }
    printf("listed %d, failed %d\n", ok, failed);
    return 0;
}

static int memfds(int rounds) {
    char block[4096];
    memset(block, 'f', sizeof block);
    int ok = 0;
    for (int i = 0; i < rounds; i++) {
        int fd = memfd_create("round", 0);
        long written = 0;
        for (int k = 0; k < 32; k++) {
            ssize_t n = write(fd, block, sizeof block);
            if (n <= 0) break;
            written += n;
        }
        close(fd);
        if (written == 32 * 4096) ok++;
    }
    printf("memfds filled: %d of %d\n", ok, rounds);
    return 0;
}

static int handles(const char *path) {
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0644);
    for (int i = 0; i < 410; i++) write(fd, "0123456789", 10);
    close(fd);
    int handle = open(path, O_PATH | O_RDWR);
    void *p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, handle, 0);
    char c;
    printf("O_PATH: mmap %s, read %s, write %s\n", p == MAP_FAILED ? strerror(errno) : "mapped",
           read(handle, &c, 1) < 0 ? strerror(errno) : "read", write(handle, "x", 1) < 0 ? strerror(errno) : "wrote");
    close(handle);
    fd = open(path, O_RDWR | O_APPEND);
    char *map = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    map[0] = 'X';
    map[4099] = 'Y';
    msync(map, 8192, MS_SYNC);
    munmap(map, 8192);
    struct stat st;
    fstat(fd, &st);
    char head[2] = {0}, tail[2] = {0};
    pread(fd, head, 1, 0);
    pread(fd, tail, 1, 4099);
    printf("O_APPEND shared mapping: size %lld, byte 0 %s, byte 4099 %s\n", (long long)st.st_size, head, tail);
    close(fd);
    unlink(path);
    return 0;
}

static int flood(int fd, size_t size) {
    static char block[1 << 16];
    memset(block, 'w', sizeof block);
    if (size > sizeof block) size = sizeof block;
    for (;;)
        if (write(fd, block, size) < 0) return 1;
}

static int lastpage(void) {
    int fd = memfd_create("huge", 0);
    if (ftruncate(fd, 0x7fffffffffffffffL)) { printf("ftruncate: %s\n", strerror(errno)); return 1; }
    for (long offset = 0x7ffffffffffff000L; offset >= 0x7fffffffffffe000L; offset -= 4096) {
        unsigned char *p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, offset);
        if (p == MAP_FAILED) { printf("mmap at %lx: %s\n", offset, strerror(errno)); continue; }
        int through_write = write(1, p + 100, 1);
        printf("\npage at %lx: byte %d, write %d\n", offset, p[4000], through_write);
    }
    return 0;
}

static int numbers(long count) {
    long enosys = 0;
    for (long i = 0; i < count; i++)
        if (syscall(100000 + i) == -1 && errno == ENOSYS) enosys++;
    printf("ENOSYS %ld of %ld\n", enosys, count);
    return 0;
}

static int openmany(int children, int most) {
    close(open("/tmp/f", O_CREAT | O_WRONLY, 0644));
    for (int c = 0; c < children; c++) {
        int fds[2];
        pipe(fds);
        pid_t pid = fork();
        if (pid == 0) {
            int n = 0, why = 0;
            while (n < most) {
                if (open("/tmp/f", O_RDONLY) < 0) { why = errno; break; }
                n++;
            }
            printf("child %d: %d open, %s\n", c, n, why ? strerror(why) : "all");
            fflush(stdout);
            write(fds[1], "x", 1);
            pause();
            _exit(0);
        }
        char x;
        read(fds[0], &x, 1);
    }
    signal(SIGTERM, SIG_IGN);
    kill(0, SIGTERM);
    while (wait(NULL) > 0) {}
    return 0;
}

static int procseek(void) {
    int fd = open("/proc/self/maps", O_RDONLY);
    long to_max = lseek(fd, 0x7fffffffffffffffL, SEEK_SET);
    long past = lseek(fd, 0x7fffffffffffffffL, SEEK_CUR);
    printf("to INT64_MAX: %ld; past it: %ld %s\n", to_max, past, past < 0 ? strerror(errno) : "");
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: escape fchown|memfd|chmod|disk|facts|pgrp ARG [N]\n"); return 2; }
    if (!strcmp(argv[1], "fchown")) return fchown_attack(argv[2]);
    if (!strcmp(argv[1], "memfd")) return memfd_attack(argv[2]);
    if (!strcmp(argv[1], "chmod")) return chmod_attack(argv[2]);
    if (!strcmp(argv[1], "disk") && argc > 3) return disk_attack(argv[2], atol(argv[3]));
    if (!strcmp(argv[1], "facts")) return facts(argv[2]);
    if (!strcmp(argv[1], "pgrp")) return pgrp();
    if (!strcmp(argv[1], "mapped")) return mapped(atoi(argv[2]));
    if (!strcmp(argv[1], "regions")) return regions(atoi(argv[2]));
    if (!strcmp(argv[1], "memfds")) return memfds(atoi(argv[2]));
    if (!strcmp(argv[1], "handles")) return handles(argv[2]);
    if (!strcmp(argv[1], "lastpage")) return lastpage();
    if (!strcmp(argv[1], "numbers")) return numbers(atol(argv[2]));
    if (!strcmp(argv[1], "procseek")) return procseek();
    if (!strcmp(argv[1], "openmany") && argc > 3) return openmany(atoi(argv[2]), atoi(argv[3]));
    if (!strcmp(argv[1], "flood") && argc > 3) return flood(atoi(argv[2]), (size_t)atol(argv[3]));
    if (!strcmp(argv[1], "listings") && argc > 3) return listings(atoi(argv[2]), atoi(argv[3]));
    return 2;
}

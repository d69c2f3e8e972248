/* /proc as programs read it: each mode prints facts derived from /proc that are the same
 * natively and in the sandbox (sizes measured as differences, ids compared with the
 * system calls' own answers), so the two runs' outputs can be compared byte for byte. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGES 100
static char text[1 << 16];

/* The whole of a /proc file into `text` (NUL-terminated); -errno if it cannot be opened. */
static int slurp(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -errno;
    int n = 0, got;
    while ((got = read(fd, text + n, sizeof text - 1 - n)) > 0) n += got;
    text[n] = 0;
    close(fd);
    return n;
}

/* The number after "key" on its line of `text`, or -1. */
static long field(const char *from, const char *key) {
    const char *at = strstr(from, key);
    return at ? strtol(at + strlen(key), NULL, 0) : -1;
}

static void say(const char *line) { write(1, line, strlen(line)); }

static void status(void) {
    char line[200];
    slurp("/proc/self/status");
    snprintf(line, sizeof line, "pid ok %d ppid ok %d tgid ok %d threads %ld uid ok %d\n",
             field(text, "\nPid:") == getpid(), field(text, "\nPPid:") == getppid(),
             field(text, "\nTgid:") == getpid(), field(text, "\nThreads:"), field(text, "\nUid:") == getuid());
    say(line);
    say(strstr(text, "State:\tR (running)") ? "state running\n" : "state wrong\n");
    slurp("/proc/self/stat");
    long pid = strtol(text, NULL, 10);
    char *close_paren = strrchr(text, ')');
    snprintf(line, sizeof line, "stat pid ok %d state %c\n", pid == getpid(), close_paren ? close_paren[2] : '?');
    say(line);
}

/* Rss of the whole process, in kB (smaps_rollup), and resident pages (statm). */
static long rss_kb(void) { slurp("/proc/self/smaps_rollup"); return field(text, "\nRss:"); }
static long statm_resident(void) { slurp("/proc/self/statm"); char *sp = strchr(text, ' '); return strtol(sp, NULL, 10); }

static void rss(void) {
    char *mem = mmap(NULL, PAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    rss_kb(), statm_resident();  /* their own first run faults code in: not measured */
    long before = rss_kb(), pages_before = statm_resident();
    for (int i = 0; i < PAGES; i++) mem[i * 4096] = 1;
    long after = rss_kb(), pages_after = statm_resident();
    char line[200];
    snprintf(line, sizeof line, "Rss grew by %ld KiB after touching %d pages; statm by %ld pages\n",
             after - before, PAGES, pages_after - pages_before);
    say(line);
}

/* The smaps block of the region at `addr`: its Pss, Shared_Dirty and Private_Dirty. */
static void smaps_of(void *addr, const char *who) {
    char start[32], line[300];
    snprintf(start, sizeof start, "\n%lx-", (unsigned long)addr);
    slurp("/proc/self/smaps");
    char *block = strstr(text, start);
    if (!block) { say("region not found\n"); return; }
    snprintf(line, sizeof line, "%s: Rss %ld Pss %ld Shared_Dirty %ld Private_Dirty %ld Anonymous %ld\n", who,
             field(block, "\nRss:"), field(block, "\nPss:"), field(block, "\nShared_Dirty:"),
             field(block, "\nPrivate_Dirty:"), field(block, "\nAnonymous:"));
    say(line);
}

static void cow(void) {
    char *mem = mmap(NULL, PAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (int i = 0; i < PAGES; i++) mem[i * 4096] = 1;
    smaps_of(mem, "alone");
    int go[2], done[2];
    pipe(go); pipe(done);
    pid_t child = fork();
    if (child == 0) {
        smaps_of(mem, "child after fork");
        for (int i = 0; i < PAGES / 2; i++) mem[i * 4096] = 2;
        smaps_of(mem, "child after writing half");
        write(done[1], "x", 1);
        read(go[0], text, 1);
        _exit(0);
    }
    read(done[0], text, 1);
    smaps_of(mem, "parent");
    write(go[1], "x", 1);
    waitpid(child, NULL, 0);
    smaps_of(mem, "parent alone again");
}

static void fds(void) {
    int p[2];
    char link[64], want[64], line[200];
    struct stat st;
    pipe(p);
    fstat(p[0], &st);
    snprintf(want, sizeof want, "pipe:[%lu]", (unsigned long)st.st_ino);
    for (int i = 0; i < 2; i++) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", p[i]);
        ssize_t n = readlink(path, link, sizeof link - 1);
        link[n > 0 ? n : 0] = 0;
        snprintf(line, sizeof line, "pipe end %d links to its pipe: %d\n", i, strcmp(link, want) == 0);
        say(line);
    }
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    read(fd, line, 5);
    snprintf(link, sizeof link, "/proc/self/fdinfo/%d", fd);
    slurp(link);
    char *mnt = strstr(text, "mnt_id:");
    if (mnt) *mnt = 0;
    say(text);
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, want, sizeof want - 1);
    want[n > 0 ? n : 0] = 0;
    snprintf(line, sizeof line, "status link names pid %d\n", atoi(want + 6) == getpid());
    say(line);
    write(p[1], "through the link\n", 17);
    close(p[1]);
    snprintf(link, sizeof link, "/proc/self/fd/%d", p[0]);
    int again = open(link, O_RDONLY);
    n = read(again, line, sizeof line);
    write(1, line, n > 0 ? n : 0);
}

static void oom(void) {
    const char *writes[] = {"garbage", "1001", "-1001", "12", "  7\n", "0x10", "010", "+3", "99999999999999", "5x", "-0"};
    char line[200];
    for (unsigned i = 0; i < sizeof writes / sizeof *writes; i++) {
        int fd = open("/proc/self/oom_score_adj", O_WRONLY);
        ssize_t n = write(fd, writes[i], strlen(writes[i]));
        int error = n < 0 ? errno : 0;
        close(fd);
        slurp("/proc/self/oom_score_adj");
        snprintf(line, sizeof line, "write '%s': %s, now %s", writes[i], error ? strerror(error) : "ok", text);
        say(line);
    }
    pid_t child = fork();
    if (child == 0) {
        slurp("/proc/self/oom_score_adj");
        snprintf(line, sizeof line, "child inherits %s", text);
        say(line);
        _exit(0);
    }
    waitpid(child, NULL, 0);
    slurp("/proc/self/oom_score");
    long score = atol(text);
    snprintf(line, sizeof line, "oom_score in range %d\n", score >= 0 && score <= 2000);
    say(line);
}

static void missing(void) {
    const char *paths[] = {"/proc/999999/status", "/proc/0/stat", "/proc/self/fd/999", "/proc/self/task/999999/stat",
                           "/proc/self/nonexistent", "/proc/01/stat", "/proc/self/fdinfo/999"};
    char line[200];
    for (unsigned i = 0; i < sizeof paths / sizeof *paths; i++) {
        int got = slurp(paths[i]);
        snprintf(line, sizeof line, "%s: %s\n", paths[i], got < 0 ? strerror(-got) : "opened");
        say(line);
    }
}

/* A process that ends while its /proc files are open: what was read stays readable,
 * cmdline reads nothing more, and the directory goes once it is reaped. */
static void ends(void) {
    int ready[2];
    pipe(ready);
    pid_t child = fork();
    if (child == 0) { write(ready[1], "x", 1); pause(); _exit(0); }
    read(ready[0], text, 1);
    char path[64], line[200], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/status", child);
    int status_fd = open(path, O_RDONLY);
    snprintf(path, sizeof path, "/proc/%d/cmdline", child);
    int cmdline_fd = open(path, O_RDONLY);
    ssize_t first = read(status_fd, buf, 10);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    ssize_t rest = read(status_fd, buf, sizeof buf);
    ssize_t cmd = read(cmdline_fd, buf, sizeof buf);
    snprintf(path, sizeof path, "/proc/%d/status", child);
    int again = slurp(path);
    snprintf(line, sizeof line, "first %zd, rest %s, cmdline after exit %zd, reopen %s\n", first,
             rest > 100 ? "read" : "lost", cmd, again < 0 ? strerror(-again) : "opened");
    say(line);
}

static void limits(void) {
    struct rlimit cpu = {100, 200}, fsize = {1 << 20, 1 << 21};
    setrlimit(RLIMIT_CPU, &cpu);
    setrlimit(RLIMIT_FSIZE, &fsize);
    slurp("/proc/self/limits");
    char *lines[] = {strstr(text, "Limit "), strstr(text, "Max cpu time"), strstr(text, "Max file size"),
                     strstr(text, "Max realtime timeout")};
    for (int i = 0; i < 4; i++) {
        if (!lines[i]) { say("missing\n"); continue; }
        write(1, lines[i], strchr(lines[i], '\n') + 1 - lines[i]);
    }
}

/* Reads of every size and at every offset of a big file: what a careless reader does. */
static void reads(void) {
    char line[200];
    int fd = open("/proc/self/maps", O_RDONLY);
    char *huge = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    /* A count far past the buffer, though not past the user half from where the sandbox's
     * (unrandomised) mmap puts it: that would be EFAULT before any read (access_ok). */
    ssize_t whole = read(fd, huge, 1ul << 24);
    ssize_t after = read(fd, huge, 1 << 20);
    ssize_t far = pread(fd, huge, 100, 1l << 40);
    ssize_t bad = pread(fd, (void *)8, 100, 0);
    snprintf(line, sizeof line, "whole %d, after %zd, far %zd, bad pointer %s\n", whole > 100, after, far,
             bad < 0 ? strerror(errno) : "read");
    say(line);
    int many = 0;
    for (int i = 0; i < 900; i++) {
        int f = open("/proc/self/status", O_RDONLY);
        if (f < 0) { snprintf(line, sizeof line, "open %d failed: %s\n", many, strerror(errno)); break; }
        many++;
    }
    say(many == 900 ? "all opened\n" : line);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "status")) status();
    else if (!strcmp(mode, "rss")) rss();
    else if (!strcmp(mode, "cow")) cow();
    else if (!strcmp(mode, "fds")) fds();
    else if (!strcmp(mode, "oom")) oom();
    else if (!strcmp(mode, "missing")) missing();
    else if (!strcmp(mode, "ends")) ends();
    else if (!strcmp(mode, "limits")) limits();
    else if (!strcmp(mode, "reads")) reads();
    else { say("unknown mode\n"); return 2; }
    return 0;
}

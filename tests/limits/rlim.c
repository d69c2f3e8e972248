/* Resource limits, enforced: each case sets limits with setrlimit/prlimit and prints
 * what the process then observes (return values, errno names, wait statuses). The
 * output is the same natively (as an unprivileged user) and in the sandbox.
 * Usage: rlim CASE [ARG]. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *en(int e) {
    switch (e) {
    case 0: return "OK";
    case EPERM: return "EPERM";
    case EINVAL: return "EINVAL";
    case ESRCH: return "ESRCH";
    case EMFILE: return "EMFILE";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case EFBIG: return "EFBIG";
    case ENOMEM: return "ENOMEM";
    case EFAULT: return "EFAULT";
    default: return strerror(e);
    }
}

#define SHOW(label, expr) do { errno = 0; long r_ = (long)(expr); \
    printf("%s: %s\n", label, r_ < 0 ? en(errno) : "OK"); } while (0)

static void setlim(int res, rlim_t cur, rlim_t max) {
    struct rlimit r = {cur, max};
    if (setrlimit(res, &r)) { printf("setrlimit(%d) failed: %s\n", res, en(errno)); exit(3); }
}

static void report(const char *what, int status) {
    if (WIFEXITED(status))
        printf("%s: exit %d\n", what, WEXITSTATUS(status));
    else
        printf("%s: signal %d core %d\n", what, WTERMSIG(status), WCOREDUMP(status) ? 1 : 0);
}

static int nofile(void) {
    struct rlimit r;
    getrlimit(RLIMIT_NOFILE, &r);
    setlim(RLIMIT_NOFILE, 6, r.rlim_max);
    int n = 0;
    while (open("/dev/null", O_RDONLY) >= 0) n++;
    printf("opened %d then %s\n", n, en(errno));
    SHOW("dup", dup(0));
    SHOW("dup2 to 5", dup2(0, 5));
    SHOW("dup2 to 6", dup2(0, 6));
    SHOW("F_DUPFD 6", fcntl(0, F_DUPFD, 6));
    close(5);
    SHOW("F_DUPFD 2", fcntl(0, F_DUPFD, 2));
    int p[2];
    SHOW("pipe", pipe(p));
    setlim(RLIMIT_NOFILE, 0, r.rlim_max);
    SHOW("open at 0", open("/dev/null", O_RDONLY));
    getrlimit(RLIMIT_NOFILE, &r);
    printf("soft now %lu\n", (unsigned long)r.rlim_cur);
    return 0;
}

static int rules(void) {
    struct rlimit r, old;
    getrlimit(RLIMIT_FSIZE, &old);
    r.rlim_cur = 2000; r.rlim_max = 1000;
    SHOW("soft above hard", setrlimit(RLIMIT_FSIZE, &r));
    r.rlim_cur = 1000; r.rlim_max = 5000;
    SHOW("lower", setrlimit(RLIMIT_FSIZE, &r));
    r.rlim_max = 6000;
    SHOW("raise hard", setrlimit(RLIMIT_FSIZE, &r));
    r.rlim_cur = 5000; r.rlim_max = 5000;
    SHOW("raise soft to hard", setrlimit(RLIMIT_FSIZE, &r));
    SHOW("resource 99", getrlimit(99, &r));
    SHOW("set resource 16", setrlimit(16, &r));
    SHOW("prlimit bad pid", prlimit(999999, RLIMIT_CORE, NULL, &r));
    SHOW("getrlimit NULL", syscall(97, RLIMIT_CORE, (void *)8));
    int fds[2];
    pipe(fds);
    pid_t child = fork();
    if (child == 0) {
        char c;
        read(fds[0], &c, 1);
        getrlimit(RLIMIT_CORE, &r);
        printf("child sees core %lu/%lu\n", (unsigned long)r.rlim_cur, (unsigned long)r.rlim_max);
        getrlimit(RLIMIT_FSIZE, &r);
        printf("child inherited fsize %lu/%lu\n", (unsigned long)r.rlim_cur, (unsigned long)r.rlim_max);
        fflush(stdout);
        _exit(0);
    }
    struct rlimit set = {4096, 8192}, was;
    SHOW("prlimit child", prlimit(child, RLIMIT_CORE, &set, &was));
    printf("child had core %lu\n", (unsigned long)was.rlim_cur);
    fflush(stdout);
    write(fds[1], "x", 1);
    int status;
    waitpid(child, &status, 0);
    report("child", status);
    execl("/proc/self/exe", "rlim", "show", (char *)0);
    printf("exec: %s\n", en(errno));
    return 1;
}

static int show(void) {
    struct rlimit r;
    getrlimit(RLIMIT_FSIZE, &r);
    printf("after exec fsize %lu/%lu\n", (unsigned long)r.rlim_cur, (unsigned long)r.rlim_max);
    return 0;
}

static int nproc(void) {
    setlim(RLIMIT_NPROC, 1, 2);
    SHOW("fork at 1", fork());
    setlim(RLIMIT_NPROC, 2, 2);
    pid_t pid = fork();
    if (pid == 0) _exit(7);
    printf("fork at 2: %s\n", pid > 0 ? "OK" : en(errno));
    errno = 0;
    pid_t again = fork();
    if (again == 0) _exit(0);
    printf("fork with a zombie: %s\n", again > 0 ? "OK" : en(errno));
    int status;
    waitpid(pid, &status, 0);
    report("first", status);
    pid = fork();
    if (pid == 0) _exit(8);
    printf("fork after reaping: %s\n", pid > 0 ? "OK" : en(errno));
    waitpid(pid, &status, 0);
    report("second", status);
    return 0;
}

static volatile sig_atomic_t xfsz, xcpu;
static void on_xfsz(int s) { (void)s; xfsz++; }
static void on_xcpu(int s) { (void)s; xcpu++; }

static int fsize(const char *path) {
    setlim(RLIMIT_FSIZE, 100, RLIM_INFINITY);
    char buf[64];
    memset(buf, 'a', sizeof buf);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    signal(SIGXFSZ, on_xfsz);
    printf("write 60: %zd\n", write(fd, buf, 60));
    printf("write 60: %zd\n", write(fd, buf, 60));
    SHOW("write at limit", write(fd, buf, 10));
    printf("signals %d\n", (int)xfsz);
    SHOW("pwrite at 100", pwrite(fd, buf, 10, 100));
    printf("pwrite at 90: %zd\n", pwrite(fd, buf, 20, 90));
    SHOW("ftruncate 200", ftruncate(fd, 200));
    SHOW("ftruncate 100", ftruncate(fd, 100));
    SHOW("ftruncate 50", ftruncate(fd, 50));
    printf("signals %d\n", (int)xfsz);
    signal(SIGXFSZ, SIG_IGN);
    lseek(fd, 0, SEEK_END);
    printf("write 60 at 50: %zd\n", write(fd, buf, 60));
    SHOW("write ignored", write(fd, buf, 1));
    int afd = open(path, O_WRONLY | O_APPEND);
    SHOW("append at limit", write(afd, buf, 1));
    signal(SIGXFSZ, SIG_DFL);
    pid_t pid = fork();
    if (pid == 0) { setlim(RLIMIT_CORE, 0, 0); write(fd, buf, 1); _exit(0); }
    int status;
    waitpid(pid, &status, 0);
    report("default action", status);
    unlink(path);
    return 0;
}

static int depth(int n) {
    volatile char frame[4096];
    frame[0] = (char)n;
    frame[4095] = (char)n;
    return n ? depth(n - 1) + frame[0] : frame[4095];
}

static int stack(void) {
    setlim(RLIMIT_STACK, 512 * 1024, RLIM_INFINITY);
    for (int kib = 64; kib <= 2048; kib *= 4) {
        pid_t pid = fork();
        if (pid == 0) { setlim(RLIMIT_CORE, 0, 0); depth(kib / 4); _exit(0); }
        int status;
        waitpid(pid, &status, 0);
        char what[64];
        snprintf(what, sizeof what, "recursion of %d KiB", kib);
        report(what, status);
    }
    return 0;
}

static int as(void) {
    setlim(RLIMIT_AS, 64 << 20, RLIM_INFINITY);
    printf("malloc 128M: %s\n", malloc(128 << 20) ? "ok" : "NULL");
    printf("malloc 4M: %s\n", malloc(4 << 20) ? "ok" : "NULL");
    SHOW("mmap 100M", mmap(0, 100 << 20, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED ? -1 : 0);
    void *p = mmap(0, 16 << 20, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("mmap 16M: %s\n", p == MAP_FAILED ? en(errno) : "OK");
    SHOW("mremap to 200M", mremap(p, 16 << 20, 200 << 20, MREMAP_MAYMOVE) == MAP_FAILED ? -1 : 0);
    SHOW("fixed over itself", mmap(p, 16 << 20, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0)
         == MAP_FAILED ? -1 : 0);
    setlim(RLIMIT_AS, 4096, RLIM_INFINITY);
    printf("tiny: malloc 1M: %s\n", malloc(1 << 20) ? "ok" : "NULL");
    SHOW("tiny: mmap 1 page", mmap(0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED ? -1 : 0);
    return 0;
}

static int data(void) {
    setlim(RLIMIT_DATA, 16 << 20, RLIM_INFINITY);
    printf("malloc 64M: %s\n", malloc(64 << 20) ? "ok" : "NULL");
    printf("malloc 1M: %s\n", malloc(1 << 20) ? "ok" : "NULL");
    SHOW("sbrk 32M", sbrk(32 << 20) == (void *)-1 ? -1 : 0);
    SHOW("read-only 64M", mmap(0, 64 << 20, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED ? -1 : 0);
    SHOW("shared 64M", mmap(0, 64 << 20, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)
         == MAP_FAILED ? -1 : 0);
    SHOW("writable 64M", mmap(0, 64 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
         == MAP_FAILED ? -1 : 0);
    return 0;
}

static int cpu(void) {
    pid_t pid = fork();
    if (pid == 0) {  /* SIGXCPU at the soft limit (which moves up a second), SIGKILL at the hard */
        struct rlimit r;
        setlim(RLIMIT_CPU, 1, 2);
        signal(SIGXCPU, on_xcpu);
        while (!xcpu) {}
        getrlimit(RLIMIT_CPU, &r);
        printf("SIGXCPU; soft limit now %lu\n", (unsigned long)r.rlim_cur);
        for (;;) {}
    }
    int status;
    waitpid(pid, &status, 0);
    report("at the hard limit", status);
    pid = fork();
    if (pid == 0) { setlim(RLIMIT_CORE, 0, 0); setlim(RLIMIT_CPU, 1, RLIM_INFINITY); for (;;) {} }
    waitpid(pid, &status, 0);
    report("SIGXCPU's default", status);
    return 0;
}

static int die_by(int sig, int dumpable) {
    pid_t pid = fork();
    if (pid == 0) {
        if (!dumpable) prctl(PR_SET_DUMPABLE, 0);
        signal(sig, SIG_DFL);
        raise(sig);
        _exit(99);
    }
    int status;
    waitpid(pid, &status, 0);
    siginfo_t info;
    (void)info;
    return status;
}

static int core(const char *limit) {
    rlim_t n = strtoul(limit, 0, 0);
    setlim(RLIMIT_CORE, n, RLIM_INFINITY);
    int sigs[] = {SIGQUIT, SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGXCPU, SIGXFSZ,
                  SIGTERM, SIGKILL, SIGUSR1};
    for (unsigned i = 0; i < sizeof sigs / sizeof *sigs; i++) {
        char what[32];
        snprintf(what, sizeof what, "signal %d", sigs[i]);
        report(what, die_by(sigs[i], 1));
    }
    report("not dumpable SIGABRT", die_by(SIGABRT, 0));
    pid_t pid = fork();
    if (pid == 0) { signal(SIGSEGV, SIG_DFL); raise(SIGSEGV); _exit(99); }
    siginfo_t info;
    waitid(P_PID, pid, &info, WEXITED);
    printf("waitid code %d status %d\n", info.si_code, info.si_status);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *c = argc > 1 ? argv[1] : "";
    const char *arg = argc > 2 ? argv[2] : "";
    if (!strcmp(c, "nofile")) return nofile();
    if (!strcmp(c, "rules")) return rules();
    if (!strcmp(c, "show")) return show();
    if (!strcmp(c, "nproc")) return nproc();
    if (!strcmp(c, "fsize")) return fsize(arg);
    if (!strcmp(c, "stack")) return stack();
    if (!strcmp(c, "as")) return as();
    if (!strcmp(c, "data")) return data();
    if (!strcmp(c, "cpu")) return cpu();
    if (!strcmp(c, "core")) return core(arg);
    fprintf(stderr, "unknown case %s\n", c);
    return 2;
}

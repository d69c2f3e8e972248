/* The process calls the sandbox lacked: each case prints what an unprivileged process
 * observes (results, errno names, flags), the same natively and in the sandbox.
 * Usage: calls CASE. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/times.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *en(int e) {
    switch (e) {
    case 0: return "OK";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EINTR: return "EINTR";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case ENOTDIR: return "ENOTDIR";
    case EINVAL: return "EINVAL";
    default: return strerror(e);
    }
}

#define SHOW(label, expr) do { errno = 0; long r_ = (long)(expr); \
    if (r_ < 0) printf("%s: %s\n", label, en(errno)); else printf("%s: %ld\n", label, r_); } while (0)

static void setlim(int res, rlim_t cur, rlim_t max) {
    struct rlimit r = {cur, max};
    if (setrlimit(res, &r)) { printf("setrlimit(%d): %s\n", res, en(errno)); exit(3); }
}

static volatile char big[32 << 20];

static int usage(void) {
    struct rusage ru;
    SHOW("getrusage self", getrusage(RUSAGE_SELF, &ru));
    printf("self maxrss > 0: %d\n", ru.ru_maxrss > 0);
    SHOW("getrusage bad who", getrusage(5, &ru));
    SHOW("getrusage EFAULT", getrusage(RUSAGE_SELF, (void *)8));
    pid_t pid = fork();
    if (pid == 0) {
        for (size_t i = 0; i < sizeof big; i += 4096) big[i] = 1;
        clock_t end = clock() + CLOCKS_PER_SEC / 4;
        while (clock() < end) {}
        _exit(0);
    }
    getrusage(RUSAGE_CHILDREN, &ru);
    printf("children before wait: maxrss %ld\n", ru.ru_maxrss);
    struct rusage child;
    int status;
    wait4(pid, &status, 0, &child);
    printf("wait4 rusage: maxrss >= 32 MiB: %d, minflt >= 8192: %d, cpu > 0: %d\n", child.ru_maxrss >= 32768,
           child.ru_minflt >= 8192, child.ru_utime.tv_sec + child.ru_utime.tv_usec + child.ru_stime.tv_usec > 0);
    getrusage(RUSAGE_CHILDREN, &ru);
    printf("children after wait: maxrss >= 32 MiB: %d\n", ru.ru_maxrss >= 32768);
    SHOW("getrusage thread", getrusage(RUSAGE_THREAD, &ru));
    struct tms t;
    clock_t now = times(&t);
    printf("times > 0: %d, children's time > 0: %d\n", now > 0, t.tms_cutime + t.tms_cstime > 0);
    SHOW("times NULL", times(NULL) > 0);
    return 0;
}

static int prio(void) {
    setpgid(0, 0);  /* a process group of its own, for PRIO_PGRP */
    SHOW("getpriority", getpriority(PRIO_PROCESS, 0));
    SHOW("raw getpriority", syscall(SYS_getpriority, PRIO_PROCESS, 0));
    SHOW("nice +5", setpriority(PRIO_PROCESS, 0, 5));
    SHOW("getpriority", getpriority(PRIO_PROCESS, getpid()));
    SHOW("nice back to 2", setpriority(PRIO_PROCESS, 0, 2));
    SHOW("nice 100 (clamped)", setpriority(PRIO_PROCESS, 0, 100));
    SHOW("getpriority", getpriority(PRIO_PROCESS, 0));
    SHOW("pgrp", getpriority(PRIO_PGRP, 0));
    SHOW("user", getpriority(PRIO_USER, getuid()));
    SHOW("which 7", getpriority(7, 0));
    SHOW("no such pid", getpriority(PRIO_PROCESS, 999999));
    SHOW("set no such pid", setpriority(PRIO_PROCESS, 999999, 1));
    pid_t pid = fork();
    if (pid == 0) { printf("child nice: %d\n", getpriority(PRIO_PROCESS, 0)); _exit(0); }
    waitpid(pid, 0, 0);

    struct sched_param sp = {0};
    SHOW("getscheduler", sched_getscheduler(0));
    SHOW("BATCH", sched_setscheduler(0, SCHED_BATCH, &sp));
    SHOW("getscheduler", sched_getscheduler(0));
    sp.sched_priority = 10;
    SHOW("FIFO 10", sched_setscheduler(0, SCHED_FIFO, &sp));
    SHOW("OTHER 10", sched_setscheduler(0, SCHED_OTHER, &sp));
    sp.sched_priority = 0;
    SHOW("FIFO 0", sched_setscheduler(0, SCHED_FIFO, &sp));
    SHOW("policy 4", sched_setscheduler(0, 4, &sp));
    SHOW("DEADLINE", sched_setscheduler(0, SCHED_DEADLINE, &sp));
    SHOW("NULL param", syscall(SYS_sched_setscheduler, 0, SCHED_OTHER, NULL));
    SHOW("pid -1", sched_setscheduler(-1, SCHED_OTHER, &sp));
    SHOW("no such pid", sched_setscheduler(999999, SCHED_OTHER, &sp));
    SHOW("bad param", syscall(SYS_sched_setscheduler, 0, SCHED_OTHER, (void *)8));
    SHOW("setparam 0", sched_setparam(0, &sp));
    SHOW("getparam", sched_getparam(0, &sp));
    printf("priority %d\n", sp.sched_priority);
    SHOW("max FIFO", sched_get_priority_max(SCHED_FIFO));
    SHOW("min RR", sched_get_priority_min(SCHED_RR));
    SHOW("max OTHER", sched_get_priority_max(SCHED_OTHER));
    SHOW("min IDLE", sched_get_priority_min(SCHED_IDLE));
    SHOW("max 9", sched_get_priority_max(9));
    struct timespec ts;
    SHOW("rr interval", sched_rr_get_interval(0, &ts));
    SHOW("rr interval ESRCH", sched_rr_get_interval(999999, &ts));
    SHOW("BATCH|RESET_ON_FORK", sched_setscheduler(0, SCHED_BATCH | SCHED_RESET_ON_FORK, &sp));
    SHOW("getscheduler", sched_getscheduler(0));
    pid = fork();
    if (pid == 0) { printf("child policy: %d\n", sched_getscheduler(0)); _exit(0); }
    waitpid(pid, 0, 0);
    SHOW("clear RESET_ON_FORK", sched_setscheduler(0, SCHED_BATCH, &sp));
    SHOW("IDLE", sched_setscheduler(0, SCHED_IDLE | SCHED_RESET_ON_FORK, &sp));
    SHOW("back from IDLE", sched_setscheduler(0, SCHED_OTHER | SCHED_RESET_ON_FORK, &sp));

    SHOW("ioprio_set BE 7", syscall(SYS_ioprio_set, 1, 0, (2 << 13) | 7));
    SHOW("ioprio_get", syscall(SYS_ioprio_get, 1, 0));
    SHOW("ioprio_set RT", syscall(SYS_ioprio_set, 1, 0, (1 << 13) | 1));
    SHOW("ioprio_set IDLE", syscall(SYS_ioprio_set, 1, 0, 3 << 13));
    SHOW("ioprio_get", syscall(SYS_ioprio_get, 1, getpid()));
    SHOW("ioprio_set NONE 1", syscall(SYS_ioprio_set, 1, 0, 1));
    SHOW("ioprio_set class 5", syscall(SYS_ioprio_set, 1, 0, 5 << 13));
    SHOW("ioprio which 9", syscall(SYS_ioprio_get, 9, 0));
    SHOW("ioprio ESRCH", syscall(SYS_ioprio_get, 1, 999999));
    SHOW("ioprio user", syscall(SYS_ioprio_get, 3, getuid()));
    return 0;
}

static int misc(void) {
    SHOW("personality query", personality(0xffffffff));
    SHOW("personality ADDR_NO_RANDOMIZE", personality(ADDR_NO_RANDOMIZE));
    SHOW("personality query", personality(0xffffffff));
    SHOW("personality PER_LINUX", personality(PER_LINUX));
    SHOW("personality query", personality(0xffffffff));
    long q = syscall(SYS_membarrier, 0, 0, 0);
    printf("membarrier query & 0x1ff: %#lx\n", q & 0x1ff);
    SHOW("private expedited", syscall(SYS_membarrier, 8, 0, 0));
    SHOW("register", syscall(SYS_membarrier, 16, 0, 0));
    SHOW("private expedited", syscall(SYS_membarrier, 8, 0, 0));
    SHOW("global expedited", syscall(SYS_membarrier, 2, 0, 0));
    SHOW("register global", syscall(SYS_membarrier, 4, 0, 0));
    SHOW("sync core", syscall(SYS_membarrier, 32, 0, 0));
    SHOW("flags", syscall(SYS_membarrier, 8, 1, 0));
    SHOW("unknown command", syscall(SYS_membarrier, 1 << 12, 0, 0));
    SHOW("chroot /", chroot("/"));
    SHOW("chroot missing", chroot("/no/such/dir"));
    SHOW("chroot file", chroot("/proc/self/exe"));
    SHOW("chroot EFAULT", chroot((char *)8));
    return 0;
}

static int locks(void) {
    setlim(RLIMIT_MEMLOCK, 64 << 10, 64 << 10);
    char *p = mmap(0, 256 << 10, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    SHOW("mlock 16K", mlock(p + 100, 16 << 10));
    SHOW("mlock same again", mlock(p, 16 << 10));
    SHOW("mlock 48K more", mlock(p + (16 << 10), 48 << 10));
    SHOW("mlock past the limit", mlock(p + (64 << 10), 4096));
    SHOW("munlock 8K", munlock(p, 8 << 10));
    SHOW("mlock 8K elsewhere", mlock(p + (128 << 10), 8 << 10));
    SHOW("mlock zero length", mlock(p, 0));
    munmap(p + (192 << 10), 64 << 10);
    SHOW("munlock unmapped", munlock(p + (192 << 10), 4096));
    SHOW("mlock unmapped", mlock(p + (190 << 10), 8 << 10));
    SHOW("mlock2 ONFAULT", syscall(SYS_mlock2, p + (160 << 10), 0, 1));
    SHOW("mlock2 flags 2", syscall(SYS_mlock2, p, 4096, 2));
    SHOW("mlockall 0", mlockall(0));
    SHOW("mlockall ONFAULT", mlockall(MCL_ONFAULT));
    SHOW("mlockall CURRENT", mlockall(MCL_CURRENT));
    SHOW("munlockall", munlockall());
    SHOW("mlock 64K", mlock(p, 64 << 10));
    SHOW("mlockall FUTURE", mlockall(MCL_FUTURE));
    SHOW("munlockall", munlockall());
    setlim(RLIMIT_MEMLOCK, 0, 0);
    SHOW("mlock at 0", mlock(p, 4096));
    SHOW("munlock at 0", munlock(p, 4096));
    SHOW("mlockall at 0", mlockall(MCL_CURRENT));
    return 0;
}

static volatile sig_atomic_t got;
static void on_usr2(int s) { (void)s; got = 1; }

static int sigwait_case(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, 0);
    siginfo_t info;
    struct timespec zero = {0, 0}, short_wait = {0, 20000000}, bad = {0, 2000000000};
    SHOW("nothing pending", sigtimedwait(&set, &info, &zero));
    SHOW("timed out", sigtimedwait(&set, &info, &short_wait));
    SHOW("bad timeout", sigtimedwait(&set, &info, &bad));
    SHOW("sigsetsize 4", syscall(SYS_rt_sigtimedwait, &set, &info, &zero, 4));
    raise(SIGUSR1);
    SHOW("raised", sigtimedwait(&set, &info, &zero));
    printf("si_signo %d si_code %d from me %d\n", info.si_signo, info.si_code, info.si_pid == getpid());
    union sigval v = {.sival_int = 42};
    SHOW("sigqueue", sigqueue(getpid(), SIGUSR2, v));
    kill(getpid(), SIGUSR1);
    SHOW("first of two", sigwaitinfo(&set, &info));
    printf("si_code %d\n", info.si_code);
    SHOW("second of two", sigwaitinfo(&set, &info));
    printf("si_code %d value %d from me %d\n", info.si_code, info.si_value.sival_int, info.si_pid == getpid());
    int fds[2];
    pipe(fds);
    pid_t parent = getpid(), pid = fork();
    if (pid == 0) {
        char c;
        read(fds[0], &c, 1);
        union sigval w = {.sival_int = 7};
        sigqueue(parent, SIGUSR1, w);
        siginfo_t forged = {0};
        forged.si_signo = SIGUSR1;
        forged.si_code = 0;
        int refused = syscall(SYS_rt_sigqueueinfo, parent, SIGUSR1, &forged) < 0 && errno == EPERM;
        forged.si_code = -6;
        refused |= (syscall(SYS_rt_sigqueueinfo, parent, SIGUSR1, &forged) < 0 && errno == EPERM) << 1;
        _exit(refused);  /* (the parent prints: one writer keeps the output's order) */
    }
    write(fds[1], "x", 1);
    SHOW("from the child", sigwaitinfo(&set, &info));
    printf("si_code %d value %d from child %d\n", info.si_code, info.si_value.sival_int, info.si_pid == pid);
    int status;
    waitpid(pid, &status, 0);
    printf("child: forged SI_USER to parent refused %d, SI_TKILL refused %d\n", WEXITSTATUS(status) & 1,
           WEXITSTATUS(status) >> 1);
    siginfo_t own = {0};
    own.si_code = 0;
    SHOW("forged SI_USER to myself", syscall(SYS_rt_sigqueueinfo, getpid(), SIGUSR2, &own));
    SHOW("taken", sigtimedwait(&set, &info, &zero));
    printf("si_signo %d si_code %d\n", info.si_signo, info.si_code);
    SHOW("tgsigqueueinfo tgid 0", syscall(SYS_rt_tgsigqueueinfo, 0, getpid(), SIGUSR1, &own));
    own.si_code = -1;
    SHOW("tgsigqueueinfo me", syscall(SYS_rt_tgsigqueueinfo, getpid(), gettid(), SIGUSR1, &own));
    SHOW("taken", sigtimedwait(&set, &info, &zero));
    SHOW("tgsigqueueinfo ESRCH", syscall(SYS_rt_tgsigqueueinfo, getpid(), 999999, SIGUSR1, &own));
    SHOW("sigqueueinfo EFAULT", syscall(SYS_rt_sigqueueinfo, getpid(), SIGUSR1, (void *)8));
    SHOW("sigqueue bad signal", sigqueue(getpid(), 99, v));
    signal(SIGUSR2, on_usr2);
    sigset_t only1;
    sigemptyset(&only1);
    sigaddset(&only1, SIGUSR1);
    sigprocmask(SIG_UNBLOCK, &set, 0);
    sigprocmask(SIG_BLOCK, &only1, 0);
    pid = fork();
    /* The child waits a little, so that the signal finds the parent inside sigtimedwait
       (sent before, the handler would run first and the wait would time out). */
    if (pid == 0) { usleep(100000); kill(parent, SIGUSR2); _exit(0); }
    struct timespec long_wait = {30, 0};
    SHOW("interrupted by a handler", sigtimedwait(&only1, &info, &long_wait));
    printf("handler ran %d\n", (int)got);
    waitpid(pid, 0, 0);
    return 0;
}

static int pidfd(void) {
    int fds[2];
    pipe(fds);
    pid_t pid = fork();
    if (pid == 0) { char c; read(fds[0], &c, 1); pause(); _exit(0); }
    int fd = syscall(SYS_pidfd_open, pid, 0);
    printf("pidfd_open: %s, cloexec %d\n", fd >= 0 ? "OK" : en(errno), fcntl(fd, F_GETFD) & FD_CLOEXEC);
    struct pollfd p = {fd, POLLIN, 0};
    SHOW("poll while it runs", poll(&p, 1, 0));
    char c;
    SHOW("read", read(fd, &c, 1));
    SHOW("send signal 0", syscall(SYS_pidfd_send_signal, fd, 0, NULL, 0));
    SHOW("flags", syscall(SYS_pidfd_send_signal, fd, SIGTERM, NULL, 0x100));
    SHOW("not a pidfd", syscall(SYS_pidfd_send_signal, 0, SIGTERM, NULL, 0));
    SHOW("closed fd", syscall(SYS_pidfd_send_signal, 99, SIGTERM, NULL, 0));
    siginfo_t info = {0};
    info.si_signo = SIGTERM;
    info.si_code = 0;
    SHOW("forged SI_USER", syscall(SYS_pidfd_send_signal, fd, SIGTERM, &info, 0));
    info.si_signo = SIGUSR1;
    info.si_code = -1;
    SHOW("signo mismatch", syscall(SYS_pidfd_send_signal, fd, SIGTERM, &info, 0));
    write(fds[1], "x", 1);
    SHOW("SIGTERM", syscall(SYS_pidfd_send_signal, fd, SIGTERM, NULL, 0));
    SHOW("poll until it ends", poll(&p, 1, -1));
    printf("revents %#x\n", p.revents & (POLLIN | POLLHUP));
    SHOW("signal a zombie", syscall(SYS_pidfd_send_signal, fd, SIGTERM, NULL, 0));
    int status;
    waitpid(pid, &status, 0);
    printf("child: signal %d\n", WIFSIGNALED(status) ? WTERMSIG(status) : -1);
    SHOW("signal the reaped", syscall(SYS_pidfd_send_signal, fd, SIGTERM, NULL, 0));
    p.revents = 0;
    SHOW("poll the reaped", poll(&p, 1, 0));
    printf("revents %#x\n", p.revents & (POLLIN | POLLHUP));
    SHOW("pidfd_open reaped", syscall(SYS_pidfd_open, pid, 0));
    SHOW("pidfd_open -1", syscall(SYS_pidfd_open, -1, 0));
    SHOW("pidfd_open flags", syscall(SYS_pidfd_open, getpid(), 1));
    int self = syscall(SYS_pidfd_open, getpid(), O_NONBLOCK);
    printf("own pidfd nonblock: %d\n", (fcntl(self, F_GETFL) & O_NONBLOCK) != 0);
    signal(SIGUSR1, SIG_IGN);
    info.si_signo = SIGUSR1;
    info.si_code = 0;
    SHOW("forged to myself", syscall(SYS_pidfd_send_signal, self, SIGUSR1, &info, 0));
    return 0;
}

struct clone_args_v0 { unsigned long long flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls; };

static int clonefd(void) {
    int fd = -1;
    struct clone_args_v0 args = {.flags = CLONE_PIDFD, .pidfd = (unsigned long)&fd, .exit_signal = SIGCHLD};
    long pid = syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0) _exit(5);
    printf("clone3 CLONE_PIDFD: %s, fd %s, cloexec %d\n", pid > 0 ? "OK" : en(errno), fd >= 0 ? "set" : "unset",
           fcntl(fd, F_GETFD) & FD_CLOEXEC);
    struct pollfd p = {fd, POLLIN, 0};
    SHOW("poll", poll(&p, 1, -1));
    siginfo_t info = {0};
    SHOW("waitid P_PIDFD", waitid(P_PIDFD, fd, &info, WEXITED));
    printf("code %d status %d pid matches %d\n", info.si_code, info.si_status, info.si_pid == pid);
    SHOW("waitid P_PIDFD again", waitid(P_PIDFD, fd, &info, WEXITED));
    SHOW("waitid P_PIDFD not a pidfd", waitid(P_PIDFD, 0, &info, WEXITED));
    args.flags = CLONE_PIDFD | CLONE_THREAD | CLONE_SIGHAND | CLONE_VM;
    SHOW("with CLONE_THREAD", syscall(SYS_clone3, &args, sizeof args));
    args.flags = CLONE_PIDFD;
    args.pidfd = 8;
    SHOW("bad pidfd address", syscall(SYS_clone3, &args, sizeof args));
    SHOW("no child was made", waitpid(-1, 0, WNOHANG));
    return 0;
}

static char shared_text[64] = "the child's own bytes";

static int vm(void) {
    int to_child[2], to_parent[2];
    pipe(to_child);
    pipe(to_parent);
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        strcpy(shared_text, "changed by the child");
        write(to_parent[1], "r", 1);
        read(to_child[0], &c, 1);
        printf("child now has: %s\n", shared_text);
        fflush(stdout);
        _exit(0);
    }
    char c, buf[64] = {0}, buf2[8] = {0};
    read(to_parent[0], &c, 1);
    struct iovec local[2] = {{buf, 10}, {buf2, 7}}, remote[2] = {{shared_text, 17}, {(void *)16, 8}};
    SHOW("readv", process_vm_readv(pid, local, 2, remote, 1, 0));
    printf("read: %.10s|%.7s\n", buf, buf2);
    local[0].iov_len = 64;
    remote[0].iov_len = 16;
    SHOW("partial", process_vm_readv(pid, local, 1, remote, 2, 0));
    SHOW("all bad remote", process_vm_readv(pid, local, 1, remote + 1, 1, 0));
    struct iovec badlocal = {(void *)16, 8};
    SHOW("bad local", process_vm_readv(pid, &badlocal, 1, remote, 1, 0));
    struct iovec *many = calloc(1025, sizeof *many);
    for (int i = 0; i < 1025; i++) { many[i].iov_base = (void *)(16 + 4096L * i); many[i].iov_len = 8; }
    SHOW("1024 bad iovecs", process_vm_readv(pid, local, 1, many, 1024, 0));
    SHOW("1025 iovecs", process_vm_readv(pid, local, 1, many, 1025, 0));
    SHOW("flags", process_vm_readv(pid, local, 1, remote, 1, 1));
    SHOW("no such pid", process_vm_readv(999999, local, 1, remote, 1, 0));
    SHOW("nothing to move", process_vm_readv(999999, local, 1, remote, 0, 0));
    SHOW("bad iovec array", process_vm_readv(pid, (void *)8, 1, remote, 1, 0));
    strcpy(buf, "written by the parent");
    local[0].iov_len = 22;
    remote[0].iov_len = 64;
    SHOW("writev", process_vm_writev(pid, local, 1, remote, 1, 0));
    write(to_child[1], "w", 1);
    waitpid(pid, 0, 0);
    printf("parent still has: %s\n", shared_text);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *c = argc > 1 ? argv[1] : "";
    if (!strcmp(c, "usage")) return usage();
    if (!strcmp(c, "prio")) return prio();
    if (!strcmp(c, "misc")) return misc();
    if (!strcmp(c, "locks")) return locks();
    if (!strcmp(c, "sigwait")) return sigwait_case();
    if (!strcmp(c, "pidfd")) return pidfd();
    if (!strcmp(c, "vm")) return vm();
    if (!strcmp(c, "clonefd")) return clonefd();
    fprintf(stderr, "unknown case %s\n", c);
    return 2;
}

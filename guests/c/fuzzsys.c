/* fuzzsys SEED COUNT [N,N,...]: COUNT random system calls (mostly among the numbers listed) with hostile arguments (wild, kernel-half,
 * non-canonical and unaligned pointers, huge lengths, paths that try to climb out). Meant for
 * the sandbox only: never run it natively. Calls that could only end or suspend the fuzzer
 * (exit, execve, fork, kill, sleeps, waits for signals, unmapping its own code) are skipped.
 * Prints how many calls succeeded, failed with an errno, or were not implemented. */
#include "sys.h"

static unsigned long state;
static unsigned long rnd(void) {
    state = state * 6364136223846793005UL + 1442695040888963407UL;
    return state >> 17;
}

static char scratch[3 * 4096] __attribute__((aligned(4096)));
static const char *paths[] = {
    "/tmp/fz", "fz", "/", "/proc/self/maps", "/dev/null", "/dev/zero", "../../../../../../tmp/sandbox-escape",
    "/proc/self/root/etc/passwd", "/etc/passwd", ".", "..", "/tmp", "/proc/self/exe", "",
};

static long arg(void) {
    switch (rnd() % 12) {
    case 0: return 0;
    case 1: return (long)(rnd() % 16);
    case 2: return -1;
    case 3: return (long)(rnd() << 20 ^ rnd());
    case 4: return (long)(scratch + rnd() % sizeof scratch);
    case 5: return (long)0xffff800000000000UL + (long)(rnd() % 4096);
    case 6: return (long)0x0000800000000000UL;
    case 7: return (long)(1UL << 40);
    case 8: return (long)paths[rnd() % (sizeof paths / sizeof paths[0])];
    case 9: return (long)(scratch + 1);
    case 10: return (long)(rnd() % 4096);
    default: return 0x7ffffffff000L - (long)(rnd() % 0x10000);
    }
}

static int skipped(long nr) {
    static const long skip[] = {
        60, 231, 15, 59, 322, 56, 57, 58, 435, 62, 200, 234, 34, 130, 35, 230, 202, 37, 38, 7, 271,
        23, 270, 11, 25, 10, 12, 9, 28, 101, 1, 22, 293,  /* exit, sigreturn, exec, fork, kill, sleeps, alarms,
        polls, memory calls that could drop the fuzzer's own code or stack, ptrace, write (stdout noise),
        pipes (a random read of a pipe it alone could write is a deadlock: tested elsewhere) */
    };
    for (unsigned i = 0; i < sizeof skip / sizeof skip[0]; i++)
        if (skip[i] == nr) return 1;
    return 0;
}

int main(int argc, char **argv, char **envp) {
    syscall3(33, 1, 200, 0);  /* dup2(1, 200): the report survives a random close(1) */
    state = argc > 1 ? (unsigned long)atol(argv[1]) : 1;
    long count = argc > 2 ? atol(argv[2]) : 1000, ok = 0, failed = 0, enosys = 0;
    static long listed[512];
    int nlisted = 0;
    for (const char *p = argc > 3 ? argv[3] : ""; *p && nlisted < 512; p++) {
        listed[nlisted++] = atol(p);
        while (p[1] && p[1] != ',') p++;
        if (p[1] == ',') p++;
    }
    for (long i = 0; i < count; i++) {
        long nr = nlisted && rnd() % 8 ? listed[rnd() % (unsigned long)nlisted] : (long)(rnd() % 460);
        if (skipped(nr)) continue;
        long r = syscall6(nr, arg(), arg(), arg(), arg(), arg(), arg());
        if (r == -38) enosys++;
        else if (r < 0 && r > -4096) failed++;
        else ok++;
    }
    syscall3(33, 200, 1, 0);  /* dup2(200, 1) */
    put("calls "); put_num(ok + failed + enosys); put(": ok "); put_num(ok); put(", errno "); put_num(failed);
    put(", ENOSYS "); put_num(enosys); put("\n");
    return 0;
}

/* fuzzsys SEED COUNT [N,N,...] [timed]: COUNT random system calls (mostly among the numbers listed)
 * with hostile arguments: wild, kernel-half, non-canonical and unaligned pointers, huge lengths,
 * paths that try to climb out, and hostile integers (near 2^63, 2^63-1, 2^64-1, -1 and other
 * negatives as signed 32 and 64 bits, 0x7fffffff, 0x80000000, page-unaligned huge addresses) both
 * in the registers and in the memory that pointer arguments name (timespecs, offsets, iovecs,
 * itimervals are read from there). Meant for the sandbox only: never run it natively.
 * Calls that could only end the fuzzer or drop its own memory (exit, execve, fork, kill,
 * unmapping) are always skipped; sleeps, timers, pause and polls only without "timed" (with it
 * they run, interrupted by a short timer, and a run under --timeout shows that a guest
 * sleeping "forever" still ends).
 * Prints how many calls succeeded, failed with an errno, or were not implemented. */
#include "sys.h"

static unsigned long state;
static unsigned long rnd(void) {
    state = state * 6364136223846793005UL + 1442695040888963407UL;
    return state >> 17;
}

static long scratch[3 * 512] __attribute__((aligned(4096)));
enum { HOSTILE_WORDS = 64 };  /* the first words of scratch are refilled before every call */
static const char *paths[] = {
    "/tmp/fz", "fz", "/", "/proc/self/maps", "/dev/null", "/dev/zero", "../../../../../../tmp/sandbox-escape",
    "/proc/self/root/etc/passwd", "/etc/passwd", ".", "..", "/tmp", "/proc/self/exe", "", "/proc", "/dev",
    "/proc/self", "/proc/self/fd",
};
static const unsigned long hostile[] = {
    (1UL << 63) - 1, (1UL << 63) - 1, (1UL << 63) - 1,  /* LLONG_MAX, "for ever" to many programs */
    1UL << 63, (1UL << 63) - 4096, (1UL << 63) + 1, ~0UL, ~0UL - 4095, 1UL << 62,
    (1UL << 62) + 12345, 0x7fffffffUL, 0x80000000UL, 0xffffffffUL, 0xffffffff80000000UL, 0x100000000UL,
    (unsigned long)-2L, (unsigned long)-4096L, (unsigned long)-4097L, 0x7ffffffffffff001UL,
    0xfffffffffffff001UL, 0x00007ffffffff001UL, 999999999UL, 1000000000UL, 1000000UL, 0x7fffUL, 0x8000UL,
    0xffffUL, 1UL << 31 << 1 << 20,
};
#define COUNT_OF(a) (sizeof (a) / sizeof (a)[0])

static long hostile_word(void) { return (long)hostile[rnd() % COUNT_OF(hostile)]; }

/* A word that a handler may read from memory as a time, an offset, a length or a pointer. */
static long memory_word(void) {
    switch (rnd() % 8) {
    case 0: return 0;
    case 1: return (long)(rnd() % 1000000000UL);
    case 2: return (long)(scratch + rnd() % COUNT_OF(scratch));
    default: return hostile_word();
    }
}

/* The hostile words, in pairs as timespecs and timevals are: a wild first word (seconds, an
 * offset, a base), and a second that is often a valid fraction (nanoseconds, microseconds). */
static void fill_hostile_words(void) {
    for (int w = 0; w < HOSTILE_WORDS; w += 2) {
        scratch[w] = memory_word();
        scratch[w + 1] = rnd() % 2 ? (long)(rnd() % 1000000) : memory_word();
    }
}

static long arg(void) {
    switch (rnd() % 16) {
    case 0: return 0;
    case 1: return (long)(rnd() % 3);  /* a "which", a "whence", a clock, a standard stream */
    case 2: return (long)(rnd() % 8);  /* most likely an open descriptor */
    case 3: return -1;
    case 4: return (long)(rnd() << 20 ^ rnd());
    case 5: return (long)(scratch + rnd() % COUNT_OF(scratch)) + (long)(rnd() % 8);
    case 6: case 7: return (long)(scratch + rnd() % 8);  /* hostile words to read */
    case 8: return rnd() % 2 ? (long)0xffff800000000000UL + (long)(rnd() % 4096) : (long)0x0000800000000000UL;
    case 9: case 10: return (long)paths[rnd() % COUNT_OF(paths)];
    case 11: return rnd() % 2 ? (long)(rnd() % 4096) : 0x7ffffffff000L - (long)(rnd() % 0x10000);
    default: return hostile_word();
    }
}

static int listed_in(const long *list, unsigned n, long nr) {
    for (unsigned i = 0; i < n; i++)
        if (list[i] == nr) return 1;
    return 0;
}

static int skipped(long nr, int timed) {
    static const long always[] = {
        60, 231, 15, 59, 322, 56, 57, 58, 435, 62, 200, 234, 11, 25, 10, 12, 9, 28, 101, 1, 22, 293,
        160, 302, 129, 297, 424, 436,
        /* exit, sigreturn, exec, fork, kill, memory calls that could drop the fuzzer's own code or stack,
        ptrace, write (stdout noise), pipes (a random read of a pipe it alone could write is a deadlock:
        tested elsewhere), limits (a random RLIMIT_CPU or RLIMIT_NOFILE ends or cripples the fuzzer, as
        natively), queued signals and pidfd signals (kill by other names), close_range (which would close the
        report descriptor) */
    };
    static const long waits[] = { 34, 130, 35, 230, 37, 38, 7, 271, 23, 270, 128, 232, 281, 441, 69, 70, 65, 220 };
    /* pause, sigsuspend, sleeps, alarms, polls, selects, sigtimedwait, epoll waits, and SysV message and
    semaphore waits: they may wait as long as asked */
    return listed_in(always, COUNT_OF(always), nr) || (!timed && listed_in(waits, COUNT_OF(waits), nr));
}

/* With "timed": SIGALRM has a handler that does nothing, and the fuzzer's own 2 ms timer is
 * armed before every call unless a random call left one of less than a second armed (or, once
 * in 16, one of more than 2^32 s): sleeps, pause and polls end with EINTR soon, unless a random call changed the handler,
 * the mask or the timer (then the run ends by its --timeout, as a guest that sleeps "forever"
 * must). */
extern void fuzz_restorer(void);
__asm__(".text\nfuzz_restorer:\n\tmov $15, %eax\n\tsyscall\n");  /* rt_sigreturn */
static long alarms;
static void on_alarm(int signo) { (void)signo; alarms++; }

static void keep_waits_short(void) {
    static const struct { void (*handler)(int); unsigned long flags; void (*restorer)(void); unsigned long mask; }
        action = { on_alarm, 0x04000000UL, fuzz_restorer, 0 };  /* SA_RESTORER */
    unsigned long alarm_bit = 1UL << (14 - 1), timer[4] = {0, 0, 0, 0};
    syscall6(13, 14, (long)&action, 0, 8, 0, 0);  /* rt_sigaction(SIGALRM) */
    syscall6(14, 1, (long)&alarm_bit, 0, 8, 0, 0);  /* rt_sigprocmask(SIG_UNBLOCK) */
    syscall3(36, 0, timer, 0);  /* getitimer */
    if (timer[2] < (1UL << 32) ? timer[2] || !timer[3] : rnd() % 16 != 0) {  /* none, long, or (mostly) endless */
        timer[0] = timer[1] = timer[2] = 0;
        timer[3] = 2000;
        syscall3(38, 0, timer, 0);  /* setitimer(ITIMER_REAL, 2 ms) */
    }
}

int main(int argc, char **argv, char **envp) {
    syscall3(33, 1, 200, 0);  /* dup2(1, 200): the report survives a random close(1) */
    long null = syscall6(257, -100, (long)"/dev/null", 2, 0, 0, 0);  /* openat(AT_FDCWD, O_RDWR) */
    syscall3(33, null, 1, 0);  /* random writes to 1 and 2 go nowhere, not into the report */
    syscall3(33, null, 2, 0);
    state = argc > 1 ? (unsigned long)atol(argv[1]) : 1;
    long count = argc > 2 ? atol(argv[2]) : 1000, ok = 0, failed = 0, enosys = 0;
    int timed = argc > 4 && streq(argv[4], "timed");
    static long listed[512];
    unsigned nlisted = 0;
    for (const char *p = argc > 3 ? argv[3] : ""; *p && nlisted < 512; p++) {
        listed[nlisted++] = atol(p);
        while (p[1] && p[1] != ',') p++;
        if (p[1] == ',') p++;
    }
    for (long i = 0; i < count; i++) {
        long nr = nlisted && rnd() % 8 ? listed[rnd() % nlisted] : (long)(rnd() % 460);
        if (skipped(nr, timed)) continue;
        if (timed) keep_waits_short();
        fill_hostile_words();
        long r = syscall6(nr, arg(), arg(), arg(), arg(), arg(), arg());
        if (r == -38) enosys++;
        else if (r < 0 && r > -4096) failed++;
        else ok++;
    }
    syscall3(33, 200, 1, 0);  /* dup2(200, 1) */
    put("calls "); put_num(ok + failed + enosys); put(": ok "); put_num(ok); put(", errno "); put_num(failed);
    put(", ENOSYS "); put_num(enosys); put(", SIGALRM "); put_num(alarms); put("\n");
    return 0;
}

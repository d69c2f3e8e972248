/* sysinfo: uname, getpid/gettid, clocks, getrandom, thread pointer (arch_prctl), writev.
 * Prints only facts that are the same natively and in the sandbox. */
#include "sys.h"

struct utsname { char f[6][65]; };
struct timespec { long sec, nsec; };
struct iovec { const void *base; size_t len; };

int main(int argc, char **argv, char **envp) {
    struct utsname u;
    if (syscall3(SYS_uname, &u, 0, 0) != 0) return 1;
    put("sysname "); put(u.f[0]); put("\nmachine "); put(u.f[4]); put("\n");
    long pid = syscall3(SYS_getpid, 0, 0, 0), tid = syscall3(SYS_gettid, 0, 0, 0);
    put(pid > 0 && pid == tid ? "pid == tid\n" : "pid != tid\n");
    struct timespec a, b;
    syscall3(SYS_clock_gettime, 1, &a, 0);
    syscall3(SYS_clock_gettime, 1, &b, 0);
    put(b.sec > a.sec || (b.sec == a.sec && b.nsec >= a.nsec) ? "monotonic ok\n" : "monotonic backwards\n");
    struct timespec r;
    syscall3(SYS_clock_gettime, 0, &r, 0);
    put(r.sec > 1700000000 ? "realtime plausible\n" : "realtime wrong\n");
    put(syscall3(SYS_clock_gettime, 12345, &r, 0) == -22 ? "bad clock EINVAL\n" : "bad clock accepted\n");
    unsigned char rnd[64] = {0};
    long got = syscall3(SYS_getrandom, rnd, sizeof rnd, 0);
    int nonzero = 0;
    for (int i = 0; i < 64; i++) nonzero |= rnd[i];
    put(got == 64 && nonzero ? "getrandom ok\n" : "getrandom wrong\n");
    put(syscall3(SYS_getrandom, (void *)0x10, 8, 0) == -14 ? "getrandom EFAULT\n" : "getrandom no EFAULT\n");
    static unsigned long tls[4] = {0, 0x5a5a5a5a, 0, 0};
    tls[0] = (unsigned long)tls;
    syscall3(SYS_arch_prctl, 0x1002, tls, 0);
    unsigned long v, base;
    __asm__ volatile("mov %%fs:8, %0" : "=r"(v));
    syscall3(SYS_arch_prctl, 0x1003, &base, 0);
    put(v == 0x5a5a5a5a && base == (unsigned long)tls ? "fs base ok\n" : "fs base wrong\n");
    struct iovec iov[3] = {{"wri", 3}, {"tev ", 4}, {"ok\n", 3}};
    long n = syscall3(SYS_writev, 1, iov, 3);
    put(n == 10 ? "writev 10\n" : "writev wrong\n");
    put(syscall3(SYS_write, 1, (void *)0xffff800000000000UL, 4) == -14 ? "kernel pointer EFAULT\n" : "no EFAULT\n");
    put(syscall3(SYS_write, 99, "x", 1) == -9 ? "bad fd EBADF\n" : "no EBADF\n");
    put(syscall6(1000, 0, 0, 0, 0, 0, 0) == -38 ? "unknown syscall ENOSYS\n" : "no ENOSYS\n");
    return 0;
}

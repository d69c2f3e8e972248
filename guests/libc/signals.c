/* signals: delivery to guest handlers, one line per check (same natively).
 * SIGSEGV with si_addr/si_code and a handler that mprotects and resumes, siglongjmp out of
 * SIGFPE/SIGILL, a handler that edits uc_mcontext, masks and pending, SA_RESETHAND,
 * kill between processes, alarm + pause, setitimer, SA_RESTART vs EINTR, nanosleep's time
 * left after EINTR, sigsuspend,
 * FPU state kept across a handler, and stack overflow caught on an alternate stack. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#pragma GCC diagnostic ignored "-Winfinite-recursion"  /* the overflow is the point */

static volatile sig_atomic_t hits;
static volatile void *fault_addr;
static volatile int fault_code;
static char *page;
static sigjmp_buf jump;

static void on_segv_unprotect(int sig, siginfo_t *si, void *uc) {
    (void)sig; (void)uc;
    fault_addr = si->si_addr;
    fault_code = si->si_code;
    hits++;
    mprotect(page, 4096, PROT_READ | PROT_WRITE);
}
static void on_jump(int sig) { siglongjmp(jump, sig); }
static void on_count(int sig) { (void)sig; hits++; }
static void on_skip(int sig, siginfo_t *si, void *ucv) {
    (void)sig; (void)si;
    ucontext_t *uc = ucv;
    uc->uc_mcontext.gregs[REG_RIP] += 2;  /* skip the 2-byte ud2 */
    uc->uc_mcontext.gregs[REG_RAX] = 1234;
}
static void on_float(int sig) {
    (void)sig;
    volatile double x = 1.0;
    for (int i = 0; i < 10; i++) x = x * 3.7 + 0.1;
    hits += x > 0;
}
static long depth;
static char *alt_base;
static size_t alt_size;
static long recurse(long n) { volatile char pad[512]; pad[0] = (char)n; depth = n; return recurse(n + 1) + pad[0]; }
static void on_overflow(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    char here;
    int on_alt = &here > alt_base && &here < alt_base + alt_size;
    printf("caught SIGSEGV %d on the alternate stack: %s, si_code %d\n", sig, on_alt ? "yes" : "no",
           si->si_code);
    _exit(depth > 1000 ? 0 : 1);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);

    page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    sa.sa_sigaction = on_segv_unprotect;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    page[100] = 'w';
    printf("write barrier: hits %d, addr ok %d, si_code %d, value %c\n", hits, fault_addr == page + 100,
           fault_code, page[100]);

    sa.sa_handler = on_jump;
    sa.sa_flags = 0;
    sigaction(SIGFPE, &sa, NULL);
    sigaction(SIGILL, &sa, NULL);
    volatile int zero = 0;
    int sig = sigsetjmp(jump, 1);
    if (sig == 0) printf("never: %d\n", 10 / zero);
    else printf("siglongjmp out of signal %d\n", sig);
    sig = sigsetjmp(jump, 1);
    if (sig == 0) __asm__ volatile("ud2");
    else printf("siglongjmp out of signal %d\n", sig);

    sa.sa_sigaction = on_skip;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGILL, &sa, NULL);
    long rax;
    __asm__ volatile("mov $7, %%rax\n ud2\n mov %%rax, %0" : "=r"(rax) : : "rax");
    printf("handler edited the context: rax %ld\n", rax);

    hits = 0;
    sa.sa_handler = on_count;
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t block, pending, old;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, &old);
    raise(SIGUSR1);
    sigpending(&pending);
    printf("blocked and pending: %d, hits %d\n", sigismember(&pending, SIGUSR1), hits);
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("after unblocking: hits %d\n", hits);
    sigaction(SIGUSR1, NULL, &sa);
    printf("SA_RESETHAND restored the default: %d\n", sa.sa_handler == SIG_DFL);

    sa.sa_handler = on_float;
    sa.sa_flags = 0;
    sigaction(SIGUSR2, &sa, NULL);
    volatile double keep = 2.5;
    volatile long double wide = 1.0L / 3.0L;
    raise(SIGUSR2);
    printf("FPU kept across a handler: %.3f %.18Lf\n", keep * 2, wide);

    hits = 0;
    sa.sa_handler = on_count;
    sigaction(SIGUSR1, &sa, NULL);
    pid_t parent = getpid(), child = fork();
    if (child == 0) { kill(parent, SIGUSR1); _exit(0); }
    int status;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
    printf("signal from a child: hits %d\n", hits);

    sa.sa_handler = on_count;
    sa.sa_flags = 0;
    sigaction(SIGALRM, &sa, NULL);
    hits = 0;
    alarm(1);
    int r = pause();
    printf("pause returned %d (%s) after SIGALRM, hits %d\n", r, strerror(errno), hits);

    struct itimerval it = {{0, 20000}, {0, 20000}};
    setitimer(ITIMER_REAL, &it, NULL);
    hits = 0;
    while (hits < 3) pause();
    memset(&it, 0, sizeof it);
    setitimer(ITIMER_REAL, &it, NULL);
    /* A fourth tick may come before the timer is disarmed (a loaded machine, natively too). */
    printf("periodic timer fired at least 3 times: %d\n", hits >= 3);

    int fds[2];
    pipe(fds);
    char c;
    alarm(1);
    errno = 0;
    long n = read(fds[0], &c, 1);
    printf("read without SA_RESTART: %ld %s\n", n, strerror(errno));
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    child = fork();
    if (child == 0) { usleep(300000); write(fds[1], "z", 1); _exit(0); }
    alarm(1);
    usleep(0);
    n = read(fds[0], &c, 1);
    printf("read with SA_RESTART: %ld %c\n", n, c);
    waitpid(child, &status, 0);
    alarm(0);

    /* A handler ends nanosleep early: EINTR, and the time left in rem (man 2 nanosleep). */
    sa.sa_flags = 0;
    sigaction(SIGALRM, &sa, NULL);
    struct timespec req = {5, 0}, rem = {0, 0};
    alarm(1);
    errno = 0;
    r = nanosleep(&req, &rem);
    printf("nanosleep cut short by SIGALRM: %d %s, %s left\n", r, strerror(errno),
           rem.tv_sec >= 3 && rem.tv_sec <= 4 ? "3-4 s" : "not 3-4 s");

    sigprocmask(SIG_BLOCK, &block, &old);
    child = fork();
    if (child == 0) { kill(parent, SIGUSR1); _exit(0); }
    sigset_t during = old;
    sigdelset(&during, SIGUSR1);
    hits = 0;
    r = sigsuspend(&during);
    printf("sigsuspend returned %d, hits %d\n", r, hits);
    sigprocmask(SIG_SETMASK, &old, NULL);
    waitpid(child, &status, 0);

    alt_size = 1 << 16;
    alt_base = malloc(alt_size);
    stack_t ss = {.ss_sp = alt_base, .ss_size = alt_size, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    sa.sa_sigaction = on_overflow;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigaction(SIGSEGV, &sa, NULL);
    return (int)recurse(0);
}

/* The getters the C gate answers without Python (sandbox/fastpath.py), asked in every
 * situation where a stale answer would show: after fork, in threads preempted mid-loop,
 * after the parent died, under a pending signal. Prints only what is the same natively
 * and in the sandbox (relations between ids, never the ids themselves).
 *
 *   getters same N        N rounds of every getter: each always gives its first answer
 *   getters fork N        parent and child ask in turns: each sees its own pid and ppid
 *   getters threads T N   T threads each ask gettid N times: distinct, stable, right pid
 *   getters orphan N      the child kills its parent, then asks getppid until it changes
 *   getters reaped CAP    the parent exits while the child spins on getppid (CAP at most)
 *   getters alarm         a 5 ms timer interrupts a getppid loop: the handler runs
 *   getters blocked N     SIGUSR1 pending but blocked through N getppid, then unblocked
 *   getters hostile       numbers beside the getters' (ENOSYS or the call Linux makes)
 *   getters phases N      N getppid, a write, N getppid (tests hook the write)
 *   getters spin          getppid for ever (tests end it with --timeout) */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static long sys0(long nr) { return syscall(nr); }

static void same(long n) {
    static const long nrs[] = {SYS_getpid, SYS_getppid, SYS_gettid, SYS_getuid, SYS_geteuid, SYS_getgid,
                               SYS_getegid};
    long first[7], differ = 0;
    for (int k = 0; k < 7; k++)
        first[k] = sys0(nrs[k]);
    for (long i = 0; i < n; i++)
        for (int k = 0; k < 7; k++)
            differ += sys0(nrs[(k + i) % 7]) != first[(k + i) % 7];
    printf("same: %ld differ, pid==tid %d, uid==euid %d, gid==egid %d\n", differ, first[0] == first[2],
           first[3] == first[4], first[5] == first[6]);
}

static void forked(long n) {
    long parent = getpid(), pparent = getppid(), bad = 0;
    int ready[2];
    if (pipe(ready) != 0)
        return;
    pid_t child = fork();
    if (child == 0) {
        for (long i = 0; i < n; i++)
            bad += getpid() == parent || getppid() != parent || sys0(SYS_gettid) != getpid();
        long me = getpid();
        if (write(ready[1], &me, sizeof me) != sizeof me)
            _exit(3);
        _exit(bad != 0);
    }
    for (long i = 0; i < n; i++)
        bad += getpid() != parent || getppid() != pparent;
    long seen = 0;
    int status = 0;
    if (read(ready[0], &seen, sizeof seen) != sizeof seen || waitpid(child, &status, 0) != child)
        return;
    printf("fork: parent %ld bad, child %s, child's pid %s fork's answer\n", bad,
           WEXITSTATUS(status) ? "saw wrong ids" : "saw its own ids", seen == child ? "is" : "is not");
}

struct worker { long n, tid, pid, changed; };

static void *work(void *arg) {
    struct worker *w = arg;
    w->tid = sys0(SYS_gettid);
    w->pid = getpid();
    for (long i = 0; i < w->n; i++)
        w->changed += sys0(SYS_gettid) != w->tid || getpid() != w->pid;
    return NULL;
}

static void threads(int t, long n) {
    pthread_t ids[16];
    struct worker w[16];
    long main_tid = sys0(SYS_gettid), changed = 0, distinct = 1;
    t = t > 16 ? 16 : t;
    for (int i = 0; i < t; i++) {
        w[i] = (struct worker){.n = n};
        pthread_create(&ids[i], NULL, work, &w[i]);
    }
    for (long i = 0; i < n; i++)
        changed += sys0(SYS_gettid) != main_tid;
    for (int i = 0; i < t; i++) {
        pthread_join(ids[i], NULL);
        changed += w[i].changed + (w[i].pid != getpid());
        for (int j = 0; j < i; j++)
            distinct &= w[i].tid != w[j].tid;
        distinct &= w[i].tid != main_tid && w[i].tid != getpid();
    }
    printf("threads: %d, changed %ld, tids distinct %d\n", t, changed, distinct);
}

/* The child kills its parent itself, so the reparenting happens inside one of its own
 * calls: the getppid answers published before it must not survive it. */
static void orphan(long n) {
    int out[2];
    if (pipe(out) != 0)
        return;
    pid_t middle = fork();
    if (middle == 0) {
        if (fork() == 0) {
            long before = getppid(), after = before, asked = 0;
            for (long i = 0; i < n; i++)
                asked += getppid() == before;
            kill(before, SIGKILL);
            for (long i = 0; i < 1000000 && after == before; i++)
                after = getppid();
            char line[96];
            int len = snprintf(line, sizeof line, "orphan: stable %d, reparented %d\n", asked == n, after != before);
            if (write(out[1], line, len) != len)
                _exit(1);
            _exit(0);
        }
        for (;;)
            pause();
    }
    close(out[1]);
    char buf[96];
    ssize_t got = read(out[0], buf, sizeof buf);
    waitpid(middle, NULL, 0);
    if (got > 0)
        fwrite(buf, 1, got, stdout);
}

/* The middle process ends while its child spins on getppid, which never leaves the CPU on
 * its own: the parent's exit happens in another task's run, and the switch back must
 * withdraw what the child had published, or it spins until `cap` on a stale answer. */
static void reaped(long cap) {
    int out[2], go[2];
    if (pipe(out) != 0 || pipe(go) != 0)
        return;
    pid_t middle = fork();
    if (middle == 0) {
        if (fork() == 0) {
            long before = getppid(), after = before, spins = 0;
            if (write(go[1], "g", 1) != 1)
                _exit(1);
            while (spins < cap && (after = getppid()) == before)
                spins++;
            char line[96];
            int len = snprintf(line, sizeof line, "reaped: reparented %d\n", after != before);
            if (write(out[1], line, len) != len)
                _exit(1);
            _exit(0);
        }
        char c;
        if (read(go[0], &c, 1) != 1)
            _exit(1);
        usleep(20000);
        _exit(0);
    }
    close(out[1]);
    waitpid(middle, NULL, 0);
    char buf[96];
    ssize_t got = read(out[0], buf, sizeof buf);
    if (got > 0)
        fwrite(buf, 1, got, stdout);
}

static volatile sig_atomic_t rang;
static void on_signal(int signo) { rang = signo; }

static void alarmed(void) {
    struct itimerval timer = {.it_value = {.tv_usec = 5000}};
    signal(SIGALRM, on_signal);
    setitimer(ITIMER_REAL, &timer, NULL);
    long calls = 0;
    while (!rang)
        calls += getppid() > 0;
    printf("alarm: handler ran %d, calls made %d\n", rang == SIGALRM, calls > 0);
}

static void blocked(long n) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    signal(SIGUSR1, on_signal);
    sigprocmask(SIG_BLOCK, &set, NULL);
    raise(SIGUSR1);
    long before = 0;
    for (long i = 0; i < n; i++)
        before += getppid() > 0 && !rang;
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    long ran_at_unblock = rang == SIGUSR1;
    printf("blocked: %d calls before, handler ran at unblock %ld\n", before == n, ran_at_unblock);
}

/* Linux takes the number from EAX (do_syscall_64's `int nr`); the sandbox must answer the
 * same whichever path the call takes, so the test compares this with the Python path's. */
static void hostile(void) {
    long numbers[] = {SYS_getpid + (1L << 32), SYS_getppid + (1L << 32), -1, 511, 512, 1L << 40, SYS_gettid - 1};
    for (unsigned k = 0; k < sizeof numbers / sizeof *numbers; k++) {
        errno = 0;
        long r = syscall(numbers[k]);
        printf("hostile %#lx: %s\n", numbers[k], r == -1 ? strerror(errno) : r == getpid() ? "pid"
               : r == getppid() ? "ppid" : "other");
    }
}

static void phases(long n) {
    long sum = 0;
    for (long i = 0; i < n; i++)
        sum += getppid() > 0;
    printf("phase one: %ld\n", sum);
    for (long i = 0; i < n; i++)
        sum += getppid() > 0;
    printf("phase two: %ld\n", sum);
}

int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "same";
    long n = argc > 2 ? atol(argv[2]) : 1000, m = argc > 3 ? atol(argv[3]) : 1000;
    setvbuf(stdout, NULL, _IONBF, 0);
    if (!strcmp(what, "same")) same(n);
    else if (!strcmp(what, "fork")) forked(n);
    else if (!strcmp(what, "threads")) threads((int)n, m);
    else if (!strcmp(what, "orphan")) orphan(n);
    else if (!strcmp(what, "reaped")) reaped(n);
    else if (!strcmp(what, "alarm")) alarmed();
    else if (!strcmp(what, "blocked")) blocked(n);
    else if (!strcmp(what, "hostile")) hostile();
    else if (!strcmp(what, "phases")) phases(n);
    else if (!strcmp(what, "spin")) for (;;) getppid();
    else return 2;
    return 0;
}

/* Job control without a terminal: stop signals, SIGCONT, and what wait4, waitid and
 * SIGCHLD report of them. Each mode prints the same natively and in the sandbox. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void say(const char *text) { write(1, text, strlen(text)); }

static void status_line(const char *what, int st) {
    if (WIFSTOPPED(st))
        printf("%s: stopped by %d (status %#x)\n", what, WSTOPSIG(st), st);
    else if (WIFCONTINUED(st))
        printf("%s: continued (status %#x)\n", what, st);
    else if (WIFEXITED(st))
        printf("%s: exited %d\n", what, WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        printf("%s: killed by %d\n", what, WTERMSIG(st));
    fflush(stdout);
}

static pid_t child_that(void (*body)(void)) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        body();
        _exit(0);
    }
    return pid;
}

static void wait_line(pid_t pid, int options, const char *what) {
    int st = 0;
    pid_t got = waitpid(pid, &st, options);
    if (got == 0) {
        printf("%s: nothing to report\n", what);
        fflush(stdout);
    } else if (got < 0) {
        printf("%s: %s\n", what, strerror(errno));
        fflush(stdout);
    } else {
        status_line(what, st);
    }
}

/* Stops itself, and once continued waits to be ended (so no exit races the report). */
static void stop_self_then_pause(void) {
    raise(SIGSTOP);
    for (;;)
        pause();
}

/* waitpid(WUNTRACED) reports a stop once; WCONTINUED a continue once; then the end. */
static void mode_stop(void) {
    pid_t pid = child_that(stop_self_then_pause);
    wait_line(pid, WUNTRACED, "stop");
    wait_line(pid, WUNTRACED | WNOHANG, "again");
    wait_line(pid, WCONTINUED | WNOHANG, "continued before SIGCONT");
    kill(pid, SIGCONT);
    wait_line(pid, WCONTINUED | WUNTRACED, "continue");
    wait_line(pid, WCONTINUED | WUNTRACED | WNOHANG, "continue again");
    kill(pid, SIGINT);
    wait_line(pid, WCONTINUED | WUNTRACED, "end");
    wait_line(pid, 0, "after the end");
}

static volatile sig_atomic_t codes[8], statuses[8], from_child[8], seen;
static pid_t expected;

static void on_chld(int sig, siginfo_t *info, void *uc) {
    if (seen < 8) {
        codes[seen] = info->si_code;
        statuses[seen] = info->si_status;
        from_child[seen] = info->si_pid == expected;
        seen++;
    }
}

static void wait_for_sigchld(int count, sigset_t *during) {
    while (seen < count)
        sigsuspend(during);
}

/* SIGCHLD's si_code: CLD_STOPPED, CLD_CONTINUED, CLD_EXITED, with the signals. */
static void mode_siginfo(void) {
    struct sigaction sa = {.sa_sigaction = on_chld, .sa_flags = SA_SIGINFO};
    sigaction(SIGCHLD, &sa, 0);
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &old);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        sigprocmask(SIG_SETMASK, &old, 0);
        stop_self_then_pause();
    }
    expected = pid;
    wait_for_sigchld(1, &old);
    kill(pid, SIGCONT);
    wait_for_sigchld(2, &old);
    kill(pid, SIGKILL);
    wait_for_sigchld(3, &old);
    for (int i = 0; i < seen; i++)
        printf("SIGCHLD %d: code %d status %d from the child %d\n", i, codes[i], statuses[i], from_child[i]);
    printf("CLD_STOPPED %d CLD_CONTINUED %d CLD_KILLED %d\n", CLD_STOPPED, CLD_CONTINUED, CLD_KILLED);
    wait_line(pid, 0, "end");
}

static volatile sig_atomic_t chld_count;
static void count_chld(int sig) { chld_count++; }

/* SA_NOCLDSTOP: no SIGCHLD for the stop or the continue, waitpid still sees them. */
static void mode_nocldstop(void) {
    struct sigaction sa = {.sa_handler = count_chld, .sa_flags = SA_NOCLDSTOP};
    sigaction(SIGCHLD, &sa, 0);
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &old);
    pid_t pid = child_that(stop_self_then_pause);
    wait_line(pid, WUNTRACED, "stop");
    kill(pid, SIGCONT);
    wait_line(pid, WCONTINUED, "continue");
    sigset_t pending;
    sigpending(&pending);
    printf("SIGCHLD pending before the end: %d\n", sigismember(&pending, SIGCHLD));
    kill(pid, SIGKILL);
    wait_line(pid, 0, "end");
    sigprocmask(SIG_SETMASK, &old, 0);
    printf("SIGCHLD handled %d time(s)\n", chld_count);
}

static void info_line(const char *what, int rc, siginfo_t *info) {
    if (rc < 0)
        printf("%s: %s\n", what, strerror(errno));
    else if (info->si_pid == 0)
        printf("%s: nothing to report\n", what);
    else
        printf("%s: signo %d code %d status %d\n", what, info->si_signo, info->si_code, info->si_status);
    fflush(stdout);
}

/* waitid: WSTOPPED|WNOWAIT leaves the stop to report again; WCONTINUED; SIGKILL. */
static void mode_waitid(void) {
    pid_t pid = child_that(stop_self_then_pause);
    siginfo_t info;
    memset(&info, 0, sizeof info);
    info_line("stopped, no wait", waitid(P_PID, pid, &info, WSTOPPED | WNOWAIT), &info);
    memset(&info, 0, sizeof info);
    info_line("still there", waitid(P_PID, pid, &info, WSTOPPED | WNOHANG), &info);
    memset(&info, 0, sizeof info);
    info_line("taken", waitid(P_PID, pid, &info, WSTOPPED | WNOHANG), &info);
    memset(&info, 0, sizeof info);
    info_line("exited? not yet", waitid(P_PID, pid, &info, WEXITED | WNOHANG), &info);
    info_line("no events asked", waitid(P_PID, pid, &info, WNOHANG), &info);
    info_line("unknown option", waitid(P_PID, pid, &info, WEXITED | 0x100), &info);
    kill(pid, SIGCONT);
    memset(&info, 0, sizeof info);
    info_line("continued", waitid(P_PID, pid, &info, WCONTINUED), &info);
    kill(pid, SIGKILL);
    memset(&info, 0, sizeof info);
    info_line("ended", waitid(P_PID, pid, &info, WEXITED), &info);
}

static void on_cont(int sig) { say("child: SIGCONT handler\n"); }

static void stop_with_cont_handler(void) {
    signal(SIGCONT, on_cont);
    say("child: stopping\n");
    raise(SIGSTOP);
    say("child: resumed\n");
}

/* A SIGCONT handler runs when the process continues, before the code after the stop. */
static void mode_conthandler(void) {
    pid_t pid = child_that(stop_with_cont_handler);
    wait_line(pid, WUNTRACED, "stop");
    kill(pid, SIGCONT);
    wait_line(pid, 0, "end");
}

static int is_pending(int sig) {
    sigset_t pending;
    sigpending(&pending);
    return sigismember(&pending, sig);
}

static void discards(void) {
    setpgid(0, 0);
    sigset_t both;
    sigemptyset(&both);
    sigaddset(&both, SIGTSTP);
    sigaddset(&both, SIGCONT);
    sigaddset(&both, SIGTTOU);
    sigprocmask(SIG_BLOCK, &both, 0);
    raise(SIGTSTP);
    printf("SIGTSTP pending %d\n", is_pending(SIGTSTP));
    raise(SIGCONT);
    printf("after SIGCONT: SIGTSTP pending %d, SIGCONT pending %d\n", is_pending(SIGTSTP), is_pending(SIGCONT));
    raise(SIGTTOU);
    printf("after SIGTTOU: SIGTTOU pending %d, SIGCONT pending %d\n", is_pending(SIGTTOU), is_pending(SIGCONT));
    fflush(stdout);
    sigset_t tstp;
    sigemptyset(&tstp);
    sigaddset(&tstp, SIGTTOU);
    sigprocmask(SIG_UNBLOCK, &tstp, 0); /* the pending SIGTTOU stops it here */
    say("child: continued after the unblocked SIGTTOU\n");
}

/* SIGCONT discards pending stop signals, a stop signal a pending SIGCONT; unblocked, a
 * pending SIGTTOU stops (in a group of its own, which its parent's session holds). */
static void mode_discard(void) {
    pid_t pid = child_that(discards);
    setpgid(pid, pid);
    wait_line(pid, WUNTRACED, "stop");
    kill(pid, SIGCONT);
    wait_line(pid, 0, "end");
}

static void orphan_tstp(void) {
    setsid(); /* a group of its own whose parent is in another session: orphaned */
    raise(SIGTSTP);
    raise(SIGTTIN);
    say("orphan: SIGTSTP and SIGTTIN were discarded\n");
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTSTP);
    sigprocmask(SIG_BLOCK, &set, 0);
    raise(SIGTSTP);
    printf("orphan: a blocked SIGTSTP is pending %d\n", is_pending(SIGTSTP));
    fflush(stdout);
    sigprocmask(SIG_UNBLOCK, &set, 0);
    say("orphan: and discarded when unblocked\n");
    raise(SIGSTOP); /* SIGSTOP stops even an orphan */
    say("orphan: continued\n");
}

/* The terminal's stop signals to an orphaned process group are discarded; SIGSTOP is not. */
static void mode_orphan(void) {
    pid_t pid = child_that(orphan_tstp);
    wait_line(pid, WUNTRACED, "stop");
    kill(pid, SIGCONT);
    wait_line(pid, 0, "end");
}

static void sleep_forever(void) {
    for (;;)
        pause();
}

static pid_t own_group(pid_t pid) {
    setpgid(pid, pid); /* as the child does: whichever runs first */
    return pid;
}

static void sleep_in_own_group(void) {
    setpgid(0, 0);
    sleep_forever();
}

/* SIGKILL ends a stopped child; another fatal signal waits for SIGCONT. */
static void mode_kill(void) {
    pid_t pid = child_that(sleep_forever);
    kill(pid, SIGSTOP);
    wait_line(pid, WUNTRACED, "stop");
    kill(pid, SIGTERM);
    wait_line(pid, WNOHANG, "SIGTERM while stopped");
    kill(pid, SIGCONT);
    wait_line(pid, 0, "continued");
    pid = own_group(child_that(sleep_in_own_group));
    kill(pid, SIGTSTP);
    wait_line(pid, WUNTRACED, "stop");
    kill(pid, SIGKILL);
    wait_line(pid, 0, "SIGKILL while stopped");
}

static volatile unsigned long *counter;

static void *spin(void *arg) {
    for (;;)
        __atomic_add_fetch(counter, 1, __ATOMIC_RELAXED);
    return 0;
}

static void spinning_thread(void) {
    pthread_t thread;
    pthread_create(&thread, 0, spin, 0);
    pthread_join(thread, 0);
}

static unsigned long now_count(void) { return __atomic_load_n(counter, __ATOMIC_RELAXED); }

/* Whether /proc says the process is stopped ("T"). Before the stop its leader may be
 * running or sleeping in pthread_join, a race natively too, so only T is printed. */
static void state_line(pid_t pid) {
    char path[64], line[128];
    int stopped = 0;
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "State:", 6))
            stopped = strstr(line, "T (stopped)") != 0;
    if (f)
        fclose(f);
    printf("stopped in /proc: %s\n", stopped ? "yes" : "no");
    fflush(stdout);
}

static void pause_briefly(void) {
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, 0);
}

/* A stopped process stops every thread: its spinning thread makes no progress. */
static void mode_threads(void) {
    counter = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pid_t pid = child_that(spinning_thread);
    while (now_count() < 1000)
        sched_yield();
    state_line(pid);
    kill(pid, SIGSTOP);
    wait_line(pid, WUNTRACED, "stop");
    state_line(pid);
    unsigned long before = now_count();
    pause_briefly();
    printf("progress while stopped: %d\n", now_count() != before);
    kill(pid, SIGCONT);
    wait_line(pid, WCONTINUED, "continue");
    while (now_count() == before)
        sched_yield();
    printf("progress after SIGCONT: 1\n");
    kill(pid, SIGKILL);
    wait_line(pid, 0, "end");
}

static void *stop_from_thread(void *arg) {
    raise(SIGTSTP); /* thread-directed (tgkill), yet the whole process stops */
    say("child: the thread goes on\n");
    return 0;
}

/* A stop signal taken by one thread stops the process; its parent sees one stop. */
static void thread_raises(void) {
    setpgid(0, 0);
    pthread_t thread;
    pthread_create(&thread, 0, stop_from_thread, 0);
    pthread_join(thread, 0);
    say("child: joined\n");
}

static void mode_threadstop(void) {
    pid_t pid = child_that(thread_raises);
    setpgid(pid, pid);
    wait_line(pid, WUNTRACED, "stop");
    wait_line(pid, WUNTRACED | WNOHANG, "only one stop");
    kill(pid, SIGCONT);
    wait_line(pid, 0, "end");
}

/* Many stops and continues, through kill(-pgrp): the same reports each time. */
static void mode_cycles(void) {
    pid_t pid = child_that(sleep_forever);
    setpgid(pid, pid);
    int stops = 0, continues = 0, st;
    for (int i = 0; i < 200; i++) {
        kill(-pid, SIGSTOP);
        if (waitpid(pid, &st, WUNTRACED) == pid && WIFSTOPPED(st))
            stops++;
        kill(-pid, SIGCONT);
        if (waitpid(pid, &st, WCONTINUED) == pid && WIFCONTINUED(st))
            continues++;
    }
    printf("stops %d continues %d\n", stops, continues);
    kill(pid, SIGKILL);
    wait_line(pid, 0, "end");
}

static volatile sig_atomic_t hups, conts;
static void on_hup(int sig) { hups++; }
static void on_cont_count(int sig) { conts++; }

/* A job stopped while its shell (here `middle`) lived: when the shell ends, its group is
 * orphaned and gets SIGHUP, then SIGCONT (kill_orphaned_pgrp). */
static void mode_hangup(void) {
    int fds[2];
    pipe(fds);
    fflush(stdout);
    if (fork() == 0) {
        pid_t job = fork();
        if (job == 0) {
            setpgid(0, 0);
            close(fds[0]);
            signal(SIGHUP, on_hup);
            signal(SIGCONT, on_cont_count);
            raise(SIGSTOP);
            char line[64];
            int n = snprintf(line, sizeof line, "job: SIGHUP %d SIGCONT %d\n", (int)hups, (int)conts);
            write(fds[1], line, n);
            _exit(0);
        }
        setpgid(job, job);
        int st;
        waitpid(job, &st, WUNTRACED);
        _exit(WIFSTOPPED(st) ? 0 : 1); /* the job's shell ends: its group is orphaned */
    }
    close(fds[1]);
    int st;
    wait(&st);
    printf("middle: status %d\n", WEXITSTATUS(st));
    fflush(stdout);
    char buf[64];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof buf)) > 0)
        write(1, buf, n);
}

/* Bad pointers: the report is taken all the same, as Linux's put_user after the wait. */
static void mode_efault(void) {
    pid_t pid = child_that(stop_self_then_pause);
    wait_line(pid, -1, "options -1");
    wait_line(pid, 0x100, "options 0x100");
    errno = 0;
    int got = waitpid(pid, (int *)8, WUNTRACED);
    printf("waitpid to a bad address: %d %s\n", got, got < 0 ? strerror(errno) : "");
    wait_line(pid, WUNTRACED | WNOHANG, "the stop again");
    kill(pid, SIGCONT);
    siginfo_t info;
    info_line("waitid to a bad address", waitid(P_PID, pid, (siginfo_t *)8, WCONTINUED), &info);
    memset(&info, 0, sizeof info);
    info_line("the continue again", waitid(P_PID, pid, &info, WCONTINUED | WNOHANG), &info);
    kill(pid, SIGKILL);
    wait_line(pid, 0, "end");
}

/* Many jobs, each in its group, stopped and continued through their groups, then killed. */
static void mode_many(void) {
    enum { JOBS = 100 };
    pid_t pids[JOBS];
    for (int i = 0; i < JOBS; i++)
        pids[i] = own_group(child_that(sleep_in_own_group));
    int stops = 0, continues = 0, kills = 0, st;
    for (int i = 0; i < JOBS; i++)
        kill(-pids[i], i % 2 ? SIGSTOP : SIGTSTP);
    for (int i = 0; i < JOBS; i++)
        stops += waitpid(pids[i], &st, WUNTRACED) == pids[i] && WIFSTOPPED(st);
    for (int i = 0; i < JOBS; i++)
        kill(-pids[i], SIGCONT);
    for (int i = 0; i < JOBS; i++)
        continues += waitpid(-1, &st, WCONTINUED) > 0 && WIFCONTINUED(st);
    for (int i = 0; i < JOBS; i++)
        kill(pids[i], SIGKILL);
    for (int i = 0; i < JOBS; i++)
        kills += wait(&st) > 0 && WIFSIGNALED(st);
    printf("stops %d continues %d kills %d\n", stops, continues, kills);
    wait_line(-1, 0, "no more");
}

/* The first process stops itself: nothing can continue it (no terminal). */
static void mode_selfstop(void) {
    say("stopping myself\n");
    raise(SIGSTOP);
    say("continued\n");
}

int main(int argc, char **argv) {
    static const struct { const char *name; void (*run)(void); } modes[] = {
        {"stop", mode_stop}, {"siginfo", mode_siginfo}, {"nocldstop", mode_nocldstop},
        {"waitid", mode_waitid}, {"conthandler", mode_conthandler}, {"discard", mode_discard},
        {"orphan", mode_orphan}, {"kill", mode_kill}, {"threads", mode_threads},
        {"threadstop", mode_threadstop}, {"cycles", mode_cycles}, {"selfstop", mode_selfstop},
        {"hangup", mode_hangup}, {"efault", mode_efault}, {"many", mode_many},
    };
    for (size_t i = 0; argc > 1 && i < sizeof modes / sizeof *modes; i++)
        if (!strcmp(argv[1], modes[i].name)) {
            modes[i].run();
            return 0;
        }
    fprintf(stderr, "usage: jobs MODE\n");
    return 2;
}

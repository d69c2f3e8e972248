#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <signal.h>
#include <pthread.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/futex.h>
#include <time.h>
static long fx(void *u, int op, long val, long t, void *u2, long v3){ long r = syscall(SYS_futex, u, op, val, t, u2, v3); return r < 0 ? -errno : r; }
static uint32_t word, word2;
static int pfd[2];
static volatile int ready;
static void *waiter(void *a) { (void)a; __sync_fetch_and_add(&ready, 1); long r = fx(&word, FUTEX_WAIT_PRIVATE, 0, 0, 0, 0); printf("waiter woke %ld\n", r); return 0; }
/* Like waiter, but hands its result to the joiner: the order of output then never depends on which CPU runs first. */
static void *quiet_waiter(void *a) { (void)a; __sync_fetch_and_add(&ready, 1); return (void *)fx(&word, FUTEX_WAIT_PRIVATE, 0, 0, 0, 0); }
static void *reader(void *a) { (void)a; char c; __sync_fetch_and_add(&ready, 1); long r = read(pfd[0], &c, 1); printf("reader %ld\n", r); return 0; }
static void *sleeper(void *a) { (void)a; __sync_fetch_and_add(&ready, 1); sleep(100); return 0; }
static void *dl1(void *a) { (void)a; fx(&word2, FUTEX_WAIT_PRIVATE, 0, 0, 0, 0); return 0; }
static void *thr_exit_group(void *a) { (void)a; usleep(50000); syscall(SYS_exit_group, 42); return 0; }
static volatile pid_t got; static void h(int s) { (void)s; got = syscall(SYS_gettid); }
static void *blocker(void *a) { sigset_t s; sigemptyset(&s); sigaddset(&s, SIGUSR1); pthread_sigmask(SIG_BLOCK, &s, 0); __sync_fetch_and_add(&ready,1); while (!*(volatile int*)a) usleep(1000); pthread_sigmask(SIG_UNBLOCK, &s, 0); usleep(10000); return 0; }
static void *child_waiter(void *a) { (void)a; int st; pid_t p = wait(&st); printf("thread wait4: %d status %#x\n", p > 0, st); return 0; }
static void *bomb(void *a) { (void)a; pause(); return 0; }
int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IONBF, 0);
  const char *m = argv[1]; pthread_t t[8];
  if (!strcmp(m, "after")) { printf("after exec: pid==tid %d, threads:", getpid() == syscall(SYS_gettid)); DIR *d = opendir("/proc/self/task"); struct dirent *e; int n=0; while ((e = readdir(d))) n += e->d_name[0] != '.'; printf(" %d\n", n);
     void *h; size_t l; syscall(SYS_get_robust_list, 0, &h, &l); return 0; }
  if (!strcmp(m, "wake0")) {  /* FUTEX_WAKE with count 0 wakes one on Linux */
    pthread_create(&t[0], 0, waiter, 0); while (!ready) usleep(1000); usleep(50000);
    printf("wake0 -> %ld\n", fx(&word, FUTEX_WAKE_PRIVATE, 0, 0, 0, 0));
    usleep(50000); printf("wake1 -> %ld\n", fx(&word, FUTEX_WAKE_PRIVATE, 1, 0, 0, 0)); pthread_join(t[0], 0); return 0; }
  if (!strcmp(m, "requeue_self")) {
    for (int i = 0; i < 3; i++) pthread_create(&t[i], 0, quiet_waiter, 0); while (ready < 3) usleep(1000); usleep(50000);
    printf("requeue same: %ld\n", fx(&word, FUTEX_CMP_REQUEUE_PRIVATE, 0, 0x7fffffff, &word, 0));
    printf("requeue other: %ld\n", fx(&word, FUTEX_CMP_REQUEUE_PRIVATE, 1, 0x7fffffff, &word2, 0));
    printf("wake other: %ld\n", fx(&word2, FUTEX_WAKE_PRIVATE, 100, 0, 0, 0));
    for (int i = 0; i < 3; i++) { void *r; pthread_join(t[i], &r); printf("waiter woke %ld\n", (long)r); } return 0; }
  if (!strcmp(m, "execblocked")) { /* exec from a thread while others block in futex/read/sleep */
    pipe(pfd); pthread_create(&t[0], 0, waiter, 0); pthread_create(&t[1], 0, reader, 0); pthread_create(&t[2], 0, sleeper, 0);
    while (ready < 3) usleep(1000); usleep(50000);
    execl("/proc/self/exe", argv[0], "after", (char*)0); printf("exec failed %d\n", errno); return 1; }
  if (!strcmp(m, "execthread")) { pipe(pfd); pthread_create(&t[1], 0, reader, 0); while (!ready) usleep(1000);
    pthread_create(&t[0], 0, (void*(*)(void*))(void*)0, 0); return 0; }
  if (!strcmp(m, "deadlock2")) { pthread_create(&t[0], 0, dl1, 0); fx(&word, FUTEX_WAIT_PRIVATE, 0, 0, 0, 0); return 0; }
  if (!strcmp(m, "exitgroup")) { pipe(pfd); pthread_create(&t[0], 0, thr_exit_group, 0); pthread_create(&t[1], 0, reader, 0); fx(&word, FUTEX_WAIT_PRIVATE, 0, 0,0,0); return 0; }
  if (!strcmp(m, "allblock")) { /* SIGUSR1 to process while all threads block it */
    static volatile int go; signal(SIGUSR1, h); sigset_t s; sigemptyset(&s); sigaddset(&s, SIGUSR1); pthread_sigmask(SIG_BLOCK, &s, 0);
    pthread_create(&t[0], 0, blocker, (void*)&go); while (!ready) usleep(1000);
    kill(getpid(), SIGUSR1); usleep(20000); printf("got before unblock: %d\n", got != 0);
    go = 1; pthread_join(t[0], 0); printf("handled by thread (not main): %d\n", got != 0 && got != getpid()); return 0; }
  if (!strcmp(m, "tgkill")) { pthread_create(&t[0], 0, sleeper, 0); while (!ready) usleep(1000);
    pid_t c = fork(); if (c == 0) { pause(); _exit(0); }
    printf("tgkill other proc tid w/ my tgid: %ld\n", syscall(SYS_tgkill, getpid(), c, 0) ? -errno : 0L);
    printf("tgkill other proc ok: %ld\n", syscall(SYS_tgkill, c, c, 0) ? -errno : 0L);
    printf("tkill 0: %ld\n", syscall(SYS_tkill, 0, 0) ? -errno : 0L);
    printf("tgkill -1: %ld\n", syscall(SYS_tgkill, -1, 1, 0) ? -errno : 0L);
    printf("tgkill sig 65: %ld\n", syscall(SYS_tgkill, getpid(), getpid(), 65) ? -errno : 0L);
    kill(c, SIGKILL); waitpid(c, 0, 0);
    printf("tgkill reaped: %ld\n", syscall(SYS_tgkill, c, c, 0) ? -errno : 0L); return 0; }
  if (!strcmp(m, "threadwait")) { pid_t c = fork(); if (c == 0) { usleep(50000); _exit(5); }
    pthread_create(&t[0], 0, child_waiter, 0); pthread_join(t[0], 0); return 0; }
  if (!strcmp(m, "bomb")) { int n = 0; pthread_attr_t at; pthread_attr_init(&at); pthread_attr_setstacksize(&at, 16384);
    for (;;) { int e = pthread_create(&t[0], &at, bomb, 0); if (e) { printf("bomb: %d threads then %s\n", n, strerror(e)); break; } n++; if (n >= atoi(argv[2])) { printf("bomb: %d threads\n", n); break; } }
    return 0; }
  if (!strcmp(m, "kill9")) { pipe(pfd); pthread_create(&t[0], 0, waiter, 0); pthread_create(&t[1], 0, reader, 0); while (ready < 2) usleep(1000);
    pid_t me = getpid(); pid_t c = fork(); if (c == 0) { usleep(20000); kill(me, SIGKILL); _exit(0); }
    sleep(100); return 0; }
  return 1;
}

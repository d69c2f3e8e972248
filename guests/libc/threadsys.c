/* Threads meeting the rest of the process model, each step printing what is the same on every
 * run: fork and execve from a thread, signals to one thread (pthread_kill) and to the process
 * (kill) with masks choosing the thread, robust and priority-inheritance mutexes, and the main
 * thread leaving first (pthread_exit) while another finishes the process. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *self_path;
static pid_t main_pid;

static int count_threads(void) {
    DIR *dir = opendir("/proc/self/task");
    int n = 0;
    for (struct dirent *e; dir && (e = readdir(dir));) n += e->d_name[0] != '.';
    if (dir) closedir(dir);
    return n;
}

static volatile pid_t idle_tid;
static void *idle_thread(void *arg) {
    idle_tid = (pid_t)syscall(SYS_gettid);
    pthread_barrier_wait(arg);  /* alive until the main thread is done with it */
    pthread_barrier_wait(arg);
    return NULL;
}

static void *forker(void *arg) {
    (void)arg;
    pid_t child = fork();
    if (child == 0) {
        printf("fork from a thread: the child has %d thread(s)\n", count_threads());
        fflush(stdout);
        _exit(3);
    }
    int status;
    waitpid(child, &status, 0);
    return (void *)(long)WEXITSTATUS(status);
}

static void *execer(void *arg) {
    char pid_text[16];
    snprintf(pid_text, sizeof pid_text, "%d", (int)main_pid);
    (void)arg;
    execl(self_path, self_path, "after-exec", pid_text, (char *)NULL);
    return NULL;
}

static volatile pid_t handled_by;
static void on_signal(int signo) { (void)signo; handled_by = (pid_t)syscall(SYS_gettid); }

static pid_t worker_tid;
static volatile int stop_waiting;
static void *waiting_worker(void *arg) {
    worker_tid = (pid_t)syscall(SYS_gettid);
    pthread_barrier_wait(arg);
    while (!handled_by && !stop_waiting) usleep(1000);
    return NULL;
}

static pthread_mutex_t robust;
static void *dies_holding(void *arg) {
    (void)arg;
    pthread_mutex_lock(&robust);
    return NULL;  /* ends without unlocking */
}

static pthread_mutex_t pi;
static long pi_counter;
static void *pi_adder(void *arg) {
    (void)arg;
    for (int i = 0; i < 2000; i++) {
        pthread_mutex_lock(&pi);
        pi_counter++;
        if (i % 500 == 0) sched_yield();  /* contend: the other thread finds it taken */
        pthread_mutex_unlock(&pi);
    }
    return NULL;
}

static void *last_one(void *arg) {
    (void)arg;
    usleep(20000);
    printf("the last thread ends the process\n");
    fflush(stdout);
    return NULL;  /* the process exits with status 0 when this last thread returns */
}

int main(int argc, char **argv) {
    self_path = argv[0];
    if (argc == 3 && !strcmp(argv[1], "after-exec")) {
        printf("execve from a thread: %d thread(s) now, the same pid: %s\n", count_threads(),
               atoi(argv[2]) == getpid() ? "yes" : "no");
        fflush(stdout);
        return 0;
    }
    main_pid = getpid();
    setvbuf(stdout, NULL, _IOLBF, 0);
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, 2);
    pthread_t idle, t;
    pthread_create(&idle, NULL, idle_thread, &barrier);
    pthread_barrier_wait(&barrier);
    printf("threads: %d\n", count_threads());

    void *code;
    pthread_create(&t, NULL, forker, NULL);
    pthread_join(t, &code);
    printf("the forked child exited %ld\n", (long)code);

    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, 2);
    pthread_create(&t, NULL, waiting_worker, &start);
    pthread_barrier_wait(&start);
    pthread_kill(t, SIGUSR1);
    pthread_join(t, NULL);
    printf("pthread_kill: handled by the target thread: %s\n", handled_by == worker_tid ? "yes" : "no");

    handled_by = 0;
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &block, NULL);  /* new threads inherit it... */
    pthread_barrier_init(&start, NULL, 2);
    pthread_create(&t, NULL, waiting_worker, &start);
    pthread_barrier_wait(&start);
    kill(getpid(), SIGUSR2);  /* ...so only the idle thread, started before, may take it */
    while (!handled_by) usleep(1000);
    printf("kill: handled by the one thread not blocking it: %s\n", handled_by == idle_tid ? "yes" : "no");
    pthread_sigmask(SIG_UNBLOCK, &block, NULL);
    stop_waiting = 1;
    pthread_join(t, NULL);

    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&robust, &attr);
    pthread_create(&t, NULL, dies_holding, NULL);
    pthread_join(t, NULL);
    int locked = pthread_mutex_lock(&robust);
    printf("robust mutex after its owner died: %s\n", locked == EOWNERDEAD ? "EOWNERDEAD" : strerror(locked));
    pthread_mutex_consistent(&robust);
    pthread_mutex_unlock(&robust);

    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setprotocol(&attr, PTHREAD_PRIO_INHERIT);
    pthread_mutex_init(&pi, &attr);
    pthread_t a, b;
    pthread_create(&a, NULL, pi_adder, NULL);
    pthread_create(&b, NULL, pi_adder, NULL);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    printf("priority-inheritance mutex: %ld of 4000\n", pi_counter);

    pthread_barrier_wait(&barrier);  /* let the idle thread go */
    pthread_join(idle, NULL);

    pid_t exec_child = fork();
    if (exec_child == 0) {
        main_pid = getpid();
        pthread_create(&t, NULL, execer, NULL);
        pthread_join(t, NULL);  /* never returns: the thread's execve replaces the process */
        _exit(99);
    }
    waitpid(exec_child, NULL, 0);

    pthread_create(&t, NULL, last_one, NULL);
    pthread_exit(NULL);
}

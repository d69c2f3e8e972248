/* System V semaphores, run natively and in the sandbox: every line printed must match.
 * Every set is IPC_PRIVATE (or a key derived from the pid) and removed before exit. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

union semun {
    int val;
    struct semid_ds *buf;
    unsigned short *array;
    struct seminfo *__buf;
};

#define MAX_IDS 64
static int ids[MAX_IDS];
static int nids;

static void cleanup(void) {
    for (int i = 0; i < nids; i++)
        semctl(ids[i], 0, IPC_RMID);
    nids = 0;
}

static int track(int id) {
    if (id >= 0 && nids < MAX_IDS)
        ids[nids++] = id;
    return id;
}

static void result(const char *what, long r) {
    if (r == -1)
        printf("%s: -1 %s\n", what, strerrorname_np(errno));
    else
        printf("%s: %ld\n", what, r);
}

static void check(int ok, const char *what) {
    if (!ok) {
        printf("FAILED: %s (errno %s)\n", what, strerrorname_np(errno));
        cleanup();
        exit(1);
    }
}

static int op(int id, int num, int delta, int flags) {
    struct sembuf sb = {num, delta, flags};
    return semop(id, &sb, 1);
}

static int val(int id, int num) { return semctl(id, num, GETVAL); }

static int wait_child(pid_t pid) {
    int status;
    waitpid(pid, &status, 0);
    return WIFSIGNALED(status) ? 1000 + WTERMSIG(status) : WEXITSTATUS(status);
}

/* Two processes hand a turn back and forth 200 times through two semaphores. */
static void pingpong(void) {
    int id = track(semget(IPC_PRIVATE, 2, 0600));
    check(id >= 0, "semget");
    int rounds = 200;
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < rounds; i++) {
            if (op(id, 0, -1, 0) < 0 || op(id, 1, 1, 0) < 0)
                _exit(1);
        }
        _exit(0);
    }
    int turns = 0;
    for (int i = 0; i < rounds; i++) {
        check(op(id, 0, 1, 0) == 0, "post");
        check(op(id, 1, -1, 0) == 0, "wait");
        turns++;
    }
    int child_status = wait_child(pid);  /* first: C leaves the order of arguments open */
    printf("turns %d child %d values %d %d\n", turns, child_status, val(id, 0), val(id, 1));
    printf("last pid is the child's: %d\n", semctl(id, 0, GETPID) == pid);
    cleanup();
}

/* SEM_UNDO: what a process did is undone when it exits; SETVAL forgets it. */
static void undo(void) {
    int id = track(semget(IPC_PRIVATE, 4, 0600));
    unsigned short init[4] = {0, 5, 0, 2};
    check(semctl(id, 0, SETALL, (union semun){.array = init}) == 0, "setall");
    int go[2], back[2];
    pipe(go);
    pipe(back);
    pid_t pid = fork();
    if (pid == 0) {
        struct sembuf ops[3] = {{0, 3, SEM_UNDO}, {1, -2, SEM_UNDO}, {2, 5, SEM_UNDO}};
        if (semop(id, ops, 3) < 0)
            _exit(1);
        op(id, 3, 1, SEM_UNDO);
        op(id, 3, -1, SEM_UNDO); /* adjustments cancel */
        write(back[1], "x", 1);
        char c;
        read(go[0], &c, 1); /* wait for the parent's changes */
        _exit(0);
    }
    char c;
    read(back[0], &c, 1);
    printf("while alive: %d %d %d %d\n", val(id, 0), val(id, 1), val(id, 2), val(id, 3));
    check(semctl(id, 0, SETVAL, (union semun){.val = 7}) == 0, "setval");
    check(op(id, 2, -4, 0) == 0, "take from 2");
    write(go[1], "x", 1);
    printf("child %d\n", wait_child(pid));
    /* 0: SETVAL cleared its adjustment; 1: 3 + 2; 2: 1 - 5 clamped to 0; 3: untouched */
    printf("after exit: %d %d %d %d\n", val(id, 0), val(id, 1), val(id, 2), val(id, 3));
    printf("pid of 1 is the child's: %d\n", semctl(id, 1, GETPID) == pid);
    result("undo range", op(id, 3, -32768 + 2, SEM_UNDO | IPC_NOWAIT));
    cleanup();
}

/* SEM_UNDO survives execve and is not inherited by fork. */
static void undo_exec(const char *self) {
    int id = track(semget(IPC_PRIVATE, 1, 0600));
    check(op(id, 0, 3, SEM_UNDO) == 0, "parent's +3");
    pid_t pid = fork();
    if (pid == 0) {
        op(id, 0, 2, SEM_UNDO);
        char arg[32];
        snprintf(arg, sizeof arg, "%d", id);
        execl(self, self, "undo-exec-child", arg, (char *)NULL);
        _exit(127);
    }
    int child_status = wait_child(pid);  /* first: C leaves the order of arguments open */
    printf("child %d value %d\n", child_status, val(id, 0));
    cleanup();
}

static void undo_exec_child(int id) {
    printf("after exec: %d\n", val(id, 0));
    op(id, 0, -1, SEM_UNDO);
    exit(0);
}

/* A process killed in its sleep is no waiter any more. */
static void killed(void) {
    int id = track(semget(IPC_PRIVATE, 1, 0600));
    pid_t pid = fork();
    if (pid == 0) {
        op(id, 0, -1, 0);
        _exit(0);
    }
    while (semctl(id, 0, GETNCNT) != 1)
        usleep(1000);
    kill(pid, SIGKILL);
    int status = wait_child(pid);
    printf("child %d ncnt %d\n", status, semctl(id, 0, GETNCNT));
    op(id, 0, 1, 0);
    printf("value %d\n", val(id, 0));
    cleanup();
}

static volatile int alarms;
static void on_alarm(int sig) { alarms++; }

/* A blocked semop is counted in GETNCNT/GETZCNT, woken by another process, by IPC_RMID
 * (EIDRM) and by a signal (EINTR, even with SA_RESTART). */
static void blocking(void) {
    int id = track(semget(IPC_PRIVATE, 2, 0600));
    check(semctl(id, 1, SETVAL, (union semun){.val = 1}) == 0, "setval");
    pid_t pid = fork();
    if (pid == 0) {
        struct sembuf ops[2] = {{0, -1, 0}, {1, -1, 0}};
        int r = semop(id, ops, 2);
        printf("child's semop: %d, values %d %d\n", r, val(id, 0), val(id, 1));
        _exit(0);
    }
    while (semctl(id, 0, GETNCNT) != 1)
        usleep(1000);
    printf("ncnt %d %d zcnt %d values %d %d\n", semctl(id, 0, GETNCNT), semctl(id, 1, GETNCNT),
           semctl(id, 0, GETZCNT), val(id, 0), val(id, 1));
    check(op(id, 0, 1, 0) == 0, "post");
    int child_status = wait_child(pid);  /* first: C leaves the order of arguments open */
    printf("child %d ncnt %d\n", child_status, semctl(id, 0, GETNCNT));

    check(semctl(id, 1, SETVAL, (union semun){.val = 3}) == 0, "setval");
    pid = fork();
    if (pid == 0) {
        int r = op(id, 1, 0, 0);
        printf("waiting for zero: %d %s\n", r, r ? strerrorname_np(errno) : "");
        _exit(0);
    }
    while (semctl(id, 1, GETZCNT) != 1)
        usleep(1000);
    printf("zcnt %d\n", semctl(id, 1, GETZCNT));
    check(semctl(id, 0, IPC_RMID) == 0, "rmid");
    nids = 0;
    printf("child %d\n", wait_child(pid));

    id = track(semget(IPC_PRIVATE, 1, 0600));
    struct sigaction sa = {.sa_handler = on_alarm, .sa_flags = SA_RESTART};
    sigaction(SIGALRM, &sa, NULL);
    ualarm(20000, 0);
    struct timespec patience = {10, 0}; /* should the alarm come before the sleep */
    result("interrupted", semtimedop(id, (struct sembuf[]){{0, -1, 0}}, 1, &patience));
    printf("alarms %d ncnt %d\n", alarms, semctl(id, 0, GETNCNT));
    cleanup();
}

/* IPC_NOWAIT, timeouts, and all-or-nothing arrays. */
static void nowait(void) {
    int id = track(semget(IPC_PRIVATE, 3, 0600));
    result("nowait", op(id, 0, -1, IPC_NOWAIT));
    struct timespec ts = {0, 30 * 1000 * 1000};
    struct sembuf one = {0, -1, 0};
    result("timed out", semtimedop(id, &one, 1, &ts));
    struct timespec zero = {0, 0};
    result("zero timeout", semtimedop(id, &one, 1, &zero));
    check(semctl(id, 0, SETVAL, (union semun){.val = 2}) == 0, "setval");
    struct sembuf ops[3] = {{0, -1, 0}, {1, 1, 0}, {2, -1, IPC_NOWAIT}};
    result("atomic", semop(id, ops, 3));
    printf("unchanged: %d %d %d\n", val(id, 0), val(id, 1), val(id, 2));
    struct sembuf dup[3] = {{0, -1, 0}, {0, -1, 0}, {0, 0, IPC_NOWAIT}};
    result("same semaphore thrice", semop(id, dup, 3));
    printf("values: %d\n", val(id, 0));
    struct sembuf big[2] = {{1, 32767, 0}, {1, 1, 0}};
    result("past SEMVMX", semop(id, big, 2));
    printf("values: %d %d\n", val(id, 0), val(id, 1));
    result("timed, free", semtimedop(id, (struct sembuf[]){{1, 1, 0}}, 1, &ts));
    cleanup();
}

static void errors(void) {
    result("nsems too many", semget(IPC_PRIVATE, 32001, 0600));
    result("nsems negative", semget(IPC_PRIVATE, -1, 0600));
    result("nsems 0", semget(IPC_PRIVATE, 0, 0600));
    key_t key = 0x5c000000 | (getpid() & 0xffff);
    result("no such key", semget(key, 1, 0600));
    int kid = track(semget(key, 2, IPC_CREAT | IPC_EXCL | 0600));
    printf("by key: %d\n", semget(key, 0, 0) == kid && semget(key, 2, 0) == kid);
    result("more than it has", semget(key, 3, 0));
    result("excl", semget(key, 1, IPC_CREAT | IPC_EXCL | 0600));
    int id = track(semget(IPC_PRIVATE, 2, 0600));
    struct sembuf sb = {0, 1, 0};
    result("nsops 0", semop(id, &sb, 0));
    result("nsops 501", semop(id, &sb, 501));
    result("nsops 10^6", semop(id, &sb, 1000000));
    result("nsops 2^32-1", syscall(SYS_semop, id, &sb, 0xffffffffUL));
    static struct sembuf many[500];
    for (int i = 0; i < 500; i++)
        many[i] = (struct sembuf){i & 1, 1, 0};
    result("nsops 500", semop(id, many, 500));
    printf("values %d %d\n", val(id, 0), val(id, 1));
    result("bad sops", semop(id, (void *)16, 1));
    result("sem_num past the set", semop(id, (struct sembuf[]){{2, 1, 0}}, 1));
    result("bad id", semop(0x7fff0000, &sb, 1));
    result("negative id", semop(-3, &sb, 1));
    result("bad timeout pointer", semtimedop(id, &sb, 1, (void *)16));
    struct timespec bad = {0, 2000000000};
    result("bad timeout", semtimedop(id, &sb, 1, &bad));
    struct timespec neg = {-1, 0};
    result("negative timeout", semtimedop(id, &sb, 1, &neg));
    result("SETVAL 40000", semctl(id, 0, SETVAL, (union semun){.val = 40000}));
    result("SETVAL -1", semctl(id, 0, SETVAL, (union semun){.val = -1}));
    result("SETVAL semnum 5", semctl(id, 5, SETVAL, (union semun){.val = 1}));
    result("GETVAL semnum -1", semctl(id, -1, GETVAL));
    result("GETVAL", semctl(id, 1, GETVAL));
    result("bad cmd", semctl(id, 0, 999));
    unsigned short all[2] = {40000, 1};
    result("SETALL past SEMVMX", semctl(id, 0, SETALL, (union semun){.array = all}));
    result("SETALL bad pointer", semctl(id, 0, SETALL, (union semun){.array = (void *)16}));
    all[0] = 9;
    result("SETALL", semctl(id, 0, SETALL, (union semun){.array = all}));
    unsigned short got[2];
    result("GETALL", semctl(id, 0, GETALL, (union semun){.array = got}));
    printf("got %d %d\n", got[0], got[1]);
    result("GETALL bad pointer", semctl(id, 0, GETALL, (union semun){.array = (void *)16}));
    struct semid_ds ds;
    result("IPC_STAT", semctl(id, 0, IPC_STAT, (union semun){.buf = &ds}));
    printf("nsems %lu mode %o otime %d ctime %d\n", ds.sem_nsems, ds.sem_perm.mode, ds.sem_otime != 0,
           ds.sem_ctime != 0);
    result("IPC_STAT bad pointer", semctl(id, 0, IPC_STAT, (union semun){.buf = (void *)16}));
    ds.sem_perm.mode = 0444;
    result("IPC_SET", semctl(id, 0, IPC_SET, (union semun){.buf = &ds}));
    semctl(id, 0, IPC_STAT, (union semun){.buf = &ds});
    printf("mode %o\n", ds.sem_perm.mode);
    struct seminfo info;
    printf("IPC_INFO %d\n", semctl(0, 0, IPC_INFO, (union semun){.__buf = &info}) >= 0);
    printf("semmsl %d semopm %d semvmx %d\n", info.semmsl, info.semopm, info.semvmx);
    printf("SEM_STAT gives the id: %d\n", semctl(id & 0x7fff, 0, SEM_STAT, (union semun){.buf = &ds}) == id);
    result("SEM_STAT free index", semctl(0x7ffe, 0, SEM_STAT, (union semun){.buf = &ds}));
    result("IPC_RMID", semctl(id, 0, IPC_RMID));
    result("IPC_RMID again", semctl(id, 0, IPC_RMID));
    cleanup();
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *what = argc > 1 ? argv[1] : "";
    if (!strcmp(what, "pingpong"))
        pingpong();
    else if (!strcmp(what, "undo"))
        undo();
    else if (!strcmp(what, "undo-exec"))
        undo_exec(argv[0]);
    else if (!strcmp(what, "undo-exec-child"))
        undo_exec_child(atoi(argv[2]));
    else if (!strcmp(what, "killed"))
        killed();
    else if (!strcmp(what, "blocking"))
        blocking();
    else if (!strcmp(what, "nowait"))
        nowait();
    else if (!strcmp(what, "errors"))
        errors();
    else
        return 2;
    return 0;
}

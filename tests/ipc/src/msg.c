/* System V message queues, run natively and in the sandbox: every line printed must match.
 * Every queue is IPC_PRIVATE (or a key derived from the pid) and removed before exit. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef MSG_COPY
#define MSG_COPY 040000
#endif

#define MAX_IDS 64
static int ids[MAX_IDS];
static int nids;

struct message {
    long mtype;
    char mtext[9000];
};

static void cleanup(void) {
    for (int i = 0; i < nids; i++)
        msgctl(ids[i], IPC_RMID, NULL);
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

static int send(int id, long type, const char *text, int flags) {
    struct message m = {type};
    strcpy(m.mtext, text);
    return msgsnd(id, &m, strlen(text), flags);
}

static void receive(int id, long type, int flags, size_t size) {
    struct message m;
    memset(&m, 0, sizeof m);
    long n = msgrcv(id, &m, size, type, flags);
    if (n < 0)
        printf("msgrcv(%ld): -1 %s\n", type, strerrorname_np(errno));
    else
        printf("msgrcv(%ld): type %ld '%.*s'\n", type, m.mtype, (int)n, m.mtext);
}

static int wait_child(pid_t pid) {
    int status;
    waitpid(pid, &status, 0);
    return WIFSIGNALED(status) ? 1000 + WTERMSIG(status) : WEXITSTATUS(status);
}

static void stat_line(int id) {
    struct msqid_ds ds;
    check(msgctl(id, IPC_STAT, &ds) == 0, "stat");
    printf("qnum %lu cbytes %lu qbytes %lu lspid_me %d lrpid_me %d\n", ds.msg_qnum, ds.__msg_cbytes, ds.msg_qbytes,
           ds.msg_lspid == getpid(), ds.msg_lrpid == getpid());
}

/* Types select messages: 0 the first, > 0 that type (or any other with MSG_EXCEPT),
 * < 0 the lowest type up to |msgtyp|. */
static void types(void) {
    int id = track(msgget(IPC_PRIVATE, 0600));
    check(id >= 0, "msgget");
    stat_line(id);
    send(id, 3, "three", 0);
    send(id, 1, "one-a", 0);
    send(id, 2, "two", 0);
    send(id, 1, "one-b", 0);
    send(id, 5, "five", 0);
    send(id, 4, "", 0);
    stat_line(id);
    receive(id, 0, MSG_COPY | IPC_NOWAIT, 100);
    receive(id, 4, MSG_COPY | IPC_NOWAIT, 100);
    receive(id, 9, MSG_COPY | IPC_NOWAIT, 100);
    receive(id, 0, MSG_COPY, 100);
    receive(id, 1, MSG_COPY | MSG_EXCEPT | IPC_NOWAIT, 100);
    receive(id, 2, 0, 100);
    receive(id, -4, 0, 100);
    receive(id, 3, MSG_EXCEPT, 100);
    receive(id, 0, 0, 100);
    receive(id, -3, IPC_NOWAIT, 100);
    receive(id, 5, 0, 2);
    receive(id, 5, MSG_NOERROR, 2);
    receive(id, 0, 0, 100);
    receive(id, 0, IPC_NOWAIT, 100);
    stat_line(id);
    send(id, 0x7fffffffffffffffL, "max", 0);
    receive(id, -0x7fffffffffffffffL - 1, 0, 100);
    cleanup();
}

/* A receiver waits for its type; a sender waits for room; IPC_RMID wakes both. */
static void blocking(void) {
    int id = track(msgget(IPC_PRIVATE, 0600));
    pid_t pid = fork();
    if (pid == 0) {
        receive(id, 7, 0, 100);
        _exit(0);
    }
    usleep(20000);
    send(id, 6, "not yet", 0);
    send(id, 7, "seven", 0);
    printf("receiver %d\n", wait_child(pid));
    receive(id, 0, 0, 100);

    struct msqid_ds ds;
    check(msgctl(id, IPC_STAT, &ds) == 0, "stat");
    ds.msg_qbytes = 10;
    check(msgctl(id, IPC_SET, &ds) == 0, "set qbytes");
    stat_line(id);
    check(send(id, 1, "12345678", 0) == 0, "fill");
    result("full, nowait", send(id, 1, "abc", IPC_NOWAIT));
    pid = fork();
    if (pid == 0) {
        result("sender woke", send(id, 2, "abc", 0));
        _exit(0);
    }
    usleep(20000);
    receive(id, 1, 0, 100);
    printf("sender %d\n", wait_child(pid));
    receive(id, 0, 0, 100);
    for (int i = 0; i < 10; i++)
        send(id, 1, "", IPC_NOWAIT);
    result("qnum bound, nowait", send(id, 1, "", IPC_NOWAIT));
    stat_line(id);

    struct message m;
    int ready[2];
    char c;
    pipe(ready);
    pid = fork();
    if (pid == 0) {
        write(ready[1], "s", 1);
        _exit(send(id, 1, "x", 0) == -1 ? errno : 0);
    }
    pid_t pid2 = fork();
    if (pid2 == 0) {
        write(ready[1], "r", 1);
        _exit(msgrcv(id, &m, 100, 99, 0) == -1 ? errno : 0);
    }
    read(ready[0], &c, 1);
    read(ready[0], &c, 1);
    usleep(50000); /* from "ready" to asleep in the call */
    check(msgctl(id, IPC_RMID, NULL) == 0, "rmid");
    nids = 0;
    int sender = wait_child(pid), receiver = wait_child(pid2);
    printf("sender %s, receiver %s\n", strerrorname_np(sender), strerrorname_np(receiver));
}

static volatile int alarms;
static void on_alarm(int sig) { alarms++; }

static void errors(void) {
    struct message m = {1, "x"};
    key_t key = 0x5d000000 | (getpid() & 0xffff);
    result("no such key", msgget(key, 0600));
    int kid = track(msgget(key, IPC_CREAT | 0600));
    printf("by key: %d\n", msgget(key, 0) == kid);
    result("excl", msgget(key, IPC_CREAT | IPC_EXCL | 0600));
    int id = track(msgget(IPC_PRIVATE, 0600));
    result("size past MSGMAX", msgsnd(id, &m, 8193, 0));
    result("size 2^62", msgsnd(id, &m, (size_t)1 << 62, 0));
    result("size -1", msgsnd(id, &m, (size_t)-1, 0));
    result("MSGMAX", msgsnd(id, &m, 8192, IPC_NOWAIT));
    m.mtype = 0;
    result("type 0", msgsnd(id, &m, 1, 0));
    m.mtype = -5;
    result("type -5", msgsnd(id, &m, 1, 0));
    result("bad msgp", msgsnd(id, (void *)16, 1, 0));
    result("bad text", msgsnd(id, (char *)&m + sizeof m - 8 + 0x100000000000L, 1, 0));
    result("bad id", msgsnd(0x7fff0000, &m, 1, 0));
    result("negative id", msgsnd(-1, &m, 1, 0));
    result("rcv bad id", msgrcv(-1, &m, 1, 0, 0));
    result("rcv size -1", msgrcv(id, &m, (size_t)-1, 0, 0));
    result("rcv E2BIG", msgrcv(id, &m, 100, 0, IPC_NOWAIT));
    result("MSG_COPY without IPC_NOWAIT", msgrcv(id, &m, 100, 0, MSG_COPY));
    result("MSG_COPY with MSG_EXCEPT", msgrcv(id, &m, 100, 0, MSG_COPY | MSG_EXCEPT | IPC_NOWAIT));
    result("rcv bad buffer", msgrcv(id, (void *)16, 9000, 0, IPC_NOWAIT));
    result("lost with it", msgrcv(id, &m, 9000, 0, IPC_NOWAIT));
    struct msqid_ds ds;
    result("stat bad pointer", msgctl(id, IPC_STAT, (void *)16));
    result("set bad pointer", msgctl(id, IPC_SET, (void *)16));
    result("bad cmd", msgctl(id, 999, &ds));
    result("negative cmd", msgctl(id, -1, &ds));
    msgctl(id, IPC_STAT, &ds);
    ds.msg_perm.mode = 0604;
    result("IPC_SET", msgctl(id, IPC_SET, &ds));
    msgctl(id, IPC_STAT, &ds);
    printf("mode %o\n", ds.msg_perm.mode);
    struct msginfo info;
    printf("IPC_INFO %d\n", msgctl(0, IPC_INFO, (struct msqid_ds *)&info) >= 0);
    printf("msgmax %d msgmnb %d msgssz %d msgseg %d\n", info.msgmax, info.msgmnb, info.msgssz, info.msgseg);
    printf("MSG_STAT gives the id: %d\n", msgctl(id & 0x7fff, MSG_STAT, &ds) == id);

    struct sigaction sa = {.sa_handler = on_alarm, .sa_flags = SA_RESTART};
    sigaction(SIGALRM, &sa, NULL);
    ualarm(20000, 20000); /* again and again, should one come before the sleep */
    result("interrupted msgrcv", msgrcv(id, &m, 100, 0, 0));
    ualarm(0, 0);
    printf("alarms %d\n", alarms > 0);

    /* Flood: zero-length messages stop at qbytes messages, full ones at qbytes bytes. */
    m.mtype = 1;
    int sent = 0;
    while (sent < 100000 && msgsnd(id, &m, 0, IPC_NOWAIT) == 0)
        sent++;
    printf("empty messages queued: %d (%s)\n", sent, strerrorname_np(errno));
    cleanup();
    id = track(msgget(IPC_PRIVATE, 0600));
    m.mtype = 1;
    sent = 0;
    while (sent < 100000 && msgsnd(id, &m, 1000, IPC_NOWAIT) == 0)
        sent++;
    printf("1000-byte messages queued: %d (%s)\n", sent, strerrorname_np(errno));
    cleanup();
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *what = argc > 1 ? argv[1] : "";
    if (!strcmp(what, "types"))
        types();
    else if (!strcmp(what, "blocking"))
        blocking();
    else if (!strcmp(what, "errors"))
        errors();
    else
        return 2;
    return 0;
}

/* The sandbox's own bounds on System V IPC (run in the sandbox only, with --memory 64m:
 * natively these sizes succeed): SHMMAX and SHMALL follow the sandbox's RAM, semaphores
 * in all sets stop at the sandbox's SEMMNS, queued messages at a host-memory budget even
 * when root raises every queue's msg_qbytes. Everything made is removed. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>

static int ids[1000];

static const char *err(long r) { return r == -1 ? strerrorname_np(errno) : "ok"; }

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    printf("shm larger than RAM: %s\n", err(shmget(IPC_PRIVATE, 65 << 20, 0600)));
    int a = shmget(IPC_PRIVATE, 40 << 20, 0600);
    printf("shm 40 MiB: %s\n", err(a));
    printf("another 40 MiB (SHMALL): %s\n", err(shmget(IPC_PRIVATE, 40 << 20, 0600)));
    shmctl(a, IPC_RMID, NULL);
    a = shmget(IPC_PRIVATE, 40 << 20, 0600);
    printf("after removal: %s\n", err(a));
    shmctl(a, IPC_RMID, NULL);

    int n = 0, r;
    while (n < 1000 && (r = semget(IPC_PRIVATE, 32000, 0600)) >= 0)
        ids[n++] = r;
    printf("sets of 32000 semaphores: %d, then %s\n", n, err(r));
    while (n > 0)
        semctl(ids[--n], 0, IPC_RMID);

    static struct {
        long type;
        char text[8192];
    } m = {1};
    long queued = 0;
    const char *why = "none";
    for (n = 0; n < 8; n++) {
        ids[n] = msgget(IPC_PRIVATE, 0600);
        struct msqid_ds ds;
        msgctl(ids[n], IPC_STAT, &ds);
        ds.msg_qbytes = 8 << 20;
        msgctl(ids[n], IPC_SET, &ds);
        while (msgsnd(ids[n], &m, sizeof m.text, IPC_NOWAIT) == 0)
            queued += sizeof m.text;
        if (errno != EAGAIN) {
            why = strerrorname_np(errno);
            n++;
            break;
        }
    }
    printf("queued %s MiB, then %s\n", queued > (24 << 20) && queued <= (32 << 20) ? "24-32" : "?", why);
    while (n > 0)
        msgctl(ids[--n], IPC_RMID, NULL);
    int q = msgget(IPC_PRIVATE, 0600);
    printf("after removal: %s\n", err(msgsnd(q, &m, sizeof m.text, IPC_NOWAIT)));
    msgctl(q, IPC_RMID, NULL);
    return 0;
}

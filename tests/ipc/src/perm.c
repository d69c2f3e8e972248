/* Permissions of System V IPC objects for an unprivileged user (run natively with
 * setpriv as uid 1000, in the sandbox with --uid 1000): the mode's owner bits decide,
 * IPC_SET needs the owner, raising msg_qbytes past MSGMNB needs privilege. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <unistd.h>

static void result(const char *what, long r) {
    if (r == -1)
        printf("%s: -1 %s\n", what, strerrorname_np(errno));
    else
        printf("%s: ok\n", what);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    printf("uid %d\n", getuid());
    struct shmid_ds sds;
    int shm = shmget(IPC_PRIVATE, 4096, 0);
    result("shmat, mode 0", (long)shmat(shm, NULL, 0));
    result("shmat read-only, mode 0", (long)shmat(shm, NULL, SHM_RDONLY));
    result("IPC_STAT, mode 0", shmctl(shm, IPC_STAT, &sds));
    result("SHM_STAT_ANY, mode 0", shmctl(shm & 0x7fff, SHM_STAT_ANY, &sds) == shm ? 0 : -1);
    shmctl(shm & 0x7fff, SHM_STAT_ANY, &sds);
    sds.shm_perm.mode = 0400;
    result("IPC_SET by the owner", shmctl(shm, IPC_SET, &sds));
    void *p = shmat(shm, NULL, SHM_RDONLY);
    result("shmat read-only, mode 0400", (long)p);
    result("shmat, mode 0400", (long)shmat(shm, NULL, 0));
    shmdt(p);
    sds.shm_perm.uid = 2000;
    result("give it away", shmctl(shm, IPC_SET, &sds));
    result("the creator still may", shmctl(shm, IPC_STAT, &sds));
    printf("uid %d cuid %d\n", sds.shm_perm.uid, sds.shm_perm.cuid);
    result("IPC_RMID by the creator", shmctl(shm, IPC_RMID, NULL));

    key_t key = 0x5e000000 | (getpid() & 0xffff);
    int keyed = shmget(key, 4096, IPC_CREAT | 0400);
    result("by key, asking rw of r", shmget(key, 4096, 0600));
    result("by key, asking r", shmget(key, 4096, 0400));
    shmctl(keyed, IPC_RMID, NULL);

    int sem = semget(IPC_PRIVATE, 1, 0400);
    struct sembuf up = {0, 1, 0}, zero = {0, 0, IPC_NOWAIT};
    result("semop +1, mode 0400", semop(sem, &up, 1));
    result("semop wait-for-zero, mode 0400", semop(sem, &zero, 1));
    result("GETVAL, mode 0400", semctl(sem, 0, GETVAL));
    result("SETVAL, mode 0400", semctl(sem, 0, SETVAL, 1));
    semctl(sem, 0, IPC_RMID);

    struct msqid_ds mds;
    struct {
        long type;
        char text[8];
    } m = {1, "hi"};
    int msg = msgget(IPC_PRIVATE, 0200);
    result("msgsnd, mode 0200", msgsnd(msg, &m, 2, IPC_NOWAIT));
    result("msgrcv, mode 0200", msgrcv(msg, &m, 8, 0, IPC_NOWAIT));
    result("MSG_STAT, mode 0200", msgctl(msg & 0x7fff, MSG_STAT, &mds));
    msgctl(msg & 0x7fff, MSG_STAT_ANY, &mds);
    mds.msg_qbytes = 20000;
    result("qbytes past MSGMNB", msgctl(msg, IPC_SET, &mds));
    mds.msg_qbytes = 100;
    result("qbytes 100", msgctl(msg, IPC_SET, &mds));
    msgctl(msg, IPC_RMID, NULL);
    return 0;
}

/* System calls from several lazily loaded handler modules, each used for the first time
 * here: sockets (sys_net), poll and epoll (sys_poll), System V semaphores with SEM_UNDO
 * (sys_ipc; a forked child's exit applies its adjustment), splice-family calls (sys_splice).
 * Prints only deterministic results. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    int sv[2], p[2];
    char buf[16] = {0};
    printf("socketpair %d\n", socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    printf("send %zd\n", write(sv[0], "ping", 4));
    struct pollfd pfd = {.fd = sv[1], .events = POLLIN};
    int n = poll(&pfd, 1, 1000);
    printf("poll %d revents %#x\n", n, pfd.revents);
    printf("recv %zd %s\n", read(sv[1], buf, sizeof buf - 1), buf);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLOUT, .data.fd = sv[0]}, out;
    printf("epoll_ctl %d\n", epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &ev));
    n = epoll_wait(ep, &out, 1, 1000);
    printf("epoll_wait %d fd-match %d\n", n, out.data.fd == sv[0]);
    printf("pipe %d\n", pipe(p));
    n = (int)tee(p[0], p[1], 1, 0);
    printf("tee-bad %d errno %d\n", n, errno);
    int sem = semget(IPC_PRIVATE, 1, 0600);
    printf("semget ok %d\n", sem >= 0);
    pid_t child = fork();
    if (child == 0) {
        struct sembuf up = {.sem_num = 0, .sem_op = 3, .sem_flg = SEM_UNDO};
        semop(sem, &up, 1);
        _exit(0);
    }
    int status;
    waitpid(child, &status, 0);
    printf("after child's exit semval %d\n", semctl(sem, 0, GETVAL));
    printf("rmid %d\n", semctl(sem, 0, IPC_RMID));
    long r = syscall(100000);
    printf("bogus-nr %ld errno %d\n", r, errno);
    return 0;
}

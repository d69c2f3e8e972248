/* Adversarial socket use: huge lengths, many connections, backlog overflow, a peer closing
 * mid-transfer, descriptor-passing loops. Output is the same natively and in the sandbox. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define SHOW(what, expr) do { errno = 0; long r_ = (long)(expr); \
    printf("%s = %ld%s%s\n", what, r_, r_ < 0 ? " " : "", r_ < 0 ? strerror(errno) : ""); } while (0)

static char buf[64];

static int huge(void) {
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    send(sv[0], "small", 5, 0);
    SHOW("recv huge len", recv(sv[1], buf, 1UL << 40, 0));
    SHOW("sendto huge addrlen", sendto(sv[0], "x", 1, 0, (void *)buf, 1 << 30));
    SHOW("send bad buffer", send(sv[0], (void *)16, 100, 0));
    struct iovec iov[2000]; for (int i = 0; i < 2000; i++) iov[i] = (struct iovec){buf, 1};
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2000};
    SHOW("sendmsg many iovecs", sendmsg(sv[0], &m, 0));
    m.msg_iovlen = 1; m.msg_control = buf; m.msg_controllen = 1 << 30;
    SHOW("sendmsg huge control", sendmsg(sv[0], &m, 0));
    struct cmsghdr *c = (void *)buf; c->cmsg_len = 1000; c->cmsg_level = SOL_SOCKET; c->cmsg_type = SCM_RIGHTS;
    m.msg_controllen = 32;
    SHOW("sendmsg cmsg_len past buffer", sendmsg(sv[0], &m, 0));
    c->cmsg_len = CMSG_LEN(4); *(int *)CMSG_DATA(c) = 999; m.msg_controllen = CMSG_SPACE(4);
    SHOW("sendmsg bad fd", sendmsg(sv[0], &m, 0));
    c->cmsg_type = SCM_CREDENTIALS; c->cmsg_len = CMSG_LEN(12);
    struct ucred cr = {getpid() + 1, getuid(), getgid()}; memcpy(CMSG_DATA(c), &cr, sizeof cr);
    m.msg_controllen = CMSG_SPACE(12);
    SHOW("sendmsg forged creds", sendmsg(sv[0], &m, 0));
    int v = -5; socklen_t vl = -1;
    SHOW("getsockopt negative len", getsockopt(sv[0], SOL_SOCKET, SO_TYPE, &v, &vl));
    SHOW("setsockopt negative len", setsockopt(sv[0], SOL_SOCKET, SO_KEEPALIVE, &v, -1));
    SHOW("getsockname bad pointer", getsockname(sv[0], (void *)16, &(socklen_t){16}));
    SHOW("listen huge backlog on pair", listen(sv[0], 1 << 30));
    SHOW("socketpair bad pointer", socketpair(AF_UNIX, SOCK_STREAM, 0, (void *)16));
    int before = dup(0); close(before);
    printf("no descriptor leaked %d\n", dup(0) == before);
    return 0;
}

static int many(void) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    bind(s, (void *)&a, sizeof a); listen(s, 300); getsockname(s, (void *)&a, &len);
    int c[200], d[200], ok = 0;
    for (int i = 0; i < 200; i++) { c[i] = socket(AF_INET, SOCK_STREAM, 0); ok += connect(c[i], (void *)&a, sizeof a) == 0; }
    for (int i = 0; i < 200; i++) d[i] = accept(s, NULL, NULL);
    for (int i = 0; i < 200; i++) { char b = i; write(c[i], &b, 1); }
    int right = 0;
    for (int i = 0; i < 200; i++) { char b; read(d[i], &b, 1); right += b == (char)i; }
    printf("connected %d, in order %d\n", ok, right);
    for (int i = 0; i < 200; i++) { close(c[i]); close(d[i]); }
    return 0;
}

static int backlog(void) {
    struct sockaddr_un a = {.sun_family = AF_UNIX, .sun_path = "\0backlog-test"};
    socklen_t len = offsetof(struct sockaddr_un, sun_path) + 13;
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    bind(s, (void *)&a, len); listen(s, 2);
    int n = 0, err = 0;
    for (int i = 0; i < 10; i++) {
        int c = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (connect(c, (void *)&a, len) == 0) n++; else { err = errno; close(c); }
    }
    printf("unix connected %d then %s\n", n, strerror(err));
    struct pollfd p = {s, POLLIN}; poll(&p, 1, 0); printf("listener revents %#x\n", p.revents);
    int d = accept(s, NULL, NULL);
    int c = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    SHOW("connect after one accept", connect(c, (void *)&a, len));
    close(s);
    char b;
    SHOW("read from accepted after listener closed", recv(d, &b, 1, MSG_DONTWAIT));
    SHOW("read from never-accepted", recv(c, &b, 1, MSG_DONTWAIT));
    return 0;
}

static int midway(void) {
    int sv[2];
    signal(SIGPIPE, SIG_IGN);
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    if (fork() == 0) {
        close(sv[0]);
        static char big[1 << 20];
        ssize_t n = write(sv[1], big, sizeof big);
        printf("first write partial %d\n", n > 0 && n < (ssize_t)sizeof big);
        SHOW("second write", write(sv[1], big, sizeof big));
        _exit(0);
    }
    close(sv[1]);
    char buf[1000]; ssize_t got = 0, n;
    while (got < 100000 && (n = read(sv[0], buf, sizeof buf)) > 0) got += n;
    close(sv[0]);
    int st; wait(&st); printf("child exit %d\n", WEXITSTATUS(st));
    /* TCP: the reader closes with data unread: the writer is reset */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    bind(s, (void *)&a, sizeof a); listen(s, 1); getsockname(s, (void *)&a, &len);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    connect(c, (void *)&a, sizeof a);
    int d = accept(s, NULL, NULL);
    write(c, "unread", 6);
    usleep(10000);
    close(d);
    usleep(10000);
    char b;
    SHOW("read after reset", read(c, &b, 1));
    SHOW("read again", read(c, &b, 1));
    SHOW("write after reset", write(c, "x", 1));
    return 0;
}

static int send_fd(int sock, int fd) {
    char data = 'x'; struct iovec iov = {&data, 1};
    char control[CMSG_SPACE(sizeof(int))] = {0};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET; c->cmsg_type = SCM_RIGHTS; c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    return sendmsg(sock, &msg, 0);
}

static int loops(void) {
    int failures = 0;
    for (int i = 0; i < 300; i++) {
        int a[2], b[2];
        socketpair(AF_UNIX, SOCK_STREAM, 0, a); socketpair(AF_UNIX, SOCK_DGRAM, 0, b);
        failures += send_fd(a[0], a[1]) != 1;  /* a[1] in its own queue */
        failures += send_fd(b[0], a[0]) != 1;  /* a[0] in b[1]'s queue */
        failures += send_fd(a[1], b[1]) != 1;  /* b[1] in a[0]'s queue: a cycle */
        failures += send_fd(b[1], b[0]) != 1;
        close(a[0]); close(a[1]); close(b[0]); close(b[1]);
    }
    printf("loops sent, failures %d\n", failures);
    /* the receiver has no room for descriptors: they are dropped, MSG_CTRUNC */
    int sv[2], p[2]; socketpair(AF_UNIX, SOCK_DGRAM, 0, sv); pipe(p);
    send_fd(sv[0], p[0]); close(p[0]);
    char data; struct iovec iov = {&data, 1}; struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    SHOW("recvmsg without control", recvmsg(sv[1], &m, 0));
    printf("ctrunc %d\n", !!(m.msg_flags & MSG_CTRUNC));
    signal(SIGPIPE, SIG_IGN);
    SHOW("write to pipe whose reader was dropped", write(p[1], "x", 1));
    pipe(p); send_fd(sv[0], p[0]); close(p[0]);
    char control[CMSG_SPACE(sizeof(int))]; m.msg_control = control; m.msg_controllen = sizeof control;
    SHOW("recvmsg", recvmsg(sv[1], &m, 0));
    printf("ctrunc %d level %d type %d\n", !!(m.msg_flags & MSG_CTRUNC), CMSG_FIRSTHDR(&m)->cmsg_level,
           CMSG_FIRSTHDR(&m)->cmsg_type);
    write(p[1], "y", 1);
    int fd; memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof fd);
    SHOW("read from received pipe", read(fd, &data, 1));
    return 0;
}

/* MSG_WAITALL with MSG_DONTWAIT, or cut short by SO_RCVTIMEO: what is there, as a count. */
static int waitall(void) {
    int sv[2]; socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    write(sv[0], "abc", 3);
    char buf[16];
    printf("waitall|dontwait: %zd\n", recv(sv[1], buf, 10, MSG_WAITALL | MSG_DONTWAIT));
    struct timeval tv = {0, 20000}; setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    write(sv[0], "de", 2);
    printf("waitall past the timeout: %zd\n", recv(sv[1], buf, 10, MSG_WAITALL));
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *m = argc > 1 ? argv[1] : "";
    if (!strcmp(m, "waitall")) return waitall();
    if (!strcmp(m, "huge")) return huge();
    if (!strcmp(m, "many")) return many();
    if (!strcmp(m, "backlog")) return backlog();
    if (!strcmp(m, "midway")) return midway();
    if (!strcmp(m, "loops")) return loops();
    return 2;
}

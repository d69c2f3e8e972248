/* Guest side of tests/net/test_net_host.py: TCP and UDP against a server the test runs on
   127.0.0.1, and servers the test connects to. Prints deterministic lines only (no ports,
   no times), so native and sandboxed runs compare equal. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *name(int e) {
    switch (e) {
    case 0: return "OK";
    case EAGAIN: return "EAGAIN";
    case EINTR: return "EINTR";
    case EINPROGRESS: return "EINPROGRESS";
    case ECONNREFUSED: return "ECONNREFUSED";
    case ENETUNREACH: return "ENETUNREACH";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case EFAULT: return "EFAULT";
    case EINVAL: return "EINVAL";
    case ENOTCONN: return "ENOTCONN";
    case EISCONN: return "EISCONN";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case ENOPROTOOPT: return "ENOPROTOOPT";
    case EPERM: return "EPERM";
    case EPIPE: return "EPIPE";
    case EBADF: return "EBADF";
    case EDESTADDRREQ: return "EDESTADDRREQ";
    case EADDRINUSE: return "EADDRINUSE";
    default: return "other";
    }
}

#define SAY(what, r) printf("%s %s\n", what, (r) < 0 ? name(errno) : "OK")

static struct sockaddr_in loop(int port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static void read_all(int fd) {
    char buf[256];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, MSG_WAITALL)) > 0)
        fwrite(buf, 1, n, stdout);
    printf("\nend %s\n", n < 0 ? name(errno) : "EOF");
}

/* tcp PORT: connect, send, half-close, read the echo to the end. */
static int tcp(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = loop(port), me, peer;
    socklen_t len = sizeof me;
    SAY("connect", connect(fd, (struct sockaddr *)&a, sizeof a));
    getsockname(fd, (struct sockaddr *)&me, &len);
    len = sizeof peer;
    getpeername(fd, (struct sockaddr *)&peer, &len);
    printf("family %d peer-port-matches %d local-addr %s\n", me.sin_family, ntohs(peer.sin_port) == port,
           inet_ntoa(me.sin_addr));
    int one = 1, got = 0;
    socklen_t olen = sizeof got;
    SAY("nodelay", setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
    getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &got, &olen);
    printf("nodelay %d\n", got != 0);
    olen = sizeof got;
    getsockopt(fd, SOL_SOCKET, SO_TYPE, &got, &olen);
    printf("type %d\n", got);
    static char big[200000];
    memset(big, 'x', sizeof big);
    printf("sent %zd\n", send(fd, "hello host\n", 11, 0));
    printf("sent %zd\n", send(fd, big, sizeof big, 0));  /* blocks until the server drained it */
    SAY("shutdown", shutdown(fd, SHUT_WR));
    read_all(fd);
    SAY("send-after-shutdown", send(fd, "x", 1, MSG_NOSIGNAL));
    return close(fd);
}

/* nonblock PORT: connect without waiting, poll, SO_ERROR; EAGAIN before data; then talk. */
static int nonblock(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = loop(port);
    int r = connect(fd, (struct sockaddr *)&a, sizeof a);
    printf("connect %s\n", r == 0 || errno == EINPROGRESS ? "OK-or-EINPROGRESS" : name(errno));
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    r = poll(&p, 1, -1);
    printf("poll %d revents-out %d\n", r, !!(p.revents & POLLOUT));
    int err = -1;
    socklen_t len = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    printf("so_error %s\n", name(err));
    SAY("connect-again", connect(fd, (struct sockaddr *)&a, sizeof a));
    char buf[64];
    SAY("recv-empty", recv(fd, buf, sizeof buf, 0));
    send(fd, "nb\n", 3, 0);
    p.events = POLLIN;
    r = poll(&p, 1, -1);
    printf("poll %d revents-in %d\n", r, !!(p.revents & POLLIN));
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    printf("got %.*s", (int)n, buf);
    return close(fd);
}

/* refused PORT: nothing listens there. */
static int refused(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = loop(port);
    SAY("connect", connect(fd, (struct sockaddr *)&a, sizeof a));
    int nb = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int r = connect(nb, (struct sockaddr *)&a, sizeof a);
    if (r < 0 && errno == EINPROGRESS) {
        struct pollfd p = {.fd = nb, .events = POLLOUT};
        poll(&p, 1, -1);
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(nb, SOL_SOCKET, SO_ERROR, &err, &len);
        printf("nonblocking %s\n", name(err));
    } else {
        printf("nonblocking %s\n", r < 0 ? name(errno) : "OK");
    }
    return 0;
}

static void on_alarm(int signo) { (void)signo; }

/* interrupt PORT: a recv that waits on the host socket ends with EINTR when a signal
   comes (no SA_RESTART); a timed one with EAGAIN (SO_RCVTIMEO); then the descriptor works. */
static int interrupt(int port) {
    struct sigaction sa = {.sa_handler = on_alarm};
    sigaction(SIGALRM, &sa, NULL);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = loop(port);
    SAY("connect", connect(fd, (struct sockaddr *)&a, sizeof a));
    struct itimerval t = {.it_value = {.tv_usec = 100000}};
    setitimer(ITIMER_REAL, &t, NULL);
    char buf[16];
    SAY("recv", recv(fd, buf, sizeof buf, 0));
    struct timeval tv = {.tv_usec = 50000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    SAY("recv-timed", recv(fd, buf, sizeof buf, 0));
    send(fd, "nb\n", 3, 0);
    ssize_t n = recv(fd, buf, sizeof buf, MSG_WAITALL);
    printf("got %zd\n", n);
    return close(fd);
}

/* unreach: an address past loopback (TEST-NET-1; only ever run without --net host). */
static int unreach(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(9)};
    a.sin_addr.s_addr = htonl(0xC0000201);
    SAY("connect", connect(fd, (struct sockaddr *)&a, sizeof a));
    return 0;
}

/* udp PORT: a datagram to the test's server and its reply, cut short (MSG_TRUNC). */
static int udp(int port) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = loop(port), from;
    socklen_t len = sizeof from;
    char buf[4];
    SAY("send-no-peer", send(fd, "x", 1, 0));
    printf("sent %zd\n", sendto(fd, "datagram!", 9, 0, (struct sockaddr *)&a, sizeof a));
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf};
    struct msghdr m = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1};
    ssize_t n = recvmsg(fd, &m, 0);
    printf("got %zd %.*s trunc %d from-port-matches %d\n", n, (int)n, buf, !!(m.msg_flags & MSG_TRUNC),
           ntohs(from.sin_port) == port);
    SAY("connect", connect(fd, (struct sockaddr *)&a, sizeof a));
    printf("sent %zd\n", send(fd, "again", 5, 0));
    n = recv(fd, buf, sizeof buf, MSG_TRUNC);
    printf("got %zd\n", n);
    SAY("recv-nothing", recv(fd, buf, sizeof buf, MSG_DONTWAIT));
    return close(fd);
}

/* server: a TCP listener and a UDP socket on 127.0.0.1, their ports on the first line
   (the test connects to them), then an echo of what comes, in capitals. */
static int server(void) {
    int l = socket(AF_INET, SOCK_STREAM, 0), u = socket(AF_INET, SOCK_DGRAM, 0), one = 1;
    struct sockaddr_in a = loop(0), b = loop(0);
    socklen_t len = sizeof a;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    bind(l, (struct sockaddr *)&a, sizeof a);
    bind(u, (struct sockaddr *)&b, sizeof b);
    listen(l, 4);
    getsockname(l, (struct sockaddr *)&a, &len);
    len = sizeof b;
    getsockname(u, (struct sockaddr *)&b, &len);
    fprintf(stderr, "%d %d\n", ntohs(a.sin_port), ntohs(b.sin_port));
    int acc = 0;
    len = sizeof acc;
    getsockopt(l, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len);
    printf("listening %d\n", acc);
    fflush(stdout);
    struct sockaddr_in peer;
    len = sizeof peer;
    int c = accept4(l, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC);
    printf("accepted from %s\n", inet_ntoa(peer.sin_addr));
    char buf[4096];
    ssize_t n;
    while ((n = read(c, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++)
            buf[i] = buf[i] >= 'a' && buf[i] <= 'z' ? buf[i] - 32 : buf[i];
        write(c, buf, n);
    }
    close(c);
    printf("tcp done\n");
    len = sizeof peer;
    n = recvfrom(u, buf, sizeof buf, 0, (struct sockaddr *)&peer, &len);
    printf("udp %.*s\n", (int)n, buf);
    sendto(u, "REPLY", 5, 0, (struct sockaddr *)&peer, len);
    return 0;
}

/* many: sockets until the descriptor limit (set low here), then one more after closing. */
static int many(void) {
    struct rlimit r = {40, 40};
    setrlimit(RLIMIT_NOFILE, &r);
    int count = 0, fd;
    while ((fd = socket(AF_INET, count % 2 ? SOCK_DGRAM : SOCK_STREAM, 0)) >= 0)
        count++;
    printf("made %d then %s\n", count, name(errno));
    for (int i = 3; i < 40; i++)
        close(i);
    SAY("after", socket(AF_INET, SOCK_STREAM, 0));
    SAY("raw", socket(AF_INET, SOCK_RAW, IPPROTO_ICMP));
    SAY("packet", socket(17 /* AF_PACKET */, SOCK_RAW, 0));
    return 0;
}

/* attack PORT: bad pointers and lengths against a host-backed socket. */
static int attack(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = loop(port);
    SAY("connect-short", connect(fd, (struct sockaddr *)&a, 3));
    SAY("connect-badptr", connect(fd, (struct sockaddr *)8, sizeof a));
    SAY("connect-hugelen", connect(fd, (struct sockaddr *)&a, 1 << 20));
    SAY("bind-unix-family", bind(fd, (struct sockaddr *)&(struct sockaddr){.sa_family = AF_UNIX}, 16));
    SAY("recv-unconnected", recv(fd, (void *)16, 100, MSG_DONTWAIT));
    SAY("send-unconnected", send(fd, "x", 1, MSG_NOSIGNAL));
    SAY("getpeername", getpeername(fd, (struct sockaddr *)&a, &(socklen_t){sizeof a}));
    SAY("listen", listen(fd, -5));
    SAY("connect-listening", connect(fd, (struct sockaddr *)&a, sizeof a));
    int big = 1 << 30;
    SAY("rcvbuf", setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big));
    SAY("option-short", setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &big, 2));
    SAY("option-badptr", setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, (void *)8, 4));
    SAY("unknown-level", setsockopt(fd, 99, 1, &big, 4));
    SAY("shutdown-bad", shutdown(fd, 7));
    SAY("close", close(fd));
    SAY("close-again", close(fd));
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    SAY("udp-no-dest", send(u, "x", 1, 0));
    SAY("udp-badbuf", sendto(u, (void *)8, 10, 0, (struct sockaddr *)&a, sizeof a));
    static char huge[70000];
    SAY("udp-too-big", sendto(u, huge, sizeof huge, 0, (struct sockaddr *)&a, sizeof a));
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    int port = argc > 2 ? atoi(argv[2]) : 0;
    if (argc < 2) return 2;
    if (!strcmp(argv[1], "tcp")) return tcp(port);
    if (!strcmp(argv[1], "nonblock")) return nonblock(port);
    if (!strcmp(argv[1], "refused")) return refused(port);
    if (!strcmp(argv[1], "udp")) return udp(port);
    if (!strcmp(argv[1], "unreach")) return unreach();
    if (!strcmp(argv[1], "interrupt")) return interrupt(port);
    if (!strcmp(argv[1], "server")) return server();
    if (!strcmp(argv[1], "many")) return many();
    if (!strcmp(argv[1], "attack")) return attack(port);
    return 2;
}

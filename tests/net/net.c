/* Socket probes: each mode prints deterministic lines, natively and in the sandbox. */
#define _GNU_SOURCE
#include <stddef.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define SHOW(what, expr) do { errno = 0; long r_ = (long)(expr); \
    printf("%s = %ld%s%s\n", what, r_, r_ < 0 ? " " : "", r_ < 0 ? strerror(errno) : ""); } while (0)

static void reap(void) { int st; while (wait(&st) > 0) printf("child status %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st)); }

static int pingpong(void) {
    int sv[2]; char buf[64];
    SHOW("socketpair", socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    if (fork() == 0) {
        close(sv[0]);
        for (int i = 0; i < 3; i++) {
            ssize_t n = read(sv[1], buf, sizeof buf);
            buf[n] = 0; strcat(buf, "+pong");
            write(sv[1], buf, strlen(buf));
        }
        _exit(0);
    }
    close(sv[1]);
    for (int i = 0; i < 3; i++) {
        snprintf(buf, sizeof buf, "ping%d", i);
        write(sv[0], buf, strlen(buf));
        ssize_t n = read(sv[0], buf, sizeof buf - 1); buf[n] = 0;
        printf("got %s\n", buf);
    }
    SHOW("read at end", read(sv[0], buf, sizeof buf));
    reap();
    return 0;
}

static int send_fd(int sock, int fd, const char *data) {
    struct msghdr msg = {0}; struct iovec iov = {(void *)data, strlen(data)};
    char control[CMSG_SPACE(sizeof(int))] = {0};
    msg.msg_iov = &iov; msg.msg_iovlen = 1; msg.msg_control = control; msg.msg_controllen = sizeof control;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET; c->cmsg_type = SCM_RIGHTS; c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    return sendmsg(sock, &msg, 0);
}

static int recv_fd(int sock, char *data, size_t len, int *flags) {
    struct msghdr msg = {0}; struct iovec iov = {data, len};
    char control[CMSG_SPACE(sizeof(int))];
    msg.msg_iov = &iov; msg.msg_iovlen = 1; msg.msg_control = control; msg.msg_controllen = sizeof control;
    ssize_t n = recvmsg(sock, &msg, 0);
    if (n < 0) return -1;
    data[n] = 0; *flags = msg.msg_flags;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (!c || c->cmsg_type != SCM_RIGHTS) return -2;
    int fd; memcpy(&fd, CMSG_DATA(c), sizeof fd);
    return fd;
}

static int rights(void) {
    int sv[2], p[2]; char buf[64]; int flags;
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv); pipe(p);
    if (fork() == 0) {
        close(sv[0]);
        int fd = recv_fd(sv[1], buf, sizeof buf - 1, &flags);
        printf("child got data %s flags %d fd>2 %d\n", buf, flags, fd > 2);
        char line[32]; ssize_t n = read(fd, line, sizeof line - 1); line[n] = 0;
        printf("child read from passed pipe: %s\n", line);
        fflush(stdout);
        _exit(0);
    }
    close(sv[1]);
    int sent = send_fd(sv[0], p[0], "here");
    close(p[0]);
    write(p[1], "through", 7); close(p[1]);
    reap();
    printf("sendmsg = %d\n", sent);
    /* a socket passed through itself, then closed: no hang, no leak */
    socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
    SHOW("send own fd", send_fd(sv[1], sv[0], "loop"));
    SHOW("send other fd", send_fd(sv[0], sv[1], "loop2"));
    close(sv[0]); close(sv[1]);
    printf("loop closed\n");
    return 0;
}

static int server_client(const char *how) {
    struct sockaddr_un a = {.sun_family = AF_UNIX}; socklen_t len;
    if (!strcmp(how, "abstract")) { memcpy(a.sun_path, "\0sandbox-test", 13); len = offsetof(struct sockaddr_un, sun_path) + 13; }
    else { strcpy(a.sun_path, "/tmp/net-test.sock"); unlink(a.sun_path); len = sizeof a; }
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    SHOW("bind", bind(s, (void *)&a, len));
    int s2 = socket(AF_UNIX, SOCK_STREAM, 0);
    SHOW("bind again", bind(s2, (void *)&a, len));
    SHOW("connect before listen", connect(s2, (void *)&a, len));
    SHOW("listen", listen(s, 5));
    if (how[0] == 'p') { struct stat st; SHOW("stat", stat(a.sun_path, &st)); printf("is socket %d\n", S_ISSOCK(st.st_mode)); }
    if (fork() == 0) {
        int c = socket(AF_UNIX, SOCK_STREAM, 0);
        int r = connect(c, (void *)&a, len);
        write(c, "hello server", 12);
        char buf[64]; ssize_t n = read(c, buf, sizeof buf - 1); buf[n > 0 ? n : 0] = 0;
        printf("client connect %d got %s\n", r, buf);
        struct ucred cr; socklen_t cl = sizeof cr;
        getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &cl);
        printf("client peer pid is parent %d\n", cr.pid == getppid());
        fflush(stdout);
        _exit(0);
    }
    struct sockaddr_un peer; socklen_t pl = sizeof peer;
    int c = accept(s, (void *)&peer, &pl);
    printf("accepted %d peer len %d\n", c > 0, (int)pl);
    char buf[64]; ssize_t n = read(c, buf, sizeof buf - 1); buf[n] = 0;
    printf("server got %s\n", buf);
    write(c, "hello client", 12);
    reap();
    struct sockaddr_un me; socklen_t ml = sizeof me;
    getsockname(s, (void *)&me, &ml);
    printf("sockname len %d path %s\n", (int)ml, me.sun_path[0] ? me.sun_path : me.sun_path + 1);
    close(s);
    SHOW("connect after close", connect(s2, (void *)&a, len));
    if (how[0] == 'p') unlink(a.sun_path);
    struct sockaddr_un missing = {.sun_family = AF_UNIX, .sun_path = "/tmp/no-such-socket"};
    SHOW("connect missing", connect(s2, (void *)&missing, sizeof missing));
    struct sockaddr_un notsock = {.sun_family = AF_UNIX, .sun_path = "/tmp"};
    SHOW("connect dir", connect(s2, (void *)&notsock, sizeof notsock));
    return 0;
}

static int boundaries(void) {
    int types[] = {SOCK_DGRAM, SOCK_SEQPACKET};
    for (int t = 0; t < 2; t++) {
        int sv[2]; char buf[8];
        socketpair(AF_UNIX, types[t], 0, sv);
        send(sv[0], "one", 3, 0); send(sv[0], "twotwo", 6, 0); send(sv[0], "three-long-message", 18, 0);
        SHOW("recv1", recv(sv[1], buf, sizeof buf, 0));
        SHOW("recv2", recv(sv[1], buf, sizeof buf, 0));
        struct msghdr m = {0}; struct iovec iov = {buf, sizeof buf}; m.msg_iov = &iov; m.msg_iovlen = 1;
        SHOW("recvmsg3", recvmsg(sv[1], &m, 0));
        printf("trunc flag %d\n", !!(m.msg_flags & MSG_TRUNC));
        send(sv[0], "peeked-and-truncated", 20, 0);
        SHOW("peek trunc", recv(sv[1], buf, 4, MSG_PEEK | MSG_TRUNC));
        SHOW("recv trunc", recv(sv[1], buf, 4, MSG_TRUNC));
        SHOW("nonblock empty", recv(sv[1], buf, 4, MSG_DONTWAIT));
        close(sv[0]);
        if (types[t] == SOCK_SEQPACKET) SHOW("after peer close", recv(sv[1], buf, 4, 0));
        else SHOW("after peer close nonblock", recv(sv[1], buf, 4, MSG_DONTWAIT));
        close(sv[1]);
    }
    return 0;
}

static int inet_echo(const char *fam) {
    int v6 = !strcmp(fam, "6");
    struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    struct sockaddr *a = v6 ? (void *)&a6 : (void *)&a4; socklen_t len = v6 ? sizeof a6 : sizeof a4;
    int s = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    int one = 1; setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    SHOW("bind", bind(s, a, len));
    SHOW("listen", listen(s, 4));
    getsockname(s, a, &len);
    int port = ntohs(v6 ? a6.sin6_port : a4.sin_port);
    printf("ephemeral %d\n", port >= 32768 && port <= 60999);
    int s2 = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    SHOW("bind in use", bind(s2, a, len));
    if (fork() == 0) {
        int c = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
        SHOW("connect", connect(c, a, len));
        int nd = 1; SHOW("nodelay", setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &nd, sizeof nd));
        char big[100000]; memset(big, 'x', sizeof big);
        SHOW("write big", write(c, big, sizeof big));
        shutdown(c, SHUT_WR);
        char buf[64]; ssize_t n = read(c, buf, sizeof buf - 1); buf[n > 0 ? n : 0] = 0;
        printf("client got %s\n", buf);
        fflush(stdout);
        _exit(0);
    }
    int c = accept(s, NULL, NULL);
    long total = 0; char buf[4096]; ssize_t n;
    while ((n = read(c, buf, sizeof buf)) > 0) total += n;
    printf("server read %ld then %ld\n", total, (long)n);
    char reply[32]; snprintf(reply, sizeof reply, "len=%ld", total);
    write(c, reply, strlen(reply));
    close(c);
    reap();
    close(s);
    int r = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    SHOW("connect closed port", connect(r, a, len));
    return 0;
}

static int udp(void) {
    int s = socket(AF_INET, SOCK_DGRAM, 0), c = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    SHOW("bind", bind(s, (void *)&a, sizeof a));
    getsockname(s, (void *)&a, &len);
    SHOW("sendto", sendto(c, "datagram-one", 12, 0, (void *)&a, sizeof a));
    SHOW("sendto", sendto(c, "two", 3, 0, (void *)&a, sizeof a));
    char buf[64]; struct sockaddr_in from; socklen_t fl = sizeof from;
    SHOW("recvfrom", recvfrom(s, buf, 5, 0, (void *)&from, &fl));
    printf("from 127.0.0.1 %d len %d\n", from.sin_addr.s_addr == htonl(INADDR_LOOPBACK), (int)fl);
    SHOW("recv", recv(s, buf, sizeof buf, 0));
    SHOW("sendto nothing", send(c, "x", 1, 0));
    SHOW("connect", connect(c, (void *)&a, sizeof a));
    SHOW("send", send(c, "x", 1, 0));
    close(s);
    SHOW("send to closed", send(c, "x", 1, 0));
    SHOW("send after refusal", send(c, "x", 1, 0));
    SHOW("huge", sendto(c, buf, 70000, 0, (void *)&a, sizeof a));
    return 0;
}

static int nonblocking(void) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    bind(s, (void *)&a, sizeof a); listen(s, 1); getsockname(s, (void *)&a, &len);
    SHOW("accept empty", accept(s, NULL, NULL));
    int c = socket(AF_INET, SOCK_STREAM, 0);
    fcntl(c, F_SETFL, fcntl(c, F_GETFL) | O_NONBLOCK);
    SHOW("connect", connect(c, (void *)&a, sizeof a));
    struct pollfd p[2] = {{c, POLLOUT}, {s, POLLIN}};
    SHOW("poll", poll(p, 2, 1000));
    printf("revents %#x %#x\n", p[0].revents, p[1].revents);
    int err = -1; socklen_t el = sizeof err;
    getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &el);
    printf("so_error %d\n", err);
    SHOW("connect again", connect(c, (void *)&a, sizeof a));
    SHOW("connect third", connect(c, (void *)&a, sizeof a));
    int d = accept4(s, NULL, NULL, SOCK_NONBLOCK);
    printf("accepted %d nonblock %d\n", d > 0, !!(fcntl(d, F_GETFL) & O_NONBLOCK));
    char buf[8];
    SHOW("read empty", read(d, buf, sizeof buf));
    struct pollfd q = {d, POLLIN | POLLOUT | POLLRDHUP};
    poll(&q, 1, 0); printf("idle revents %#x\n", q.revents);
    write(c, "abc", 3);
    poll(&q, 1, 0); printf("data revents %#x\n", q.revents);
    close(c);
    poll(&q, 1, 0); printf("closed revents %#x\n", q.revents);
    SHOW("read", read(d, buf, sizeof buf));
    SHOW("read eof", read(d, buf, sizeof buf));
    int fresh = socket(AF_INET, SOCK_STREAM, 0);
    struct pollfd f = {fresh, POLLIN | POLLOUT};
    poll(&f, 1, 0); printf("fresh revents %#x\n", f.revents);
    int refused = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    close(s);
    SHOW("connect refused", connect(refused, (void *)&a, sizeof a));
    struct pollfd r = {refused, POLLIN | POLLOUT};
    poll(&r, 1, 1000); printf("refused revents %#x\n", r.revents);
    getsockopt(refused, SOL_SOCKET, SO_ERROR, &err, &el);
    printf("so_error %s\n", strerror(err));
    int sv[2]; socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    struct pollfd u = {sv[0], POLLIN | POLLOUT | POLLRDHUP};
    poll(&u, 1, 0); printf("pair revents %#x\n", u.revents);
    shutdown(sv[1], SHUT_WR);
    poll(&u, 1, 0); printf("pair shut revents %#x\n", u.revents);
    close(sv[1]);
    poll(&u, 1, 0); printf("pair closed revents %#x\n", u.revents);
    return 0;
}

static void on_pipe(int sig) { printf("SIGPIPE\n"); }

static int errors(void) {
    int p[2]; pipe(p); char buf[8];
    SHOW("send on pipe", send(p[1], "x", 1, 0));
    SHOW("bad fd", send(99, "x", 1, 0));
    SHOW("bad family", socket(12345, SOCK_STREAM, 0));
    SHOW("bad type", socket(AF_INET, 99, 0));
    SHOW("bad protocol", socket(AF_INET, SOCK_STREAM, IPPROTO_UDP));
    SHOW("bad flags", socket(AF_INET, SOCK_STREAM | 0x100, 0));
    SHOW("inet pair", socketpair(AF_INET, SOCK_STREAM, 0, p));
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    SHOW("bind short", bind(s, (void *)&a, 4));
    SHOW("bind long", bind(s, (void *)&a, 1000));
    SHOW("bind neg", bind(s, (void *)&a, -1));
    SHOW("bind fault", bind(s, (void *)8, sizeof a));
    struct sockaddr_in far = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x08080808)};
    SHOW("bind far", bind(s, (void *)&far, sizeof far));
    SHOW("getpeername", getpeername(s, (void *)&a, &(socklen_t){sizeof a}));
    SHOW("recv unconnected", recv(s, buf, 1, 0));
    SHOW("accept unlistening", accept(s, NULL, NULL));
    SHOW("shutdown unconnected", shutdown(s, SHUT_RDWR));
    SHOW("shutdown bad", shutdown(s, 7));
    SHOW("getsockopt bad", getsockopt(s, SOL_SOCKET, 9999, buf, &(socklen_t){4}));
    int v; socklen_t vl = sizeof v;
    getsockopt(s, SOL_SOCKET, SO_TYPE, &v, &vl); printf("type %d len %d\n", v, (int)vl);
    getsockopt(s, SOL_SOCKET, SO_DOMAIN, &v, &vl); printf("domain %d\n", v);
    getsockopt(s, SOL_SOCKET, SO_PROTOCOL, &v, &vl); printf("protocol %d\n", v);
    getsockopt(s, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl); printf("acceptconn %d\n", v);
    v = 5; setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof v);
    getsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &v, &vl); printf("keepalive %d\n", v);
    SHOW("setsockopt short", setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &v, 2));
    SHOW("setsockopt v6 on v4", setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &v, sizeof v));
    struct timeval tv = {0, 2000000};
    SHOW("rcvtimeo bad usec", setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    int sv[2]; socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    SHOW("unix tcp option", setsockopt(sv[0], IPPROTO_TCP, TCP_NODELAY, &v, sizeof v));
    close(sv[1]);
    SHOW("send nosignal", send(sv[0], "x", 1, MSG_NOSIGNAL));
    signal(SIGPIPE, on_pipe);
    SHOW("send sigpipe", send(sv[0], "x", 1, 0));
    SHOW("write sigpipe", write(sv[0], "x", 1));
    int u = socket(AF_UNIX, SOCK_STREAM, 0);
    SHOW("write unconnected", write(u, "x", 1));
    SHOW("read unconnected", read(u, buf, 1));
    struct sockaddr_un longname = {.sun_family = AF_UNIX};
    SHOW("unix bind too long", bind(u, (void *)&longname, sizeof longname + 10));
    SHOW("unix bind short", bind(u, (void *)&longname, 1));
    SHOW("unix autobind", bind(u, (void *)&longname, 2));
    struct sockaddr_un me; socklen_t ml = sizeof me;
    getsockname(u, (void *)&me, &ml); printf("autobind len %d\n", (int)ml);
    int t = socket(AF_INET, SOCK_STREAM, 0);
    signal(SIGPIPE, SIG_DFL);
    fflush(stdout);
    SHOW("write unconnected tcp", send(t, "x", 1, MSG_NOSIGNAL));
    write(t, "x", 1);
    printf("not reached\n");
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *m = argc > 1 ? argv[1] : "";
    if (!strcmp(m, "pingpong")) return pingpong();
    if (!strcmp(m, "rights")) return rights();
    if (!strcmp(m, "path") || !strcmp(m, "abstract")) return server_client(m);
    if (!strcmp(m, "boundaries")) return boundaries();
    if (!strcmp(m, "tcp4")) return inet_echo("4");
    if (!strcmp(m, "tcp6")) return inet_echo("6");
    if (!strcmp(m, "udp")) return udp();
    if (!strcmp(m, "nonblocking")) return nonblocking();
    if (!strcmp(m, "errors")) return errors();
    return 2;
}

/* Attacks on the sandbox's pseudo-terminals; each mode prints what it saw.
 * cap: ptmx opens until one fails (then all closed, and one more open works)
 * flood: a slave writer nobody reads and a master writer nobody reads, both O_NONBLOCK
 * loop: two pairs, each one's output fed to the other's input, many rounds
 * efault: ioctls with bad pointers and bad arguments
 * sti: TIOCSTI on the slave
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

static int pair(int *slave, int raw) {
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK);
    if (m < 0 || grantpt(m) || unlockpt(m)) return -1;
    *slave = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_NONBLOCK);
    if (raw) {
        struct termios t;
        tcgetattr(*slave, &t);
        cfmakeraw(&t);
        tcsetattr(*slave, TCSANOW, &t);
    }
    return m;
}

static int cap(void) {
    static int fds[5000];
    int n = 0;
    while (n < 5000) {
        int fd = open("/dev/ptmx", O_RDWR | O_NOCTTY);
        if (fd < 0) { printf("open %d failed: %s\n", n, strerror(errno)); break; }
        fds[n++] = fd;
    }
    for (int i = 0; i < n; i++) close(fds[i]);
    int fd = open("/dev/ptmx", O_RDWR | O_NOCTTY);
    printf("after closing: %s\n", fd >= 0 ? "open" : strerror(errno));
    return 0;
}

static int flood(void) {
    int s, m = pair(&s, 1);
    char buf[4096];
    memset(buf, 'x', sizeof buf);
    long total = 0;
    ssize_t n;
    while ((n = write(s, buf, sizeof buf)) > 0 && total < (1L << 24)) total += n;
    printf("slave writer: %s, bounded %d\n", n < 0 ? strerror(errno) : "no error", total < (1L << 20));
    total = 0;
    while ((n = write(m, buf, sizeof buf)) > 0 && total < (1L << 24)) total += n;
    printf("master writer: %s, bounded %d\n", n < 0 ? strerror(errno) : "no error", total < (1L << 20));
    return 0;
}

static int loop(void) {
    int s1, s2;
    int m1 = pair(&s1, 0), m2 = pair(&s2, 0);  /* canonical with echo: each byte comes back */
    char buf[8192];
    write(m1, "ping\n", 5);
    long moved = 0;
    for (int round = 0; round < 30; round++) {
        ssize_t n = read(m1, buf, sizeof buf);
        if (n > 0) { ssize_t w = write(m2, buf, n); if (w > 0) moved += w; }
        n = read(m2, buf, sizeof buf);
        if (n > 0) { ssize_t w = write(m1, buf, n); if (w > 0) moved += w; }
        while (read(s1, buf, sizeof buf) > 0) ;
        while (read(s2, buf, sizeof buf) > 0) ;
    }
    printf("loop moved bytes: %d\n", moved > 0);
    return 0;
}

static void show(const char *what, int r) { printf("%s: %d %s\n", what, r, r < 0 ? strerror(errno) : ""); }

static int efault(void) {
    int s, m = pair(&s, 0);
    void *bad = (void *)16;
    show("TIOCGPTN bad", ioctl(m, TIOCGPTN, bad));
    show("TIOCSPTLCK bad", ioctl(m, TIOCSPTLCK, bad));
    show("TCGETS bad", ioctl(s, TCGETS, bad));
    show("TCSETS bad", ioctl(s, TCSETS, bad));
    show("TIOCGWINSZ bad", ioctl(m, TIOCGWINSZ, bad));
    show("TIOCSWINSZ bad", ioctl(s, TIOCSWINSZ, bad));
    show("FIONREAD bad", ioctl(m, FIONREAD, bad));
    show("TIOCGPTPEER flags", ioctl(m, TIOCGPTPEER, 0x7fffffff));
    show("TIOCGPTN slave", ioctl(s, TIOCGPTN, &s));
    show("TCFLSH 7", ioctl(s, TCFLSH, 7));
    show("TIOCGPGRP not ctty", ioctl(s, TIOCGPGRP, &s));
    show("read slave empty", (int)read(s, &s, 1));
    show("read master empty", (int)read(m, &s, 1));
    int lock = 1;
    show("lock", ioctl(m, TIOCSPTLCK, &lock));
    show("peer while locked", ioctl(m, TIOCGPTPEER, O_RDWR));
    return 0;
}

static int sti(void) {
    int s, m = pair(&s, 0);
    char c = 'x';
    int r = ioctl(s, TIOCSTI, &c);
    printf("TIOCSTI: %d %s\n", r, r < 0 ? strerror(errno) : "");
    (void)m;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    if (!strcmp(argv[1], "cap")) return cap();
    if (!strcmp(argv[1], "flood")) return flood();
    if (!strcmp(argv[1], "loop")) return loop();
    if (!strcmp(argv[1], "efault")) return efault();
    if (!strcmp(argv[1], "sti")) return sti();
    return 2;
}

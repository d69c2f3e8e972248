/* A pseudo-terminal session, run natively and in the sandbox: posix_openpt, grantpt,
 * unlockpt, ptsname; a child in a new session with the slave as its controlling terminal
 * runs a mode (a shell script, or one of the C modes below) while the parent waits for
 * markers in the master's output and types the given input after each. Everything read
 * from the master is printed escaped, then how the child ended.
 *
 * ptyprobe sh SCRIPT [MARKER INPUT]...   the child runs /bin/sh -c SCRIPT
 * ptyprobe c MODE [MARKER INPUT]...      the child runs the C mode MODE (raw, winch, hup, intr)
 * A MARKER "-" sends at once; an INPUT "@winch" resizes, "@close" closes the master.
 * Input escapes: \r \n \xHH.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static char out[65536];
static size_t out_len;

static size_t unescape(const char *s, char *buf) {
    size_t n = 0;
    while (*s) {
        if (s[0] == '\\' && s[1] == 'r') { buf[n++] = '\r'; s += 2; }
        else if (s[0] == '\\' && s[1] == 'n') { buf[n++] = '\n'; s += 2; }
        else if (s[0] == '\\' && s[1] == 'x') { char h[3] = {s[2], s[3], 0}; buf[n++] = (char)strtol(h, 0, 16); s += 4; }
        else buf[n++] = *s++;
    }
    return n;
}

static void say(const char *s) { write(9, s, strlen(s)); }

static volatile sig_atomic_t got_winch, got_hup, got_int;
static void on_winch(int s) { (void)s; got_winch = 1; }
static void on_hup(int s) { (void)s; got_hup = 1; }
static void on_int(int s) { (void)s; got_int++; }

static int mode_raw(void) {
    struct termios t;
    char buf[64], msg[128];
    tcgetattr(0, &t);
    cfmakeraw(&t);
    t.c_cc[VMIN] = 3;
    t.c_cc[VTIME] = 0;
    tcsetattr(0, TCSANOW, &t);
    write(1, "go\n", 3);
    ssize_t n = read(0, buf, sizeof buf);
    int len = snprintf(msg, sizeof msg, "vmin3 read %zd [%.*s]\r\n", n, (int)(n > 0 ? n : 0), buf);
    write(1, msg, len);
    t.c_cc[VMIN] = 0;
    tcsetattr(0, TCSANOW, &t);
    n = read(0, buf, sizeof buf);
    len = snprintf(msg, sizeof msg, "vmin0 read %zd\r\nend\r\n", n);
    write(1, msg, len);
    tcdrain(1);
    return 0;
}

static int mode_winch(void) {
    struct winsize ws = {0};
    char msg[128];
    signal(SIGWINCH, on_winch);
    ioctl(0, TIOCGWINSZ, &ws);
    int len = snprintf(msg, sizeof msg, "size %d %d\nready\n", ws.ws_row, ws.ws_col);
    write(1, msg, len);
    while (!got_winch)
        pause();
    ioctl(0, TIOCGWINSZ, &ws);
    len = snprintf(msg, sizeof msg, "winch size %d %d\n", ws.ws_row, ws.ws_col);
    write(1, msg, len);
    return 0;
}

static int mode_hup(void) {
    char buf[16], msg[128];
    signal(SIGHUP, on_hup);
    write(1, "ready\n", 6);
    ssize_t n = read(0, buf, sizeof buf);
    int e = errno;
    snprintf(msg, sizeof msg, "child: read %zd errno %s hup %d\n", n, n < 0 ? strerror(e) : "-", (int)got_hup);
    say(msg);
    n = write(1, "x", 1);
    e = errno;
    snprintf(msg, sizeof msg, "child: write %zd errno %s\n", n, n < 0 ? strerror(e) : "-");
    say(msg);
    n = read(0, buf, sizeof buf);
    snprintf(msg, sizeof msg, "child: read again %zd\n", n);
    say(msg);
    return 0;
}

static int mode_intr(void) {
    char buf[64], msg[128];
    struct sigaction sa = {0};
    sa.sa_handler = on_int;  /* no SA_RESTART: the read ends with EINTR */
    sigaction(SIGINT, &sa, 0);
    write(1, "ready\n", 6);
    ssize_t n = read(0, buf, sizeof buf);
    int e = errno;
    int len = snprintf(msg, sizeof msg, "read %zd %s ints %d\n", n, n < 0 ? strerror(e) : "", (int)got_int);
    write(1, msg, len);
    n = read(0, buf, sizeof buf);
    len = snprintf(msg, sizeof msg, "then [%.*s]\n", (int)(n > 0 ? n : 0), buf);
    write(1, msg, len);
    return 0;
}

static int run_child(char **argv, int master, const char *slave) {
    setsid();
    /* A session leader's open: the controlling terminal. By the master (TIOCGPTPEER), as
     * glibc's openpty, since a host whose /dev/ptmx is not /dev/pts's has no ptsname node;
     * PTYPROBE_BY_NAME opens ptsname's path instead. */
    int fd = getenv("PTYPROBE_BY_NAME") ? open(slave, O_RDWR) : ioctl(master, TIOCGPTPEER, O_RDWR);
    close(master);
    if (fd < 0) { perror("open slave"); _exit(100); }
    dup2(fd, 0); dup2(fd, 1); dup2(fd, 2);
    if (fd > 2) close(fd);
    if (strcmp(argv[1], "sh") == 0) {
        execl("/bin/sh", "sh", "-c", argv[2], (char *)0);
        _exit(127);
    }
    if (!strcmp(argv[2], "raw")) _exit(mode_raw());
    if (!strcmp(argv[2], "winch")) _exit(mode_winch());
    if (!strcmp(argv[2], "hup")) _exit(mode_hup());
    if (!strcmp(argv[2], "intr")) _exit(mode_intr());
    _exit(99);
}

/* Read what the master has until `marker` is in the output (NULL: to EIO/EOF). 0 at EIO. */
static int read_until(int master, const char *marker, size_t from) {
    for (;;) {
        if (marker && memmem(out + from, out_len - from, marker, strlen(marker)))
            return 1;
        struct pollfd p = {master, POLLIN, 0};
        poll(&p, 1, 20000);
        ssize_t n = read(master, out + out_len, sizeof out - out_len - 1);
        if (n <= 0)
            return 0;
        out_len += n;
    }
}

/* Wait until every process of the child's session sleeps (in a read, a wait...), seen twice
 * 10 ms apart, for at most 10 s: what is typed next then finds its reader waiting, natively
 * and in the sandbox alike (typing ^C before a read starts would leave the read waiting). */
static void settle(pid_t session) {
    int calm = 0;
    for (int round = 0; round < 1000 && calm < 2; round++) {
        int busy = 0;
        DIR *proc = opendir("/proc");
        struct dirent *entry;
        while (proc && (entry = readdir(proc)) != NULL) {
            char path[64], stat[512], state = 0;
            int sid = 0;
            if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
            snprintf(path, sizeof path, "/proc/%s/stat", entry->d_name);
            int fd = open(path, O_RDONLY);
            if (fd < 0) continue;
            ssize_t n = read(fd, stat, sizeof stat - 1);
            close(fd);
            if (n <= 0) continue;
            stat[n] = 0;
            char *end = strrchr(stat, ')');
            if (end && sscanf(end + 2, "%c %*d %*d %d", &state, &sid) == 2 && sid == session && state == 'R')
                busy = 1;
        }
        if (proc) closedir(proc);
        calm = busy ? 0 : calm + 1;
        usleep(10000);
    }
}

static void act(int *master, const char *input) {
    char buf[256];
    if (!strcmp(input, "@winch")) {
        struct winsize ws = {24, 80, 0, 0};
        ioctl(*master, TIOCSWINSZ, &ws);
    } else if (!strcmp(input, "@close")) {
        close(*master);
        *master = -1;
    } else {
        size_t n = unescape(input, buf);
        for (size_t i = 0; i < n; i++)  /* a byte at a time: what a typist sends */
            write(*master, buf + i, 1);
    }
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) || unlockpt(master)) { perror("pt"); return 1; }
    char *slave = ptsname(master);
    if (!slave || strncmp(slave, "/dev/pts/", 9)) { printf("ptsname %s\n", slave); return 1; }
    fflush(stdout);
    dup2(1, 9);  /* the child's reports (mode hup), past the master's descriptor */
    pid_t pid = fork();
    if (pid == 0) run_child(argv, master, slave);
    size_t from = 0;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "-") && !read_until(master, argv[i], from)) break;
        from = out_len;
        settle(pid);
        act(&master, argv[i + 1]);
        if (master < 0) break;
    }
    if (master >= 0) read_until(master, NULL, 0);
    int status;
    waitpid(pid, &status, 0);
    for (size_t i = 0; i < out_len; i++) {
        unsigned char c = out[i];
        if (c == '\n') fputs("\\n\n", stdout);
        else if (c < 32 || c >= 127) printf("\\x%02x", c);
        else putchar(c);
    }
    printf("\n-- %s %d\n", WIFEXITED(status) ? "exit" : "signal",
           WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    return 0;
}

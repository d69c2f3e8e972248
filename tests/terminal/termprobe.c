/* Terminal ioctls as a line editor uses them; run under a pseudo-terminal that is the
 * process's controlling terminal, natively and in the sandbox, with the same output. */
#include <errno.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

static volatile int winches;
static void on_winch(int signo) { (void)signo; winches++; }

static void report(const char *what, int rc) {
    printf("%s = %d%s%s\n", what, rc, rc < 0 ? " " : "", rc < 0 ? strerror(errno) : "");
}

static void show(const char *when) {
    struct termios t;
    report("tcgetattr", tcgetattr(0, &t));
    printf("%s: icanon=%d echo=%d isig=%d opost=%d vmin=%d vtime=%d\n", when, !!(t.c_lflag & ICANON),
           !!(t.c_lflag & ECHO), !!(t.c_lflag & ISIG), !!(t.c_oflag & OPOST), t.c_cc[VMIN], t.c_cc[VTIME]);
}

static void modes(int restore) {
    struct termios saved, raw;
    tcgetattr(0, &saved);
    show("cooked");
    raw = saved;
    cfmakeraw(&raw);
    report("tcsetattr raw", tcsetattr(0, TCSAFLUSH, &raw));
    show("raw");
    if (restore) {
        report("tcsetattr back", tcsetattr(0, TCSADRAIN, &saved));
        show("back");
    }
}

static void sizes(void) {
    struct winsize w, set = {.ws_row = 40, .ws_col = 100};
    signal(SIGWINCH, on_winch);
    report("TIOCGWINSZ", ioctl(1, TIOCGWINSZ, &w));
    printf("size %dx%d\n", w.ws_row, w.ws_col);
    report("TIOCSWINSZ", ioctl(1, TIOCSWINSZ, &set));
    report("TIOCGWINSZ", ioctl(1, TIOCGWINSZ, &w));
    printf("size %dx%d winches %d\n", w.ws_row, w.ws_col, winches);
    report("TIOCSWINSZ same", ioctl(1, TIOCSWINSZ, &set));
    printf("winches %d\n", winches);
}

static void groups(void) {
    pid_t pgrp = -5, bad = -1, none = 999999;
    int n = -1;
    report("TIOCGPGRP", ioctl(0, TIOCGPGRP, &pgrp));
    printf("foreground is mine: %d, tcgetpgrp is mine: %d\n", pgrp == getpgrp(), tcgetpgrp(0) == getpgrp());
    report("TIOCSPGRP own", ioctl(0, TIOCSPGRP, &pgrp));
    report("TIOCSPGRP -1", ioctl(0, TIOCSPGRP, &bad));
    report("TIOCSPGRP none", ioctl(0, TIOCSPGRP, &none));
    report("TIOCSCTTY", ioctl(0, TIOCSCTTY, 0));
    report("FIONREAD", ioctl(0, FIONREAD, &n));
    printf("queued %d\n", n);
    report("tcgetsid is mine", tcgetsid(0) == getsid(0));
}

static void attacks(void) {
    report("TCGETS bad pointer", ioctl(0, TCGETS, (void *)16));
    report("TCSETS bad pointer", ioctl(0, TCSETS, (void *)16));
    report("TIOCGWINSZ bad pointer", ioctl(0, TIOCGWINSZ, (void *)-1L));
    report("TIOCSPGRP bad pointer", ioctl(0, TIOCSPGRP, (void *)16));
    report("TCFLSH 7", ioctl(0, TCFLSH, 7));
    report("TCFLSH in", ioctl(0, TCFLSH, TCIFLUSH));
    report("TCXONC 9", ioctl(0, TCXONC, 9));
    report("tcdrain", tcdrain(1));
    report("unknown", ioctl(0, 0x54FF, 0));
    report("TCGETS on a pipe", ioctl(-1, TCGETS, 0));
    int fds[2];
    pipe(fds);
    struct termios t;
    report("tcgetattr pipe", tcgetattr(fds[0], &t));
    report("isatty pipe", isatty(fds[0]));
}

static void sessions(void) {
    int fd = open("/dev/tty", O_RDWR);
    report("open /dev/tty", fd >= 0 ? 0 : -1);
    report("isatty /dev/tty", isatty(fd));
    pid_t child = fork();
    if (child == 0) {  /* a new session has no controlling terminal */
        pid_t pgrp;
        report("setsid", setsid() > 0 ? 0 : -1);
        report("child open /dev/tty", open("/dev/tty", O_RDWR));
        report("child TIOCGPGRP", ioctl(0, TIOCGPGRP, &pgrp));
        report("child TIOCSPGRP", ioctl(0, TIOCSPGRP, &pgrp));
        report("child tcgetsid", tcgetsid(0));
        _exit(0);
    }
    int status;
    waitpid(child, &status, 0);
    report("child status", status);
    pid_t other = getpid() + 1000;  /* a group that does not exist */
    report("TIOCSPGRP other", ioctl(fd, TIOCSPGRP, &other));
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    report("isatty 0", isatty(0));
    report("isatty 1", isatty(1));
    const char *what = argc > 1 ? argv[1] : "all";
    if (!strcmp(what, "all") || !strcmp(what, "modes")) modes(1);
    if (!strcmp(what, "all") || !strcmp(what, "sizes")) sizes();
    if (!strcmp(what, "all") || !strcmp(what, "groups")) groups();
    if (!strcmp(what, "all") || !strcmp(what, "attacks")) attacks();
    if (!strcmp(what, "all") || !strcmp(what, "sessions")) sessions();
    if (!strcmp(what, "leave-raw")) modes(0);
    if (!strcmp(what, "raw-pause")) {  /* raw, then killed by a signal while waiting */
        modes(0);
        printf("ready\n");
        pause();
    }
    if (!strcmp(what, "sti")) {
        char c = 'x';
        report("TIOCSTI", ioctl(0, TIOCSTI, &c));
    }
    return 0;
}

/* What a program asks of its terminal: isatty, tcgetattr (TCGETS copies the kernel's
 * 36-byte struct termios into glibc's, on the stack: a bigger copy smashes it), the window
 * size, and /dev/tty. Run on a pseudo-terminal, natively and in the sandbox. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

static int probe(int fd) {
    struct termios t;
    memset(&t, 0, sizeof t);
    int r = tcgetattr(fd, &t);
    printf("fd %d: isatty %d tcgetattr %d icanon %d echo %d\n", fd, isatty(fd), r,
           !!(t.c_lflag & ICANON), !!(t.c_lflag & ECHO));
    return r;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    for (int fd = 0; fd < 3; fd++) probe(fd);
    struct winsize ws = {0};
    int r = ioctl(1, TIOCGWINSZ, &ws);
    printf("winsize %d: %d x %d\n", r, ws.ws_row, ws.ws_col);
    int tty = open("/dev/tty", O_RDWR);
    if (tty < 0) {
        printf("/dev/tty: %s\n", strerror(errno));
        return 0;
    }
    probe(tty);
    printf("write to /dev/tty: %zd\n", write(tty, "through /dev/tty\n", 17));
    close(tty);
    return 0;
}

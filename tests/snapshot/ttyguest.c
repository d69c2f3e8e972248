/* Snapshot terminal guest: sets raw-ish modes and a window size on its terminal (fd 0),
   calls checkpoint() (where the test snapshots), prints the modes and size it finds, then
   sets others. A run from the snapshot prints the same only if the terminal came back. */
#include <stdio.h>
#include <sys/ioctl.h>
#include <termios.h>

__attribute__((noinline)) void checkpoint(void) { __asm__ volatile("" ::: "memory"); }

int main(void) {
    struct termios t;
    struct winsize w = {33, 77, 0, 0};
    if (tcgetattr(0, &t)) { perror("tcgetattr"); return 2; }
    t.c_lflag &= ~(ICANON | ECHO);
    tcsetattr(0, TCSANOW, &t);
    ioctl(0, TIOCSWINSZ, &w);
    checkpoint();
    tcgetattr(0, &t);
    ioctl(0, TIOCGWINSZ, &w);
    printf("icanon %d echo %d rows %d cols %d\n", !!(t.c_lflag & ICANON), !!(t.c_lflag & ECHO), w.ws_row, w.ws_col);
    t.c_lflag |= ICANON | ECHO;
    tcsetattr(0, TCSANOW, &t);
    w.ws_row = 44, w.ws_col = 88;
    ioctl(0, TIOCSWINSZ, &w);
    return 0;
}

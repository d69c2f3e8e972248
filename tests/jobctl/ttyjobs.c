/* Background process groups and their controlling terminal (run on a pty whose session
 * this program leads): SIGTTIN for a read, SIGTTOU for a write under TOSTOP and for
 * tcsetpgrp and tcsetattr; EIO when the signal is blocked or ignored, or the group is
 * orphaned. The child is in a background group; the parent plays the shell. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static void say(const char *text) { write(1, text, strlen(text)); }

static void result(const char *what, long rc) {
    char line[160];
    snprintf(line, sizeof line, "%s = %ld%s%s\n", what, rc, rc < 0 ? " " : "", rc < 0 ? strerror(errno) : "");
    say(line);
}

static void set_action(int sig, void (*handler)(int)) {
    struct sigaction sa = {.sa_handler = handler};
    sigaction(sig, &sa, 0);
}

static void set_blocked(int sig, int how) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(how, &set, 0);
}

static void tostop(int on) {
    struct termios t;
    tcgetattr(0, &t);
    t.c_lflag = on ? t.c_lflag | TOSTOP : t.c_lflag & ~TOSTOP;
    tcsetattr(0, TCSANOW, &t);
}

static void child(void) {
    setpgid(0, 0);
    set_action(SIGTTOU, SIG_DFL);
    char buf[64];
    struct termios t;
    set_blocked(SIGTTIN, SIG_BLOCK);
    result("child: read, SIGTTIN blocked", read(0, buf, sizeof buf));
    set_blocked(SIGTTIN, SIG_UNBLOCK);
    set_action(SIGTTIN, SIG_IGN);
    result("child: read, SIGTTIN ignored", read(0, buf, sizeof buf));
    set_action(SIGTTIN, SIG_DFL);
    result("child: write without TOSTOP", write(1, "", 0) + 1);
    set_blocked(SIGTTOU, SIG_BLOCK);
    tcgetattr(0, &t);
    result("child: tcsetattr, SIGTTOU blocked", tcsetattr(0, TCSANOW, &t));
    set_blocked(SIGTTOU, SIG_UNBLOCK);
    result("child: tcgetpgrp is not mine", tcgetpgrp(0) != getpgrp());
    long n = read(0, buf, sizeof buf); /* stops (SIGTTIN); the parent moves it to the foreground */
    result("child: read in the foreground", n);
    tcsetpgrp(0, getppid()); /* in the foreground: allowed */
    result("child: gave the terminal back", tcgetpgrp(0) == getppid());
    raise(SIGSTOP); /* the parent sets TOSTOP meanwhile */
    say("child: writing under TOSTOP\n"); /* stops (SIGTTOU), then goes on once TOSTOP is off */
    tcsetpgrp(0, getpgrp()); /* stops (SIGTTOU): the parent kills it there */
    say("child: never here\n");
    _exit(0);
}

static void wait_line(pid_t pid, const char *what) {
    int st = 0;
    waitpid(pid, &st, WUNTRACED);
    char line[128];
    if (WIFSTOPPED(st))
        snprintf(line, sizeof line, "parent: %s: stopped by %d\n", what, WSTOPSIG(st));
    else
        snprintf(line, sizeof line, "parent: %s: status %#x\n", what, st);
    say(line);
}

static void orphan(void) {
    pid_t middle = fork();
    if (middle == 0) {
        pid_t parent = getpid();
        if (fork() == 0) {
            setpgid(0, 0);
            set_action(SIGTTOU, SIG_DFL);
            while (getppid() == parent) /* until its parent has gone: an orphaned group */
                usleep(1000);
            char buf[8];
            result("orphan: read", read(0, buf, sizeof buf));
            result("orphan: tcsetpgrp", tcsetpgrp(0, getpgrp()));
            _exit(0);
        }
        _exit(0);
    }
    waitpid(middle, 0, 0);
    usleep(300 * 1000);
}

int main(void) {
    set_action(SIGTTOU, SIG_IGN); /* as a shell does: it takes the terminal back from the background */
    pid_t pid = fork();
    if (pid == 0)
        child();
    setpgid(pid, pid);
    wait_line(pid, "the child reads");
    say("parent: type a line\n");
    tcsetpgrp(0, pid);
    kill(pid, SIGCONT);
    wait_line(pid, "the child read a line");
    result("parent: the terminal is mine again", tcgetpgrp(0) == getpgrp());
    tostop(1);
    kill(pid, SIGCONT);
    wait_line(pid, "the child writes under TOSTOP");
    tostop(0);
    kill(pid, SIGCONT);
    wait_line(pid, "the child takes the terminal");
    kill(pid, SIGKILL);
    wait_line(pid, "the end");
    orphan();
    say("parent: done\n");
    return 0;
}

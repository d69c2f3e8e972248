#define _GNU_SOURCE
#include <stdio.h>
#include <unistd.h>
#include <sched.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
static char stk[65536] __attribute__((aligned(16)));
static int quick(void *a) { (void)a; _exit(0); }
int main(int argc, char **argv) {
  int flags = CLONE_FILES | (argc > 1 ? CLONE_VM : 0);
  int fd = open("/dev/null", O_RDONLY);
  pid_t c = clone(quick, stk + sizeof stk, flags | SIGCHLD, 0); int st; waitpid(c, &st, 0);
  dprintf(1, "after CLONE_FILES child exit: fd %d %s, stdout works\n", fd, fcntl(fd, F_GETFD) < 0 ? "CLOSED" : "open");
  return 0; }

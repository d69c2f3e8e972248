/* vfork shares the parent's memory until the child execs or exits (man 2 vfork:
 * "the child shares all memory with its parent, including the stack"), and the parent
 * sleeps until then. posix_spawn builds on that sharing to report an exec failure.
 * Natively every line below is deterministic; a vfork that copies memory prints 0s. */
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;
static volatile int written_by_child;

static void child_writes(void) {
    pid_t pid = vfork();
    if (pid == 0) {
        written_by_child = 42;  /* allowed in practice; glibc's own posix_spawn does it */
        _exit(3);
    }
    int status;
    waitpid(pid, &status, 0);
    printf("after vfork: global %d, status %d\n", written_by_child, WEXITSTATUS(status));
}

static void child_execs(void) {
    pid_t pid = vfork();
    if (pid == 0) {
        char *argv[] = {"true-via-vfork", 0};
        execve("/nonexistent/program", argv, environ);
        written_by_child = errno;  /* the exec failed: say why through shared memory */
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    printf("failed exec: errno seen by parent %s, status %d\n", strerror(written_by_child), WEXITSTATUS(status));
}

static void spawn_missing(void) {
    pid_t pid;
    char *argv[] = {"missing", 0};
    int err = posix_spawn(&pid, "/nonexistent/program", 0, 0, argv, environ);
    printf("posix_spawn of a missing program: %s\n", strerror(err));
}

int main(void) {
    child_writes();
    child_execs();
    spawn_missing();
    return 0;
}

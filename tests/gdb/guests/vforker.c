/* vfork: the child _exits (no argument) or execs this program again ("exec"); the
   parent sleeps meanwhile, then reports. work() runs in both, in the shared memory. */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int work(int n) {
    return n * 2;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "child") == 0) {
        printf("exec'd child %d\n", work(3));
        return 3;
    }
    fflush(stdout);
    pid_t child = vfork();
    if (child == 0) {
        int n = work(20);
        if (argc > 1)
            execl(argv[0], argv[0], "child", (char *)0);
        _exit(n / 8);
    }
    int status;
    waitpid(child, &status, 0);
    printf("parent %d, child exited %d\n", work(1), WEXITSTATUS(status));
    return 0;
}

/* fork with detach-on-fork off: gdb keeps parent and child as two inferiors. The parent's
   work() runs before it waits, so either may be stopped while the other goes on. */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int work(int n) {
    return n * 2;
}

int main(void) {
    pid_t child = fork();
    if (child == 0) {
        printf("child %d\n", work(20));
        return 5;
    }
    int got = work(1);
    int status;
    waitpid(child, &status, 0);
    printf("parent %d, child exited %d\n", got, WEXITSTATUS(status));
    return 0;
}

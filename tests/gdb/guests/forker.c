/* fork: gdb follows the parent; a breakpoint in shared text must not stop the child. */
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
    int status;
    waitpid(child, &status, 0);
    printf("parent %d, child exited %d\n", work(1), WEXITSTATUS(status));
    return 0;
}

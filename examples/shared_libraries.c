/* Demo: shared libraries share frames. A dynamically linked program starts two copies of
 * itself (fork + execve, so each gets a fresh address space that ld.so fills by mapping
 * libc.so.6 from the file). Both stay alive until both have run the same libc code, then
 * exit: the sandbox's fault records show which physical frames each one's libc pages got. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void run_child(const char *name, int ready_fd, int go_fd) {
    char line[64];
    snprintf(line, sizeof line, "%s: %s", name, strerror(2)); /* libc code and data, touched */
    printf("child %s running: libc says \"%s\"\n", name, line);
    fflush(stdout);
    write(ready_fd, "r", 1);
    char byte;
    while (read(go_fd, &byte, 1) > 0) /* until the parent closes the pipe: both alive at once */
        ;
}

int main(int argc, char **argv) {
    if (argc == 4) {
        run_child(argv[1], atoi(argv[2]), atoi(argv[3]));
        return 0;
    }
    int ready[2], go[2];
    if (pipe(ready) || pipe(go)) return 1;
    char ready_fd[16], go_fd[16];
    snprintf(ready_fd, sizeof ready_fd, "%d", ready[1]);
    snprintf(go_fd, sizeof go_fd, "%d", go[0]);
    const char *names[] = {"A", "B"};
    for (int i = 0; i < 2; i++) {
        if (fork() == 0) {
            close(go[1]);
            execl("/proc/self/exe", argv[0], names[i], ready_fd, go_fd, (char *)NULL);
            _exit(127);
        }
    }
    close(go[0]);
    char byte;
    for (int i = 0; i < 2; i++) read(ready[0], &byte, 1);
    close(go[1]);
    while (wait(NULL) > 0)
        ;
    printf("both children ran the same libc\n");
    return 0;
}

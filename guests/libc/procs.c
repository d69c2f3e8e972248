/* procs: process semantics, one line per check (values printed are the same natively).
 * fork copy-on-write, exit and signal statuses, kill, pipes (blocking, EOF, EPIPE and
 * SIGPIPE), execve, waitid, process groups, memfd shared memory that grows after mmap. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static int global = 1;
static char heap_marker[16] = "parent";

static void show(const char *what, int status) {
    if (WIFEXITED(status)) printf("%s: exited %d\n", what, WEXITSTATUS(status));
    else if (WIFSIGNALED(status)) printf("%s: killed by signal %d\n", what, WTERMSIG(status));
    else printf("%s: status %#x\n", what, status);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    int status;
    pid_t me = getpid();
    pid_t child = fork();
    if (child == 0) {
        global = 2;
        strcpy(heap_marker, "child");
        _exit(getppid() == me ? 3 : 4);
    }
    waitpid(child, &status, 0);
    show("child exit", status);
    printf("copy-on-write: global %d marker %s\n", global, heap_marker);

    child = fork();
    if (child == 0) { for (;;) pause(); }
    kill(child, SIGTERM);
    waitpid(child, &status, 0);
    show("SIGTERM", status);

    child = fork();
    if (child == 0) { signal(SIGTERM, SIG_IGN); for (;;) sched_yield(); }
    sleep(0);
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
    show("SIGKILL", status);

    int fds[2];
    pipe(fds);
    child = fork();
    if (child == 0) {  /* says it runs, then computes without ever entering the kernel */
        write(fds[1], "r", 1);
        for (;;) __asm__ volatile("");
    }
    char ready;
    read(fds[0], &ready, 1);  /* the parent runs again only if the spinner is preempted */
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
    show("a spinning child is preempted and killed", status);
    close(fds[0]);
    close(fds[1]);

    pipe(fds);
    child = fork();
    if (child == 0) {
        close(fds[1]);
        char buf[4096];
        long total = 0, n;
        unsigned long sum = 0;
        while ((n = read(fds[0], buf, sizeof buf)) > 0) {
            for (long i = 0; i < n; i++) sum += (unsigned char)buf[i];
            total += n;
        }
        printf("child read %ld bytes, sum %lu, then EOF\n", total, sum);
        _exit(0);
    }
    close(fds[0]);
    static char block[300000];
    for (size_t i = 0; i < sizeof block; i++) block[i] = (char)(i * 7);
    size_t done = 0;
    while (done < sizeof block) done += (size_t)write(fds[1], block + done, sizeof block - done);
    close(fds[1]);
    waitpid(child, &status, 0);
    show("pipe reader", status);

    pipe(fds);
    close(fds[0]);
    signal(SIGPIPE, SIG_IGN);
    errno = 0;
    long w = write(fds[1], "x", 1);
    printf("write with no reader, SIGPIPE ignored: %ld %s\n", w, strerror(errno));
    signal(SIGPIPE, SIG_DFL);
    child = fork();
    if (child == 0) { write(fds[1], "x", 1); _exit(0); }
    waitpid(child, &status, 0);
    show("write with no reader", status);
    close(fds[1]);

    child = fork();
    if (child == 0) {
        char *args[] = {"/bin/busybox", "echo", "exec'd busybox echo", NULL};
        execv(args[0], args);
        _exit(127);
    }
    waitpid(child, &status, 0);
    show("execve", status);
    child = fork();
    if (child == 0) { execl("/nonexistent", "x", NULL); _exit(errno == ENOENT ? 5 : 6); }
    waitpid(child, &status, 0);
    show("execve of a missing file", status);

    child = fork();
    if (child == 0) _exit(9);
    siginfo_t info;
    memset(&info, 0, sizeof info);
    waitid(P_PID, (id_t)child, &info, WEXITED);
    printf("waitid: code %s status %d pid ok %d\n", info.si_code == CLD_EXITED ? "CLD_EXITED" : "?",
           info.si_status, info.si_pid == child);
    errno = 0;
    int none = wait(&status);
    printf("wait with no children: %d %s\n", none, strerror(errno));

    child = fork();
    if (child == 0) { setpgid(0, 0); _exit(getpgrp() == getpid() ? 0 : 1); }
    waitpid(child, &status, 0);
    show("own process group", status);

    int mfd = memfd_create("shared", 0);
    ftruncate(mfd, 4096);
    char *shm = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    child = fork();
    if (child == 0) { strcpy(shm, "written by the child"); _exit(0); }
    waitpid(child, &status, 0);
    printf("memfd page 0: %s\n", shm);
    ftruncate(mfd, 8192);
    child = fork();
    if (child == 0) { strcpy(shm + 4096, "second page after growing"); _exit(0); }
    waitpid(child, &status, 0);
    printf("memfd page 1: %s\n", shm + 4096);
    char *anon = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    child = fork();
    if (child == 0) { strcpy(anon, "anonymous shared"); _exit(0); }
    waitpid(child, &status, 0);
    printf("MAP_SHARED|MAP_ANONYMOUS: %s\n", anon);
    return 0;
}

/* A guest whose system calls are deterministic, for comparing the sandbox's trace with
 * `strace -f -s 32` of the same program run natively. argv[1] picks a scene; argv[2] is a
 * scratch directory. Nothing is printed: the traces are the output. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char path[512];

static void files(const char *dir) {
    strcpy(path, dir);
    strcat(path, "/trace-guest.txt");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    write(fd, "hello\tworld\n\"quoted\" and a long tail of text past 32\n", 53);
    write(fd, "\0\1\002\033x\177\200\377", 8);
    struct iovec iov[2] = {{"abc", 3}, {"defgh", 5}};
    writev(fd, iov, 2);
    lseek(fd, 0, SEEK_SET);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    fcntl(fd, F_GETFD);
    fcntl(fd, F_GETFL);
    close(fd);
    struct stat st;
    stat(path, &st);
    access(path, R_OK | W_OK);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    char buf[128];
    read(fd, buf, sizeof buf);
    dup2(fd, 10);
    close(10);
    close(fd);
    open("/nonexistent/file", O_RDONLY);
    umask(022);
    strcpy(path, dir);
    strcat(path, "/trace-dir");
    mkdir(path, 0750);
    rmdir(path);
    struct timespec ts = {0, 1000};
    nanosleep(&ts, NULL);
    strcpy(path, dir);
    strcat(path, "/trace-guest.txt");
    unlink(path);
}

static void processes(void) {
    int p[2];
    pipe(p);
    pid_t child = fork();
    if (child == 0) {
        usleep(20000);  /* the parent's read sleeps first: "<unfinished ...>" on every run */
        struct pollfd pfd = {p[1], POLLOUT, 0};
        poll(&pfd, 1, 0);
        write(p[1], "x", 1);
        _exit(3);
    }
    char c;
    read(p[0], &c, 1);
    int status;
    wait4(child, &status, 0, NULL);
    close(p[0]);
    close(p[1]);
}

static void attacks(void) {
    syscall(SYS_openat, AT_FDCWD, (char *)1, O_RDONLY);
    syscall(SYS_write, 1, (void *)16, 5);
    syscall(SYS_read, 0, (void *)0xffffffffffff0000, 4);
    syscall(SYS_newfstatat, AT_FDCWD, "/", (void *)8, 0);
    syscall(SYS_rt_sigaction, SIGUSR1, (void *)8, NULL, 8);
    syscall(SYS_poll, (void *)8, 5, 0);
    syscall(SYS_writev, 1, (void *)8, 2);
    syscall(SYS_writev, 1, (void *)8, 100000);
    syscall(SYS_pipe2, (void *)8, 0);
    syscall(SYS_close, -1);
    syscall(SYS_lseek, 99, -1, 7);
    char *page = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(page + 4096, 4096);
    memset(page, 'a', 4096);  /* a string that runs into an unmapped page */
    syscall(SYS_openat, AT_FDCWD, page, O_RDONLY);
    syscall(SYS_write, 99, page + 4090, 6);
    syscall(SYS_write, 99, page + 4090, 12);
}

static void on_usr1(int signo) { (void)signo; }

static void signals(void) {
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    kill(getpid(), SIGUSR1);
    *(volatile int *)16 = 1;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    if (!strcmp(argv[1], "files"))
        files(argc > 2 ? argv[2] : "/tmp");
    else if (!strcmp(argv[1], "processes"))
        processes();
    else if (!strcmp(argv[1], "attacks"))
        attacks();
    else if (!strcmp(argv[1], "signals"))
        signals();
    return 0;
}

/* sendfile(2) from each kind of input descriptor, into a regular file and into a pipe: the
 * count or the errno, as Linux answers (fs/read_write.c do_sendfile, fs/splice.c).
 *   sendfile_kinds kinds DIR   pipes, sockets, eventfd, devices, directories, bad descriptors
 *   sendfile_kinds tty DIR     the terminal on stdin (run on a pty; the test types "typed\n") */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

static int out_file, out_pipe[2];

static void show(const char *what, const char *into, int out, int in, off_t *offset, size_t count) {
    errno = 0;
    long n = sendfile(out, in, offset, count);
    printf("%s -> %s (%zu): %ld %s\n", what, into, count, n, n < 0 ? strerrorname_np(errno) : "");
    if (n > 0 && out == out_pipe[1]) {
        char buf[64] = {0};
        read(out_pipe[0], buf, n);
        printf("  moved \"%s\"\n", buf);
    }
}

static void each(const char *what, int in) {
    off_t offset = 0;
    show(what, "file", out_file, in, NULL, 5);
    show(what, "file", out_file, in, NULL, 0);
    show(what, "pipe", out_pipe[1], in, NULL, 5);
    show(what, "file at offset", out_file, in, &offset, 5);
}

static void kinds(const char *path, const char *self) {
    int in_pipe[2], sv[2], dgram[2];
    pipe(in_pipe);
    write(in_pipe[1], "piped data", 10);
    each("pipe", in_pipe[0]);
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    write(sv[1], "stream data", 11);
    each("unix stream", sv[0]);
    socketpair(AF_UNIX, SOCK_DGRAM, 0, dgram);
    write(dgram[1], "dgram data", 10);
    each("unix dgram", dgram[0]);
    each("eventfd", eventfd(7, EFD_NONBLOCK));
    each("/dev/zero", open("/dev/zero", O_RDONLY));
    each("directory", open("/", O_RDONLY | O_DIRECTORY));
    each("write-only file", open(path, O_WRONLY));
    each("closed", 999);
    each("program", open(self, O_RDONLY));
    show("program", "O_APPEND file", open(path, O_WRONLY | O_APPEND), open(self, O_RDONLY), NULL, 5);
}

static void terminal(void) {
    off_t offset = 0;
    show("terminal", "file", out_file, 0, NULL, 5);
    show("terminal", "file at offset", out_file, 0, &offset, 5);
    printf("ready\n");
    fflush(stdout);
    struct pollfd wait = {0, POLLIN, 0};
    poll(&wait, 1, 10000);
    show("terminal", "pipe", out_pipe[1], 0, NULL, 5);
}

int main(int argc, char **argv) {
    char path[4096];
    if (argc < 3)
        return 2;
    snprintf(path, sizeof path, "%s/sendfile-out-%d", argv[2], (int)getpid());
    alarm(20);  /* a sendfile that waits where Linux refuses ends the run */
    out_file = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    pipe(out_pipe);
    fcntl(out_pipe[1], F_SETFL, O_NONBLOCK);
    if (strcmp(argv[1], "tty") == 0)
        terminal();
    else
        kinds(path, argv[0]);
    unlink(path);
    return 0;
}

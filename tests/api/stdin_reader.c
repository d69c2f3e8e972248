/* Reads fd 0 as the Python API's stdin callback feeds it: readiness first (poll, select,
   FIONREAD), then reads of argv[1] bytes (default 5) until end of file. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <unistd.h>

static char buf[1 << 16];

int main(int argc, char **argv) {
    size_t count = argc > 1 ? strtoull(argv[1], 0, 0) : 5;
    struct pollfd p = {0, POLLIN, 0};
    int ready = poll(&p, 1, 0);
    printf("poll %d POLLIN=%d\n", ready, (p.revents & POLLIN) != 0);
    fd_set set;
    FD_ZERO(&set);
    FD_SET(0, &set);
    struct timeval now = {0, 0};
    printf("select %d\n", select(1, &set, 0, 0, &now));
    int queued = -1;
    int done = ioctl(0, FIONREAD, &queued);
    printf("FIONREAD %d %d\n", done, queued);
    ssize_t n;
    int reads = 0;
    while ((n = read(0, buf, count)) > 0) {
        reads++;
        printf("read %zd: %.*s\n", n, (int)(n > 20 ? 20 : n), buf);
    }
    printf("end %zd after %d reads\n", n, reads);
    return 0;
}

/* The attack on O_TMPFILE: unnamed files cost disk like named ones (--disk), and give it back
 * when closed (tests/files/test_listings.py). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
static char mb[1 << 20];
int main(void) {
    int failed = 0;
    for (int i = 0; i < 200; i++) {          /* 200 MiB written, 1 MiB at a time, each closed */
        int fd = open("/tmp", O_TMPFILE | O_RDWR, 0600);
        if (write(fd, mb, sizeof mb) != sizeof mb) failed++;
        close(fd);
    }
    printf("closed each: %d failed\n", failed);
    int held[40], short_writes = 0;          /* 40 MiB held open against --disk 16M */
    for (int i = 0; i < 40; i++) {
        held[i] = open("/tmp", O_TMPFILE | O_RDWR, 0600);
        if (write(held[i], mb, sizeof mb) != sizeof mb) short_writes++;
    }
    printf("held open: %d short (%s)\n", short_writes, strerror(errno));
    return 0;
}

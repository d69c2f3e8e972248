/* deeptree [LEVELS]: make a directory tree LEVELS deep (default 5000) under /tmp, then exit 0.
 * Built bottom-up by renames, so that no path is ever longer than a few bytes (no PATH_MAX
 * limit, no walk through the tree): mkdir /tmp/n; rename /tmp/t -> /tmp/n/d; rename /tmp/n ->
 * /tmp/t. Every 1000 levels a file with data; at the end the top is made unwritable (0500)
 * and the one below it unsearchable (000), as a hostile guest leaves it for the cleanup. */
#include "sys.h"

enum { SYS_open = 2, SYS_close = 3, SYS_rename = 82, SYS_mkdir = 83, SYS_chmod = 90 };
enum { O_WRONLY = 1, O_CREAT = 0100 };

static void check(long ret, const char *what) {
    if (ret < 0) {
        puts_fd(2, "deeptree: ");
        puts_fd(2, what);
        puts_fd(2, " failed\n");
        exit(1);
    }
}

int main(int argc, char **argv, char **envp) {
    (void)envp;
    long levels = argc > 1 ? atol(argv[1]) : 5000;
    check(syscall3(SYS_mkdir, "/tmp/t", 0755, 0), "mkdir /tmp/t");
    for (long i = 0; i < levels; i++) {
        check(syscall3(SYS_mkdir, "/tmp/n", 0755, 0), "mkdir /tmp/n");
        check(syscall3(SYS_rename, "/tmp/t", "/tmp/n/d", 0), "rename /tmp/t");
        check(syscall3(SYS_rename, "/tmp/n", "/tmp/t", 0), "rename /tmp/n");
        if (i % 1000 == 0) {
            long fd = syscall3(SYS_open, "/tmp/t/data", O_WRONLY | O_CREAT, 0644);
            check(fd, "open /tmp/t/data");
            check(write((int)fd, "level data\n", 11), "write");
            syscall3(SYS_close, fd, 0, 0);
        }
    }
    check(syscall3(SYS_chmod, "/tmp/t/d", 0, 0), "chmod /tmp/t/d");
    check(syscall3(SYS_chmod, "/tmp/t", 0500, 0), "chmod /tmp/t");
    put("depth ");
    put_num(levels + 1);
    put("\n");
    return 0;
}

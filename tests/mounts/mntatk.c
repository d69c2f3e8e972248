/* Attacks on the sandbox's mount(2): many mounts, a full disk quota, huge and bad
 * arguments, /dev/tty, /dev/pts and /dev/ptmx as programs probe them. The output is what
 * the sandbox must answer (some lines differ from a native run as root: see the test). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *err(long r) { return r >= 0 ? "ok" : strerror(errno); }

/* Mount many tmpfs on one directory, then take them all off again. */
static void many(void) {
    mkdir("/tmp/many", 0755);
    int n = 0;
    while (n < 1000 && mount("none", "/tmp/many", "tmpfs", 0, NULL) == 0) n++;
    printf("mounted %d: %s\n", n, strerror(errno));
    int k = 0;
    while (umount("/tmp/many") == 0) k++;
    printf("unmounted %d: %s\n", k, strerror(errno));
}

/* Fill a tmpfs to the disk quota, unmount it: the space comes back. */
static void quota(void) {
    static char block[1 << 16];
    memset(block, 'x', sizeof block);
    mkdir("/tmp/q", 0755);
    for (int round = 0; round < 3; round++) {
        printf("round %d mount: %s\n", round, err(mount("none", "/tmp/q", "tmpfs", 0, NULL)));
        int fd = open("/tmp/q/big", O_WRONLY | O_CREAT, 0644);
        long total = 0, n;
        while ((n = write(fd, block, sizeof block)) > 0) total += n;
        printf("  wrote %s, stopped by %s\n", total > (1 << 20) ? "over 1 MiB" : "little", strerror(errno));
        close(fd);
        printf("  umount: %s\n", err(umount("/tmp/q")));
    }
}

static void strings(void) {
    char *huge = malloc(1 << 20);
    memset(huge, 'a', 1 << 20);
    huge[(1 << 20) - 1] = 0;
    printf("huge type: %s\n", err(mount("x", "/tmp", huge, 0, NULL)));
    printf("huge data: %s\n", err(mount("x", "/tmp", "tmpfs", 0, huge)));
    printf("huge target: %s\n", err(mount("x", huge, "tmpfs", 0, NULL)));
    printf("no type: %s\n", err(mount("x", "/tmp", NULL, 0, NULL)));
    printf("size huge: %s\n", err(mount("x", "/tmp", "tmpfs", 0, "size=99999999999999999999999")));
    printf("mode huge: %s\n", err(mount("x", "/tmp", "tmpfs", 0, "mode=77777777777777")));
    printf("on /proc: %s\n", err(mount("x", "/proc", "tmpfs", 0, NULL)));
    printf("on /dev/null: %s\n", err(mount("x", "/dev/null", "tmpfs", 0, NULL)));
    printf("bind /: %s\n", err(mount("/", "/tmp", NULL, MS_BIND, NULL)));
    printf("bind /proc: %s\n", err(mount("/proc", "/tmp", NULL, MS_BIND, NULL)));
    printf("umount /: %s\n", err(umount("/")));
    printf("umount /dev/shm: %s\n", err(umount("/dev/shm")));
    printf("remount / rw: %s\n", err(mount(NULL, "/", NULL, MS_REMOUNT, NULL)));
    printf("move: %s\n", err(mount("/tmp", "/mnt", NULL, MS_MOVE, NULL)));
    free(huge);
}

static void dev(void) {
    printf("open /dev/tty: %s\n", err(open("/dev/tty", O_RDWR)));
    printf("open /dev/ptmx: %s\n", err(open("/dev/ptmx", O_RDWR)));
    struct stat st;
    const char *result = err(stat("/dev/pts", &st));
    printf("stat /dev/pts: %s dir %d\n", result, S_ISDIR(st.st_mode));
    DIR *d = opendir("/dev/pts");
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d))) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    printf("entries in /dev/pts: %d\n", n);
    if (d) closedir(d);
    printf("tmpfs on /dev/shm: %s\n", err(mount("none", "/dev/shm", "tmpfs", 0, NULL)));
    printf("umount it: %s\n", err(umount("/dev/shm")));
    printf("/dev/shm back: %s\n", err(access("/dev/shm", W_OK)));
}

/* The sandbox's own mounts may become read-only, never writable again. */
static void locked(void) {
    printf("root ro: %s\n", err(mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL)));
    printf("create in /tmp: %s\n", err(open("/tmp/x", O_CREAT | O_WRONLY, 0644)));
    printf("create in /dev/shm: %s\n", err(open("/dev/shm/x", O_CREAT | O_WRONLY, 0644)));
    printf("root rw: %s\n", err(mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND, NULL)));
    printf("remount /dev/shm: %s\n", err(mount(NULL, "/dev/shm", NULL, MS_REMOUNT, NULL)));
}

static void rootonly(void) {
    printf("mount as uid %d: %s\n", getuid(), err(mount("none", "/tmp", "tmpfs", 0, NULL)));
    printf("umount as uid %d: %s\n", getuid(), err(umount("/tmp")));
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *test = argc > 1 ? argv[1] : "";
    if (!strcmp(test, "many")) many();
    else if (!strcmp(test, "quota")) quota();
    else if (!strcmp(test, "strings")) strings();
    else if (!strcmp(test, "dev")) dev();
    else if (!strcmp(test, "rootonly")) rootonly();
    else if (!strcmp(test, "locked")) locked();
    else return 2;
    return 0;
}

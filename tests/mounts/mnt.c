/* mount(2) and umount2(2) of a tmpfs, as an unprivileged user in its own user and mount
 * namespace may (natively: `unshare -rm mnt DIR`; in the sandbox: its guest root). Every
 * line is deterministic: results and errno names, paths relative to DIR. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[256];

static const char *err(int r) {
    static char buf[32];
    if (r >= 0) { snprintf(buf, sizeof buf, "ok"); return buf; }
    switch (errno) {
    case EPERM: return "EPERM"; case ENOENT: return "ENOENT"; case EBUSY: return "EBUSY";
    case EINVAL: return "EINVAL"; case ENODEV: return "ENODEV"; case EFAULT: return "EFAULT";
    case ENOTDIR: return "ENOTDIR"; case EROFS: return "EROFS"; case EACCES: return "EACCES";
    case ENOSPC: return "ENOSPC"; case EEXIST: return "EEXIST"; case EAGAIN: return "EAGAIN";
    case ENAMETOOLONG: return "ENAMETOOLONG"; case EXDEV: return "EXDEV";
    default: snprintf(buf, sizeof buf, "errno %d", errno); return buf;
    }
}

#define SHOW(what, call) printf("%s: %s\n", what, err(call))

static int put(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return -1;
    int n = write(fd, text, strlen(text));
    close(fd);
    return n;
}

static void cat(const char *path) {
    char buf[64] = {0};
    int fd = open(path, O_RDONLY);
    if (fd < 0) { printf("  %s: %s\n", path, err(-1)); return; }
    int n = read(fd, buf, sizeof buf - 1);
    close(fd);
    printf("  %s: %d %s\n", path, n, buf);
}

/* The lines of /proc/self/mounts under DIR, DIR shown as "D". */
static void mounts(const char *label) {
    FILE *f = fopen("/proc/self/mounts", "r");
    char line[512];
    printf("%s:\n", label);
    while (f && fgets(line, sizeof line, f)) {
        char *at = strstr(line, dir);
        if (!at || at[strlen(dir)] != '/') continue;
        printf("  %.*sD%s", (int)(at - line), line, at + strlen(dir));
    }
    if (f) fclose(f);
}

/* Only the mount point and whether it is read-only (a bind shows its source's file
 * system, the host's natively). */
static void brief(const char *label) {
    FILE *f = fopen("/proc/self/mounts", "r");
    char line[512], point[300], opts[200];
    printf("%s:\n", label);
    while (f && fgets(line, sizeof line, f)) {
        if (sscanf(line, "%*s %299s %*s %199s", point, opts) != 2) continue;
        if (strncmp(point, dir, strlen(dir)) || point[strlen(dir)] != '/') continue;
        printf("  D%s %.2s\n", point + strlen(dir), opts);
    }
    if (f) fclose(f);
}

static void mode_of(const char *path) {
    struct stat st;
    if (stat(path, &st) < 0) { printf("  stat %s: %s\n", path, err(-1)); return; }
    printf("  %s: mode %o uid %d dir %d\n", path, st.st_mode & 07777, st.st_uid, S_ISDIR(st.st_mode));
}

static void basics(void) {
    mkdir("m", 0755);
    put("m/under", "covered\n");
    SHOW("mount tmpfs", mount("none", "m", "tmpfs", 0, NULL));
    mode_of("m");
    cat("m/under");
    SHOW("write in tmpfs", put("m/a", "hello\n"));
    cat("m/a");
    mounts("after mount");
    SHOW("stack a second", mount("second", "m", "tmpfs", 0, "size=1m,mode=0700"));
    mode_of("m");
    cat("m/a");
    mounts("stacked");
    SHOW("umount second", umount2("m", 0));
    cat("m/a");
    SHOW("umount first", umount("m"));
    cat("m/under");
    cat("m/a");
    SHOW("umount again", umount("m"));
    SHOW("umount missing", umount("nothere"));
    SHOW("umount root of dir", umount(dir));
}

static void busy(void) {
    SHOW("mount", mount("none", "m", "tmpfs", 0, NULL));
    mkdir("m/sub", 0755);
    SHOW("chdir in", chdir("m/sub"));
    char path[300];
    snprintf(path, sizeof path, "%s/m", dir);
    SHOW("umount with cwd inside", umount2(path, 0));
    SHOW("chdir out", chdir(dir));
    int fd = open("m/f", O_RDWR | O_CREAT, 0600);
    SHOW("umount with a file open", umount2("m", 0));
    pid_t child = fork();
    if (child == 0) _exit(umount2("m", 0) < 0 && errno == EBUSY ? 0 : 1);
    int status;
    waitpid(child, &status, 0);
    printf("child sees busy: %d\n", WEXITSTATUS(status));
    SHOW("lazy umount", umount2("m", MNT_DETACH));
    SHOW("detached file still writes", write(fd, "x", 1));
    close(fd);
    cat("m/f");
    SHOW("umount not mounted", umount2("m", MNT_DETACH));
}

static void flags(void) {
    SHOW("bad umount flags", umount2("m", 0x100));
    SHOW("expire with detach", umount2("m", MNT_EXPIRE | MNT_DETACH));
    SHOW("unknown fs", mount("x", "m", "nosuchfs", 0, NULL));
    SHOW("ext4", mount("x", "m", "ext4", 0, NULL));
    SHOW("bad option", mount("x", "m", "tmpfs", 0, "bogus"));
    SHOW("bad size", mount("x", "m", "tmpfs", 0, "size=abc"));
    SHOW("bad mode", mount("x", "m", "tmpfs", 0, "mode=99"));
    SHOW("no target", mount("x", "nothere", "tmpfs", 0, NULL));
    SHOW("on a file", mount("x", "m/under", "tmpfs", 0, NULL));
    SHOW("target fault", mount("x", (char *)8, "tmpfs", 0, NULL));
    SHOW("type fault", mount("x", "m", (char *)8, 0, NULL));
    SHOW("data fault", mount("x", "m", "tmpfs", 0, (void *)8));
    SHOW("source fault", mount((char *)8, "m", "tmpfs", 0, NULL));
    SHOW("umount fault", umount2((char *)8, 0));
    SHOW("MS_NOUSER", mount("x", "m", "tmpfs", 1UL << 31, NULL));
    SHOW("private root", mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL));
    SHOW("private not a mount", mount(NULL, "m", NULL, MS_PRIVATE, NULL));
    SHOW("private and shared", mount(NULL, "/", NULL, MS_PRIVATE | MS_SHARED, NULL));
    SHOW("magic number", mount("x", "m", "tmpfs", 0xC0ED0000 | MS_NOSUID, NULL));
    SHOW("umount", umount("m"));
    SHOW("force", mount("x", "m", "tmpfs", 0, NULL));
    SHOW("umount force", umount2("m", MNT_FORCE));
    SHOW("remount not a mount", mount(NULL, "m", NULL, MS_REMOUNT | MS_RDONLY, NULL));
}

static void readonly(void) {
    SHOW("mount ro", mount("x", "m", "tmpfs", MS_RDONLY, NULL));
    SHOW("create on ro", put("m/a", "no\n"));
    SHOW("mkdir on ro", mkdir("m/d", 0755));
    SHOW("remount rw", mount(NULL, "m", NULL, MS_REMOUNT, NULL));
    SHOW("create on rw", put("m/a", "yes\n"));
    mounts("rw again");
    SHOW("remount ro", mount(NULL, "m", NULL, MS_REMOUNT | MS_RDONLY, "size=2m"));
    SHOW("write on ro", put("m/a", "again\n"));
    cat("m/a");
    mounts("ro");
    SHOW("umount", umount("m"));
}

static void bind(void) {
    mkdir("src", 0755);
    put("src/file", "bound\n");
    mkdir("b", 0755);
    SHOW("bind", mount("src", "b", NULL, MS_BIND, NULL));
    cat("b/file");
    SHOW("write through bind", put("b/new", "both\n"));
    cat("src/new");
    SHOW("rename across bind", rename("b/new", "src/moved"));
    SHOW("bind dir on file", mount("src", "m/under", NULL, MS_BIND, NULL));
    SHOW("bind missing", mount("nothere", "b", NULL, MS_BIND, NULL));
    SHOW("bind ro remount", mount(NULL, "b", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL));
    SHOW("write ro bind", put("b/x", "no\n"));
    SHOW("write source", put("src/x", "yes\n"));
    brief("bound");
    SHOW("umount bind", umount("b"));
    cat("b/file");
}

/* A bind of a tmpfs keeps it alive; no read-only remount under a writer. */
static void share(void) {
    SHOW("mount", mount("x", "m", "tmpfs", 0, NULL));
    put("m/f", "kept\n");
    mkdir("b", 0755);
    SHOW("bind the tmpfs", mount("m", "b", NULL, MS_BIND, NULL));
    int fd = open("m/w", O_WRONLY | O_CREAT, 0644);
    SHOW("remount ro with a writer", mount(NULL, "m", NULL, MS_REMOUNT | MS_RDONLY, NULL));
    SHOW("bind ro with a writer", mount(NULL, "b", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL));
    close(fd);
    SHOW("remount ro", mount(NULL, "m", NULL, MS_REMOUNT | MS_RDONLY, NULL));
    SHOW("remount rw", mount(NULL, "m", NULL, MS_REMOUNT, NULL));
    SHOW("bind rw again", mount(NULL, "b", NULL, MS_REMOUNT | MS_BIND, NULL));
    SHOW("umount the first", umount("m"));
    cat("b/f");
    SHOW("write through the bind", put("b/g", "new\n"));
    cat("b/g");
    mkdir("b/sub", 0755);
    mkdir("c", 0755);
    SHOW("mount inside the bind", mount("y", "b/sub", "tmpfs", 0, NULL));
    SHOW("bind a tree with a mount", mount("b", "c", NULL, MS_BIND, NULL));
    SHOW("umount the bind, busy", umount("b"));
    SHOW("umount inside", umount("b/sub"));
    SHOW("umount c", umount("c"));
    SHOW("umount the bind", umount("b"));
    cat("b/f");
}

static void noexec(const char *self) {
    SHOW("mount noexec", mount("x", "m", "tmpfs", MS_NOEXEC | MS_NOSUID | MS_NODEV, NULL));
    mounts("noexec");
    int in = open(self, O_RDONLY), out = open("m/prog", O_WRONLY | O_CREAT, 0755);
    char buf[65536];
    int n;
    while ((n = read(in, buf, sizeof buf)) > 0) write(out, buf, n);
    close(in);
    close(out);
    pid_t child = fork();
    if (child == 0) {
        char *argv[] = {"prog", "hello", NULL};
        execv("m/prog", argv);
        printf("exec noexec: %s\n", err(-1));
        fflush(stdout);
        _exit(3);
    }
    int status;
    waitpid(child, &status, 0);
    printf("child status %d\n", WEXITSTATUS(status));
    SHOW("remount exec", mount(NULL, "m", NULL, MS_REMOUNT, NULL));
    child = fork();
    if (child == 0) {
        char *argv[] = {"prog", "hello", NULL};
        execv("m/prog", argv);
        _exit(3);
    }
    waitpid(child, &status, 0);
    printf("child status %d\n", WEXITSTATUS(status));
    SHOW("umount", umount("m"));
}

static void size(void) {
    SHOW("mount 8k", mount("x", "m", "tmpfs", 0, "size=8k"));
    static char big[65536];
    int fd = open("m/big", O_WRONLY | O_CREAT, 0644);
    int n = write(fd, big, sizeof big);
    printf("write 64k: %d\n", n);
    SHOW("write more", write(fd, big, 4096));
    close(fd);
    SHOW("umount", umount("m"));
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "hello") == 0) { printf("exec ran\n"); return 7; }
    if (argc < 3) { fprintf(stderr, "usage: mnt DIR TEST\n"); return 2; }
    snprintf(dir, sizeof dir, "%s", argv[1]);
    mkdir(dir, 0755);
    if (chdir(dir) < 0) { perror("chdir"); return 2; }
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *test = argv[2];
    if (!strcmp(test, "basics")) basics();
    else if (!strcmp(test, "busy")) { mkdir("m", 0755); busy(); }
    else if (!strcmp(test, "flags")) { mkdir("m", 0755); put("m/under", "x"); flags(); }
    else if (!strcmp(test, "readonly")) { mkdir("m", 0755); readonly(); }
    else if (!strcmp(test, "bind")) { mkdir("m", 0755); put("m/under", "x"); bind(); }
    else if (!strcmp(test, "share")) { mkdir("m", 0755); share(); }
    else if (!strcmp(test, "noexec")) { mkdir("m", 0755); noexec(argv[0]); }
    else if (!strcmp(test, "size")) { mkdir("m", 0755); size(); }
    else { fprintf(stderr, "unknown test %s\n", test); return 2; }
    return 0;
}

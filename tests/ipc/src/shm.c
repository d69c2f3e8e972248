/* System V shared memory, run natively and in the sandbox: every line printed must match.
 * Every segment is IPC_PRIVATE (or a key derived from the pid) and removed before exit,
 * even on failure, so that a native run leaves the host's IPC namespace as it found it. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_IDS 6000
static int ids[MAX_IDS];
static int nids;

static void cleanup(void) {
    for (int i = 0; i < nids; i++)
        shmctl(ids[i], IPC_RMID, NULL);
    nids = 0;
}

static int track(int id) {
    if (id >= 0 && nids < MAX_IDS)
        ids[nids++] = id;
    return id;
}

static void result(const char *what, long r) {
    if (r == -1)
        printf("%s: -1 %s\n", what, strerrorname_np(errno));
    else
        printf("%s: ok\n", what);
}

static void check(int ok, const char *what) {
    if (!ok) {
        printf("FAILED: %s (errno %s)\n", what, strerrorname_np(errno));
        cleanup();
        exit(1);
    }
}

static unsigned long nattch(int id) {
    struct shmid_ds ds;
    check(shmctl(id, IPC_STAT, &ds) == 0, "IPC_STAT");
    return ds.shm_nattch;
}

static int wait_child(pid_t pid) {
    int status;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status))
        return 1000 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

/* Parent and child share the frames of one segment; IPC_STAT reports what happened. */
static void basic(void) {
    int id = track(shmget(IPC_PRIVATE, 10000, IPC_CREAT | 0600));
    check(id >= 0, "shmget");
    struct shmid_ds ds;
    check(shmctl(id, IPC_STAT, &ds) == 0, "stat");
    printf("segsz %zu nattch %lu cpid_is_me %d lpid %d mode %o atime %d\n", ds.shm_segsz, ds.shm_nattch,
           ds.shm_cpid == getpid(), ds.shm_lpid, ds.shm_perm.mode, ds.shm_atime != 0);
    char *p = shmat(id, NULL, 0);
    check(p != (void *)-1, "shmat");
    printf("aligned %d zero %d nattch %lu\n", ((uintptr_t)p & 4095) == 0, p[0] == 0 && p[9999] == 0, nattch(id));
    strcpy(p, "from parent");
    p[12287] = 'T'; /* the rest of the last page belongs to the attach too */
    pid_t pid = fork();
    if (pid == 0) {
        printf("child sees '%s', nattch %lu\n", p, nattch(id));
        strcpy(p + 100, "from child");
        _exit(0);
    }
    printf("child status %d\n", wait_child(pid));
    printf("parent sees '%s' tail %c nattch %lu\n", p + 100, p[12287], nattch(id));
    check(shmctl(id, IPC_STAT, &ds) == 0, "stat");
    printf("lpid_is_me %d atime %d\n", ds.shm_lpid == getpid(), ds.shm_atime != 0);
    check(shmdt(p) == 0, "shmdt");
    check(shmctl(id, IPC_STAT, &ds) == 0, "stat");
    printf("after shmdt nattch %lu dtime %d\n", ds.shm_nattch, ds.shm_dtime != 0);
    cleanup();
}

/* What a process wrote stays after every attach is gone; a later attach sees it. */
static void persist(void) {
    int id = track(shmget(IPC_PRIVATE, 3 * 4096, 0600));
    char *p = shmat(id, NULL, 0);
    check(p != (void *)-1, "shmat");
    strcpy(p + 8192, "kept");
    check(shmdt(p) == 0, "shmdt");
    pid_t pid = fork();
    if (pid == 0) {
        char *q = shmat(id, NULL, SHM_RDONLY);
        printf("child reads '%s'\n", q + 8192);
        _exit(0); /* exits attached: the attach goes with it */
    }
    int child_status = wait_child(pid);  /* first: C leaves the order of arguments open */
    printf("child status %d nattch %lu\n", child_status, nattch(id));
    p = shmat(id, NULL, 0);
    printf("again '%s'\n", p + 8192);
    shmdt(p);
    cleanup();
}

/* IPC_RMID while attached: the key goes, the segment stays until the last detach. */
static void rmid(void) {
    key_t key = 0x5a000000 | (getpid() & 0xffff);
    int id = track(shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0600));
    check(id >= 0, "shmget key");
    result("again by key", shmget(key, 4096, 0600) == id ? 0 : -1);
    result("excl", shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0600));
    result("larger", shmget(key, 8192, 0600));
    char *p = shmat(id, NULL, 0);
    strcpy(p, "alive");
    pid_t pid = fork();
    if (pid == 0) {
        char *q = shmat(id, NULL, 0);
        sleep(0);
        printf("child: '%s' nattch %lu\n", q, nattch(id));
        _exit(0);
    }
    wait_child(pid);
    check(shmctl(id, IPC_RMID, NULL) == 0, "rmid");
    struct shmid_ds ds;
    check(shmctl(id, IPC_STAT, &ds) == 0, "stat after rmid");
    printf("after rmid: key %#x dest %d nattch %lu\n", ds.shm_perm.__key, !!(ds.shm_perm.mode & SHM_DEST),
           ds.shm_nattch);
    result("by key after rmid", shmget(key, 4096, 0600));
    char *q = shmat(id, NULL, 0); /* Linux still attaches a removed segment by id */
    printf("second attach sees '%s'\n", q == (void *)-1 ? "(failed)" : q);
    shmdt(q);
    printf("still there: %d\n", shmctl(id, IPC_STAT, &ds) == 0);
    check(shmdt(p) == 0, "last shmdt");
    result("stat after last detach", shmctl(id, IPC_STAT, &ds));
    nids = 0;
}

/* An exec drops the attaches; the new image sees the segment by id only. */
static void exec_child(int id) {
    printf("exec'd child: nattch %lu\n", nattch(id));
    char *p = shmat(id, NULL, 0);
    printf("exec'd child reads '%s'\n", p);
    exit(0);
}

static void exec_drops(const char *self) {
    int id = track(shmget(IPC_PRIVATE, 4096, 0600));
    char *p = shmat(id, NULL, 0);
    strcpy(p, "before exec");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        char arg[32];
        snprintf(arg, sizeof arg, "%d", id);
        execl(self, self, "exec-child", arg, (char *)NULL);
        _exit(127);
    }
    int status = wait_child(pid);  /* before nattch: C leaves the order of arguments open */
    printf("status %d nattch %lu\n", status, nattch(id));
    shmdt(p);
    cleanup();
}

static void errors(void) {
    struct shmid_ds ds;
    result("size 0", shmget(IPC_PRIVATE, 0, 0600));
    result("size ~0", shmget(IPC_PRIVATE, (size_t)-1, 0600));
    result("size 2^63", shmget(IPC_PRIVATE, (size_t)1 << 63, 0600));
    result("no such key", shmget(0x5b000000 | (getpid() & 0xffff), 4096, 0600));
    result("bad id", (long)shmat(0x7fff0000, NULL, 0));
    result("negative id", (long)shmat(-1, NULL, 0));
    result("stat negative", shmctl(-5, IPC_STAT, &ds));
    result("bad cmd", shmctl(0, 999, &ds));
    result("negative cmd", shmctl(0, -1, &ds));
    int id = track(shmget(IPC_PRIVATE, 8192, 0600));
    result("stat bad pointer", shmctl(id, IPC_STAT, (void *)16));
    result("set bad pointer", shmctl(id, IPC_SET, (void *)16));
    result("unaligned", (long)shmat(id, (void *)0x7000001234, 0));
    result("remap without address", (long)shmat(id, NULL, SHM_REMAP));
    char *r = shmat(id, (void *)0x7000001234, SHM_RND);
    printf("SHM_RND: %p\n", r);
    result("over an attach", (long)shmat(id, (void *)0x7000001000, 0));
    result("over it with SHM_REMAP", (long)shmat(id, (void *)0x7000001000, SHM_REMAP));
    result("shmdt unaligned", shmdt(r + 1));
    result("shmdt nothing", shmdt((void *)0x6000000000));
    result("shmdt middle", shmdt(r + 4096));
    result("shmdt", shmdt(r));
    result("shmdt twice", shmdt(r));
    void *anon = mmap((void *)0x7100000000, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    result("over mmap", (long)shmat(id, anon, 0));
    result("over mmap, SHM_REMAP", (long)shmat(id, anon, SHM_REMAP));
    result("shmdt it", shmdt(anon));
    result("kernel address", (long)shmat(id, (void *)0xffff800000000000, 0));
    result("non-canonical", (long)shmat(id, (void *)0x0000800000000000, 0));
    result("last user page", (long)shmat(id, (void *)0x00007ffffffff000, 0));
    result("wraps", (long)shmat(id, (void *)0xfffffffffffff000, 0));
    char *ro = shmat(id, NULL, SHM_RDONLY);
    printf("read-only reads %d\n", ro[0]);
    result("mprotect write on read-only", mprotect(ro, 4096, PROT_READ | PROT_WRITE));
    pid_t pid = fork();
    if (pid == 0) {
        ro[0] = 1;
        _exit(0);
    }
    printf("write to read-only: %d\n", wait_child(pid));
    shmdt(ro);
    result("lock", shmctl(id, SHM_LOCK, NULL));
    check(shmctl(id, IPC_STAT, &ds) == 0, "stat");
    printf("locked %d\n", !!(ds.shm_perm.mode & SHM_LOCKED));
    result("unlock", shmctl(id, SHM_UNLOCK, NULL));
    ds.shm_perm.mode = 0640;
    result("set", shmctl(id, IPC_SET, &ds));
    check(shmctl(id, IPC_STAT, &ds) == 0, "stat");
    printf("mode %o\n", ds.shm_perm.mode);
    ds.shm_perm.uid = (uid_t)-1;
    result("set uid -1", shmctl(id, IPC_SET, &ds));
    struct shminfo info;
    printf("IPC_INFO %d\n", shmctl(0, IPC_INFO, (struct shmid_ds *)&info) >= 0);
    printf("shmmin %lu shmmni %lu\n", info.shmmin, info.shmmni);
    struct shm_info sinfo;
    printf("SHM_INFO %d\n", shmctl(0, SHM_INFO, (struct shmid_ds *)&sinfo) >= 0);
    int index = id & 0x7fff;
    printf("SHM_STAT gives the id: %d\n", shmctl(index, SHM_STAT, &ds) == id);
    printf("SHM_STAT_ANY gives the id: %d\n", shmctl(index, SHM_STAT_ANY, &ds) == id);
    cleanup();
}

/* Many segments: the limit is met with an errno, never a crash; all are removed. */
static void many(void) {
    int made = 0, err = 0;
    while (made < MAX_IDS) {
        int id = track(shmget(IPC_PRIVATE, 4096, 0600));
        if (id < 0) {
            err = errno;
            break;
        }
        made++;
    }
    printf("bounded: %d\n", made < MAX_IDS && (err == ENOSPC || err == ENFILE || err == ENOMEM));
    cleanup();
    int id = track(shmget(IPC_PRIVATE, 4096, 0600));
    printf("after removal: %d\n", id >= 0);
    cleanup();
}

/* /proc/self/maps names an attach as Linux does. */
static void maps(void) {
    int id = track(shmget(IPC_PRIVATE, 4096, 0600));
    char *p = shmat(id, NULL, 0);
    char line[512];
    FILE *f = fopen("/proc/self/maps", "r");
    while (fgets(line, sizeof line, f)) {
        unsigned long start;
        char perms[8];
        sscanf(line, "%lx-%*lx %7s", &start, perms);
        if (start == (unsigned long)p)
            printf("%s %s", perms, strstr(line, "/SYSV") ? strstr(line, "/SYSV") : "(no name)\n");
    }
    fclose(f);
    shmdt(p);
    cleanup();
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *what = argc > 1 ? argv[1] : "";
    if (!strcmp(what, "basic"))
        basic();
    else if (!strcmp(what, "persist"))
        persist();
    else if (!strcmp(what, "rmid"))
        rmid();
    else if (!strcmp(what, "exec"))
        exec_drops(argv[0]);
    else if (!strcmp(what, "exec-child"))
        exec_child(atoi(argv[2]));
    else if (!strcmp(what, "errors"))
        errors();
    else if (!strcmp(what, "many"))
        many();
    else if (!strcmp(what, "maps"))
        maps();
    else
        return 2;
    return 0;
}

/* futex(2) between processes on shared memory (no FUTEX_PRIVATE_FLAG): MAP_SHARED anonymous
 * memory, a System V segment and a shared file mapping. Each side sleeps on a word until
 * the other changes it and wakes it; a wake that does not reach the sleeper hangs (the
 * sandbox reports a deadlock), so the output shows it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static long futex(uint32_t *word, int op, uint32_t val) { return syscall(SYS_futex, word, op, val, NULL, NULL, 0); }

static void wait_for(uint32_t *word, uint32_t value) {
    while (__atomic_load_n(word, __ATOMIC_SEQ_CST) != value)
        futex(word, FUTEX_WAIT, __atomic_load_n(word, __ATOMIC_SEQ_CST));
}

static void set_and_wake(uint32_t *word, uint32_t value) {
    __atomic_store_n(word, value, __ATOMIC_SEQ_CST);
    futex(word, FUTEX_WAKE, 1);
}

/* Ten round trips: the child waits for odd values, the parent for even ones. */
static void ping_pong(const char *what, uint32_t *page) {
    uint32_t *word = page + 100;
    *word = 0;
    pid_t pid = fork();
    if (pid == 0) {
        for (uint32_t i = 1; i < 20; i += 2) {
            wait_for(word, i);
            usleep(1000);
            set_and_wake(word, i + 1);
        }
        _exit(0);
    }
    for (uint32_t i = 0; i < 20; i += 2) {
        usleep(1000);
        set_and_wake(word, i + 1);
        wait_for(word, i + 2);
    }
    int status;
    waitpid(pid, &status, 0);
    printf("%s: word %u, child status %d\n", what, *word, status);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    uint32_t *anon = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ping_pong("MAP_SHARED|MAP_ANONYMOUS", anon);

    int id = shmget(IPC_PRIVATE, 4096, 0600);
    uint32_t *seg = shmat(id, NULL, 0);
    shmctl(id, IPC_RMID, NULL); /* goes with the last detach, even if this program fails */
    ping_pong("shmat", seg);

    char path[] = "/tmp/futex-XXXXXX";
    int fd = mkstemp(path);
    unlink(path);
    ftruncate(fd, 4096);
    uint32_t *file = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ping_pong("shared file", file);
    return 0;
}

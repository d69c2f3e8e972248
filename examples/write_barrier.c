/* Demo 4, a user-level write barrier: the heap is made read-only; a SIGSEGV handler records
 * each page written and gives it write access back. Garbage collectors and checkpointers
 * track dirty pages this way. */
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>

#define PAGES 32
static char *heap;
static int dirty[PAGES], ndirty;

static void on_write(int sig, siginfo_t *si, void *uc) {
    (void)sig; (void)uc;
    long page = ((char *)si->si_addr - heap) / 4096;
    dirty[ndirty++] = (int)page;
    mprotect(heap + page * 4096, 4096, PROT_READ | PROT_WRITE);
}

int main(void) {
    heap = mmap(NULL, PAGES * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (int i = 0; i < PAGES; i++) heap[i * 4096] = 1;
    struct sigaction sa = {.sa_sigaction = on_write, .sa_flags = SA_SIGINFO};
    sigaction(SIGSEGV, &sa, NULL);
    mprotect(heap, PAGES * 4096, PROT_READ);
    int writes[] = {3, 7, 8, 20, 7, 3};
    for (int i = 0; i < 6; i++) heap[writes[i] * 4096 + 100] = 2;
    printf("dirty pages:");
    for (int i = 0; i < ndirty; i++) printf(" %d", dirty[i]);
    printf(" (%d of %d)\n", ndirty, PAGES);
    return 0;
}

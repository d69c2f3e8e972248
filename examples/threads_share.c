/* Demo: threads share one page table. Two threads (clone with CLONE_VM | CLONE_THREAD) write
 * to one shared buffer and each to its own stack: every fault lands in the one address space,
 * attributed to the thread that took it, and each thread runs on a stack region of its own. */
#include <pthread.h>
#include <stdio.h>

#define PAGES 16
char shared[2 * PAGES * 4096];  /* in the bss: one region, seen by both threads */

static void *writer(void *arg) {
    long which = (long)arg;
    volatile char scratch[8 * 4096];  /* on this thread's own stack: 8 pages it faults in */
    for (int i = 0; i < 8; i++) scratch[i * 4096] = (char)which;
    for (int i = 0; i < PAGES; i++) shared[(which * PAGES + i) * 4096] = scratch[0];
    return NULL;
}

int main(void) {
    pthread_t a, b;
    pthread_create(&a, NULL, writer, (void *)0);  /* both alive at once: two stacks */
    pthread_create(&b, NULL, writer, (void *)1);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    int sum = 0;
    for (int i = 0; i < 2 * PAGES; i++) sum += shared[i * 4096];
    printf("two threads wrote %d pages each of one shared buffer (sum %d)\n", PAGES, sum);
    return 0;
}

/* Read-modify-write instructions counted across many CPU stops: two threads, each with its
 * own counters, run `incq`, `xadd`, `xchg` and `lock cmpxchg` on memory in a busy loop, and
 * a shared counter takes `lock incq` from both. The sandbox's watchdog stops the CPU many
 * times a second (time slices, preemption between the threads); an instruction that ran twice
 * or not at all after a stop changes a total. Prints the totals, as natively. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static volatile long shared;

struct counts {
    long inc, xadd, xchg_sum, cas;
};

static void *work(void *arg) {
    struct counts *c = arg;
    long rounds = c->inc;
    c->inc = 0;
    for (long i = 0; i < rounds; i++) {
        long one = 1, swapped = i, expected = c->cas;
        __asm__ volatile("incq %0" : "+m"(c->inc));
        __asm__ volatile("xaddq %1, %0" : "+m"(c->xadd), "+r"(one));
        __asm__ volatile("xchgq %1, %0" : "+m"(c->xchg_sum), "+r"(swapped));
        c->xchg_sum += swapped;  /* the old value comes back: xchg_sum ends as the sum of 0..i */
        __asm__ volatile("lock cmpxchgq %2, %0" : "+m"(c->cas), "+a"(expected) : "r"(expected + 1));
        __asm__ volatile("lock incq %0" : "+m"(shared));
    }
    return NULL;
}

int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) : 1000000;
    struct counts c[2] = {{rounds, 0, 0, 0}, {rounds, 0, 0, 0}};
    pthread_t t;
    pthread_create(&t, NULL, work, &c[1]);
    work(&c[0]);
    pthread_join(t, NULL);
    for (int i = 0; i < 2; i++)
        printf("thread %d: inc %ld xadd %ld xchg %ld cmpxchg %ld\n", i, c[i].inc, c[i].xadd, c[i].xchg_sum, c[i].cas);
    printf("shared %ld\n", shared);
    return 0;
}

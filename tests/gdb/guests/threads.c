/* Two threads run worker(): each must stop at its breakpoint (gdb steps one thread over a
   breakpoint it took out; the other must not run past it meanwhile). */
#include <pthread.h>
#include <stdio.h>
int hits;
void *worker(void *arg) { hits += (int)(long)arg; return 0; }
int main(void) {
    pthread_t t[2];
    for (long i = 0; i < 2; i++) pthread_create(&t[i], 0, worker, (void *)(i + 1));
    for (int i = 0; i < 2; i++) pthread_join(t[i], 0);
    printf("hits %d\n", hits);
    return 0;
}

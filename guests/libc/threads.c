/* POSIX threads, the parts programs lean on, printing only what is the same on every run:
 *   threads [N] [M]  N threads add 1 to a mutex-protected counter M times each (default 8, 10000);
 *                    then a condition-variable queue, a barrier, a rwlock, TLS and thread-specific
 *                    data with destructors, join values, a detached thread, and cancellation. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;
static long rounds = 10000;

static void *add(void *arg) {
    for (long i = 0; i < rounds; i++) {
        pthread_mutex_lock(&lock);
        counter++;
        pthread_mutex_unlock(&lock);
    }
    return arg;
}

/* A bounded queue between one producer and two consumers. */
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER, not_full = PTHREAD_COND_INITIALIZER;
static int queue[4], head, count, produced_sum, consumed_sum;

static void *producer(void *arg) {
    (void)arg;
    for (int i = 1; i <= 100; i++) {
        pthread_mutex_lock(&lock);
        while (count == 4) pthread_cond_wait(&not_full, &lock);
        queue[(head + count++) % 4] = i;
        produced_sum += i;
        pthread_cond_signal(&not_empty);
        pthread_mutex_unlock(&lock);
    }
    for (int i = 0; i < 2; i++) {  /* one stop marker per consumer */
        pthread_mutex_lock(&lock);
        while (count == 4) pthread_cond_wait(&not_full, &lock);
        queue[(head + count++) % 4] = 0;
        pthread_cond_signal(&not_empty);
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

static void *consumer(void *arg) {
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&lock);
        while (count == 0) pthread_cond_wait(&not_empty, &lock);
        int item = queue[head];
        head = (head + 1) % 4;
        count--;
        consumed_sum += item;
        pthread_cond_signal(&not_full);
        pthread_mutex_unlock(&lock);
        if (item == 0) return NULL;
    }
}

static pthread_barrier_t barrier;
static int arrived_before_barrier;

static void *at_barrier(void *arg) {
    __atomic_add_fetch(&arrived_before_barrier, 1, __ATOMIC_SEQ_CST);
    int serial = pthread_barrier_wait(&barrier) == PTHREAD_BARRIER_SERIAL_THREAD;
    return (void *)(long)(serial + 10 * (__atomic_load_n(&arrived_before_barrier, __ATOMIC_SEQ_CST) == 4));
}

static pthread_rwlock_t rwlock = PTHREAD_RWLOCK_INITIALIZER;
static int shared_value;

static void *reader(void *arg) {
    long seen = 0;
    for (int i = 0; i < 200; i++) {
        pthread_rwlock_rdlock(&rwlock);
        seen = shared_value;
        pthread_rwlock_unlock(&rwlock);
    }
    (void)arg;
    return (void *)seen;
}

static void *writer(void *arg) {
    (void)arg;
    for (int i = 0; i < 200; i++) {
        pthread_rwlock_wrlock(&rwlock);
        shared_value++;
        pthread_rwlock_unlock(&rwlock);
    }
    return NULL;
}

static __thread int tls_value = 7;
static pthread_key_t key;
static int destructor_runs;

static void destroy(void *value) {
    __atomic_add_fetch(&destructor_runs, 1, __ATOMIC_SEQ_CST);
    free(value);
}

static void *tls_thread(void *arg) {
    long id = (long)arg;
    tls_value += (int)id;  /* each thread its own copy */
    int *mine = malloc(sizeof *mine);
    *mine = (int)id * 100;
    pthread_setspecific(key, mine);
    int *back = pthread_getspecific(key);
    return (void *)(long)(tls_value * 1000 + *back + (syscall(SYS_gettid) != getpid()));
}

static volatile int detached_done;

static void *detached(void *arg) {
    (void)arg;
    detached_done = 1;
    return NULL;
}

static void *sleeper(void *arg) {
    (void)arg;
    for (;;) pause();  /* a cancellation point */
    return NULL;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 8;
    if (argc > 2) rounds = atol(argv[2]);
    pthread_t t[64];
    if (n > 64) n = 64;
    for (long i = 0; i < n; i++) pthread_create(&t[i], NULL, add, (void *)(i + 1));
    long joined = 0;
    for (int i = 0; i < n; i++) {
        void *value;
        pthread_join(t[i], &value);
        joined += (long)value;
    }
    printf("counter %ld of %ld, join values sum %ld\n", counter, n * rounds, joined);

    pthread_t p, c1, c2;
    pthread_create(&p, NULL, producer, NULL);
    pthread_create(&c1, NULL, consumer, NULL);
    pthread_create(&c2, NULL, consumer, NULL);
    pthread_join(p, NULL);
    pthread_join(c1, NULL);
    pthread_join(c2, NULL);
    printf("queue: produced %d, consumed %d\n", produced_sum, consumed_sum);

    pthread_barrier_init(&barrier, NULL, 4);
    long serials = 0;
    for (long i = 0; i < 4; i++) pthread_create(&t[i], NULL, at_barrier, NULL);
    for (int i = 0; i < 4; i++) {
        void *value;
        pthread_join(t[i], &value);
        serials += (long)value;
    }
    printf("barrier: %ld serial thread, all arrived first: %s\n", serials % 10, serials / 10 == 4 ? "yes" : "no");

    pthread_create(&t[0], NULL, writer, NULL);
    pthread_create(&t[1], NULL, reader, NULL);
    pthread_create(&t[2], NULL, writer, NULL);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    printf("rwlock: %d writes\n", shared_value);

    pthread_key_create(&key, destroy);
    long tls_sum = 0;
    for (long i = 0; i < 3; i++) pthread_create(&t[i], NULL, tls_thread, (void *)(i + 1));
    for (int i = 0; i < 3; i++) {
        void *value;
        pthread_join(t[i], &value);
        tls_sum += (long)value;
    }
    printf("tls: main still %d, threads %ld, destructors %d\n", tls_value, tls_sum, destructor_runs);

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_create(&t[0], &attr, detached, NULL);
    while (!detached_done) sched_yield();
    printf("detached thread ran\n");

    pthread_create(&t[0], NULL, sleeper, NULL);
    pthread_cancel(t[0]);
    void *result;
    pthread_join(t[0], &result);
    printf("cancelled: %s\n", result == PTHREAD_CANCELED ? "yes" : "no");
    return 0;
}

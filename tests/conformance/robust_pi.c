/* A robust priority-inheritance mutex whose owner dies while another thread sleeps in
 * FUTEX_LOCK_PI (libc-test's functional/pthread_robust with glibc): the sleeper must come
 * back owning the lock, with EOWNERDEAD, and be able to make it consistent and unlock it. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static pthread_mutex_t mtx;
static pthread_barrier_t barrier;

static void *hold_and_die(void *arg)
{
	pthread_mutex_lock(&mtx);
	pthread_barrier_wait(&barrier);
	usleep(200000); /* long enough for main to sleep in FUTEX_LOCK_PI */
	return arg; /* ends owning the lock: the robust list marks it */
}

static void step(const char *what, int r)
{
	printf("%s: %s\n", what, r ? strerror(r) : "ok");
}

int main(int argc, char *argv[])
{
	int pshared = argc > 1;
	pthread_mutexattr_t attr;
	pthread_t t;

	pthread_mutexattr_init(&attr);
	pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
	pthread_mutexattr_setprotocol(&attr, PTHREAD_PRIO_INHERIT);
	pthread_mutexattr_setpshared(&attr, pshared ? PTHREAD_PROCESS_SHARED : PTHREAD_PROCESS_PRIVATE);
	pthread_mutex_init(&mtx, &attr);
	pthread_barrier_init(&barrier, 0, 2);
	pthread_create(&t, 0, hold_and_die, 0);
	pthread_barrier_wait(&barrier);
	step("lock while the owner dies", pthread_mutex_lock(&mtx));
	step("join", pthread_join(t, 0));
	step("consistent", pthread_mutex_consistent(&mtx));
	step("unlock", pthread_mutex_unlock(&mtx));
	step("lock again", pthread_mutex_lock(&mtx));
	step("unlock again", pthread_mutex_unlock(&mtx));
	step("destroy", pthread_mutex_destroy(&mtx));
	return 0;
}

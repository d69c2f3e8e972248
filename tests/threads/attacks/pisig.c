#define _GNU_SOURCE
#include <stdio.h>
#include <errno.h>
#include <unistd.h>
#include <signal.h>
#include <string.h>
#include <pthread.h>
#include <sys/syscall.h>
static pthread_mutex_t m; static volatile int inside, done;
static void h(int s) { (void)s; }
static void *b(void *a) { (void)a; pthread_mutex_lock(&m); printf("B got lock while A holds it: %d\n", inside); pthread_mutex_unlock(&m); done = 1; return 0; }
int main() { setvbuf(stdout, 0, _IONBF, 0);
  struct sigaction sa; memset(&sa, 0, sizeof sa); sa.sa_handler = h; sigaction(SIGUSR1, &sa, 0); /* no SA_RESTART */
  pthread_mutexattr_t at; pthread_mutexattr_init(&at); pthread_mutexattr_setprotocol(&at, PTHREAD_PRIO_INHERIT); pthread_mutex_init(&m, &at);
  pthread_mutex_lock(&m); inside = 1; pthread_t t; pthread_create(&t, 0, b, 0); usleep(100000);
  pthread_kill(t, SIGUSR1); usleep(100000); inside = 0; pthread_mutex_unlock(&m); pthread_join(t, 0); printf("end\n"); return 0; }

/* madvise fork advice: DONTFORK (the child has no such mapping), WIPEONFORK (zeros in the
 * child), DOFORK/KEEPONFORK undo them; errors for unmapped and shared memory. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#define MADV_KEEPONFORK 19
#endif
static sigjmp_buf back;
static void segv(int s) { (void)s; siglongjmp(back, 1); }
static int peek(volatile char *p) { if (sigsetjmp(back, 1)) return -1; return *p; }
int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  signal(SIGSEGV, segv);
  char *a = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  memset(a, 7, 4 * 4096);
  printf("dontfork: %d\n", madvise(a, 4096, MADV_DONTFORK));
  printf("wipeonfork: %d\n", madvise(a + 4096, 4096, MADV_WIPEONFORK));
  int d1 = madvise(a + 2 * 4096, 4096, MADV_DONTFORK), d2 = madvise(a + 2 * 4096, 4096, MADV_DOFORK);
  printf("dontfork then dofork: %d %d\n", d1, d2);
  pid_t c = fork();
  if (c == 0) {
    printf("child: dontfork page %d, wiped page %d, dofork page %d, plain page %d\n", peek(a), peek(a + 4096), peek(a + 2 * 4096), peek(a + 3 * 4096));
    _exit(0);
  }
  waitpid(c, 0, 0);
  printf("parent: %d %d %d %d\n", peek(a), peek(a + 4096), peek(a + 2 * 4096), peek(a + 3 * 4096));
  char *s = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  int r = madvise(s, 4096, MADV_WIPEONFORK); printf("wipeonfork on shared: %d %s\n", r, r ? strerrorname_np(errno) : "");
  munmap(a + 3 * 4096, 4096);
  r = madvise(a + 2 * 4096, 2 * 4096, MADV_DONTFORK); printf("dontfork over a hole: %d %s\n", r, r ? strerrorname_np(errno) : "");
  return 0;
}

#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sched.h>
#include <signal.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <linux/futex.h>
#include <time.h>

static long raw_clone(unsigned long flags, void *stack, int *ptid, int *ctid, unsigned long tls) {
  long ret;
  register long r10 asm("r10") = (long)ctid;
  register long r8 asm("r8") = tls;
  asm volatile("syscall" : "=a"(ret) : "a"(SYS_clone), "D"(flags), "S"(stack), "d"(ptid), "r"(r10), "r"(r8) : "rcx","r11","memory");
  return ret;
}
#define TFLAGS (CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM)
static char stk[8][65536] __attribute__((aligned(16)));
static volatile int flag;
static int spin(void *a) { (void)a; for (;;) pause(); return 0; }
static int quick(void *a) { syscall(SYS_exit, (long)a); return 0; }
static int ex7(void *a) { (void)a; usleep(100000); syscall(SYS_exit, 7); return 0; }
static int vmchild(void *a) { (void)a; usleep(200000); printf("vm child still here, flag=%d\n", flag); fflush(stdout); flag = 2; syscall(SYS_exit, 9); return 0; }

int main(int argc, char **argv) {
  const char *m = argv[1];
  setvbuf(stdout, NULL, _IONBF, 0);
  if (!strcmp(m, "badstack")) {          /* thread with garbage stack: group dies of SIGSEGV */
    long r = raw_clone(TFLAGS, (void*)0xdead0000, 0, 0, 0);
    if (r == 0) { volatile long *p = (long*)__builtin_frame_address(0); *p = 1; for(;;); }
    printf("parent: clone=%ld\n", r); usleep(300000); printf("parent survived?\n"); return 0;
  }
  if (!strcmp(m, "badstack2")) {          /* garbage non-canonical stack */
    long r = raw_clone(TFLAGS, (void*)0x8000000000000000UL, 0, 0, 0);
    if (r == 0) { asm volatile("push %rax; pop %rax"); for(;;); }
    printf("parent: clone=%ld\n", r); usleep(300000); printf("parent survived?\n"); return 0;
  }
  if (!strcmp(m, "ptid")) {              /* CLONE_PARENT_SETTID to unmapped memory */
    long r = clone(spin, stk[0]+65536, TFLAGS|CLONE_PARENT_SETTID, 0, (int*)0x10000000, 0, 0);
    printf("clone ptid unmapped: %ld errno=%d\n", r, r < 0 ? errno : 0);
    r = clone(spin, stk[1]+65536, TFLAGS|CLONE_CHILD_SETTID, 0, 0, 0, (int*)0x10000000);
    printf("clone ctid unmapped: %ld errno=%d\n", r, r < 0 ? errno : 0);
    usleep(100000);
    char b[64]; int n = 0; FILE *f = popen("ls /proc/self/task | wc -l", "r"); (void)f; (void)b;
    { DIR_COUNT: ; }
    extern int count(void);
    printf("threads: %d\n", count());
    _exit(0);
  }
  if (!strcmp(m, "leaderexit")) {        /* main SYS_exit(3), other thread SYS_exit(7) */
    clone(ex7, stk[0]+65536, TFLAGS, 0);
    syscall(SYS_exit, 3);
  }
  if (!strcmp(m, "vmproc")) {            /* CLONE_VM process, parent exits first */
    long r = clone(vmchild, stk[0]+65536, CLONE_VM|SIGCHLD, 0);
    printf("parent: child %ld, exiting\n", r > 0 ? 1L : r);
    _exit(4);
  }
  if (!strcmp(m, "vmproc2")) {           /* CLONE_VM process, child exits first, parent waits */
    long r = clone(vmchild, stk[0]+65536, CLONE_VM|SIGCHLD, 0);
    int st; waitpid(r, &st, 0); printf("parent: status %#x flag=%d\n", st, flag);
    return 0;
  }
  if (!strcmp(m, "vforkthread")) {       /* CLONE_VFORK thread that exits */
    long r = clone(quick, stk[0]+65536, TFLAGS|CLONE_VFORK, (void*)0);
    printf("vfork thread: back, r>0=%d\n", r > 0);
    return 0;
  }
  if (!strcmp(m, "cleartid_ro")) {
    int *ro = mmap(0, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
    long r = clone(quick, stk[0]+65536, TFLAGS|CLONE_CHILD_CLEARTID, 0, 0, 0, ro);
    r = clone(quick, stk[1]+65536, TFLAGS|CLONE_CHILD_CLEARTID, 0, 0, 0, (int*)0xffff800000000000UL);
    r = clone(quick, stk[2]+65536, TFLAGS|CLONE_CHILD_CLEARTID, 0, 0, 0, (int*)0x3);
    usleep(100000); printf("ok %ld\n", r > 0 ? 1L : r); return 0;
  }
  if (!strcmp(m, "robust")) {  /* self-loop, huge offset, kernel addresses */
    static uint64_t head[3], node[2];
    int variant = atoi(argv[2]);
    if (variant == 0) { head[0] = (uint64_t)node; node[0] = (uint64_t)node; head[1] = 0; }  /* loop on node */
    if (variant == 1) { head[0] = (uint64_t)node; node[0] = (uint64_t)head; head[1] = 0x7fffffffffffffffLL; head[2] = (uint64_t)-8; }
    if (variant == 2) { head[0] = 0xffff800000000000UL; head[2] = 0xfffffffffffff000UL; }
    if (variant == 3) { head[0] = (uint64_t)node; node[0] = (uint64_t)head; head[1] = -(int64_t)(uint64_t)node; } /* word at 0 */
    if (variant == 4) { head[0] = (uint64_t)node; node[0] = (uint64_t)head; head[1] = 0x8000000000000000LL; }
    printf("set: %ld\n", syscall(SYS_set_robust_list, head, 24));
    syscall(SYS_exit_group, 0);
  }
  return 1;
}
#include <dirent.h>
int count(void){ DIR *d = opendir("/proc/self/task"); int n=0; struct dirent *e; while(d && (e=readdir(d))) n += e->d_name[0] != '.'; return n; }

#define _GNU_SOURCE
#include <stdio.h>
#include <stdint.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <linux/futex.h>
#include <time.h>
static long fx(void *u, int op, long val, long t, void *u2, long v3){
  long r = syscall(SYS_futex, u, op, val, t, u2, v3);
  return r < 0 ? -errno : r;
}
#define P(name, expr) do { long _r = (expr); printf("%-40s %ld\n", name, _r); fflush(stdout);} while(0)
int main(){
  static uint32_t w[4];
  uint32_t *ro = mmap(0, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
  void *unm = (void*)0x10000000;
  void *kern = (void*)0xffff880000000000UL;
  struct timespec ts0 = {0, 0}, tsbad = {0, 2000000000L}, tsneg = {-1, 0};
  P("wake unmapped private", fx(unm, FUTEX_WAKE_PRIVATE, 1, 0, 0, 0));
  P("wake unmapped shared", fx(unm, FUTEX_WAKE, 1, 0, 0, 0));
  P("wake kernel addr", fx(kern, FUTEX_WAKE, 1, 0, 0, 0));
  P("wake kernel addr private", fx(kern, FUTEX_WAKE_PRIVATE, 1, 0, 0, 0));
  P("wake misaligned", fx((char*)w+1, FUTEX_WAKE, 1, 0, 0, 0));
  P("wait misaligned", fx((char*)w+1, FUTEX_WAIT, 0, 0, 0, 0));
  P("wait unmapped", fx(unm, FUTEX_WAIT_PRIVATE, 0, 0, 0, 0));
  P("wait ro wrong val", fx(ro, FUTEX_WAIT_PRIVATE, 1, 0, 0, 0));
  P("wait ro timeout0", fx(ro, FUTEX_WAIT_PRIVATE, 0, (long)&ts0, 0, 0));
  P("wait bad ts", fx(w, FUTEX_WAIT_PRIVATE, 0, (long)&tsbad, 0, 0));
  P("wait neg ts", fx(w, FUTEX_WAIT_PRIVATE, 0, (long)&tsneg, 0, 0));
  P("wait ts unmapped", fx(w, FUTEX_WAIT_PRIVATE, 0, (long)unm, 0, 0));
  P("wait realtime flag rel0", fx(w, FUTEX_WAIT_PRIVATE|FUTEX_CLOCK_REALTIME, 0, (long)&ts0, 0, 0));
  P("wake realtime flag", fx(w, FUTEX_WAKE|FUTEX_CLOCK_REALTIME, 1, 0, 0, 0));
  P("wait_bitset 0", fx(w, FUTEX_WAIT_BITSET, 0, 0, 0, 0));
  P("wake_bitset 0", fx(w, FUTEX_WAKE_BITSET, 1, 0, 0, 0));
  P("wait_bitset abs0", fx(w, FUTEX_WAIT_BITSET, 0, (long)&ts0, 0, -1));
  P("bad cmd 15", fx(w, 15, 0, 0, 0, 0));
  P("cmd 11 wait_requeue_pi", fx(w, 11, 0, (long)&ts0, w+1, 0));
  P("cmd 12 cmp_requeue_pi", fx(w, 12, 1, 0, w+1, 0));
  P("requeue same key", fx(w, FUTEX_REQUEUE, 1, 100, w, 0));
  P("requeue neg", fx(w, FUTEX_REQUEUE, -1, 100, w+1, 0));
  P("cmp_requeue mismatch", fx(w, FUTEX_CMP_REQUEUE, 1, 1, w+1, 5));
  P("cmp_requeue unmapped2", fx(w, FUTEX_CMP_REQUEUE, 1, 1, unm, 0));
  P("requeue unmapped2 priv", fx(w, FUTEX_REQUEUE_PRIVATE, 1, 1, unm, 0));
  /* WAKE_OP */
  for (int op = 0; op < 8; op++) for (int cmp = 0; cmp < 8; cmp += 7) {
    w[1] = 5; char b[64];
    long r = fx(w, FUTEX_WAKE_OP, 1, 1, w+1, FUTEX_OP(op, 3, cmp, 5));
    snprintf(b, sizeof b, "wake_op op%d cmp%d", op, cmp); printf("%-40s %ld w1=%u\n", b, r, w[1]);
  }
  w[1]=5; P("wake_op shift 40", fx(w, FUTEX_WAKE_OP, 1, 1, w+1, FUTEX_OP(FUTEX_OP_SET|FUTEX_OP_OPARG_SHIFT, 40, 0, 0))); printf("w1=%#x\n", w[1]);
  w[1]=5; P("wake_op shift -1", fx(w, FUTEX_WAKE_OP, 1, 1, w+1, (8<<28)|(0xfff<<12))); printf("w1=%#x\n", w[1]);
  w[1]=5; P("wake_op shift 31", fx(w, FUTEX_WAKE_OP, 1, 1, w+1, FUTEX_OP(FUTEX_OP_SET|FUTEX_OP_OPARG_SHIFT, 31, 0, 0))); printf("w1=%#x\n", w[1]);
  P("wake_op ro uaddr2", fx(w, FUTEX_WAKE_OP, 1, 1, ro, FUTEX_OP(0,1,0,0)));
  P("wake_op unmapped uaddr2", fx(w, FUTEX_WAKE_OP, 1, 1, unm, FUTEX_OP(0,1,0,0)));
  P("wake_op misaligned uaddr2", fx(w, FUTEX_WAKE_OP, 1, 1, (char*)w+5, FUTEX_OP(0,1,0,0)));
  /* PI */
  w[2] = 0;
  P("unlock_pi free", fx(w+2, FUTEX_UNLOCK_PI, 0,0,0,0));
  P("trylock_pi free", fx(w+2, FUTEX_TRYLOCK_PI, 0,0,0,0)); printf("w2=%#x tid=%ld\n", w[2], syscall(SYS_gettid));
  P("lock_pi own", fx(w+2, FUTEX_LOCK_PI, 0,0,0,0));
  P("unlock_pi own", fx(w+2, FUTEX_UNLOCK_PI, 0,0,0,0)); printf("w2=%#x\n", w[2]);
  w[2] = 999999; P("lock_pi dead owner", fx(w+2, FUTEX_LOCK_PI, 0,(long)&ts0,0,0)); printf("w2=%#x\n", w[2]);
  w[2] = 999999; P("trylock_pi dead owner", fx(w+2, FUTEX_TRYLOCK_PI, 0,0,0,0)); printf("w2=%#x\n", w[2]);
  w[2] = FUTEX_OWNER_DIED; P("lock_pi ownerdied 0", fx(w+2, FUTEX_LOCK_PI, 0,0,0,0)); printf("w2=%#x\n", w[2]);
  w[2] = 999999|FUTEX_OWNER_DIED; P("trylock_pi dead owner+OD", fx(w+2, FUTEX_TRYLOCK_PI, 0,0,0,0)); printf("w2=%#x\n", w[2]);
  w[2] = getppid(); P("trylock_pi other proc", fx(w+2, FUTEX_TRYLOCK_PI, 0,0,0,0)); printf("w2=%#x\n", w[2]==(uint32_t)getppid());
  P("unlock_pi nonowner", fx(w+2, FUTEX_UNLOCK_PI, 0,0,0,0));
  P("lock_pi ro", fx(ro, FUTEX_LOCK_PI, 0,0,0,0));
  P("lock_pi realtime", fx(w+3, FUTEX_LOCK_PI|FUTEX_CLOCK_REALTIME, 0,0,0,0));
  w[3]=0; P("lock_pi2 realtime", fx(w+3, 13|FUTEX_CLOCK_REALTIME, 0,0,0,0));
  /* robust */
  P("set_robust_list 0 len", syscall(SYS_set_robust_list, w, 0) < 0 ? -errno : 0);
  P("set_robust_list big len", syscall(SYS_set_robust_list, w, 1UL<<40) < 0 ? -errno : 0);
  { void *h; size_t l; P("get_robust_list bad ptr", syscall(SYS_get_robust_list, 0, unm, &l) < 0 ? -errno : 0);
    P("get_robust_list other", syscall(SYS_get_robust_list, 999999, &h, &l) < 0 ? -errno : 0);
    P("get_robust_list neg", syscall(SYS_get_robust_list, -5, &h, &l) < 0 ? -errno : 0); }
  P("wake count 0 (no waiters)", fx(w, FUTEX_WAKE, 0, 0,0,0));
  return 0;
}

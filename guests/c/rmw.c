/* rmw [N]: N rounds of read-modify-write instructions on memory (inc, lock xadd, xchg,
 * lock cmpxchg), then their totals, which are exact: an instruction run twice shows.
 * Unicorn can resume a stopped CPU at the start of an instruction whose store it already
 * made (sandbox/native/stopper.c); this guest, preempted often, is how that is caught. */
#include "sys.h"

static volatile long counter, added, swapped, compared;

int main(int argc, char **argv, char **envp) {
    long n = argc > 1 ? atol(argv[1]) : 5000000;
    (void)envp;
    long swaps_seen = 0;
    for (long i = 0; i < n; i++) {
        __asm__ volatile("incq %0" : "+m"(counter));
        long one = 1;
        __asm__ volatile("lock xaddq %0, %1" : "+r"(one), "+m"(added));
        long mine = i + 1;
        __asm__ volatile("xchgq %0, %1" : "+r"(mine), "+m"(swapped));
        swaps_seen += mine == i;  /* the value the previous round left */
        long expected = i, wanted = i + 1;
        __asm__ volatile("lock cmpxchgq %2, %1" : "+a"(expected), "+m"(compared) : "r"(wanted));
    }
    put("inc ");
    put_num(counter);
    put(" xadd ");
    put_num(added);
    put(" xchg ");
    put_num(swaps_seen);
    put(" cmpxchg ");
    put_num(compared);
    put("\n");
    return 0;
}

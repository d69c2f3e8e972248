/* The watchdog's way to take the CPU back at a block boundary (see sandbox/machine.py).
 *
 * Why this exists: Unicorn 2.1 checks for an exit request after every guest memory access
 * (qemu/tcg/tcg-op.c check_exit_request), and on that path restores the guest PC to the
 * start of the instruction that made the access (cpu_loop_exit_restore). An asynchronous
 * uc_emu_stop, as a watchdog thread makes, can therefore stop the CPU right after the store
 * of a read-modify-write instruction, and the next uc_emu_start runs that instruction
 * again: `incq [mem]` adds 2, `xchg` and `lock cmpxchg` lose their result. (Measured: with
 * a 1 ms watchdog, 20,000,000 `incq` gave 20,000,010.) A block hook runs before the block's
 * own exit check (accel/tcg/translator.c emits it ahead of gen_tb_start, with the PC
 * synchronised), so a stop requested here ends the run cleanly between blocks.
 *
 * The watchdog thread only sets `requested`; this hook, run by the CPU at each block,
 * turns it into uc_emu_stop. Written in C because a Python callback per block would cost
 * about ten times what this does (measured: +19% on a CPU-bound guest).
 *
 * Only libraries that may stop mid-instruction get this hook (the PyPI wheel's): the
 * project's build answers UC_QUERY_ASYNC_STOP (engine/patches/0005), stops between blocks
 * by itself when asked from another thread, and is stopped by the watchdog directly. Even
 * this small hook, called from every block with the CPU state synced around it, cost 24-32%
 * of a CPU-bound guest's time (bench/RESULTS.md). */
#include <stdint.h>

struct sandbox_stopper {
    volatile int32_t requested;  /* set by the watchdog thread */
    int32_t unused;
    int (*stop)(void *uc);       /* uc_emu_stop, passed in by the machine */
};

void sandbox_block_hook(void *uc, uint64_t address, uint32_t size, void *user_data) {
    struct sandbox_stopper *stopper = user_data;
    (void)address;
    (void)size;
    if (__builtin_expect(stopper->requested, 0)) {
        stopper->requested = 0;
        stopper->stop(uc);
    }
}

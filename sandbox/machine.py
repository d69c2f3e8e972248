"""The emulated machine: guest-physical RAM, an x86-64 CPU in long mode with paging, at CPL 3.

Owns the Unicorn instance and everything the CPU needs that is not a process's: RAM (one
host buffer mapped at physical 0 with `mem_map_ptr`; nothing else is ever `mem_map`ped), the
frame allocator, the kernel address space (GDT, an `iretq` trampoline and a kernel stack in
the upper half, supervisor-only), control registers, and the two hooks into the kernel:
`syscall` (UC_HOOK_INSN) and exceptions (UC_HOOK_INTR).

Unicorn never clears QEMU's "exception in flight" field after an exception the kernel
handled; `exceptions` (sandbox/exception_state.py) reads each exception's CR2, error code and
RIP and clears that field, at offsets in the CPU context found once at start-up.
"""

from __future__ import annotations

import ctypes
import os
import struct
import threading
from collections.abc import Callable, Iterable

from sandbox import engine as X
from sandbox import fastpath
from sandbox.engine import UC_HOOK_BLOCK, UC_PROT_ALL, UC_PROT_EXEC, Engine
from sandbox.errors import InvariantError, SandboxError
from sandbox.exception_state import calibrate
from sandbox.mm import PAGE_SHIFT, PAGE_SIZE
from sandbox.mm.aspace import AddressSpace
from sandbox.mm.frames import FrameAllocator
from sandbox.mm.pagetable import PTE_NX, PTE_PRESENT, PTE_WRITABLE
from sandbox.mm.physmem import DEFAULT_MEMORY, PhysicalMemory
from sandbox.x86 import (
    CR0_MP,
    CR0_NE,
    CR0_PE,
    CR0_PG,
    CR0_WP,
    CR4_OSFXSR,
    CR4_OSXMMEXCPT,
    CR4_PAE,
    EFER_LMA,
    EFER_LME,
    EFER_NXE,
    EFER_SCE,
    FPU_CONTROL_DEFAULT,
    FPU_TAGS_EMPTY,
    MSR_EFER,
    MXCSR_DEFAULT,
)

# GDT layout and selectors as Linux x86-64 has them (arch/x86/include/asm/segment.h).
KERNEL_CS, KERNEL_DS, USER_DS, USER_CS = 0x10, 0x18, 0x2B, 0x33
RFLAGS_IF = 1 << 9
RFLAGS_RESERVED = 1 << 1

#: Kernel-half layout (PML4 slot 511, where Linux keeps its text).
KERNEL_TEXT = 0xFFFF_FFFF_8000_0000
GDT_VA = KERNEL_TEXT
TRAMPOLINE_VA = KERNEL_TEXT + PAGE_SIZE
KSTACK_VA = KERNEL_TEXT + 2 * PAGE_SIZE

#: How often the watchdog takes the CPU back, so that the run loop can notice Ctrl-C and
#: limits even while the guest computes without system calls, and hands the CPU to the next
#: runnable task: the time slice. Linux on one CPU lets a woken task preempt within a few
#: milliseconds (CFS's wakeup granularity), and runtimes that spin until another thread acts
#: depend on it: Go's runtime.GC() yields in a loop until a sweeper on another thread
#: finishes, and three collections took over 50 s with 200 ms slices, under 1 s with 10 ms.
WATCHDOG_SECONDS = 0.01

#: The block hook the watchdog stops the CPU through (built by `make` from stopper.c).
STOPPER_LIBRARY = os.path.join(os.path.dirname(os.path.realpath(__file__)), "native", "libstopper.so")


class _Stopper(ctypes.Structure):
    """struct sandbox_stopper of sandbox/native/stopper.c."""

    _fields_ = [("requested", ctypes.c_int32), ("unused", ctypes.c_int32), ("stop", ctypes.c_void_p)]


def _install_stopper(uc: Engine) -> tuple[_Stopper, ctypes.CDLL | None]:
    """Hook every block with sandbox_block_hook; the stopper it reads, and its library
    (both kept alive as long as the engine). SandboxError if the library is not built.
    An engine that stops between blocks by itself when asked from another thread (the
    project's build) needs no hook, whose call at every block cost a quarter of a CPU-bound
    guest's time (bench/RESULTS.md): then the library is None and the watchdog stops the CPU."""
    if uc.stops_between_blocks():
        return _Stopper(0, 0, 0), None
    return _hook_stopper(uc)


def _hook_stopper(uc: Engine) -> tuple[_Stopper, ctypes.CDLL]:
    """Add stopper.c's block hook; the stopper it reads and its library."""
    try:
        library = ctypes.CDLL(STOPPER_LIBRARY)
    except OSError:
        raise SandboxError(f"{STOPPER_LIBRARY} is not built: run `make compile`") from None
    stopper = _Stopper(0, 0, ctypes.cast(X.lib.uc_emu_stop, ctypes.c_void_p).value)
    uc.hook_add_native(X.UC_HOOK_BLOCK, ctypes.cast(library.sandbox_block_hook, ctypes.c_void_p),
                       ctypes.addressof(stopper))
    return stopper, library


#: The translated-code cache's size. Unicorn's default is 1 GiB (host memory a guest can
#: fill by running code at ever new addresses, issue 12); when the buffer is full QEMU
#: flushes it whole and translates afresh, so a bound costs only re-translation.
TCG_BUFFER_SIZE = 32 << 20

#: Most per-block instruction counts --max-instructions keeps (about 300 bytes each). Past
#: it the table starts afresh: a count is only a cache of decoding the block's bytes, so
#: totals stay exact while a guest running ever new code cannot grow it without end.
BLOCK_COUNTS_MAX = 1 << 16

#: The trampoline's one instruction: `iretq` (REX.W CF), entering CPL 3 from the frame on
#: the kernel stack (Intel SDM vol. 2A, IRET).
IRETQ = b"\x48\xcf"


#: uc_ctl's UC_CTL_WRITE(UC_CTL_TLB_FLUSH, 1) (unicorn.h: bits 31-30 the I/O direction,
#: 29-26 the argument count, then the control, 11): with engine/patches/0004, one page.
_CTL_FLUSH_TLB_PAGE = (X.UC_CTL_IO_WRITE << 30) | (1 << 26) | 11

_BLOCK_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_void_p)
UC_HOOK_CODE = 4  # unicorn.h, uc_hook_type: before each instruction (callback as UC_HOOK_BLOCK's)


#: struct sigcontext's general registers, in its order (arch/x86/include/uapi/asm/sigcontext.h).
SIGCONTEXT_REGS = (X.UC_X86_REG_R8, X.UC_X86_REG_R9, X.UC_X86_REG_R10, X.UC_X86_REG_R11, X.UC_X86_REG_R12,
                   X.UC_X86_REG_R13, X.UC_X86_REG_R14, X.UC_X86_REG_R15, X.UC_X86_REG_RDI, X.UC_X86_REG_RSI,
                   X.UC_X86_REG_RBP, X.UC_X86_REG_RBX, X.UC_X86_REG_RDX, X.UC_X86_REG_RAX, X.UC_X86_REG_RCX,
                   X.UC_X86_REG_RSP, X.UC_X86_REG_RIP, X.UC_X86_REG_EFLAGS)
#: The FXSAVE image (Intel SDM vol. 1 §10.5.1, table 10-2), as Linux's struct fxregs_state.
FXSAVE_HEAD = struct.Struct("<HHBxHQQII")  # fcw, fsw, ftw (abridged), fop, fip, fdp, mxcsr, mask
FXSAVE_SIZE = 512
MXCSR_MASK = 0xFFFF
#: EFLAGS bits user code may change through sigreturn (Linux's FIX_EFLAGS, less RF).
EFLAGS_USER = 0x40DD5


def segment_descriptor(dpl: int, code: bool) -> int:
    """A flat 64-bit code or data descriptor (Intel SDM vol. 3 §3.4.5, §5.2.1)."""
    access = 0x80 | (dpl << 5) | 0x10 | (0x0A if code else 0x02)  # P, DPL, S, type
    flags = 0xA if code else 0xC  # G + L for code; G + D/B for data
    return 0xFFFF | (access << 40) | (0xF << 48) | (flags << 52)


GDT = (0, 0, segment_descriptor(0, True), segment_descriptor(0, False),
       0, segment_descriptor(3, False), segment_descriptor(3, True))


class Machine:
    """One CPU and its RAM. `kernel` callbacks: `on_syscall()`, `on_exception(intno)`."""

    def __init__(self, ram_size: int = DEFAULT_MEMORY) -> None:
        self.mem = PhysicalMemory(ram_size)
        self.frames = FrameAllocator(self.mem)
        self.uc = Engine()
        self.uc.ctl_set_tcg_buffer_size(TCG_BUFFER_SIZE)  # before anything initialises the engine
        # Pinned, not left to Unicorn's default: a Haswell model from which QEMU's TCG drops
        # what it cannot execute (AVX, AVX2, FMA, OSXSAVE), so CPUID advertises only what runs
        # and glibc's ifuncs pick SSE code paths (tests/integration/test_cpu.py checks both).
        self.uc.ctl_set_cpu_model(X.UC_CPU_X86_HASWELL)
        # No exit addresses at all: the CPU stops only through emu_stop. With an `until`
        # address, every emu_start translates it (uc_invalidate_tb) through the guest's
        # page tables, and an unmapped one leaves a silent #PF "in flight" (-> #DF later).
        self.uc.ctl_exits_enabled(True)
        self.uc.ctl_set_exits([])
        self.uc.mem_map_ptr(0, ram_size, UC_PROT_ALL, ctypes.addressof(ctypes.c_char.from_buffer(self.mem.buffer)))
        self._cr3 = 0
        self.kernel_space = AddressSpace.new_kernel(self.mem, self.frames, self)
        self._kstack_pa = self._build_kernel_half()
        self._setup_cpu()
        self._boot_context = self.uc.context_save()
        self.on_syscall: Callable[[], None] = _unexpected_syscall
        self.on_exception: Callable[[int], None] = _unexpected_exception
        self.pending_error: BaseException | None = None
        self.tb_flush_pending = False
        #: Frames whose translated code is to go before the next run (code_changed), when
        #: the engine drops code by physical range; otherwise a flush of everything.
        self._stale_code: set[int] = set()
        self._drops_code_by_range = self.uc.invalidates_by_physical_range()
        #: (cr3, block address, block size) -> instructions, for count_instructions.
        self._block_counts: dict[tuple[int, int, int], int] = {}
        #: The block hook (handle, callback), and whether it is to be replaced (see _rehook_blocks).
        self._block_hook: tuple[int, object] | None = None
        self.block_rehook_pending = False
        self._watchdog: threading.Event | None = None
        self._stopper, self._stopper_lib = _install_stopper(self.uc)
        #: The last run ended because its time slice (or counted quantum) did: the scheduler
        #: turns to the next task; after any other stop (a signal to deliver, a code flush)
        #: the same task goes on.
        self.time_slice_over = False
        #: Unicorn can drop its counting hook without leaving a fault in flight (Kernel._quantum).
        self.counting_ends_quietly = self.uc.invalidates_quietly()
        self._watchdog_lock = threading.Lock()
        self._counting = False  # a run of a counted quantum, which the watchdog leaves alone
        self._counted = False  # the last run was counted: Unicorn's counting hook is in place
        self._faults = fastpath.install_faults(self.uc, self._intr_entry)  # first touches in C
        self._hook_syscalls()
        self.exceptions = calibrate(self, TRAMPOLINE_VA)
        self._faults.start(self.uc, self.exceptions.offsets, self.mem, self.frames)

    # -- set-up -----------------------------------------------------------------------------

    def _build_kernel_half(self) -> int:
        """Map the GDT, the trampoline and a kernel stack (supervisor-only); return stack pa."""
        pages = {}
        for va, flags in ((GDT_VA, PTE_NX), (TRAMPOLINE_VA, 0), (KSTACK_VA, PTE_WRITABLE | PTE_NX)):
            pfn = self.frames.alloc_kernel()  # marked: never a user page (pagetable.py)
            self.kernel_space.pagetable.map(va, pfn << PAGE_SHIFT, flags | PTE_PRESENT)
            pages[va] = pfn << PAGE_SHIFT
        #: Frames the kernel half itself owns (GDT, trampoline, kernel stack).
        self.kernel_frames = [pa >> PAGE_SHIFT for pa in pages.values()]
        self.mem.write(pages[GDT_VA], struct.pack(f"<{len(GDT)}Q", *GDT))
        self.mem.write(pages[TRAMPOLINE_VA], IRETQ)
        return pages[KSTACK_VA]

    def _setup_cpu(self) -> None:
        """Long mode with paging on, at CPL 0 until the trampoline's iretq."""
        uc = self.uc
        uc.write_gdtr(GDT_VA, len(GDT) * 8 - 1)
        self.load_cr3(self.kernel_space.cr3)
        uc.reg_write(X.UC_X86_REG_CR4, CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT)
        uc.msr_write(MSR_EFER, EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE)
        uc.reg_write(X.UC_X86_REG_CR0, CR0_PE | CR0_MP | CR0_NE | CR0_WP | CR0_PG)
        uc.reg_write(X.UC_X86_REG_CS, KERNEL_CS)
        uc.reg_write(X.UC_X86_REG_SS, KERNEL_DS)
        # The FPU state a process starts with (SysV x86-64 ABI §3.4.1, as after FNINIT):
        # Unicorn starts with both control words 0 (single precision, all exceptions unmasked).
        uc.reg_write(X.UC_X86_REG_FPCW, FPU_CONTROL_DEFAULT)
        uc.reg_write(X.UC_X86_REG_FPTAG, FPU_TAGS_EMPTY)
        uc.reg_write(X.UC_X86_REG_MXCSR, MXCSR_DEFAULT)

    # -- the Mmu protocol -------------------------------------------------------------------

    @property
    def cr3(self) -> int:
        """The active PML4."""
        return self._cr3

    def load_cr3(self, cr3: int) -> None:
        """Switch address space; writing CR3 makes QEMU flush its TLB."""
        self._cr3 = cr3
        self.uc.reg_write(X.UC_X86_REG_CR3, cr3)

    def code_changed(self, pfns: Iterable[int] | None = None) -> None:
        """Frames that held executable code were freed, or the kernel wrote into executable
        memory: `pfns`, or None for "somewhere". QEMU caches translated code by physical
        address and never sees writes made through our memoryview, so its cache is stale:
        drop it before the next instruction (the CPU stops now; `run` drops it before it
        starts again). With the project's engine only the code of `pfns` goes (patch 0009):
        the next program finds its loader and libc still translated; otherwise all of it."""
        if pfns is None or not self._drops_code_by_range:
            self.tb_flush_pending = True
        else:
            self._stale_code.update(pfns)
        self.uc.emu_stop()

    def _drop_stale_code(self) -> None:
        """Drop the code translated from the frames `code_changed` named, one call per run
        of consecutive frames; block counts go too (a freed PML4's cr3 may come back with
        other code at the same addresses)."""
        pfns = sorted(self._stale_code)
        self._stale_code.clear()
        first = last = pfns[0]
        for pfn in pfns[1:] + [-1]:
            if pfn == last + 1:
                last = pfn
                continue
            self.uc.ctl_flush_tb_range(first << PAGE_SHIFT, (last + 1) << PAGE_SHIFT)
            first = last = pfn
        self._block_counts.clear()

    def flush_tlb(self) -> None:
        """Drop every cached translation (a CR3 rewrite, as a kernel without PCID does)."""
        self.uc.reg_write(X.UC_X86_REG_CR3, self._cr3)

    def flush_tlb_page(self, va: int) -> None:
        """Drop the cached translations of the page holding `va` (what INVLPG does) and the
        jump-cache entries of code on it: uc_ctl(UC_CTL_TLB_FLUSH) with one argument, which
        engine patch 0004 adds. An engine without it ignores the argument and flushes all."""
        X.check(X.lib.uc_ctl(self.uc.handle, _CTL_FLUSH_TLB_PAGE, ctypes.c_uint64(va)))

    # -- running ----------------------------------------------------------------------------

    def enter_user(self, space: AddressSpace, rip: int, rsp: int) -> None:
        """Set up a fresh user entry: CPL 0 at the trampoline, whose iretq lands at `rip`."""
        self.uc.context_restore(self._boot_context)
        self._cr3 = -1
        space.switch_to()
        frame = struct.pack("<5Q", rip, USER_CS, RFLAGS_IF | RFLAGS_RESERVED, rsp, USER_DS)
        self.mem.write(self._kstack_pa + PAGE_SIZE - len(frame), frame)
        self.uc.reg_write(X.UC_X86_REG_RSP, KSTACK_VA + PAGE_SIZE - len(frame))
        self.uc.reg_write(X.UC_X86_REG_RIP, TRAMPOLINE_VA)

    def run(self, count: int = 0) -> None:
        """Run from the current RIP until a hook stops the CPU, or the watchdog does; with a
        `count`, for at most that many instructions and never stopped by the watchdog (a
        quantum that ends at the same instruction on every run).

        A hook that raised has its exception re-raised here; `EngineError` is left to the caller.
        """
        rip = self.uc.reg_read(X.UC_X86_REG_RIP)
        if self.block_rehook_pending:  # flushes the translated code too
            self.tb_flush_pending = False
            self._rehook_blocks()
        elif self.tb_flush_pending:
            self.tb_flush_pending = False
            self.uc.ctl_flush_tb()
            self._stale_code.clear()
            self._block_counts.clear()  # counted from code that may be gone, as the blocks were
        elif self._stale_code:
            self._drop_stale_code()
        if not count:
            self._start_watchdog()
            self._counted = False  # Unicorn drops its counting hook (and the code) on this start
            self._stopper.requested = 0  # a tick while the CPU was idle asks for nothing (as
            self.time_slice_over = False  # uc_emu_stop outside a run does nothing)
            self.uc.emu_start(rip, 0, 0, 0)
        else:  # an exact quantum: no watchdog stop may land inside it
            self.time_slice_over = True  # the quantum ends this run, or something before it
            if not self._counted:  # Unicorn adds its counting hook now: code translated
                self.uc.ctl_flush_tb()  # without it would never count (nor stop)
                self._counted = True
            with self._watchdog_lock:
                self._counting = True
                self._stopper.requested = 0  # a tick from before must not cut the quantum short
            try:
                self.uc.emu_start(rip, 0, 0, count)
            finally:
                with self._watchdog_lock:
                    self._counting = False
        if self.pending_error is not None:
            error, self.pending_error = self.pending_error, None
            raise error

    def count_instructions(self, report: Callable[[int], None]) -> None:
        """Count executed instructions (for --max-instructions): a block hook reports each
        translation block's instruction count, decoded once per block. Costs a Python call per
        block executed, so it is only installed when a limit asks for it. The counts are
        cached per block, bounded by BLOCK_COUNTS_MAX and dropped with the translated code."""
        from capstone import CS_ARCH_X86, CS_MODE_64, Cs

        decoder = Cs(CS_ARCH_X86, CS_MODE_64)
        counts = self._block_counts
        self.use_block_stopper()

        def on_block(_handle, address: int, size: int, _data) -> None:
            key = (self._cr3, address, size)
            n = counts.get(key)
            if n is None:
                if len(counts) >= BLOCK_COUNTS_MAX:
                    counts.clear()
                    self.block_rehook_pending = True  # at the next run(): the watchdog's tick at the latest
                code = self._read_code(address, size)
                n = counts[key] = max(1, sum(1 for _ in decoder.disasm_lite(code, address)))
            try:
                report(n)
            except BaseException as error:  # noqa: BLE001 - re-raised by run()
                self.pending_error = error
                self.uc.emu_stop()

        callback = _BLOCK_CB(on_block)
        self._block_hook = (self.uc.hook_add(UC_HOOK_BLOCK, callback), callback)

    def use_block_stopper(self) -> None:
        """From now on the watchdog stops the CPU only through stopper.c's block hook, which
        runs before any hook added later. Needed once a block or code hook must see each
        block or instruction exactly once: the engine's own stop from another thread
        (engine/patches/0005) can land after a block's hooks ran and before its code, so
        the block would run, and its hooks fire, again on the next start."""
        if self._stopper_lib is None:
            self._stopper, self._stopper_lib = _hook_stopper(self.uc)

    def _rehook_blocks(self) -> None:
        """Replace the block hook by an identical one. Unicorn records every block a hook has
        instrumented (a per-hook table, about 80 bytes a block, freed only with the hook), so a
        guest running ever new code would grow it without end. Unicorn frees the deleted hook
        (skipping it meanwhile) when the next run ends; the callback stays alive, reused."""
        self.block_rehook_pending = False
        handle, callback = self._block_hook
        self.uc.hook_del(handle, callback)
        self._block_hook = (self.uc.hook_add(UC_HOOK_BLOCK, callback), callback)
        self.uc.ctl_flush_tb()  # every block is translated again, calling the new hook

    def _read_code(self, va: int, size: int) -> bytes:
        """Instruction bytes at `va` through the CPU's own translation (present pages only)."""
        out = bytearray()
        while len(out) < size:
            pa = self.uc.vmem_translate(va + len(out), UC_PROT_EXEC)
            if pa is None:
                break
            take = min(size - len(out), PAGE_SIZE - ((va + len(out)) & (PAGE_SIZE - 1)))
            out += self.mem.read(pa, take)
        return bytes(out)

    def _start_watchdog(self) -> None:
        """A daemon thread that asks for the CPU back every WATCHDOG_SECONDS (cheaper than
        Unicorn's own timeout, whose thread polls every 2 microseconds). With the PyPI wheel's
        engine it never stops the CPU itself: the block hook in C does, between blocks
        (sandbox/native/stopper.c: there an asynchronous uc_emu_stop can make Unicorn run an
        instruction twice); the project's build stops between blocks by itself."""
        if self._watchdog is not None:
            return
        self._watchdog = threading.Event()
        done = self._watchdog
        engine = self.uc

        def tick() -> None:
            while not done.wait(WATCHDOG_SECONDS):
                with self._watchdog_lock:
                    if self._counting:
                        continue
                    self.time_slice_over = True
                    if self._stopper_lib is None:  # see _install_stopper and count_instructions
                        engine.emu_stop()
                    else:
                        self._stopper.requested = 1

        threading.Thread(target=tick, name="sandbox-watchdog", daemon=True).start()

    def stop(self) -> None:
        """Ask the CPU to stop after the current instruction."""
        self.uc.emu_stop()

    def hook_code(self, begin: int, end: int, callback: Callable[[int, int], None]) -> tuple[int, object]:
        """Call `callback(address, size)` before each instruction at a virtual address in
        [begin, end), in every process (Unicorn's UC_HOOK_CODE with a range: only code there
        is instrumented, code elsewhere runs as before). An exception it raises ends the run
        (re-raised by `run`). Returns the handle for `unhook_code`."""
        def entry(_uc: object, address: int, size: int, _data: object) -> None:
            self._gate.forget()  # the callback may hook system calls: no answer in C goes unseen
            try:
                callback(address, size)
            except BaseException as error:  # noqa: BLE001 - re-raised by run(), never lost
                self.pending_error = error
                self.uc.emu_stop()

        self.use_block_stopper()
        hook = _BLOCK_CB(entry)
        handle = ctypes.c_size_t()
        X.check(X.lib.uc_hook_add(self.uc.handle, ctypes.byref(handle), UC_HOOK_CODE, hook, None, begin, end - 1))
        self.tb_flush_pending = True  # code translated before has no call to the hook
        return handle.value, hook

    def unhook_code(self, handle: tuple[int, object]) -> None:
        """Remove a hook `hook_code` added."""
        X.check(X.lib.uc_hook_del(self.uc.handle, handle[0]))
        self.tb_flush_pending = True

    def _intr_entry(self, intno: int) -> None:
        self._gate.forget()  # a fault's listeners and policies may hook system calls too
        try:
            self.on_exception(intno)
        except BaseException as error:  # noqa: BLE001 - re-raised by run(), never lost
            self.pending_error = error
            self.uc.emu_stop()

    # -- the system-call gate (sandbox/fastpath.py) --------------------------------------------

    def _hook_syscalls(self) -> None:
        """Hook the `syscall` instruction through the gate: C where it is built. Its own
        methods serve as `syscall_args` and `set_return`, bound once here, so that the
        kernel's entry reaches C without a Python frame in between."""
        self._gate = fastpath.install(self.uc, self._syscall_entry)
        self.syscall_args: Callable[[], tuple[int, ...]] = self._gate.args
        self.set_return: Callable[[int], None] = self._gate.set_return

    def _syscall_entry(self) -> None:
        try:
            self.on_syscall()
        except BaseException as error:  # noqa: BLE001 - re-raised by run(), never lost
            self.pending_error = error
            self.uc.emu_stop()

    def syscall_args(self) -> tuple[int, ...]:
        """(number, arg0..arg5) of the call being handled (the gate's; see _hook_syscalls)."""
        return self._gate.args()

    def set_return(self, value: int) -> None:
        """Put a system call's result in RAX (negative errno as two's complement)."""
        self._gate.set_return(value)

    def publish_answer(self, nr: int, answer: int) -> None:
        """Getter `nr` (fastpath.GETTERS) answers `answer` without Python until Python
        handles another call or `forget_answers`."""
        self._gate.publish(nr, answer)

    def forget_answers(self) -> None:
        """Withdraw every published answer (another task gets the CPU)."""
        self._gate.forget()

    def report_answered_to(self, callback: Callable[[], None]) -> None:
        """Call `callback()` before Python next runs (a call, a fault, a hook, a switch)
        whenever getter calls answered in C wait to be taken (take_answered_counts)."""
        self._gate.on_answered = callback

    def take_answered_counts(self) -> tuple[int, ...]:
        """Getter calls answered without Python since the last take, in GETTERS order."""
        return self._gate.take_counts()

    # -- the CPU's registers and saved contexts (a task off the CPU keeps its context) --------

    def reg_read(self, reg: int) -> int:
        return self.uc.reg_read(reg)

    def reg_write(self, reg: int, value: int) -> None:
        self.uc.reg_write(reg, value)

    def save_context(self, into=None):
        """The CPU's whole state as a Unicorn context (a new one, or `into` updated)."""
        if into is None:
            return self.uc.context_save()
        self.uc.context_update(into)
        return into

    def restore_context(self, context, same_space: bool = False) -> None:
        """Load a saved CPU state. Unless it is known to be in the address space the CPU
        was in (another thread of the same process), the next `switch_to` writes CR3 (and
        so flushes the TLB) whatever the context held."""
        self.uc.context_restore(context)
        if not same_space:
            self._cr3 = -1

    # -- user register state, for signal frames --------------------------------------------

    def read_sigcontext_regs(self) -> list[int]:
        """r8..r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags (one batched read)."""
        return list(self.uc.reg_read_batch(SIGCONTEXT_REGS))

    def write_sigcontext_regs(self, values: list[int]) -> None:
        """The inverse; EFLAGS keeps its system bits (only the user-changeable ones are taken)."""
        values = list(values)
        current = self.uc.reg_read(X.UC_X86_REG_EFLAGS)
        values[-1] = (current & ~EFLAGS_USER) | (values[-1] & EFLAGS_USER)
        self.uc.reg_write_batch(list(zip(SIGCONTEXT_REGS, values, strict=True)))

    def read_fxsave(self) -> bytes:
        """The x87/SSE state in FXSAVE layout (what a signal frame's fpstate holds)."""
        uc = self.uc
        fcw, fsw, tags = uc.reg_read(X.UC_X86_REG_FPCW), uc.reg_read(X.UC_X86_REG_FPSW), uc.reg_read(X.UC_X86_REG_FPTAG)
        abridged = sum(1 << i for i in range(8) if (tags >> (2 * i)) & 3 != 3)
        head = FXSAVE_HEAD.pack(fcw, fsw, abridged, uc.reg_read(X.UC_X86_REG_FOP), uc.reg_read(X.UC_X86_REG_FIP),
                                uc.reg_read(X.UC_X86_REG_FDP), uc.reg_read(X.UC_X86_REG_MXCSR), MXCSR_MASK)
        top = (fsw >> 11) & 7
        st = b""
        for i in range(8):
            mantissa, exponent = uc.read_fp((top + i) % 8)
            st += struct.pack("<QH6x", mantissa, exponent)
        xmm = b"".join(uc.read_xmm(i) for i in range(16))
        image = head + st + xmm
        return image + bytes(FXSAVE_SIZE - len(image))

    def write_fxsave(self, image: bytes) -> None:
        """Load an FXSAVE image (sigreturn); MXCSR's reserved bits are dropped, not faulted."""
        uc = self.uc
        fcw, fsw, abridged, fop, fip, fdp, mxcsr, _ = FXSAVE_HEAD.unpack_from(image)
        uc.reg_write(X.UC_X86_REG_FPCW, fcw)
        uc.reg_write(X.UC_X86_REG_FPSW, fsw)
        uc.reg_write(X.UC_X86_REG_FPTAG, sum((0 if abridged >> i & 1 else 3) << (2 * i) for i in range(8)))
        uc.reg_write(X.UC_X86_REG_MXCSR, mxcsr & MXCSR_MASK)
        top = (fsw >> 11) & 7
        for i in range(8):
            mantissa, exponent = struct.unpack_from("<QH", image, 32 + 16 * i)
            uc.write_fp((top + i) % 8, mantissa, exponent)
        for i in range(16):
            uc.write_xmm(i, image[160 + 16 * i : 176 + 16 * i])
        del fop, fip, fdp  # instruction pointers are informational; not restored

    def close(self) -> None:
        """Stop the watchdog, free Unicorn and the RAM buffer."""
        if self._watchdog is not None:
            self._watchdog.set()
        self._gate.close()  # the engine frees its hooks; the gate must not reach into it after
        self._faults.close()  # nor the fault gate into the engine or the RAM
        self.uc = None
        self.mem.close()


def _unexpected_syscall() -> None:
    raise InvariantError("syscall with no kernel attached")


def _unexpected_exception(intno: int) -> None:
    raise InvariantError(f"exception {intno} with no kernel attached")

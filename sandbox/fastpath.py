"""The machine's system-call gate: the C entry of sandbox/native/fastpath.c, or the pure-Python one.

A gate hooks the engine's `syscall` instruction and calls the machine's entry (no arguments)
for every call it does not answer itself. Both gates offer the same methods:

- `args()`: (number, arg0..arg5) of the call being handled, as unsigned 64-bit values;
- `set_return(value)`: RAX (a negative errno as two's complement);
- `publish(nr, answer)`: getter `nr` (one of GETTERS) may be answered without Python until
  `forget()`, or until Python handles any call but a getter (the C gate withdraws every
  answer itself then);
- `take_counts()`: calls answered without Python since the last take, per getter, in GETTERS
  order (the kernel folds them into its counts when they are read);
- `on_answered`: a callable the C gate calls before Python runs (a call it passes on,
  `forget()`) while answered calls wait to be taken;
- `close()`: unhook before the engine closes (the machine's close).

The C gate (built by `make compile`) reads the seven registers in one uc_reg_read_batch and
answers published getters in C: a getppid costs a fraction of a microsecond instead of
several (issue 17). The Python gate reads through ctypes, as the machine always did, and
answers nothing itself: it serves when the extension is not built, and under
SANDBOX_FAST_PATH=0, which tests use to compare the two paths.

The machine's exception hook comes from here too (`install_faults`): the C one of
sandbox/native/faultpath.c maps first touches of anonymous memory itself, from a reserve of
frames (`NativeFaultGate`), and calls the machine for every other exception; the Python one
calls it for all. Under SANDBOX_FAST_PATH=0, or without the extension, it is the Python one.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable

from sandbox import engine as X
from sandbox.engine import UC_HOOK_INSN, Engine
from sandbox.errors import OutOfMemory
from sandbox.mm import PAGE_SHIFT

#: The trivial calls whose answers the kernel publishes, by x86-64 number (arch/x86/entry/
#: syscalls/syscall_64.tbl): each depends only on the task on the CPU and the fixed ids.
GETTERS: dict[int, str] = {
    39: "getpid",
    102: "getuid",
    104: "getgid",
    107: "geteuid",
    108: "getegid",
    110: "getppid",
    186: "gettid",
}
#: SANDBOX_FAST_PATH=0 takes the pure-Python gate even where the C one is built.
SWITCH_VARIABLE = "SANDBOX_FAST_PATH"
#: Registers carrying a system call's number and six arguments (x86-64 syscall ABI, man 2 syscall).
SYSCALL_REGS = (X.UC_X86_REG_RAX, X.UC_X86_REG_RDI, X.UC_X86_REG_RSI, X.UC_X86_REG_RDX,
                X.UC_X86_REG_R10, X.UC_X86_REG_R8, X.UC_X86_REG_R9)
_SYSCALL_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
_MASK64 = 0xFFFF_FFFF_FFFF_FFFF


def _load_native():
    """The extension module, or None if it is not built (or built for another Python)."""
    try:
        from sandbox.native import _fastpath
    except ImportError:
        return None
    return _fastpath


_native = _load_native()


def built() -> bool:
    """Whether sandbox/native/fastpath.c is built for this Python."""
    return _native is not None


def state() -> str:
    """"on", or "off" and why: for --stats and `sandbox --version`."""
    if _native is None:
        return "off (sandbox/native/_fastpath.so not built: `make compile`)"
    if os.environ.get(SWITCH_VARIABLE) == "0":
        return f"off (${SWITCH_VARIABLE}=0)"
    return "on"


def install(uc: Engine, entry: Callable[[], None]):
    """Hook `uc`'s syscall instruction with the best gate available; the gate (kept alive
    as long as the engine: the engine calls into it)."""
    if state() != "on":
        return PythonGate(uc, entry)
    functions = tuple(ctypes.cast(getattr(X.lib, name), ctypes.c_void_p).value for name in
                      ("uc_reg_read_batch", "uc_reg_write", "uc_emu_stop", "uc_hook_add", "uc_hook_del"))
    return _native.FastPath(uc.handle.value, functions, SYSCALL_REGS, UC_HOOK_INSN, X.UC_X86_INS_SYSCALL,
                            entry, tuple(GETTERS))


class PythonGate:
    """The gate without C: a ctypes callback per call, registers read through ctypes when
    asked for, nothing answered without Python."""

    #: Never called: nothing is answered without Python here.
    on_answered: Callable[[], None] | None = None

    def __init__(self, uc: Engine, entry: Callable[[], None]) -> None:
        self._handle = uc.handle  # not the engine: the machine alone decides when it closes
        self._entry = entry
        self._ids = (ctypes.c_int * len(SYSCALL_REGS))(*SYSCALL_REGS)
        self._vals = (ctypes.c_uint64 * len(SYSCALL_REGS))()
        self._ptrs = X.value_pointers(self._vals)
        self._rax = ctypes.c_uint64()
        uc.hook_add(UC_HOOK_INSN, _SYSCALL_CB(self._hook), X.UC_X86_INS_SYSCALL)

    def _hook(self, _handle: object, _data: object) -> None:
        self._entry()

    def args(self) -> tuple[int, ...]:
        """(number, arg0..arg5) in one batched register read."""
        if self._handle is None:
            raise RuntimeError("the gate is not hooked to an engine")
        X.lib.uc_reg_read_batch(self._handle, self._ids, self._ptrs, len(SYSCALL_REGS))
        return tuple(self._vals)

    def set_return(self, value: int) -> None:
        if self._handle is None:
            raise RuntimeError("the gate is not hooked to an engine")
        self._rax.value = value & _MASK64
        X.lib.uc_reg_write(self._handle, X.UC_X86_REG_RAX, ctypes.byref(self._rax))

    def publish(self, nr: int, answer: int) -> None:
        """Nothing is answered without Python here."""

    def forget(self) -> None:
        """Nothing was published."""

    def take_counts(self) -> tuple[int, ...]:
        return (0,) * len(GETTERS)

    def close(self) -> None:
        """Forget the engine (its hooks go with it when it closes)."""
        self._handle = None


# -- the page-fault entry (sandbox/native/faultpath.c) ------------------------------------------

_INTR_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p)
#: The largest refill of the C fault path's reserve: one buddy block of 2**RESERVE_ORDER
#: frames (2 MiB), so that refills cost next to nothing per fault.
RESERVE_ORDER = 9
#: Smaller refills are not worth a call: below this order faults go to Python.
MIN_RESERVE_ORDER = 4
#: A refill takes at most 1/RESERVE_SHARE of the free frames (a reserve is RAM no one else
#: may use until the allocator takes it back: it does so before any allocation fails).
RESERVE_SHARE = 8
#: In QEMU's CPUX86State, `target_ulong cr[5]`: CR3 is the word after CR2.
CR3_AFTER_CR2 = 8
#: madvise(2): fault the range in, writable, now (Linux 5.14; not in Python 3.11's mmap).
MADV_POPULATE_WRITE = 23


def install_faults(uc: Engine, entry: Callable[[int], None]):
    """Hook `uc`'s exceptions with the best fault gate available: `entry(intno)` is called
    for every exception the gate does not handle itself. The gate handles none until
    `start` (after the machine has found the exception state, machine.py's calibration)."""
    if state() != "on":
        return PythonFaultGate(uc, entry)
    return NativeFaultGate(uc, entry)


class PythonFaultGate:
    """Every exception through a ctypes callback to Python, as the machine always did."""

    def __init__(self, uc: Engine, entry: Callable[[int], None]) -> None:
        def hook(_handle: object, intno: int, _data: object) -> None:
            entry(intno)

        self._callback = _INTR_CB(hook)
        uc.hook_add(X.UC_HOOK_INTR, self._callback)

    @property
    def handled(self) -> int:
        """Faults handled without Python: none here."""
        return 0

    def start(self, uc: Engine, offsets: dict[str, int], mem, frames) -> None:
        """Nothing to start: Python handles every fault."""

    def close(self) -> None:
        """The engine frees its hooks when it closes."""


class NativeFaultGate:
    """The C hook of sandbox/native/faultpath.c, and the reserve of frames it maps from.

    The reserve is one run of frames the allocator hands over (`FrameAllocator.alloc_reserve`)
    whenever the C side finds it empty, sized within what is free; the allocator takes it back
    (`reclaim`) before any allocation would fail, so a guest near the end of its RAM gets
    every frame it would get without the fast path. With a resident cap (--max-resident:
    `frames.limit`, a check per allocation) nothing is reserved and faults go to Python."""

    def __init__(self, uc: Engine, entry: Callable[[int], None]) -> None:
        functions = tuple(ctypes.cast(getattr(X.lib, name), ctypes.c_void_p).value for name in
                          ("uc_context_save", "uc_context_restore", "uc_emu_stop", "uc_hook_add", "uc_hook_del"))
        self._native = _native.FaultPath(uc.handle.value, functions, X.UC_HOOK_INTR, entry)
        self._frames = self._mem = None
        self._context = None  # the uc_context the C side saves into: alive as long as it is
        self._populate_ok = True

    @property
    def handled(self) -> int:
        """Faults handled in C so far."""
        return self._native.handled

    def start(self, uc: Engine, offsets: dict[str, int], mem, frames) -> None:
        """Handle first touches in C from now on, reading the exception state at `offsets`
        (cr2, error_code, old_exception: machine.py's calibration) of a saved context. An
        engine whose context does not hold CR3 right after CR2 keeps every fault in Python."""
        from sandbox.mm.fault import DEMAND_ZERO, LEAF_FLAGS  # the values the Python path writes

        context = uc.context_save()
        cr3_offset = offsets["cr2"] + CR3_AFTER_CR2
        if int.from_bytes(bytes(context)[cr3_offset:cr3_offset + 8], "little") != uc.reg_read(X.UC_X86_REG_CR3):
            return
        self._context, self._frames, self._mem = context, frames, mem
        frames.attach_reserve(self)
        ram = ctypes.addressof(ctypes.c_char.from_buffer(mem.buffer))
        self._native.start(context.pointer.value,
                           (offsets["cr2"], cr3_offset, offsets["error_code"], offsets["old_exception"]),
                           ram, mem.size, frames.spaces, frames, self._refill, DEMAND_ZERO, LEAF_FLAGS)

    def _refill(self) -> None:
        """Called by C (the GIL held) when the reserve is empty: one block of free frames,
        at most 1/RESERVE_SHARE of them, unless a resident cap is set."""
        frames = self._frames
        if frames.limit is not None:
            return
        order = min(RESERVE_ORDER, (frames.free // RESERVE_SHARE).bit_length() - 1)
        if order < MIN_RESERVE_ORDER:
            return
        try:
            first = frames.alloc_reserve(order)
        except OutOfMemory:  # no block that large: fragmented RAM, Python maps page by page
            return
        self._populate(first, 1 << order)
        self._native.fill(first, 1 << order)

    def _populate(self, first: int, count: int) -> None:
        """Have the host back the reserve's frames now, in one call (MADV_POPULATE_WRITE,
        Linux 5.14): each guest first touch would otherwise also take a host page fault.
        Where the host refuses, frames are backed page by page on first touch as before.
        (Offering each 2 MiB block as a transparent huge page, MADV_HUGEPAGE, measured
        1.5 us a fault instead of 2.4, but can stall in the host's direct compaction: not
        done; bench/RESULTS.md.)"""
        if self._populate_ok:
            try:
                self._mem.buffer.madvise(MADV_POPULATE_WRITE, first << PAGE_SHIFT, count << PAGE_SHIFT)
            except OSError:
                self._populate_ok = False

    def held(self) -> range:
        """The frames the reserve holds (FrameAllocator's Reserve protocol)."""
        first, count = self._native.reserve
        return range(first, first + count)

    def reclaim(self) -> bool:
        """Give the reserve's frames back to the allocator; True if there were any."""
        first, count = self._native.drain()
        if count:
            self._frames.free_reserve(first, count)
        return count > 0

    def close(self) -> None:
        """Unhook before the engine and its RAM go; the reserve's frames go with the RAM."""
        self._native.close()
        self._context = None

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
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable

from sandbox import engine as X
from sandbox.engine import UC_HOOK_INSN, Engine

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

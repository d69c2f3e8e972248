"""System-call hooks of the Python API (`Sandbox.hook_syscall`): what a hook sees of a
call, and how the kernel calls the hooks at a call's entry and completion."""

from __future__ import annotations

from collections.abc import Callable

from sandbox.kernel.syscall_names import SYSCALL_NAMES, SYSCALL_NUMBERS
from sandbox.kernel.syscalls import MASK64
from sandbox.kernel.task import Task

ARG_REGISTERS = 6  # a system call's arguments: rdi, rsi, rdx, r10, r8, r9
REGISTER_MIN = -(1 << 63)  # a hook may write an argument signed (-100 for AT_FDCWD) or unsigned


class SyscallCall:
    """One system call as a hook sees it. `args` are the six argument registers, unsigned:
    on_enter may change them (each to an int from -2**63 to 2**64 - 1; ValueError beyond);
    setting `result` (a value or -errno) in on_enter skips the handler, and in on_exit
    replaces what the call returns. (A plain class: a plain run
    imports no dataclasses, tests/integration/test_cli.py.)"""

    __slots__ = ("pid", "tid", "nr", "name", "args", "result")

    def __init__(self, pid: int, tid: int, nr: int, name: str, args: list[int], result: int | None = None) -> None:
        self.pid, self.tid, self.nr, self.name, self.args, self.result = pid, tid, nr, name, args, result

    def __repr__(self) -> str:
        return f"SyscallCall({self.name}, args={self.args}, result={self.result})"


class SyscallHook:
    """The callbacks of one system call (Kernel.syscall_hooks): what the kernel calls at
    its entry (`_on_syscall`) and its completion (`complete`, also after a sleep)."""

    def __init__(self, nr: int, on_enter: Callable[[SyscallCall], object] | None,
                 on_exit: Callable[[SyscallCall], object] | None) -> None:
        self.nr, self.name = nr, SYSCALL_NAMES.get(nr, f"syscall_{nr}")
        self.on_enter, self.on_exit = on_enter, on_exit

    def enter(self, task: Task, nr: int, args: tuple[int, ...]) -> tuple[tuple[int, ...], int | None]:
        """(the arguments, maybe changed; a result that replaces the handler's, or None)."""
        if self.on_enter is None:
            return args, None
        call = SyscallCall(task.pid, task.tid, nr, self.name, list(args))
        self.on_enter(call)
        if len(call.args) != ARG_REGISTERS or not all(isinstance(a, int) for a in call.args):
            raise ValueError(f"{self.name} hook: call.args must stay {ARG_REGISTERS} integers")
        for value in call.args:  # a register holds 64 bits, signed or not: more is a mistake, not masked
            if not REGISTER_MIN <= value <= MASK64:
                raise ValueError(f"{self.name} hook: argument {value} does not fit a 64-bit register")
        return tuple(a & MASK64 for a in call.args), None if call.result is None else hook_result(call)

    def exit(self, task: Task, nr: int, args: tuple[int, ...], result: int) -> int:
        """The call's result, as on_exit leaves it."""
        if self.on_exit is None:
            return result
        call = SyscallCall(task.pid, task.tid, nr, self.name, list(args), result)
        self.on_exit(call)
        return hook_result(call)


def hook_result(call: SyscallCall) -> int:
    """A hook's result as the kernel takes it: a signed 64-bit value."""
    if not isinstance(call.result, int):
        raise ValueError(f"{call.name} hook: call.result must be an int, not {call.result!r}")
    value = call.result & MASK64
    return value - (1 << 64) if value >> 63 else value


def syscall_number(call: str | int) -> int:
    """A system call's number, from its name or number."""
    if isinstance(call, str):
        if call not in SYSCALL_NUMBERS:
            raise ValueError(f"unknown system call {call!r}")
        return SYSCALL_NUMBERS[call]
    if not 0 <= call < 1 << 32:
        raise ValueError(f"bad system call number {call}")
    return call

"""The system-call table.

Handlers register with `@syscall("name", "arg names")`; the number comes from the generated
x86-64 table. The kernel's syscall entry (`Kernel._on_syscall`) is the only place where
`SyscallError` becomes `-errno`, `WouldBlock` puts the caller to sleep, and a number without a
handler becomes `-ENOSYS` (reported as such under --trace-syscalls).

A handler takes the process and exactly its declared arguments, and returns an int.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from sandbox.kernel.syscall_names import SYSCALL_NAMES, SYSCALL_NUMBERS

if TYPE_CHECKING:
    pass

MASK64 = (1 << 64) - 1


class SyscallEntry(NamedTuple):
    """One implemented system call."""

    nr: int
    name: str
    handler: Callable[..., int]
    args: tuple[str, ...]


TABLE: dict[int, SyscallEntry] = {}


def syscall(name: str, args: str = "") -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Register the decorated function as the handler of system call `name`."""

    def register(handler: Callable[..., int]) -> Callable[..., int]:
        nr = SYSCALL_NUMBERS[name]
        if nr in TABLE:
            raise ValueError(f"system call {name} registered twice")
        TABLE[nr] = SyscallEntry(nr, name, handler, tuple(args.split()))
        return handler

    return register


def syscall_name(nr: int) -> str:
    """'write' for 1; 'syscall_999' for unknown numbers."""
    return SYSCALL_NAMES.get(nr, f"syscall_{nr}")


def to_signed(value: int) -> int:
    """Read a 64-bit register as a signed integer (C's `long`)."""
    return value - (1 << 64) if value >> 63 else value


def to_int32(value: int) -> int:
    """Read the low 32 bits of a register as a signed `int` (fds, flags, ...)."""
    value &= 0xFFFF_FFFF
    return value - (1 << 32) if value >> 31 else value

"""The system-call table.

Handlers register with `@syscall("name", "arg names")`; the number comes from the generated
x86-64 table. The kernel's syscall entry (`Kernel._on_syscall`) is the only place where
`SyscallError` becomes `-errno`, `WouldBlock` puts the caller to sleep, and a number without a
handler becomes `-ENOSYS` (reported as such under --trace-syscalls).

A handler takes the process and exactly its declared arguments, and returns an int.

Handler modules load on first use: TABLE starts with a stand-in entry for every call in the
generated map (syscall_modules.py: name, defining module, argument names), whose handler imports
the defining module, whose `@syscall` then replaces the stand-in, and calls the real handler. So
a hello-world run imports no socket, IPC or epoll code, while names and argument lists (traces,
--stats) are there from the start. `load_all()` imports every handler module (tools, tests).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from sandbox.errors import InvariantError
from sandbox.kernel.syscall_modules import SYSCALL_MODULES
from sandbox.kernel.syscall_names import SYSCALL_NAMES, SYSCALL_NUMBERS

MASK64 = (1 << 64) - 1


class SyscallEntry:
    """One implemented system call."""

    __slots__ = ("nr", "name", "handler", "args")

    def __init__(self, nr: int, name: str, handler: Callable[..., int], args: tuple[str, ...]) -> None:
        self.nr = nr
        self.name = name
        self.handler = handler
        self.args = args


TABLE: dict[int, SyscallEntry] = {}
#: Numbers whose TABLE entry is still a stand-in (its module not imported yet).
_STANDINS: set[int] = set()


def syscall(name: str, args: str = "") -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Register the decorated function as the handler of system call `name` (replacing its
    stand-in; a second real handler for one call is a bug)."""

    def register(handler: Callable[..., int]) -> Callable[..., int]:
        nr = SYSCALL_NUMBERS[name]
        if nr in TABLE and nr not in _STANDINS:
            raise ValueError(f"system call {name} registered twice")
        _STANDINS.discard(nr)
        TABLE[nr] = SyscallEntry(nr, name, handler, tuple(args.split()))
        return handler

    return register


def _standin(nr: int, module: str) -> Callable[..., int]:
    """A handler for call `nr` that imports `module` (registering the real handler) and
    then runs the real handler with the same arguments."""

    def load_and_call(proc: object, *args: int) -> int:
        importlib.import_module(module)
        if nr in _STANDINS:  # the map is stale: tools/gen_syscall_modules.py was not run
            raise InvariantError(f"{module} did not register system call {syscall_name(nr)}")
        return TABLE[nr].handler(proc, *args)

    return load_and_call


def _install_standins() -> None:
    """Fill TABLE with a stand-in entry for every call the generated map names."""
    for name, (module, args) in SYSCALL_MODULES.items():
        nr = SYSCALL_NUMBERS[name]
        if nr not in TABLE:
            TABLE[nr] = SyscallEntry(nr, name, _standin(nr, module), tuple(args.split()))
            _STANDINS.add(nr)


def load_all() -> dict[int, SyscallEntry]:
    """Import every handler module, so TABLE holds the real handlers; returns TABLE."""
    for module in sorted({module for module, _ in SYSCALL_MODULES.values()}):
        importlib.import_module(module)
    if _STANDINS:
        names = ", ".join(sorted(syscall_name(nr) for nr in _STANDINS))
        raise InvariantError(f"no module registered {names}: run tools/gen_syscall_modules.py")
    return TABLE


def is_loaded(nr: int) -> bool:
    """Whether call `nr` has its real handler (False for a stand-in or no handler at all)."""
    return nr in TABLE and nr not in _STANDINS


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


_install_standins()

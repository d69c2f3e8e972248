"""A process: one address space, its descriptors, its CPU state, its family and its fate."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sandbox.kernel.files import FdTable
from sandbox.mm.aspace import AddressSpace

if TYPE_CHECKING:
    from sandbox.errors import WouldBlock
    from sandbox.kernel.kernel import Kernel


class State(enum.Enum):
    RUNNING = "running"  # runnable, or on the CPU
    BLOCKED = "blocked"  # inside a system call that cannot finish yet
    ZOMBIE = "zombie"  # exited or killed, not reaped by its parent yet
    REAPED = "reaped"


@dataclass
class Death:
    """Why a process was killed: the signal and what the user should be told."""

    signo: int
    message: str


@dataclass
class Process:
    """Everything the kernel keeps about one guest process."""

    kernel: Kernel
    pid: int
    ppid: int
    space: AddressSpace | None
    exe: str
    files: FdTable = field(default_factory=FdTable.with_stdio)
    brk_start: int = 0
    brk: int = 0
    clear_child_tid: int = 0
    cwd: str = "/"  # a resolved guest path
    exe_guest: str = ""  # where the program file is in the guest tree (/proc/self/exe)
    umask: int = 0o022
    #: rt_sigaction records (raw struct kernel_sigaction bytes by signal).
    sig_actions: dict[int, bytes] = field(default_factory=dict)
    sig_mask: int = 0
    #: Pending signals with their siginfo (one instance per number, as standard signals).
    pending: dict[int, bytes] = field(default_factory=dict)
    altstack: tuple[int, int, int] = (0, 2, 0)  # sigaltstack: sp, flags (SS_DISABLE), size
    sigreturn_pending: bool = False
    saved_mask: int | None = None  # rt_sigsuspend's mask to restore after the handler
    fault_cr2: int = 0  # the address of the fault whose signal is pending (sigcontext.cr2)
    itimer: tuple[float, float] | None = None  # ITIMER_REAL: deadline, interval
    rlimits: dict[int, tuple[int, int]] = field(default_factory=dict)
    robust_list: int = 0
    comm: str = ""  # the task name (prctl PR_SET_NAME, /proc/self/comm)
    prctl: dict[int, int] = field(default_factory=dict)
    argv: list[bytes] = field(default_factory=list)
    envp: list[bytes] = field(default_factory=list)
    pgid: int = 0
    sid: int = 0
    children: list[Process] = field(default_factory=list)
    state: State = State.RUNNING
    exit_code: int = 0
    death: Death | None = None
    #: The saved CPU (a Unicorn context) while off the CPU; None before the first switch.
    context: Any = None
    #: (rip, rsp) of a fresh program image (spawn, execve): entered through the trampoline.
    fresh_entry: tuple[int, int] | None = None
    #: The system call this process sleeps in.
    blocked: WouldBlock | None = None
    #: A vfork parent sleeps until this child execs or exits.
    vfork_parent: Process | None = None

    @property
    def alive(self) -> bool:
        return self.state in (State.RUNNING, State.BLOCKED)

    @property
    def status(self) -> int:
        """The exit status a shell would report: the exit code, or 128 + signal."""
        return 128 + self.death.signo if self.death else self.exit_code

    @property
    def wait_status(self) -> int:
        """The status word wait4 reports (WIFEXITED / WIFSIGNALED encoding)."""
        return self.death.signo & 0x7F if self.death else (self.exit_code & 0xFF) << 8

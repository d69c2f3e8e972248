"""A process: one address space, its descriptors, its CPU state, its family and its fate."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, NamedTuple

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


class Death(NamedTuple):
    """Why a process was killed: the signal and what the user should be told."""

    signo: int
    message: str


class Process:
    """Everything the kernel keeps about one guest process."""

    def __init__(self, kernel: Kernel, pid: int, ppid: int, space: AddressSpace | None, exe: str,
                 files: FdTable | None = None) -> None:
        self.kernel = kernel
        self.pid = pid
        self.ppid = ppid
        self.space = space
        self.exe = exe
        self.files = files if files is not None else FdTable.with_stdio()
        self.brk_start = 0
        self.brk = 0
        self.clear_child_tid = 0
        self.cwd = "/"  # a resolved guest path
        self.exe_guest = ""  # where the program file is in the guest tree (/proc/self/exe)
        self.umask = 0o022
        #: rt_sigaction records (raw struct kernel_sigaction bytes by signal).
        self.sig_actions: dict[int, bytes] = {}
        self.sig_mask = 0
        #: Pending signals with their siginfo (one instance per number, as standard signals).
        self.pending: dict[int, bytes] = {}
        self.altstack: tuple[int, int, int] = (0, 2, 0)  # sigaltstack: sp, flags (SS_DISABLE), size
        self.sigreturn_pending = False
        self.saved_mask: int | None = None  # rt_sigsuspend's mask to restore after the handler
        self.fault_cr2 = 0  # the address of the fault whose signal is pending (sigcontext.cr2)
        self.itimer: tuple[float, float] | None = None  # ITIMER_REAL: deadline, interval
        self.rlimits: dict[int, tuple[int, int]] = {}
        self.robust_list = 0
        self.comm = ""  # the task name (prctl PR_SET_NAME, /proc/self/comm)
        self.prctl: dict[int, int] = {}
        #: Where execve put the argv and envp strings in this process's memory (Linux's
        #: mm->arg_start/arg_end, env_start/env_end): /proc/PID/cmdline and environ read
        #: them there, so no copy of them is kept on the host.
        self.arg_range: tuple[int, int] = (0, 0)
        self.env_range: tuple[int, int] = (0, 0)
        self.pgid = 0
        self.sid = 0
        self.children: list[Process] = []
        self.state = State.RUNNING
        self.exit_code = 0
        self.death: Death | None = None
        #: The saved CPU (a Unicorn context) while off the CPU; None before the first switch.
        self.context: Any = None
        #: (rip, rsp) of a fresh program image (spawn, execve): entered through the trampoline.
        self.fresh_entry: tuple[int, int] | None = None
        #: The system call this process sleeps in.
        self.blocked: WouldBlock | None = None
        #: A vfork parent sleeps until this child execs or exits.
        self.vfork_parent: Process | None = None

    def inherit(self, parent: Process) -> None:
        """What a fork child takes from its parent besides memory and descriptors (man 2 fork)."""
        self.brk_start, self.brk, self.cwd, self.exe_guest = parent.brk_start, parent.brk, parent.cwd, parent.exe_guest
        self.umask, self.sig_actions, self.sig_mask = parent.umask, dict(parent.sig_actions), parent.sig_mask
        self.rlimits, self.comm, self.prctl = dict(parent.rlimits), parent.comm, dict(parent.prctl)
        self.arg_range, self.env_range = parent.arg_range, parent.env_range
        self.pgid, self.sid = parent.pgid, parent.sid

    def __repr__(self) -> str:
        return f"Process(pid={self.pid}, ppid={self.ppid}, exe={self.exe!r}, {self.state.name})"

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

"""A process: a thread group, what its threads share (Linux's signal_struct, mm_struct,
files_struct and fs_struct; gVisor's ThreadGroup). The threads themselves are `Task`s
(sandbox.kernel.task): the scheduler runs tasks, and wait4, kill and exit statuses speak of
thread groups.
"""

from __future__ import annotations

import enum
import signal
from typing import TYPE_CHECKING

from sandbox.kernel.files import FdTable
from sandbox.kernel.limits import WCOREFLAG, ProcessAttrs, Usage, default_rlimits, dumps_core
from sandbox.kernel.signals import PendingSignals
from sandbox.mm.aspace import AddressSpace

if TYPE_CHECKING:
    from sandbox.kernel.kernel import Kernel
    from sandbox.kernel.task import Task


class State(enum.Enum):
    RUNNING = "running"  # a task runnable or on the CPU; a thread group alive
    BLOCKED = "blocked"  # a task inside a system call that cannot finish yet
    ZOMBIE = "zombie"  # a task that ended; a thread group that ended and is not reaped yet
    REAPED = "reaped"  # a thread group its parent has waited for


class Death:
    """Why a process was killed: the signal and what the user should be told."""

    __slots__ = ("signo", "message")

    def __init__(self, signo: int, message: str) -> None:
        self.signo = signo
        self.message = message


class FsContext:
    """A working directory, root directory (chroot) and umask, as one object so that
    CLONE_FS can share it."""

    __slots__ = ("cwd", "umask", "root", "cwd_removed")

    def __init__(self, cwd: str = "/", umask: int = 0o022, root: str = "/") -> None:
        self.cwd, self.umask, self.root = cwd, umask, root
        #: The cwd was removed (rmdir): getcwd says ENOENT and relative paths find nothing,
        #: whatever is made at that path later (Linux: the dentry is dead).
        self.cwd_removed = False


class ThreadGroup:
    """Everything the kernel keeps about one guest process, shared by all its threads."""

    def __init__(self, kernel: Kernel, pid: int, ppid: int, space: AddressSpace | None, exe: str,
                 files: FdTable | None = None) -> None:
        self.kernel = kernel
        self.pid = pid  # the thread group id: the first thread's tid
        self.ppid = ppid
        self.space = space
        self.exe = exe
        self.files = files if files is not None else FdTable.with_stdio()
        self.tasks: list[Task] = []  # the live threads, the leader first
        self.brk_start = 0
        self.brk = 0
        #: The working directory and umask (Linux's fs_struct): shared with a child made
        #: with CLONE_FS, copied otherwise.
        self.fs = FsContext()
        self.exe_guest = ""  # where the program file is in the guest tree (/proc/self/exe)
        #: rt_sigaction records (raw struct kernel_sigaction bytes by signal), shared by the
        #: threads (CLONE_SIGHAND) and, with CLONE_SIGHAND alone, by other processes too.
        self.sig_actions: dict[int, bytes] = {}
        #: Process-directed pending signals with their siginfo (kill, SIGCHLD, SIGALRM): any
        #: thread that does not block one may take it (Linux's shared_pending).
        self.pending = PendingSignals()  # process-directed
        self.itimer: tuple[float, float] | None = None  # ITIMER_REAL: deadline, interval
        #: Resource limits, resource -> (soft, hard), every resource (limits.py).
        self.rlimits: dict[int, tuple[int, int]] = default_rlimits(kernel.options)
        self.usage, self.children_usage = Usage(), Usage()  # getrusage's SELF and CHILDREN
        self.attrs = ProcessAttrs()  # nice, scheduling policy, personality, memory locks
        self.prctl: dict[int, int] = {}
        #: Where execve put the argv and envp strings in this process's memory (Linux's
        #: mm->arg_start/arg_end, env_start/env_end): /proc/PID/cmdline and environ read
        #: them there, so no copy of them is kept on the host.
        self.arg_range: tuple[int, int] = (0, 0)
        self.env_range: tuple[int, int] = (0, 0)
        #: The image's auxv as execve gave it (mm->saved_auxv): /proc/PID/auxv.
        self.auxv = b""
        self.pgid = 0
        self.sid = 0
        self.children: list[ThreadGroup] = []
        self.state = State.RUNNING
        self.exit_signal = signal.SIGCHLD  # what the parent is sent at the end (clone's CSIGNAL)
        self.exit_code = 0
        self.death: Death | None = None
        #: Job control (kernel/signal.c group stop): the signal that stopped every thread
        #: (0 while the process runs; a stopped one stays `alive` but is never scheduled),
        #: and the wait status its parent has yet to collect with WUNTRACED (W_STOPCODE)
        #: or WCONTINUED (0xffff), once; 0 if none. `stop_watched`: a shell of the session
        #: could continue it when it stopped (its group was not orphaned then).
        self.stop_signal = 0
        self.job_status = 0
        self.stop_watched = False

    def inherit(self, parent: ThreadGroup) -> None:
        """What a fork child takes from its parent besides memory and descriptors (man 2 fork)."""
        self.brk_start, self.brk, self.exe_guest = parent.brk_start, parent.brk, parent.exe_guest
        self.fs = FsContext(parent.cwd, parent.umask, parent.fs.root)
        self.sig_actions = dict(parent.sig_actions)
        self.rlimits, self.prctl = dict(parent.rlimits), dict(parent.prctl)
        self.attrs = parent.attrs.for_child()
        self.arg_range, self.env_range, self.auxv = parent.arg_range, parent.env_range, parent.auxv
        self.pgid, self.sid = parent.pgid, parent.sid

    def __repr__(self) -> str:
        return f"ThreadGroup(pid={self.pid}, ppid={self.ppid}, exe={self.exe!r}, {self.state.name})"

    cwd = property(lambda self: self.fs.cwd, lambda self, v: setattr(self.fs, "cwd", v),
                   doc="The working directory, a resolved guest path (the FsContext's).")
    umask = property(lambda self: self.fs.umask, lambda self, v: setattr(self.fs, "umask", v),
                     doc="The file-creation mask (the FsContext's).")

    @property
    def alive(self) -> bool:
        return self.state is State.RUNNING

    @property
    def status(self) -> int:
        """The exit status a shell would report: the exit code, or 128 + signal."""
        return 128 + self.death.signo if self.death else self.exit_code

    @property
    def wait_status(self) -> int:
        """The status word wait4 reports (WIFEXITED / WIFSIGNALED encoding, WCOREDUMP)."""
        if self.death is None:
            return (self.exit_code & 0xFF) << 8
        return self.death.signo & 0x7F | (WCOREFLAG if self.core_dumped else 0)

    @property
    def core_dumped(self) -> bool:
        """Whether the signal that killed the process dumped core (limits.dumps_core)."""
        return self.death is not None and dumps_core(self, self.death.signo)

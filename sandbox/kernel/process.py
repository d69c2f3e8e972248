"""A process: one address space, its descriptors, its program break and its fate."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sandbox.kernel.files import FdTable
from sandbox.mm.aspace import AddressSpace

if TYPE_CHECKING:
    from sandbox.kernel.kernel import Kernel


class State(enum.Enum):
    RUNNING = "running"
    EXITED = "exited"  # exit or exit_group
    KILLED = "killed"  # a signal's default action


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
    space: AddressSpace
    exe: str
    files: FdTable = field(default_factory=FdTable.with_stdio)
    brk_start: int = 0
    brk: int = 0
    clear_child_tid: int = 0
    cwd: str = "/"  # a resolved guest path
    exe_guest: str = ""  # where the program file is in the guest tree (/proc/self/exe)
    umask: int = 0o022
    #: rt_sigaction records (raw struct kernel_sigaction bytes by signal); delivery is not
    #: implemented yet, so these are only reported back.
    sig_actions: dict[int, bytes] = field(default_factory=dict)
    sig_mask: int = 0
    rlimits: dict[int, tuple[int, int]] = field(default_factory=dict)
    robust_list: int = 0
    comm: str = ""  # the task name (prctl PR_SET_NAME, /proc/self/comm)
    prctl: dict[int, int] = field(default_factory=dict)
    argv: list[bytes] = field(default_factory=list)
    envp: list[bytes] = field(default_factory=list)
    state: State = State.RUNNING
    exit_code: int = 0
    death: Death | None = None

    @property
    def alive(self) -> bool:
        return self.state is State.RUNNING

    @property
    def status(self) -> int:
        """The exit status a shell would report: the exit code, or 128 + signal."""
        return 128 + self.death.signo if self.death else self.exit_code

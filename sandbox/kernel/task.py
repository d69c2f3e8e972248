"""A task: one thread of a process (Linux's task_struct; gVisor's Task).

A task is what the scheduler runs and what every system call receives: its own CPU context
(with its FS base, so its own TLS), signal mask, thread-directed pending signals, alternate
stack, the system call it sleeps in, and the addresses the kernel writes at its end
(`clear_child_tid`, the robust futex list). Everything else belongs to its thread group
(sandbox.kernel.process.ThreadGroup), and the task reaches it through the shared attributes
below: `task.space`, `task.files`, `task.cwd` are the group's, and `task.pid` is the
group's id (getpid), `task.tid` its own (gettid).

`task.regs` reads and writes the task's registers wherever they are (the CPU while it
runs, its saved context otherwise); `task.set_return` is how a system call's result
reaches it. The kernel reaches the CPU only through these and the machine's own methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandbox import engine as X
from sandbox.kernel.limits import Usage
from sandbox.kernel.process import State, ThreadGroup
from sandbox.kernel.signals import PendingSignals
from sandbox.kernel.syscalls import MASK64

if TYPE_CHECKING:
    from sandbox.errors import WouldBlock

#: The states of a task that has not ended, and a process's while it runs: module constants,
#: since `alive` is asked on every system call and an Enum member lookup costs 0.1 us.
LIVE_STATES = frozenset({State.RUNNING, State.BLOCKED})
RUNNING = State.RUNNING


def _shared(name: str) -> property:
    """An attribute of the task's thread group, shared by all its threads."""

    def get(task: Task) -> Any:
        return getattr(task.group, name)

    def put(task: Task, value: Any) -> None:
        setattr(task.group, name, value)

    return property(get, put, doc=f"The thread group's {name} (shared by its threads).")


class Registers:
    """`task.regs.rax`: a task's registers by name, read and written where they live."""

    __slots__ = ("_task",)
    _NUMBERS = {name.lower(): getattr(X, f"UC_X86_REG_{name}") for name in (
        "RAX", "RBX", "RCX", "RDX", "RSI", "RDI", "RBP", "RSP", "R8", "R9", "R10", "R11", "R12", "R13",
        "R14", "R15", "RIP", "EFLAGS", "FS_BASE", "GS_BASE")}

    def __init__(self, task: Task) -> None:
        object.__setattr__(self, "_task", task)

    def __getattr__(self, name: str) -> int:
        return self._task.reg_read(self._number(name))

    def __setattr__(self, name: str, value: int) -> None:
        self._task.reg_write(self._number(name), value & MASK64)

    def _number(self, name: str) -> int:
        try:
            return self._NUMBERS[name]
        except KeyError:
            raise AttributeError(f"no register {name}") from None


class Task:
    """One thread: its own CPU state, signal state and sleep; the rest is its group's."""

    # What the threads of a process share (their ThreadGroup's).
    kernel = _shared("kernel")
    pid = _shared("pid")
    ppid = _shared("ppid")
    space = _shared("space")
    exe = _shared("exe")
    files = _shared("files")
    brk_start = _shared("brk_start")
    brk = _shared("brk")
    cwd = _shared("cwd")
    exe_guest = _shared("exe_guest")
    umask = _shared("umask")
    sig_actions = _shared("sig_actions")
    itimer = _shared("itimer")
    rlimits = _shared("rlimits")
    prctl = _shared("prctl")
    arg_range = _shared("arg_range")
    env_range = _shared("env_range")
    pgid = _shared("pgid")
    sid = _shared("sid")
    children = _shared("children")
    exit_code = _shared("exit_code")
    death = _shared("death")

    def __init__(self, group: ThreadGroup, tid: int) -> None:
        self.group = group
        self.tid = tid
        self.state = State.RUNNING  # RUNNING, BLOCKED, or ZOMBIE once it ended
        self.sig_mask = 0
        #: Thread-directed pending signals (tgkill, faults, SIGPIPE), one instance per number.
        self.pending = PendingSignals()  # thread-directed
        self.altstack: tuple[int, int, int] = (0, 2, 0)  # sigaltstack: sp, flags (SS_DISABLE), size
        self.sigreturn_pending = False
        self.saved_mask: int | None = None  # rt_sigsuspend's mask to restore after the handler
        self.fault_cr2 = 0  # the address of the fault whose signal is pending (sigcontext.cr2)
        self.clear_child_tid = 0  # set_tid_address / CLONE_CHILD_CLEARTID: zeroed and woken at exit
        self.robust_list = 0  # set_robust_list's head
        self.comm = ""  # the thread's name (prctl PR_SET_NAME, /proc/self/comm)
        self.affinity = (1 << group.kernel.options.cpus) - 1  # sched_setaffinity's CPUs
        self.usage = Usage()  # the thread's own CPU time (getrusage RUSAGE_THREAD)
        #: The saved CPU (a Unicorn context) while off the CPU; None before the first switch.
        self.context: Any = None
        #: (rip, rsp) of a fresh program image (spawn, execve): entered through the trampoline.
        self.fresh_entry: tuple[int, int] | None = None
        #: The system call this task sleeps in.
        self.blocked: WouldBlock | None = None
        #: A thread that vfork'ed this one (CLONE_VFORK) sleeps until it execs or ends.
        self.vfork_parent: Task | None = None
        self.regs = Registers(self)
        group.tasks.append(self)

    def __repr__(self) -> str:
        return f"Task(tid={self.tid}, pid={self.pid}, {self.state.name})"

    @property
    def alive(self) -> bool:
        """Runnable or sleeping, in a process that has not ended."""
        return self.state in LIVE_STATES and self.group.state is RUNNING

    @property
    def on_cpu(self) -> bool:
        return self.kernel.sched.on_cpu is self

    def reg_read(self, reg: int) -> int:
        """A register: from the CPU if this task's state is live there, else its context."""
        return self.kernel.machine.reg_read(reg) if self.on_cpu else self.context.reg_read(reg)

    def reg_write(self, reg: int, value: int) -> None:
        if self.on_cpu:
            self.kernel.machine.reg_write(reg, value)
        else:
            self.context.reg_write(reg, value)

    def set_return(self, value: int) -> None:
        """A system call's result into RAX (a negative errno as the ABI's two's complement)."""
        self.reg_write(X.UC_X86_REG_RAX, value & MASK64)

"""The exception tree: one boundary turns each kind into what the user or guest sees.

- `SandboxError`: bad input from the user (missing file, not an ELF, ...). The CLI prints
  its message as one line and exits non-zero.
- `SyscallError(errno)`: a guest mistake inside a system call; the syscall entry returns -errno.
- `WouldBlock`: a system call must wait; the scheduler retries it later.
- `GuestFault`: a guest mistake outside a system call; delivered as a signal.
- `OutOfMemory`: the guest exhausted guest-physical RAM; the process is killed with a message.
- `InvariantError`: a bug in the sandbox itself, never the guest's fault.
"""

from __future__ import annotations


class SandboxError(Exception):
    """A user-facing error: the message is shown as one line, without a traceback."""


class ElfError(SandboxError):
    """The program file is not an ELF this sandbox can load; the message names the bad value."""


class LoadError(SandboxError):
    """A program cannot be loaded for a reason execve reports by its own errno (a missing
    interpreter is ENOENT, as in Linux); the message is the one line the CLI shows."""

    def __init__(self, errno: int, message: str) -> None:
        super().__init__(message)
        self.errno = errno


class EngineUnavailable(ImportError):
    """No usable CPU engine: $SANDBOX_ENGINE names none, or the library it names cannot be
    loaded (sandbox/engine.py). Raised while importing the binding; the CLI says it in one
    line and exits 69 (EX_UNAVAILABLE, sysexits.h)."""


class SyscallError(Exception):
    """A system call fails with `errno` (a positive Linux errno value)."""

    def __init__(self, errno: int, why: str = "") -> None:
        super().__init__(errno, why)
        self.errno = errno
        self.why = why


class GuestFault(Exception):
    """The guest did something that Linux answers with a signal (SIGSEGV, SIGBUS, ...)."""

    def __init__(self, signo: int, code: int, addr: int, why: str = "") -> None:
        super().__init__(signo, code, addr, why)
        self.signo = signo
        self.code = code
        self.addr = addr
        self.why = why


class OutOfMemory(Exception):
    """No frame is left in guest-physical RAM (or under the resident cap)."""


class InvariantError(AssertionError):
    """An internal invariant does not hold: a sandbox bug, never the guest's fault."""


class WouldBlock(Exception):
    """A system call cannot finish now: the process sleeps and the call is retried later.

    `retry` finishes the call (returning its result, or raising WouldBlock again); None means
    "run the same handler again". `deadline` (time.monotonic) wakes the process at that time;
    `host_waits` are the (host fd, poll events) pairs that wake it (a read waits for POLLIN,
    a write for POLLOUT). `restart` and `clock_deadline` are described where they are set.
    With `every_pass`
    the call is retried on every pass and the deadline and descriptors only bound the idle
    wait (poll checks its own conditions). `on_interrupt` runs when a signal ends the sleep
    with EINTR (nanosleep reports the time left through it); if it returns an int, that is
    the call's result instead (a write interrupted after some progress returns the count).
    """

    def __init__(self, why: str, retry=None, deadline: float | None = None, on_interrupt=None,
                 host_waits: tuple[tuple[int, int], ...] = (), every_pass: bool = False,
                 restart: bool | None = None, clock_deadline: float | None = None) -> None:
        super().__init__(why)
        self.why = why
        self.retry = retry
        self.deadline = deadline
        self.on_interrupt = on_interrupt
        self.host_waits = host_waits
        self.every_pass = every_pass
        #: After a signal handler: True restarts the call whatever SA_RESTART says (Linux's
        #: ERESTARTNOINTR), False never (ERESTARTNOHAND); None follows SA_RESTART.
        self.restart = restart
        #: Under --deterministic, when the call times out on the sandbox's clock
        #: (Kernel.monotonic): the scheduler moves the clock there when nothing else can run.
        self.clock_deadline = clock_deadline
        self.call = ""  # the system call that blocked, and its raw arguments (set by the
        self.call_args: tuple[int, ...] = ()  # syscall entry, kept across retries)

"""/dev/tty: the guest's controlling terminal, which is the sandbox's own or none.

The guest gets no terminal of its own (no devpts: /dev/pts is empty, /dev/ptmx absent). When
the sandbox runs on a terminal -- its stdin is one, and it is the sandbox's controlling
terminal -- /dev/tty opens that terminal, shared with the guest as fds 0-2 are (a host
stream: reads and writes never block the sandbox, terminal ioctls those of sandbox/kernel/tty.py)
to the processes of the session that owns it (the first process's, unless it gave the
terminal up). Otherwise opening /dev/tty fails with ENXIO, as it does natively for a process
without a controlling terminal (drivers/tty/tty_io.c, tty_open_current_tty).
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING

from sandbox.errors import SyscallError
from sandbox.kernel.hostfiles import HostStream

if TYPE_CHECKING:
    from sandbox.kernel.accounting import Budget
    from sandbox.kernel.task import Task

#: How the host terminal is opened: never as the sandbox's controlling terminal anew.
_TTY_FLAGS = os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC
_GUEST_STATUS_FLAGS = os.O_NONBLOCK | os.O_APPEND


class TerminalStream(HostStream):
    """The host's terminal opened for one guest open of /dev/tty (its own host descriptor,
    closed with the last guest descriptor and counted in the host-file budget)."""

    def __init__(self, fd: int, flags: int, budget: Budget) -> None:
        super().__init__(fd)
        self.name = "/dev/tty"
        self.guest = "/dev/tty"
        self.mode = flags & os.O_ACCMODE  # what the guest opened it for, not the host's O_RDWR
        self.flags = flags & (os.O_ACCMODE | _GUEST_STATUS_FLAGS)
        self._budget = budget

    def close(self) -> None:
        self._budget.release(1)
        os.close(self.fd)


def open_tty(proc: Task, flags: int) -> TerminalStream:
    """open("/dev/tty"): the sandbox's terminal if it runs on one, else ENXIO; ENFILE past
    the sandbox's host-file budget."""
    if not os.isatty(0) or proc.kernel.terminal.sid != proc.group.sid:  # (after setsid, TIOCNOTTY)
        raise SyscallError(errno.ENXIO, "no controlling terminal")
    budget = proc.kernel.budgets.host_files
    budget.charge(1)
    try:
        fd = os.open("/dev/tty", _TTY_FLAGS)
    except OSError:
        budget.release(1)
        raise SyscallError(errno.ENXIO, "no controlling terminal") from None
    return TerminalStream(fd, flags, budget)

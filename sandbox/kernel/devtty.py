"""/dev/tty and /dev/pts/N: the guest's controlling terminal, which is the sandbox's own or none.

The guest gets no terminal of its own (no devpts: /dev/pts is empty, /dev/ptmx absent). When
the sandbox runs on a terminal -- its stdin is one, and it is the sandbox's controlling
terminal -- /dev/tty opens that terminal, shared with the guest as fds 0-2 are (a host
stream: reads and writes never block the sandbox, terminal ioctls those of sandbox/kernel/tty.py)
to the processes of the session that owns it (the first process's, unless it gave the
terminal up). Otherwise opening /dev/tty fails with ENXIO, as it does natively for a process
without a controlling terminal (drivers/tty/tty_io.c, tty_open_current_tty).

The terminal the sandbox was given -- the first of its stdin, stdout and stderr that is a
pseudo-terminal -- also appears in the guest's /dev/pts under its host name (/dev/pts/3),
so that /proc/self/fd/0 leads to a node that stats as fstat(0) does and ttyname(3) finds
it (glibc: readlink /proc/self/fd/N, then stat that path and compare st_rdev, st_dev and
st_ino with fstat's). Opening it opens that same terminal, for any process of the guest
(the node's modes and owner permitting), as natively. No other host pty is reachable:
/dev/pts holds that one node or nothing.
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING

from sandbox.errors import SyscallError
from sandbox.kernel.files import DeviceFile, Stat
from sandbox.kernel.hostfiles import HostStream

if TYPE_CHECKING:
    from sandbox.kernel.accounting import Budget
    from sandbox.kernel.task import Task

#: How the host terminal is opened: never as the sandbox's controlling terminal anew.
_TTY_FLAGS = os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC
_GUEST_STATUS_FLAGS = os.O_NONBLOCK | os.O_APPEND
#: Where the host's pseudo-terminals are, and the prefix of a /dev/pts node's device name.
HOST_PTS = "/dev/pts/"
PTS_DEVICE = "pts/"
_STANDARD_STREAMS = (0, 1, 2)


class TerminalStream(HostStream):
    """The host's terminal opened for one guest open of /dev/tty (its own host descriptor,
    closed with the last guest descriptor and counted in the host-file budget)."""

    def __init__(self, fd: int, flags: int, budget: Budget, path: str = "/dev/tty") -> None:
        super().__init__(fd)
        self.name = path
        self.guest = path
        self.mode = flags & os.O_ACCMODE  # what the guest opened it for, not the host's O_RDWR
        self.flags = flags & (os.O_ACCMODE | _GUEST_STATUS_FLAGS)
        self._budget = budget

    def close(self) -> None:
        self._budget.release(1)
        os.close(self.fd)


def is_terminal(device: str) -> bool:
    """Whether a /dev device name (DEVICES' or a /dev/pts node's) is opened by `open_tty`."""
    return device == "tty" or device.startswith(PTS_DEVICE)


def open_tty(proc: Task, flags: int, device: str = "tty") -> TerminalStream:
    """open("/dev/tty"): the sandbox's terminal if it runs on one, else ENXIO; ENFILE past
    the sandbox's host-file budget. open("/dev/pts/N") (`device` "pts/N"): the given
    terminal, for any guest process its modes permit (ENOENT once it is gone)."""
    if device != "tty":
        return _open_pts(proc, flags, device)
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


# -- /dev/pts ---------------------------------------------------------------------------------


def given_terminal() -> tuple[int, str] | None:
    """(the sandbox's descriptor, its number under /dev/pts) of the terminal the sandbox was
    given: the first of its standard streams that is a pseudo-terminal; None if none is."""
    for fd in _STANDARD_STREAMS:
        try:
            name = os.ttyname(fd)
        except OSError:
            continue
        number = name.removeprefix(HOST_PTS)
        if name.startswith(HOST_PTS) and number.isdigit():
            return fd, number
    return None


def pts_names() -> list[str]:
    """The guest's /dev/pts: the given terminal's number, or nothing."""
    given = given_terminal()
    return [] if given is None else [given[1]]


def terminal_path(rdev: int) -> str | None:
    """/dev/pts/N if `rdev` is the given terminal's device number (what /proc/PID/fd links
    of a host stream on it read), else None."""
    given = given_terminal()
    if given is None or os.fstat(given[0]).st_rdev != rdev:
        return None
    return HOST_PTS + given[1]


def device_stat(device: str) -> Stat:
    """stat(2) of a /dev device node, before identity.present: a /dev/pts node stats as the
    host's fstat of the terminal does (so as the guest's fstat of fds 0-2 on it); ENOENT
    if it is gone."""
    if not device.startswith(PTS_DEVICE):
        return DeviceFile(device, 0, bytes).stat()
    return Stat.from_host(os.fstat(_given_fd(device)))


def _given_fd(device: str) -> int:
    """The sandbox's descriptor of the terminal named by /dev/pts node `device` ("pts/N")."""
    given = given_terminal()
    if given is None or device != PTS_DEVICE + given[1]:
        raise SyscallError(errno.ENOENT, f"/dev/{device}")
    return given[0]


def _open_pts(proc: Task, flags: int, device: str) -> TerminalStream:
    """Open the given terminal again, as /dev/pts/N: the guest's modes permitting (EACCES),
    within the host-file budget (ENFILE), and checked to be the same device after."""
    fd = _given_fd(device)
    identity = proc.kernel.identity
    want = {os.O_RDONLY: 4, os.O_WRONLY: 2}.get(flags & os.O_ACCMODE, 6)
    if not identity.permits(identity.present(Stat.from_host(os.fstat(fd))), want):
        raise SyscallError(errno.EACCES, f"/dev/{device}")
    budget = proc.kernel.budgets.host_files
    budget.charge(1)
    try:
        host = os.open(f"/proc/self/fd/{fd}", _TTY_FLAGS)  # that terminal itself, not a name
    except OSError as error:
        budget.release(1)
        raise SyscallError(error.errno or errno.EIO, f"/dev/{device}") from None
    return TerminalStream(host, flags, budget, f"/dev/{device}")

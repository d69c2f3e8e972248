"""ioctl(2) on the guest's own pseudo-terminals (pty.py): the pty requests (TIOCGPTN,
TIOCSPTLCK, TIOCGPTPEER...), termios and window sizes, process groups and the controlling
terminal, queue sizes and flushes (drivers/tty/tty_io.c, pty.c, n_tty.c's n_tty_ioctl)."""

from __future__ import annotations

import errno
import signal
from typing import TYPE_CHECKING

from sandbox.errors import SyscallError
from sandbox.kernel.files import O_ACCMODE, O_NONBLOCK
from sandbox.kernel.pty import (
    INT,
    O_CLOEXEC,
    O_NOCTTY,
    TIOCGPTLCK,
    TIOCGPTN,
    TIOCGPTPEER,
    TIOCPKT,
    TIOCSPTLCK,
    PtyFile,
    PtyMaster,
    PtyPair,
    PtySlave,
    has_ctty,
    take_as_ctty,
)
from sandbox.kernel.tty import (
    FIONREAD,
    PID,
    TCFLSH,
    TCGETS,
    TCIFLUSH,
    TCIOFLUSH,
    TCOFLUSH,
    TCSBRK,
    TCSBRKP,
    TCSETS,
    TCSETSF,
    TCSETSW,
    TCXONC,
    TERMIOS_SIZE,
    TIOCEXCL,
    TIOCGETD,
    TIOCGPGRP,
    TIOCGSID,
    TIOCGWINSZ,
    TIOCNOTTY,
    TIOCNXCL,
    TIOCOUTQ,
    TIOCSCTTY,
    TIOCSPGRP,
    TIOCSTI,
    TIOCSWINSZ,
    WINSIZE,
    accept_request,
    new_foreground,
    refuse_sti,
    report_line_discipline,
)
from sandbox.mm.uaccess import copy_in, copy_out

if TYPE_CHECKING:
    from sandbox.kernel.task import Task



def ioctl(proc: Task, file: PtyFile, request: int, arg: int) -> int:
    """ioctl(2) on either end: the master's own requests (TIOCGPTN, TIOCSPTLCK, TIOCGPTLCK,
    TIOCGPTPEER), then the terminal requests; ENOTTY for others, EIO on a hung-up slave."""
    if isinstance(file, PtySlave) and file.hung_up and request != TIOCSPGRP:
        raise SyscallError(errno.EIO, "the pseudo-terminal is hung up")
    if isinstance(file, PtyMaster) and request in _MASTER_REQUESTS:
        return _MASTER_REQUESTS[request](proc, file, request, arg)
    handler = _REQUESTS.get(request)
    if handler is None:
        raise SyscallError(errno.ENOTTY, f"pseudo-terminal ioctl {request:#x}")
    return handler(proc, file, request, arg)


def _get_number(proc: Task, file: PtyFile, _request: int, arg: int) -> int:
    copy_out(proc.space, arg, INT.pack(file.pair.number))
    return 0


def _set_lock(proc: Task, file: PtyFile, _request: int, arg: int) -> int:
    file.pair.locked = INT.unpack(copy_in(proc.space, arg, INT.size))[0] != 0
    return 0


def _get_lock(proc: Task, file: PtyFile, _request: int, arg: int) -> int:
    copy_out(proc.space, arg, INT.pack(int(file.pair.locked)))
    return 0


def _open_peer(proc: Task, file: PtyFile, _request: int, arg: int) -> int:
    """TIOCGPTPEER: the slave opened from the master, with `arg`'s open flags (ptm_open_peer)."""
    flags = arg & (O_ACCMODE | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)  # the rest is ignored, as Linux
    if file.pair.locked:
        raise SyscallError(errno.EIO, "the slave is locked (TIOCSPTLCK)")
    if not flags & O_NOCTTY:
        take_as_ctty(proc, file.pair)
    return proc.files.install(PtySlave(file.pair, flags), cloexec=bool(flags & O_CLOEXEC))


def _refuse_packet(_proc: Task, _file: PtyFile, _request: int, _arg: int) -> int:
    raise SyscallError(errno.EINVAL, "packet mode (TIOCPKT) is not supported")


_MASTER_REQUESTS = {TIOCGPTN: _get_number, TIOCSPTLCK: _set_lock, TIOCGPTLCK: _get_lock,
                    TIOCGPTPEER: _open_peer, TIOCPKT: _refuse_packet}


def _get_modes(proc: Task, file: PtyFile, _request: int, arg: int) -> int:
    modes = file.pair.master_termios if isinstance(file, PtyMaster) else file.pair.termios
    copy_out(proc.space, arg, bytes(modes))
    return 0


def _set_modes(proc: Task, file: PtyFile, request: int, arg: int) -> int:
    """TCSETS*: the slave's modes (the master's own are kept apart); TCSETSF flushes input.
    The output needs no draining: the master's queue is already the other end."""
    modes = copy_in(proc.space, arg, TERMIOS_SIZE)
    if isinstance(file, PtyMaster):
        file.pair.master_termios[:] = modes
        return 0
    if request == TCSETSF:
        file.pair.flush(TCIFLUSH)
    file.pair.set_termios(modes)
    return 0


def _get_winsize(proc: Task, file: PtyFile, _request: int, arg: int) -> int:
    copy_out(proc.space, arg, file.pair.winsize)
    return 0


def _set_winsize(proc: Task, file: PtyFile, _request: int, arg: int) -> int:
    """TIOCSWINSZ from either end: one size for both; a change sends SIGWINCH to the
    foreground group (tty_do_resize)."""
    size = copy_in(proc.space, arg, WINSIZE.size)
    pair = file.pair
    if size != pair.winsize:
        pair.winsize = size
        pair.signal_foreground(signal.SIGWINCH)
    return 0


def _session_pair(proc: Task, file: PtyFile) -> PtyPair:
    """The pair, if the slave is the caller's controlling terminal (the master answers anyone,
    as tiocgpgrp with tty != real_tty); else ENOTTY."""
    pair = file.pair
    if isinstance(file, PtySlave) and (pair.sid is None or pair.sid != proc.group.sid):
        raise SyscallError(errno.ENOTTY, "not the caller's controlling terminal")
    return pair


def _get_pgrp(proc: Task, file: PtyFile, request: int, arg: int) -> int:
    pair = _session_pair(proc, file)
    if request == TIOCGSID and pair.sid is None:
        raise SyscallError(errno.ENOTTY, "the pseudo-terminal has no session")
    copy_out(proc.space, arg, PID.pack(pair.fg_pgrp if request == TIOCGPGRP else pair.sid))
    return 0


def _set_pgrp(proc: Task, file: PtyFile, _request: int, arg: int) -> int:
    """TIOCSPGRP: a process group of the slave's session into the foreground (tiocspgrp)."""
    if isinstance(file, PtySlave) and file.hung_up:
        raise SyscallError(errno.ENOTTY, "the pseudo-terminal is hung up")
    pair = file.pair
    if pair.sid is None or pair.sid != proc.group.sid:
        raise SyscallError(errno.ENOTTY, "not the caller's controlling terminal")
    pair.fg_pgrp = new_foreground(proc, arg, pair.sid)
    return 0


def _set_ctty(proc: Task, file: PtyFile, _request: int, _arg: int) -> int:
    """TIOCSCTTY: a session leader without a controlling terminal takes the slave, unless
    another session with live processes has it (tiocsctty: EPERM)."""
    pair, group = file.pair, proc.group
    if pair.sid == group.sid:
        return 0
    if group.pid != group.sid or has_ctty(proc):
        raise SyscallError(errno.EPERM, "not a session leader without a controlling terminal")
    if pair.sid is not None and any(g.alive and g.sid == pair.sid for g in proc.kernel.processes.values()):
        raise SyscallError(errno.EPERM, "the pseudo-terminal is another session's")
    pair.sid, pair.fg_pgrp = group.sid, group.pgid
    return 0


def _no_ctty(proc: Task, file: PtyFile, _request: int, _arg: int) -> int:
    """TIOCNOTTY: a session leader gives the terminal up (its foreground group gets SIGHUP and
    SIGCONT); anyone else just stops being attached. ENOTTY if it is not the caller's."""
    pair, group = _session_pair(proc, file), proc.group
    if pair.sid is None or pair.sid != group.sid:
        raise SyscallError(errno.ENOTTY, "not the caller's controlling terminal")
    if group.pid == group.sid:
        for signo in (signal.SIGHUP, signal.SIGCONT):
            pair.signal_foreground(signo)
        pair.sid = None
    return 0


def _queued(proc: Task, file: PtyFile, request: int, arg: int) -> int:
    """FIONREAD: what a read would find; TIOCOUTQ: what was written and not yet read at
    the other end."""
    pair = file.pair
    if request == FIONREAD:
        count = file.queued_bytes()
    else:
        count = pair.input_bytes() if isinstance(file, PtyMaster) else len(pair.output)
    copy_out(proc.space, arg, INT.pack(count))
    return 0


def _flush(_proc: Task, file: PtyFile, _request: int, arg: int) -> int:
    queue = arg & 0xFFFF_FFFF
    if queue not in (TCIFLUSH, TCOFLUSH, TCIOFLUSH):
        raise SyscallError(errno.EINVAL, f"TCFLSH queue {queue}")
    if isinstance(file, PtyMaster):  # the master's input is the slave's output
        queue = {TCIFLUSH: TCOFLUSH, TCOFLUSH: TCIFLUSH}.get(queue, queue)
    file.pair.flush(queue)
    return 0


def _flow(_proc: Task, _file: PtyFile, _request: int, arg: int) -> int:
    if not 0 <= arg & 0xFFFF_FFFF <= 3:
        raise SyscallError(errno.EINVAL, f"TCXONC action {arg}")
    return 0


_REQUESTS = {
    TCGETS: _get_modes, TCSETS: _set_modes, TCSETSW: _set_modes, TCSETSF: _set_modes,
    TIOCGWINSZ: _get_winsize, TIOCSWINSZ: _set_winsize,
    TIOCGPGRP: _get_pgrp, TIOCGSID: _get_pgrp, TIOCSPGRP: _set_pgrp,
    TIOCSCTTY: _set_ctty, TIOCNOTTY: _no_ctty,
    FIONREAD: _queued, TIOCOUTQ: _queued, TCFLSH: _flush, TCXONC: _flow,
    TCSBRK: accept_request, TCSBRKP: accept_request, TIOCEXCL: accept_request, TIOCNXCL: accept_request,
    TIOCGETD: report_line_discipline, TIOCSTI: refuse_sti,
}

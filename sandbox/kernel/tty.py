"""The guest's terminal: the host's own, seen through a line of the sandbox's (Linux
drivers/tty/tty_io.c, tty_jobctrl.c, n_tty.c, tty_ioctl.c).

The guest has no terminal of its own: a host stream that is a terminal (fds 0-2, /dev/tty)
is the host's. What belongs to the terminal *device* -- its modes (struct termios), what is
queued in it, its size -- is the host's, read and set there (raw mode for a line editor),
and every termios the guest changed is put back when the run ends, however it ends. What
belongs to the *session* -- which guest session owns the terminal and which of its process
groups is in the foreground -- is the sandbox's own: the host's foreground group is never
changed (TIOCSPGRP names guest process groups).

The sandbox is the host's job: signals the host's terminal (or anyone) sends to the sandbox
process -- SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGWINCH, SIGTSTP, SIGCONT -- are posted here
and the run loop delivers them to the guest's foreground process group, as the tty driver
does (kill_pgrp). While the run listens they are blocked in the sandbox's thread and read
from a signalfd with their siginfo (the scheduler's idle wait polls it), then handed to the
Python handler the CLI installed, which posts them (it only records them and wakes the idle
wait through a pipe). The guest sees what Linux shows a process of its own pid and user
namespace: what the terminal generates (^C) is SI_KERNEL; kill(2) from the host is SI_USER
with si_pid 0 (a sender outside the guest's pid namespace) and si_uid as the guest sees the
sender's uid (the guest's own uid if it is the host user running the sandbox, else the
overflow uid 65534). A signal the Python handler took without siginfo (a host thread that
did not block it) is SI_KERNEL.

Job control (tty_jobctrl.c): the guest's processes stop and continue (signal_delivery's
group stop), so a job-control shell inside works as on a terminal of its own. The host's
Ctrl-Z (SIGTSTP to the sandbox) goes to the guest's foreground group; whether that stops
part of the guest or the whole sandbox follows one rule: if a foreground process keeps
SIGTSTP's default action and its group is orphaned -- no process of the guest's session
outside the group is its parent, so no guest shell could continue it; the first process's
group is, its parent being outside the guest -- the whole sandbox stops (its
terminal modes given back meanwhile) until SIGCONT, as a shell's job stops, since the host's
shell is the only one that can continue it (Linux would discard the signal there). Otherwise
the guest's own job control takes it: the job stops and the guest's shell, which waits
with WUNTRACED, gets the terminal back. A process of a background group of the session
that reads the terminal gets SIGTTIN, one that writes it with TOSTOP set or changes its
modes or foreground group gets SIGTTOU, and the call is retried once it continues; EIO
instead if the signal is ignored or blocked (a read) or the group orphaned, and an ignored
or blocked SIGTTOU lets the call go on (which is how a shell takes the terminal back).

Invariant: `saved` holds, for each host terminal the guest changed, a descriptor of it and
its modes from before the first change; `restore` empties it.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import signal
import struct
from select import POLLIN
from typing import TYPE_CHECKING

from sandbox.abi import SI_KERNEL, SI_TKILL, SI_USER, SIG_DFL, SIG_IGN
from sandbox.errors import SyscallError, WouldBlock
from sandbox.kernel import signal_delivery
from sandbox.kernel.sigframe import pack_siginfo
from sandbox.kernel.signals import signal_name
from sandbox.mm.uaccess import copy_in, copy_out

if TYPE_CHECKING:
    from sandbox.kernel.files import File
    from sandbox.kernel.hostfiles import HostStream
    from sandbox.kernel.kernel import Kernel
    from sandbox.kernel.process import ThreadGroup
    from sandbox.kernel.task import Task

# include/uapi/asm-generic/ioctls.h (x86-64 uses the generic numbers).
TCGETS, TCSETS, TCSETSW, TCSETSF = 0x5401, 0x5402, 0x5403, 0x5404
TCSBRK, TCXONC, TCFLSH = 0x5409, 0x540A, 0x540B
TIOCEXCL, TIOCNXCL, TIOCSCTTY = 0x540C, 0x540D, 0x540E
TIOCGPGRP, TIOCSPGRP, TIOCOUTQ, TIOCSTI = 0x540F, 0x5410, 0x5411, 0x5412
TIOCGWINSZ, TIOCSWINSZ = 0x5413, 0x5414
FIONREAD = 0x541B  # TIOCINQ
TIOCNOTTY, TIOCGETD, TCSBRKP, TIOCGSID = 0x5422, 0x5424, 0x5425, 0x5429
#: struct termios of the kernel (include/uapi/asm-generic/termbits.h): c_iflag, c_oflag,
#: c_cflag, c_lflag (tcflag_t, u32), c_line, c_cc[NCCS = 19] -- 36 bytes, not glibc's 60.
TERMIOS_SIZE = 36
C_LINE = 16  # offset of c_line
C_LFLAG = 12  # offset of c_lflag
TOSTOP = 0o400  # c_lflag: a background process's write sends it SIGTTOU
WINSIZE = struct.Struct("<HHHH")  # struct winsize { ws_row, ws_col, ws_xpixel, ws_ypixel }
PID = struct.Struct("<i")
N_TTY = 0  # the line discipline every terminal here has (TIOCGETD)
TCIFLUSH, TCOFLUSH, TCIOFLUSH = 0, 1, 2  # TCFLSH's queues
TCOOFF, TCION = 0, 3  # TCXONC's range
#: Signals to the sandbox process that go to the guest's foreground process group.
HOST_SIGNALS = (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP, signal.SIGWINCH,
                signal.SIGTSTP, signal.SIGCONT)
#: The requests that change the terminal: SIGTTOU from a background process (tty_check_change
#: in set_termios, n_tty_ioctl_helper, tty_ioctl); TIOCSPGRP's own check is in _set_pgrp.
CHANGES = frozenset({TCSETS, TCSETSW, TCSETSF, TCFLSH, TCXONC, TCSBRK, TCSBRKP})
#: The calls that wait for a signal and nothing else.
SIGNAL_WAITS = ("pause", "rt_sigsuspend", "rt_sigtimedwait")
#: struct signalfd_siginfo (include/uapi/linux/signalfd.h): ssi_signo, ssi_errno, ssi_code,
#: ssi_pid, ssi_uid, then fields not used here; 128 bytes.
SIGNALFD_INFO = struct.Struct("<IiiII")
SIGNALFD_INFO_SIZE = 128
SFD_NONBLOCK, SFD_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
SIGSET_BYTES = 128  # glibc's sigset_t
OVERFLOW_UID = 65534  # /proc/sys/kernel/overflowuid: a sender's uid the guest's namespace does not map


class Terminal:
    """The sandbox's side of the host terminal: owning session, foreground group, the
    guest's window size (if it set one), the host modes to give back, host signals.
    (A plain class: dataclasses' import is a measurable share of a short run's start-up.)"""

    def __init__(self) -> None:
        self.sid: int | None = None  # the guest session whose controlling terminal it is
        self.fg_pgrp = 0
        self.winsize: bytes | None = None  # TIOCSWINSZ's, until the host's terminal is resized
        self.saved: dict[int, tuple[int, bytes]] = {}  # st_rdev -> (a descriptor, termios before)
        self._posted: list[int] = []  # host signals not yet delivered
        self._senders: dict[int, list[tuple[int, int]]] = {}  # signo -> (si_code, host uid), oldest first
        self._signalfd: tuple[int, frozenset[int]] | None = None  # and the signals it takes
        self.forwarded: set[int] = set()  # host signals the guest was sent
        self.listening = False  # a host handler posts signals here (the CLI installs one)
        self._wake: tuple[int, int] | None = None  # the pipe a posted signal writes a byte to

    # -- the run --------------------------------------------------------------------------

    #: (sid, fg_pgrp, winsize) a snapshot's restore put back, for the next run to keep.
    resumed: tuple[int | None, int, bytes | None] | None = None

    def start(self, init: ThreadGroup) -> None:
        """A run begins: `init`'s session owns the terminal, its group in the foreground
        (a run on from a restored snapshot: the session state the snapshot had)."""
        self.sid, self.fg_pgrp, self.winsize = self.resumed or (init.sid, init.pgid, None)
        self.resumed = None
        self._posted.clear()
        self._senders.clear()
        self.forwarded.clear()

    def listen(self) -> None:
        """Host signals will be posted (called before the handlers are installed), read
        with their siginfo from a signalfd: every HOST_SIGNALS one not ignored is blocked
        in this thread until `close`."""
        if self._wake is None:
            read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self._wake = (read_end, write_end)
        if self._signalfd is None:
            self._signalfd = _open_signalfd([s for s in HOST_SIGNALS if signal.getsignal(s) is not signal.SIG_IGN])
        self.listening = True

    def close(self) -> None:
        """Give back the host's modes; close the wake-up pipe and the signalfd (what it
        holds unread is dropped: the run is over) and unblock its signals."""
        self.restore()
        self.listening = False
        if self._wake is not None:
            for fd in self._wake:
                os.close(fd)
            self._wake = None
        if self._signalfd is not None:
            fd, signals = self._signalfd
            self._signalfd = None
            os.close(fd)
            for signo in signals:  # pending ones arrived after the run: nothing to do with them
                while signo in signal.sigpending():
                    signal.sigtimedwait([signo], 0)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)

    # -- host signals ---------------------------------------------------------------------

    @property
    def posted(self) -> list[int]:
        """Host signals not yet delivered (those the signalfd holds taken first)."""
        if self._signalfd is not None:
            self._take_signalfd()
        return self._posted

    def _take_signalfd(self) -> None:
        """Each signal the signalfd holds: its sender kept, then to the Python handler the
        CLI installed (which posts it) or, if there is none, posted directly."""
        fd = self._signalfd[0]
        while True:
            try:
                record = os.read(fd, SIGNALFD_INFO_SIZE)
            except BlockingIOError:
                return
            signo, _errno, code, _pid, uid = SIGNALFD_INFO.unpack_from(record)
            self._senders.setdefault(signo, []).append((code, uid))
            handler = signal.getsignal(signo)
            if callable(handler):
                handler(signo, None)
            else:
                self.post(signo)

    def post(self, signo: int) -> None:
        """From a host signal handler: record `signo` and wake an idle scheduler. Touches
        no kernel state (the handler may have interrupted any of it)."""
        self._posted.append(signo)
        if self._wake is not None:
            try:
                os.write(self._wake[1], b"\0")
            except BlockingIOError:  # the pipe is full of wake-ups already
                pass

    def wake_waits(self) -> list[tuple[int, int]]:
        """What the scheduler's idle wait also polls, so that a host signal ends it: the
        wake-up pipe, emptied first (and refilled if a signal came since the run loop
        last delivered them, so that the wait ends at once)."""
        if self._wake is None or not self.listening:
            return []
        try:
            while os.read(self._wake[0], 256):
                pass
        except BlockingIOError:
            pass
        if self.posted:
            os.write(self._wake[1], b"\0")
        return [(self._wake[0], POLLIN)] + ([(self._signalfd[0], POLLIN)] if self._signalfd is not None else [])

    def may_wake(self, kernel: Kernel) -> bool:
        """Whether a host signal may still end a wait that nothing else will: in an
        interactive run (stdin a terminal) always; otherwise only a wait for a signal
        (pause, sigsuspend, sigtimedwait), which natively lasts until one comes (a daemon's
        wait for SIGTERM; one without a handler ends by the default action, as natively).
        Any other wait is a deadlock, as the scheduler says (a handler alone is not enough:
        Python and shells all handle SIGINT)."""
        if not self.listening:
            return False
        if os.isatty(0):
            return True
        return any(task.alive and task.blocked is not None and task.blocked.call in SIGNAL_WAITS
                   for task in kernel.tasks.values())

    def deliver_posted(self, kernel: Kernel) -> None:
        """In the run loop, where kernel state is whole: send each posted host signal to the
        foreground process group (every live process if that group has none left)."""
        while self.posted:
            self._deliver(kernel, self._posted.pop(0))

    def _deliver(self, kernel: Kernel, signo: int) -> None:
        alive = [g for g in kernel.processes.values() if g.alive]
        targets = [g for g in alive if g.pgid == self.fg_pgrp] or alive
        if signo == signal.SIGWINCH:
            self.winsize = None  # the host's terminal was resized: its size is the truth
        self.forwarded.add(signo)
        info = self._siginfo(signo, kernel.identity.host_uid, kernel.identity.uid)
        for group in targets:
            signal_delivery.send(kernel, group, signo, info)
        if signo == signal.SIGTSTP and _stops_sandbox(kernel, targets):
            self._suspend_host()  # its default action: stop (handlers run once it continues)

    def _siginfo(self, signo: int, host_uid: int, guest_uid: int) -> bytes:
        """The siginfo the guest gets for a host signal: SI_KERNEL from the terminal (or if
        its sender is unknown); a process's kill (SI_USER) or tkill (SI_TKILL) with si_pid 0
        and the sender's uid as the guest's user namespace maps it."""
        senders = self._senders.get(signo)
        code, uid = senders.pop(0) if senders else (SI_KERNEL, 0)
        if code > 0:
            return pack_siginfo(signo, SI_KERNEL)
        return pack_siginfo(signo, code if code == SI_TKILL else SI_USER, pid=0,
                            uid=guest_uid if uid == host_uid else OVERFLOW_UID)

    def _suspend_host(self) -> None:
        """SIGTSTP's default action for the whole sandbox: the host's modes back, stop,
        and on SIGCONT the guest's modes again (as a shell does for a stopped job)."""
        guest_modes = [(fd, _host_ioctl(fd, TCGETS, bytes(TERMIOS_SIZE))) for fd, _ in self.saved.values()]
        for fd, modes in self.saved.values():
            _host_ioctl(fd, TCSETS, modes)
        os.kill(os.getpid(), signal.SIGSTOP)
        for fd, modes in guest_modes:
            _host_ioctl(fd, TCSETS, modes)

    # -- ioctl ------------------------------------------------------------------------------

    def remember(self, stream: HostStream) -> None:
        """Before the guest first changes a host terminal's modes: keep them (and a
        descriptor of it, the guest's may be closed by then) to give back at the end."""
        modes = stream.ioctl(TCGETS, bytes(TERMIOS_SIZE))
        rdev = stream.host(os.fstat).st_rdev
        if rdev not in self.saved:
            self.saved[rdev] = (stream.host(os.dup), modes)  # os.dup's is not inheritable

    def restore(self) -> None:
        """Give every host terminal the guest changed its modes from before the run."""
        saved, self.saved = self.saved, {}
        for fd, modes in saved.values():
            _host_ioctl(fd, TCSETS, modes)
            os.close(fd)


def _stops_sandbox(kernel: Kernel, targets: list[ThreadGroup]) -> bool:
    """Whether the host's SIGTSTP stops the whole sandbox: a target keeps its default
    action and no guest shell could continue it (its group orphaned; see the module's
    docstring). Any other target's stop is the guest's own."""
    return any(signal_delivery.action_of(g, signal.SIGTSTP).handler == SIG_DFL
               and signal_delivery.orphaned_pgrp(kernel, g.pgid) for g in targets)


# -- job control: background process groups -----------------------------------------------------


def check_read(proc: Task, stream: HostStream) -> None:
    """Before a read of a host stream: SIGTTIN for a background process of the terminal's
    session (n_tty_read's job_control)."""
    if _in_background(proc, stream):
        _check_change(proc, signal.SIGTTIN)


def check_write(proc: Task, stream: HostStream) -> None:
    """Before a write to a host stream: SIGTTOU for a background process of the terminal's
    session if the terminal's TOSTOP is set (n_tty_write)."""
    if _in_background(proc, stream) and _local_modes(stream) & TOSTOP:
        _check_change(proc, signal.SIGTTOU)


def _in_background(proc: Task, stream: HostStream) -> bool:
    """Whether `stream` is the caller's controlling terminal and the caller's process
    group is not the foreground one."""
    terminal, group = proc.kernel.terminal, proc.group
    return terminal.sid is not None and group.sid == terminal.sid and group.pgid != terminal.fg_pgrp \
        and stream.is_terminal


def _local_modes(stream: HostStream) -> int:
    return int.from_bytes(stream.ioctl(TCGETS, bytes(TERMIOS_SIZE))[C_LFLAG:C_LFLAG + 4], "little")


def _check_change(proc: Task, signo: int) -> None:
    """A background process touches its terminal (tty_check_change): an ignored or
    blocked `signo` lets it (EIO for SIGTTIN); an orphaned group gets EIO; otherwise the
    group is sent `signo` and the call runs again once it is delivered (-ERESTARTSYS:
    after a stop and SIGCONT, or a handler with SA_RESTART; else EINTR)."""
    kernel = proc.kernel
    if signal_delivery.action_of(proc, signo).handler == SIG_IGN or signal_delivery.blocked(proc, signo):
        if signo == signal.SIGTTIN:
            raise SyscallError(errno.EIO, "a background read of the terminal, SIGTTIN ignored or blocked")
        return
    if signal_delivery.orphaned_pgrp(kernel, proc.pgid):
        raise SyscallError(errno.EIO, f"the terminal, from an orphaned background process group ({proc.pgid})")
    for group in [g for g in kernel.processes.values() if g.alive and g.pgid == proc.pgid]:
        signal_delivery.send(kernel, group, signo, pack_siginfo(signo, SI_KERNEL))
    raise WouldBlock(f"the terminal, from background process group {proc.pgid}: {signal_name(signo)}")


def _host_ioctl(fd: int, request: int, arg: bytes) -> bytes:
    """An ioctl on a host terminal the sandbox keeps; a terminal gone (hung up) is left."""
    try:
        return fcntl.ioctl(fd, request, arg)
    except OSError:
        return arg


# -- the ioctl requests -------------------------------------------------------------------------


def ioctl(proc: Task, stream: HostStream, request: int, arg: int) -> int:
    """ioctl(2) on a host stream that is a terminal (tty_ioctl, n_tty_ioctl); ENOTTY for
    requests a terminal does not take."""
    handler = _REQUESTS.get(request)
    if handler is None:
        raise SyscallError(errno.ENOTTY, f"terminal ioctl {request:#x}")
    if request in CHANGES and _in_background(proc, stream):
        _check_change(proc, signal.SIGTTOU)
    return handler(proc, stream, request, arg)


def _terminal(proc: Task) -> Terminal:
    return proc.kernel.terminal


def _get_modes(proc: Task, stream: HostStream, _request: int, arg: int) -> int:
    copy_out(proc.space, arg, stream.ioctl(TCGETS, bytes(TERMIOS_SIZE)))
    return 0


def _set_modes(proc: Task, stream: HostStream, request: int, arg: int) -> int:
    """TCSETS, TCSETSW, TCSETSF: the host terminal's modes. TCSETSW's and TCSETSF's wait
    for the output to drain is not taken (a terminal nobody reads would hold the sandbox);
    TCSETSF still discards pending input. The line discipline stays (c_line: TIOCSETD's)."""
    modes = bytearray(copy_in(proc.space, arg, TERMIOS_SIZE))
    _terminal(proc).remember(stream)
    modes[C_LINE] = stream.ioctl(TCGETS, bytes(TERMIOS_SIZE))[C_LINE]
    if request == TCSETSF:
        stream.ioctl(TCFLSH, TCIFLUSH)
    stream.ioctl(TCSETS, bytes(modes))
    return 0


def _get_winsize(proc: Task, stream: HostStream, _request: int, arg: int) -> int:
    size = _terminal(proc).winsize or stream.ioctl(TIOCGWINSZ, bytes(WINSIZE.size))
    copy_out(proc.space, arg, size)
    return 0


def _set_winsize(proc: Task, stream: HostStream, _request: int, arg: int) -> int:
    """TIOCSWINSZ: the guest's view of the size (the host's terminal keeps its own); a
    change sends SIGWINCH to the foreground group, as tty_do_resize."""
    size = copy_in(proc.space, arg, WINSIZE.size)
    terminal = _terminal(proc)
    changed = size != (terminal.winsize or stream.ioctl(TIOCGWINSZ, bytes(WINSIZE.size)))
    terminal.winsize = size
    if changed:
        for group in _foreground(proc):
            signal_delivery.send(proc.kernel, group, signal.SIGWINCH, pack_siginfo(signal.SIGWINCH, SI_KERNEL))
    return 0


def _foreground(proc: Task) -> list[ThreadGroup]:
    fg = _terminal(proc).fg_pgrp
    return [g for g in proc.kernel.processes.values() if g.alive and g.pgid == fg]


def _own_session(proc: Task) -> Terminal:
    """The terminal, if it is `proc`'s controlling terminal; else ENOTTY (tiocgpgrp)."""
    terminal = _terminal(proc)
    if terminal.sid is None or proc.group.sid != terminal.sid:
        raise SyscallError(errno.ENOTTY, "not the caller's controlling terminal")
    return terminal


def _get_pgrp(proc: Task, _stream: HostStream, request: int, arg: int) -> int:
    terminal = _own_session(proc)
    copy_out(proc.space, arg, PID.pack(terminal.fg_pgrp if request == TIOCGPGRP else terminal.sid))
    return 0


def _set_pgrp(proc: Task, stream: HostStream, _request: int, arg: int) -> int:
    """TIOCSPGRP: a guest process group of the caller's session into the foreground
    (tiocspgrp: EINVAL negative, ESRCH no such group, EPERM another session's); from a
    background group, SIGTTOU first unless it is blocked or ignored."""
    terminal = _own_session(proc)
    if _in_background(proc, stream):
        try:
            _check_change(proc, signal.SIGTTOU)
        except SyscallError as error:  # tiocspgrp: an orphaned group's EIO is ENOTTY
            raise SyscallError(errno.ENOTTY, error.why) from None
    terminal.fg_pgrp = new_foreground(proc, arg, terminal.sid)
    return 0


def new_foreground(proc: Task, arg: int, sid: int) -> int:
    """TIOCSPGRP's process group, read at `arg`: one with a live member in session `sid`
    (tiocspgrp: EINVAL if negative, ESRCH if none, EPERM if of another session)."""
    pgrp = PID.unpack(copy_in(proc.space, arg, PID.size))[0]
    if pgrp < 0:
        raise SyscallError(errno.EINVAL, f"process group {pgrp}")
    members = [g for g in proc.kernel.processes.values() if g.alive and g.pgid == pgrp]
    if not members:
        raise SyscallError(errno.ESRCH, f"no process group {pgrp}")
    if members[0].sid != sid:
        raise SyscallError(errno.EPERM, f"process group {pgrp} is in another session")
    return pgrp


def _set_ctty(proc: Task, _stream: HostStream, _request: int, _arg: int) -> int:
    """TIOCSCTTY: already the caller's; or a session leader takes a terminal whose session
    has no process left (tiocsctty: EPERM otherwise)."""
    terminal, group = _terminal(proc), proc.group
    if terminal.sid == group.sid:
        return 0
    owners = [g for g in proc.kernel.processes.values() if g.alive and g.sid == terminal.sid]
    if group.pid != group.sid or owners:
        raise SyscallError(errno.EPERM, "the terminal is another session's")
    terminal.sid, terminal.fg_pgrp = group.sid, group.pgid
    return 0


def _no_ctty(proc: Task, _stream: HostStream, _request: int, _arg: int) -> int:
    """TIOCNOTTY: a session leader gives its terminal up (its foreground group gets SIGHUP
    and SIGCONT, disassociate_ctty); anyone else just stops being attached."""
    terminal, group = _own_session(proc), proc.group
    if group.pid == group.sid:
        for target in _foreground(proc):
            for signo in (signal.SIGHUP, signal.SIGCONT):
                signal_delivery.send(proc.kernel, target, signo, pack_siginfo(signo, SI_KERNEL))
        terminal.sid = None
    return 0


def _queued(proc: Task, stream: HostStream, request: int, arg: int) -> int:
    """FIONREAD (input queued) and TIOCOUTQ (output not yet sent), as the host counts."""
    copy_out(proc.space, arg, stream.ioctl(request, bytes(PID.size)))
    return 0


def _flush(proc: Task, stream: HostStream, _request: int, arg: int) -> int:
    """TCFLSH: discard the host terminal's queued input, output or both."""
    queue = arg & 0xFFFF_FFFF
    if queue not in (TCIFLUSH, TCOFLUSH, TCIOFLUSH):
        raise SyscallError(errno.EINVAL, f"TCFLSH queue {queue}")
    stream.ioctl(TCFLSH, queue)
    return 0


def _flow(_proc: Task, _stream: HostStream, _request: int, arg: int) -> int:
    """TCXONC: checked and accepted; the host terminal's flow is not suspended (its output
    stopped by a guest would outlive the run)."""
    if not TCOOFF <= arg & 0xFFFF_FFFF <= TCION:
        raise SyscallError(errno.EINVAL, f"TCXONC action {arg}")
    return 0


def accept_request(_proc: Task, _file: File, _request: int, _arg: int) -> int:
    """Requests with nothing to do here: TCSBRK/TCSBRKP (tcdrain, tcsendbreak: the
    sandbox's writes are already the host's, a pty's are at once), TIOCEXCL/TIOCNXCL."""
    return 0


def report_line_discipline(proc: Task, _file: File, _request: int, arg: int) -> int:
    """TIOCGETD: N_TTY, the only line discipline there is."""
    copy_out(proc.space, arg, PID.pack(N_TTY))
    return 0


def refuse_sti(_proc: Task, _file: File, _request: int, _arg: int) -> int:
    """TIOCSTI: faking input is refused, as Linux with dev.tty.legacy_tiocsti=0 (EIO)."""
    raise SyscallError(errno.EIO, "TIOCSTI is disabled (dev.tty.legacy_tiocsti=0)")


_REQUESTS = {
    TCGETS: _get_modes, TCSETS: _set_modes, TCSETSW: _set_modes, TCSETSF: _set_modes,
    TIOCGWINSZ: _get_winsize, TIOCSWINSZ: _set_winsize,
    TIOCGPGRP: _get_pgrp, TIOCGSID: _get_pgrp, TIOCSPGRP: _set_pgrp,
    TIOCSCTTY: _set_ctty, TIOCNOTTY: _no_ctty,
    FIONREAD: _queued, TIOCOUTQ: _queued, TCFLSH: _flush, TCXONC: _flow,
    TCSBRK: accept_request, TCSBRKP: accept_request, TIOCEXCL: accept_request, TIOCNXCL: accept_request,
    TIOCGETD: report_line_discipline, TIOCSTI: refuse_sti,
}

#: The requests HostStream.ioctl passes to the host terminal itself.
HOST_REQUESTS = frozenset({TCGETS, TCSETS, TIOCGWINSZ, FIONREAD, TIOCOUTQ, TCFLSH})


def _open_signalfd(signals: list[int]) -> tuple[int, frozenset[int]] | None:
    """Block `signals` in this thread and open a signalfd(2) that reads them with their
    siginfo; None (nothing blocked) if the host's C library has no signalfd."""
    try:
        signalfd = ctypes.CDLL(None, use_errno=True).signalfd
    except (OSError, AttributeError):
        return None
    mask = (ctypes.c_ubyte * SIGSET_BYTES)()
    for signo in signals:
        mask[(signo - 1) // 8] |= 1 << ((signo - 1) % 8)
    fd = signalfd(-1, ctypes.byref(mask), SFD_NONBLOCK | SFD_CLOEXEC)
    if fd < 0:
        return None
    blocked = frozenset(signals) - signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    return fd, blocked

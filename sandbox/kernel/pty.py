"""Pseudo-terminals of the guest's own: /dev/ptmx, /dev/pts/N and the line discipline
between them (Linux drivers/tty/pty.c, fs/devpts/inode.c, drivers/tty/n_tty.c).

Opening /dev/ptmx makes a `PtyPair` and gives its master (`PtyMaster`); the slave appears
as /dev/pts/N while the master is open, locked until TIOCSPTLCK unlocks it (its open: EIO).
What the master writes is the slave's input, through the line discipline (`PtyPair.receive`:
ICRNL/INLCR/IGNCR, ISIG's signals to the slave's foreground process group, ICANON line
editing with ERASE/WERASE/KILL/EOF/LNEXT, ECHO and its variants); what the slave writes is the
master's input after output processing (OPOST, ONLCR, OCRNL). The session that owns a pair
and its foreground process group are the pair's own (TIOCSCTTY, TIOCSPGRP), apart from the
host terminal's (tty.py), so a guest session may have a pty as its controlling terminal.

Bounds (the guest is hostile): at most `MAX_PAIRS` pairs (ENOSPC past it, as
/proc/sys/kernel/pty/max); the slave's input holds at most N_TTY_BUF_SIZE bytes and the
master's at most `OUTPUT_MAX`: a writer past them sleeps (EAGAIN with O_NONBLOCK); each pair
charges `PAIR_PAGES` pages to the sandbox's pipe budget while its master is open (ENFILE).

Not done: flow control (IXON's ^S/^Q are taken and ignored), VTIME timeouts (VMIN=0 with
VTIME>0 reads what is there), packet mode (TIOCPKT: EINVAL), SIGTTIN/SIGTTOU for background
readers and writers of a pty, and a session leader's exit hanging its terminal up.

Invariant: a pair is in its table's `pairs` exactly while its master is open; the bytes its
input holds (`input_bytes`) never exceed N_TTY_BUF_SIZE, nor its output OUTPUT_MAX.
"""

from __future__ import annotations

import errno
import os
import signal
import stat
import struct
from collections import deque
from typing import TYPE_CHECKING

from sandbox.abi import SI_KERNEL
from sandbox.errors import SyscallError, WouldBlock
from sandbox.kernel import signal_delivery
from sandbox.kernel.devtty import PTS_DEVICE, pts_names
from sandbox.kernel.files import O_ACCMODE, O_NONBLOCK, POLLERR, POLLHUP, POLLIN, POLLOUT, File, Stat
from sandbox.kernel.sigframe import pack_siginfo
from sandbox.kernel.tty import (
    N_TTY,
    TCIFLUSH,
    TCIOFLUSH,
    TCOFLUSH,
    WINSIZE,
)

if TYPE_CHECKING:
    from sandbox.kernel.accounting import Budget
    from sandbox.kernel.kernel import Kernel
    from sandbox.kernel.process import ThreadGroup
    from sandbox.kernel.task import Task

MAX_PAIRS = 64  # /proc/sys/kernel/pty/max, made small: ENOSPC past it
N_TTY_BUF_SIZE = 4096  # the line discipline's read buffer (n_tty.c)
OUTPUT_MAX = 8192  # what the master may have unread before the slave's writer sleeps
PAIR_PAGES = 3  # pipe-budget pages a pair holds: its two queues
PTMX = "ptmx"  # /dev/ptmx, and /dev/pts/ptmx
PTS_PTMX = PTS_DEVICE + PTMX
# include/uapi/asm-generic/ioctls.h
TIOCGPTN, TIOCSPTLCK, TIOCPKT, TIOCGPTLCK, TIOCGPTPEER = 0x80045430, 0x40045431, 0x5420, 0x80045439, 0x5441
PTMX_RDEV = (5 << 8) | 2  # makedev(5, 2)
UNIX98_PTY_SLAVE_MAJOR = 136
DEVPTS_DEV = 0x19  # st_dev of the guest's /dev/pts nodes
TTY_GID = 5  # the "tty" group a container's devpts gives slaves (gid=5,mode=620)
INT = struct.Struct("<i")
O_NOCTTY, O_CLOEXEC = 0o400, 0o2000000
# termios bits (include/uapi/asm-generic/termbits.h), one per line.
IGNCR = 0o200
ICRNL = 0o400
INLCR = 0o100
ISTRIP = 0o40
IXON = 0o2000
OPOST = 0o1
ONLCR = 0o4
OCRNL = 0o10
ISIG = 0o1
ICANON = 0o2
ECHO = 0o10
ECHOE = 0o20
ECHOK = 0o40
ECHONL = 0o100
NOFLSH = 0o200
ECHOCTL = 0o1000
ECHOKE = 0o4000
IEXTEN = 0o100000
# c_cc indices (offset 17 in the kernel's struct termios).
CC = 17
VINTR, VQUIT, VERASE, VKILL, VEOF, VTIME, VMIN = 0, 1, 2, 3, 4, 5, 6
VSTART, VSTOP, VSUSP, VEOL, VREPRINT, VWERASE, VLNEXT, VEOL2 = 8, 9, 10, 11, 12, 14, 15, 16
#: tty_std_termios (drivers/tty/tty_io.c) with pty.c's c_cflag: ICRNL|IXON, OPOST|ONLCR, B38400|CS8|CREAD,
#: ISIG|ICANON|ECHO|ECHOE|ECHOK|ECHOCTL|ECHOKE|IEXTEN, N_TTY, INIT_C_CC.
STD_TERMIOS = struct.pack("<IIIIB", 0o2400, 0o5, 0o277, 0o105073, N_TTY) + \
    b"\x03\x1c\x7f\x15\x04\x00\x01\x00\x11\x13\x1a\x00\x12\x0f\x17\x16\x00\x00\x00"
#: The master's own modes (pty.c's init_termios for the master: raw, B38400|CS8|CREAD).
MASTER_TERMIOS = struct.pack("<IIIIB", 0, 0, 0o277, 0, N_TTY) + bytes(19)
SIGNAL_CHARS = {VINTR: signal.SIGINT, VQUIT: signal.SIGQUIT, VSUSP: signal.SIGTSTP}


class PtyTable:
    """The guest's devpts instance: its pairs by number."""

    def __init__(self) -> None:
        self.pairs: dict[int, PtyPair] = {}

    def names(self) -> list[str]:
        """The numbers shown in /dev/pts, as names."""
        return [str(n) for n in sorted(self.pairs)]

    def open_master(self, proc: Task, flags: int) -> PtyMaster:
        """open("/dev/ptmx"): a new pair, the lowest free number not the host terminal's."""
        if len(self.pairs) >= MAX_PAIRS:
            raise SyscallError(errno.ENOSPC, f"{MAX_PAIRS} pseudo-terminals are open (kernel.pty.max)")
        taken = set(self.pairs) | {int(n) for n in pts_names()}
        number = next(n for n in range(len(taken) + 1) if n not in taken)
        pair = PtyPair(self, number, proc.kernel, proc.kernel.budgets.pipe_pages, proc.kernel.identity.uid)
        return PtyMaster(pair, flags)

    def pair_of(self, device: str) -> PtyPair | None:
        """The pair a /dev device name ("pts/N") names, or None."""
        number = device.removeprefix(PTS_DEVICE)
        return self.pairs.get(int(number)) if number.isdigit() and device != number else None

    def controlling(self, group: ThreadGroup) -> PtyPair | None:
        """The pair that is `group`'s session's controlling terminal, if any."""
        return next((p for p in self.pairs.values() if p.sid is not None and p.sid == group.sid), None)


class PtyPair:
    """One master/slave pair: the slave's modes, size, owning session and foreground group,
    the slave's input (the line discipline's buffer) and the master's input."""

    def __init__(self, table: PtyTable, number: int, kernel: Kernel, budget: Budget, uid: int) -> None:
        self.table, self.number, self.kernel, self.budget, self.uid = table, number, kernel, budget, uid
        self.termios = bytearray(STD_TERMIOS)
        self.master_termios = bytearray(MASTER_TERMIOS)
        self.winsize = bytes(WINSIZE.size)
        self.locked = True
        self.sid: int | None = None  # the session whose controlling terminal the slave is
        self.fg_pgrp = 0
        self.cooked = bytearray()  # canonical: the finished lines, one after another
        self.ends: deque[int] = deque()  # canonical: their lengths (0: an EOF at line start)
        self.edit = bytearray()  # canonical: the line being edited; raw: all input
        self.literal = False  # the previous character was LNEXT
        self.output = bytearray()  # for the master to read
        self.slaves = 0  # open slave descriptions
        self.slave_opened = False  # a slave was ever opened (a master read before: sleeps)
        self.master_open = True
        self.changes = 0
        budget.charge(PAIR_PAGES)
        table.pairs[number] = self

    # -- modes --------------------------------------------------------------------------------

    def flag(self, offset: int) -> int:
        """c_iflag (0), c_oflag (4), c_cflag (8) or c_lflag (12)."""
        return int.from_bytes(self.termios[offset:offset + 4], "little")

    def cc(self, index: int) -> int:
        return self.termios[CC + index]

    def set_termios(self, modes: bytes) -> None:
        """New modes; leaving or entering canonical mode moves the edited line (n_tty_set_termios)."""
        was_canon = self.canonical
        self.termios[:] = modes
        self.termios[16] = N_TTY
        if was_canon and not self.canonical:
            self.edit[0:0] = self.cooked
            self.cooked.clear()
            self.ends.clear()
        self.changes += 1

    @property
    def canonical(self) -> bool:
        return bool(self.flag(12) & ICANON)

    def input_bytes(self) -> int:
        return len(self.cooked) + len(self.edit)

    def _finish_line(self) -> None:
        """The edited line becomes readable (a newline, EOL or EOF ended it)."""
        self.cooked += self.edit
        self.ends.append(len(self.edit))
        self.edit.clear()

    # -- master to slave: the line discipline ---------------------------------------------------

    def receive(self, data: bytes) -> int:
        """The master writes `data`: each byte through the line discipline while the input
        has room; the count taken (0: the input is full)."""
        taken = 0
        for byte in data:
            if self.input_bytes() >= N_TTY_BUF_SIZE - (1 if self.canonical else 0) \
                    and not (self.canonical and self._ends_line(byte)):
                if not self.canonical or self.ends:
                    break
                taken += 1  # a full line being edited drops what does not end it (n_tty)
                continue
            self._receive_byte(byte)
            taken += 1
        if taken:
            self.changes += 1
        return taken

    def _ends_line(self, byte: int) -> bool:
        return byte == 10 or byte in (self.cc(VEOF), self.cc(VEOL)) and byte != 0

    def _receive_byte(self, byte: int) -> None:
        """One input byte (n_tty_receive_char): input mapping, signals, editing, echo."""
        iflag, lflag = self.flag(0), self.flag(12)
        if self.literal:
            self.literal = False
            self._store(byte, literal=True)
            return
        if iflag & ISTRIP:
            byte &= 0x7F
        if byte == 13:
            if iflag & IGNCR:
                return
            if iflag & ICRNL:
                byte = 10
        elif byte == 10 and iflag & INLCR:
            byte = 13
        if iflag & IXON and byte in (self.cc(VSTART), self.cc(VSTOP)) and byte:
            return  # flow control is not done; the characters are taken as Linux takes them
        if lflag & ISIG and self._signal_char(byte, lflag):
            return
        if lflag & ICANON and self._edit_char(byte, lflag):
            return
        self._store(byte)

    def _signal_char(self, byte: int, lflag: int) -> bool:
        """INTR, QUIT, SUSP: the signal to the foreground group, the input flushed unless
        NOFLSH, the character echoed (n_tty_receive_signal_char)."""
        for index, signo in SIGNAL_CHARS.items():
            if byte and byte == self.cc(index):
                if not lflag & NOFLSH:  # the slave's input and what the master has not read
                    self.flush(TCIOFLUSH)
                self._echo_char(byte)
                self.signal_foreground(signo)
                return True
        return False

    def _edit_char(self, byte: int, lflag: int) -> bool:
        """Canonical editing: ERASE, WERASE, KILL, LNEXT, EOF and line ends."""
        if not byte:
            return False
        if byte == self.cc(VERASE) or (lflag & IEXTEN and byte == self.cc(VWERASE)):
            self._erase(word=byte != self.cc(VERASE), lflag=lflag)
            return True
        if byte == self.cc(VKILL):
            self._kill_line(lflag)
            return True
        if lflag & IEXTEN and byte == self.cc(VLNEXT):
            self.literal = True
            if lflag & ECHO and lflag & ECHOCTL:
                self.echo(b"^\b")
            return True
        if byte == self.cc(VEOF):
            self._finish_line()
            return True
        return False

    def _erase(self, word: bool, lflag: int) -> None:
        """ERASE (one character) or WERASE (blanks, then the word before them), each erased
        character echoed as "\\b \\b" per column under ECHOE (n_tty's eraser)."""
        in_word = False
        while self.edit:
            char = self.edit[-1]
            if word and in_word and char in b" \t":
                break
            del self.edit[-1]
            if lflag & ECHO:
                columns = 2 if (char < 32 or char == 127) and lflag & ECHOCTL and char != 9 else 1
                self.echo(b"\b \b" * columns if lflag & ECHOE else bytes([self.cc(VERASE)]))
            if not word:
                break
            in_word = in_word or char not in b" \t"

    def _kill_line(self, lflag: int) -> None:
        """KILL: the line being edited goes; ECHOKE erases it on the screen, ECHOK echoes a newline."""
        if lflag & ECHO and lflag & ECHOKE and lflag & ECHOE:
            while self.edit:
                self._erase(word=False, lflag=lflag)
            return
        self.edit.clear()
        if lflag & ECHO:
            self._echo_char(self.cc(VKILL))
            if lflag & ECHOK:
                self.echo(b"\n")

    def _store(self, byte: int, literal: bool = False) -> None:
        """A character into the input: a line end finishes the canonical line."""
        lflag = self.flag(12)
        self.edit.append(byte)
        if lflag & ECHO or (byte == 10 and lflag & ECHONL and lflag & ICANON):
            self._echo_char(byte)
        if lflag & ICANON and not literal and (byte == 10 or byte in (self.cc(VEOL), self.cc(VEOL2)) and byte):
            self._finish_line()

    def _echo_char(self, byte: int) -> None:
        """Echo one character: a control character as ^X under ECHOCTL (not tab or newline)."""
        if not self.flag(12) & (ECHO | ECHONL):
            return
        if self.flag(12) & ECHOCTL and (byte < 32 or byte == 127) and byte not in (9, 10):
            self.echo(b"^" + bytes([byte ^ 0x40]))
        else:
            self.echo(bytes([byte]))

    def echo(self, data: bytes) -> None:
        """Echoed bytes go to the master through output processing; dropped if it is full."""
        data = self.process_output(data)
        if len(self.output) + len(data) <= OUTPUT_MAX:
            self.output += data

    def signal_foreground(self, signo: int) -> None:
        """`signo` to every process of the slave's foreground group (isig, kill_pgrp)."""
        for group in self.foreground():
            signal_delivery.send(self.kernel, group, signo, pack_siginfo(signo, SI_KERNEL))

    def foreground(self) -> list[ThreadGroup]:
        if self.sid is None:
            return []
        return [g for g in self.kernel.processes.values() if g.alive and g.pgid == self.fg_pgrp]

    # -- slave to master ----------------------------------------------------------------------

    def process_output(self, data: bytes) -> bytes:
        """OPOST: ONLCR's \\n to \\r\\n, OCRNL's \\r to \\n (n_tty's do_output_char)."""
        oflag = self.flag(4)
        if not oflag & OPOST:
            return data
        if oflag & OCRNL:
            data = data.replace(b"\r", b"\n")
        if oflag & ONLCR:
            data = data.replace(b"\n", b"\r\n")
        return data

    # -- reading the slave's input -------------------------------------------------------------

    def take_input(self, n: int) -> bytes | None:
        """What a slave read returns now, or None if it must wait: a canonical line (b"" at
        an EOF), or raw bytes as VMIN asks (VMIN 0: whatever is there)."""
        if self.canonical:
            if not self.ends:
                return None
            take = min(n, self.ends[0])
            data = bytes(self.cooked[:take])
            del self.cooked[:take]
            if take == self.ends[0]:
                self.ends.popleft()
            else:
                self.ends[0] -= take
            self.changes += 1
            return data
        wanted = min(self.cc(VMIN), n)
        if len(self.edit) < max(wanted, 1) and wanted:
            return None
        data = bytes(self.edit[:n])
        del self.edit[:n]
        self.changes += 1
        return data

    def take_ready(self) -> bool:
        """Whether a slave read would return now (n_tty's input_available_p)."""
        if self.canonical:
            return bool(self.ends)
        return len(self.edit) >= max(self.cc(VMIN), 1) or self.cc(VMIN) == 0

    def flush(self, queue: int) -> None:
        """TCFLSH (a slave's: its input is TCIFLUSH's, what the master has not read TCOFLUSH's)."""
        if queue in (TCIFLUSH, TCIOFLUSH):
            self.cooked.clear()
            self.ends.clear()
            self.edit.clear()
        if queue in (TCOFLUSH, TCIOFLUSH):
            self.output.clear()
        self.changes += 1

    # -- the ends open and close ---------------------------------------------------------------

    def close_master(self) -> None:
        """The master's last descriptor: the slave hangs up (its readers get 0, writers EIO),
        its session's foreground group gets SIGHUP and SIGCONT, /dev/pts/N goes (pty_close)."""
        self.master_open = False
        if self.sid is not None:
            for signo in (signal.SIGHUP, signal.SIGCONT):
                self.signal_foreground(signo)
        self.sid = None
        self.table.pairs.pop(self.number, None)
        self.budget.release(PAIR_PAGES)
        self.flush(TCIOFLUSH)

    def stat(self) -> Stat:
        """/dev/pts/N's stat: a character device owned by the opener of the master, group tty."""
        return Stat(dev=DEVPTS_DEV, ino=self.number + 3, mode=stat.S_IFCHR | 0o620, uid=self.uid, gid=TTY_GID,
                    rdev=(UNIX98_PTY_SLAVE_MAJOR << 8) | self.number, blksize=1024)


class PtyFile(File):
    """An open end of a pair: the master (`PtyMaster`) or the slave (`PtySlave`)."""

    def __init__(self, pair: PtyPair, flags: int) -> None:
        super().__init__(flags & (O_ACCMODE | O_NONBLOCK))
        self.pair = pair

    def wakeups(self) -> int:
        return self.pair.changes

    def _wait(self, why: str) -> None:
        """EAGAIN with O_NONBLOCK, else sleep and run the call again."""
        if self.flags & O_NONBLOCK:
            raise SyscallError(errno.EAGAIN, why)
        raise WouldBlock(why)


class PtyMaster(PtyFile):
    """/dev/ptmx opened: reads what the slave wrote (and the echo), writes the slave's input."""

    name = "/dev/ptmx"
    proc_link = "/dev/ptmx"

    def read(self, n: int) -> bytes:
        """EIO once every slave closed and nothing is left (n_tty_read: TTY_OTHER_CLOSED)."""
        pair = self.pair
        if not pair.output:
            if pair.slave_opened and not pair.slaves:
                raise SyscallError(errno.EIO, "every slave of the pseudo-terminal is closed")
            self._wait("an empty pseudo-terminal master")
        data = bytes(pair.output[:n])
        del pair.output[:n]
        pair.changes += 1
        return data

    def write(self, data: bytes) -> int:
        return self._write_from(bytes(data), 0)

    def _write_from(self, data: bytes, done: int) -> int:
        """Feed the line discipline as its buffer allows; sleep while it is full."""
        done += self.pair.receive(data[done:])
        if done == len(data):
            return done
        if self.flags & O_NONBLOCK:
            if done:
                return done
            raise SyscallError(errno.EAGAIN, "the slave's input is full")
        raise WouldBlock("the slave's input is full", retry=lambda: self._write_from(data, done),
                         on_interrupt=(lambda: done) if done else None)

    def poll(self, events: int) -> int:
        pair, ready = self.pair, POLLOUT
        if pair.output:
            ready |= POLLIN
        if pair.slave_opened and not pair.slaves:
            ready |= POLLHUP
        if pair.input_bytes() >= N_TTY_BUF_SIZE - 1:
            ready &= ~POLLOUT
        return ready & (events | POLLHUP | POLLERR)

    def queued_bytes(self) -> int:
        return len(self.pair.output)

    def stat(self) -> Stat:
        return Stat(dev=DEVPTS_DEV, ino=2, mode=stat.S_IFCHR | 0o666, rdev=PTMX_RDEV, blksize=1024)

    def close(self) -> None:
        self.pair.close_master()


class PtySlave(PtyFile):
    """/dev/pts/N opened: reads through the line discipline, writes through output processing.
    After the master closes: reads give 0, writes and most ioctls EIO (hung_up_tty_fops)."""

    def __init__(self, pair: PtyPair, flags: int) -> None:
        super().__init__(pair, flags)
        self.name = self.proc_link = f"/dev/pts/{pair.number}"
        self.asleep = False  # a blocking read of this description waits for input
        pair.slaves += 1
        pair.slave_opened = True
        pair.changes += 1

    @property
    def hung_up(self) -> bool:
        return not self.pair.master_open

    def read(self, n: int) -> bytes:
        """A hung-up slave reads 0; a read asleep when the master closed gets EIO (n_tty_read's
        TTY_OTHER_CLOSED, before the SIGHUP that came with it is handled)."""
        asleep, self.asleep = self.asleep, False
        if self.hung_up:
            if asleep:
                raise SyscallError(errno.EIO, "the pseudo-terminal hung up during the read")
            return b""
        data = self.pair.take_input(n)
        if data is None:
            if self.flags & O_NONBLOCK:
                raise SyscallError(errno.EAGAIN, "an empty pseudo-terminal")
            self.asleep = True
            raise WouldBlock("an empty pseudo-terminal", on_interrupt=self._interrupted)
        return data

    def _interrupted(self) -> int | None:
        """A signal ends the read's sleep: EIO if it came with the hangup, else as usual."""
        asleep, self.asleep = self.asleep, False
        return -errno.EIO if asleep and self.hung_up else None

    def write(self, data: bytes) -> int:
        if self.hung_up:
            raise SyscallError(errno.EIO, "the pseudo-terminal's master is closed")
        pair = self.pair
        room = OUTPUT_MAX - len(pair.output)
        if room <= 0:
            self._wait("the pseudo-terminal's master reads nothing")
        take = len(data)
        out = pair.process_output(bytes(data))
        while len(out) > room:  # as much as fits, whole characters only
            take = max(take // 2, 1) if take > 1 else 0
            out = pair.process_output(bytes(data[:take]))
            if take == 0:
                self._wait("the pseudo-terminal's master reads nothing")
        pair.output += out
        pair.changes += 1
        return take

    def poll(self, events: int) -> int:
        if self.hung_up:
            return (POLLIN | POLLOUT | POLLERR | POLLHUP) & (events | POLLHUP | POLLERR)
        pair, ready = self.pair, 0
        if pair.take_ready():
            ready |= POLLIN
        if len(pair.output) < OUTPUT_MAX:
            ready |= POLLOUT
        return ready & (events | POLLHUP | POLLERR)

    def queued_bytes(self) -> int:
        return len(self.pair.cooked) if self.pair.canonical else len(self.pair.edit)

    def stat(self) -> Stat:
        return self.pair.stat()

    def close(self) -> None:
        self.pair.slaves -= 1
        self.pair.changes += 1


# -- opening -----------------------------------------------------------------------------------


def is_pty_device(proc: Task, device: str) -> bool:
    """Whether a /dev device name is opened by `open_device`: ptmx, a guest pair's pts/N, or
    tty when the caller's controlling terminal is a guest pair."""
    table = proc.kernel.fs.ptys
    if device in (PTMX, PTS_PTMX):
        return True
    if device == "tty":
        return table.controlling(proc.group) is not None
    return table.pair_of(device) is not None


def open_device(proc: Task, flags: int, device: str) -> PtyFile:
    """open(2) of /dev/ptmx (a new pair), /dev/pts/N (its slave: EIO while locked) or
    /dev/tty (the controlling pair's slave). A session leader without a controlling terminal
    that opens a slave without O_NOCTTY takes it as one (tty_open_proc_set_tty)."""
    table = proc.kernel.fs.ptys
    if device in (PTMX, PTS_PTMX):
        return table.open_master(proc, flags)
    pair = table.controlling(proc.group) if device == "tty" else table.pair_of(device)
    if pair is None:
        raise SyscallError(errno.ENOENT, f"/dev/{device}")
    if pair.locked:
        raise SyscallError(errno.EIO, f"/dev/pts/{pair.number} is locked (TIOCSPTLCK)")
    if not flags & O_NOCTTY:
        take_as_ctty(proc, pair)
    return PtySlave(pair, flags)


def take_as_ctty(proc: Task, pair: PtyPair) -> None:
    group = proc.group
    if group.pid == group.sid and pair.sid is None and not has_ctty(proc):
        pair.sid, pair.fg_pgrp = group.sid, group.pgid


def has_ctty(proc: Task) -> bool:
    """Whether the caller's session has a controlling terminal: a guest pair, or the host's
    terminal when the sandbox runs on one."""
    if proc.kernel.fs.ptys.controlling(proc.group) is not None:
        return True
    return proc.kernel.terminal.sid == proc.group.sid and os.isatty(0)


def device_stat(proc: Task, device: str) -> Stat:
    """stat(2) of /dev/ptmx, /dev/pts/ptmx or a guest pair's /dev/pts/N (/dev/tty of a
    session whose terminal is a pair: that slave)."""
    if device in (PTMX, PTS_PTMX):
        return Stat(dev=DEVPTS_DEV, ino=2, mode=stat.S_IFCHR | 0o666, rdev=PTMX_RDEV, blksize=1024)
    pair = proc.kernel.fs.ptys.pair_of(device)
    if pair is None:
        return Stat(mode=stat.S_IFCHR | 0o666, rdev=(5 << 8) | 0)  # /dev/tty: makedev(5, 0)
    return pair.stat()

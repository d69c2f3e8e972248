"""Anonymous-inode files that carry events, not data: eventfd, timerfd and signalfd.

Each is a `File` whose `poll` is exact, so poll, select and epoll watch it as they watch a
pipe. A read that finds nothing sleeps (EAGAIN under O_NONBLOCK); a timer tells the waits
when it next expires (`next_event`), so a sandbox whose only wake-up is a timer idles until
then instead of being taken for a deadlock.

- eventfd (man 2 eventfd; Linux fs/eventfd.c): a 64-bit counter; read takes it all (or 1 in
  semaphore mode), write adds, and blocks while the sum would pass 0xfffffffffffffffe.
- timerfd (man 2 timerfd_create; fs/timerfd.c): expirations counted on the sandbox's clock,
  read returns their number since the last read.
- signalfd (man 2 signalfd; fs/signalfd.c): reading dequeues the caller's pending signals
  in its mask as struct signalfd_siginfo.
"""

from __future__ import annotations

import errno
import itertools
import struct
from typing import TYPE_CHECKING

from sandbox.errors import SyscallError, WouldBlock
from sandbox.kernel.files import O_NONBLOCK, O_RDWR, POLLIN, POLLOUT, File, Stat

if TYPE_CHECKING:
    from sandbox.kernel.kernel import Kernel
    from sandbox.kernel.task import Task

EVENTFD_MAX = 0xFFFF_FFFF_FFFF_FFFE  # ULLONG_MAX - 1: the most the counter holds (eventfd_write)
COUNTER = struct.Struct("<Q")
ANON_INODE_DEV = 13  # anon_inodefs: one device for every anonymous-inode file
ANON_INODE_MODE = 0o600  # S_IRUSR | S_IWUSR and no file type, as fstat shows them
#: struct signalfd_siginfo (include/uapi/linux/signalfd.h): 128 bytes.
SIGNALFD_SIGINFO = struct.Struct("<IiiIIiIIIIiiQQQQH46x")


class AnonFile(File):
    """A file on the anonymous-inode filesystem, named `anon_inode:[kind]` in /proc/PID/fd."""

    _inodes = itertools.count(1)
    kind = "?"

    def __init__(self, flags: int) -> None:
        super().__init__(O_RDWR | (flags & O_NONBLOCK))
        self.name = f"anon_inode:[{self.kind}]"
        self.ino = next(AnonFile._inodes)

    def stat(self) -> Stat:
        return Stat(dev=ANON_INODE_DEV, ino=self.ino, mode=ANON_INODE_MODE, blksize=4096)

    def next_event(self) -> float | None:
        """When this file may next become ready by itself (sandbox-clock seconds), if ever."""
        return None

    def _empty(self, why: str) -> WouldBlock:
        if self.flags & O_NONBLOCK:
            raise SyscallError(errno.EAGAIN, why)
        return WouldBlock(why)


class EventFd(AnonFile):
    """A counter for waking: `write` adds, `read` takes (man 2 eventfd)."""

    kind = "eventfd"

    def __init__(self, initval: int, flags: int, semaphore: bool) -> None:
        super().__init__(flags)
        self.count = initval
        self.semaphore = semaphore
        self.changes = 0

    def read(self, n: int) -> bytes:
        if n < COUNTER.size:
            raise SyscallError(errno.EINVAL, f"eventfd read of {n} bytes (8 needed)")
        if self.count == 0:
            raise self._empty("eventfd counter is 0")
        taken = 1 if self.semaphore else self.count
        self.count -= taken
        self.changes += 1
        return COUNTER.pack(taken)

    def write(self, data: bytes) -> int:
        if len(data) < COUNTER.size:
            raise SyscallError(errno.EINVAL, f"eventfd write of {len(data)} bytes (8 needed)")
        (value,) = COUNTER.unpack(data[: COUNTER.size])
        if value > EVENTFD_MAX:
            raise SyscallError(errno.EINVAL, "eventfd write of 0xffffffffffffffff")
        if self.count + value > EVENTFD_MAX:
            raise self._empty("eventfd counter would overflow")
        self.count += value
        self.changes += 1
        return COUNTER.size

    def wakeups(self) -> int:
        return self.changes

    def poll(self, events: int) -> int:
        ready = (POLLIN if self.count else 0) | (POLLOUT if self.count < EVENTFD_MAX else 0)
        return ready & events


class TimerFd(AnonFile):
    """A timer on the sandbox's clock; reads count expirations (man 2 timerfd_create)."""

    kind = "timerfd"

    def __init__(self, kernel: Kernel, clockid: int, flags: int) -> None:
        super().__init__(flags)
        self.kernel = kernel
        self.clockid = clockid
        self.expiry: float | None = None  # sandbox-clock seconds of the next expiration
        self.interval = 0.0  # seconds between expirations; 0: one-shot
        self.ticks = 0  # expirations not yet read
        self.expirations = 0  # in all: the timer's wake-ups

    def _advance(self) -> None:
        """Count the expirations that passed and move the next one on."""
        if self.expiry is None:
            return
        now = self.kernel.monotonic()
        if now < self.expiry:
            return
        if self.interval:
            passed = int((now - self.expiry) // self.interval) + 1
            self.ticks += passed
            self.expirations += passed
            self.expiry += passed * self.interval
        else:
            self.ticks += 1
            self.expirations += 1
            self.expiry = None

    def arm(self, expiry: float | None, interval: float) -> tuple[float, float]:
        """Set the timer (None disarms); the (time left, interval) it had before."""
        old = self.remaining()
        self.expiry, self.interval, self.ticks = expiry, interval if expiry is not None else 0.0, 0
        return old

    def remaining(self) -> tuple[float, float]:
        """(seconds to the next expiration, interval); (0, 0) if disarmed (timerfd_gettime)."""
        self._advance()
        if self.expiry is None:
            return 0.0, self.interval
        return max(self.expiry - self.kernel.monotonic(), 1e-9), self.interval

    def read(self, n: int) -> bytes:
        if n < COUNTER.size:
            raise SyscallError(errno.EINVAL, f"timerfd read of {n} bytes (8 needed)")
        self._advance()
        if not self.ticks:
            if self.flags & O_NONBLOCK:
                raise SyscallError(errno.EAGAIN, "timer has not expired")
            raise self._sleep_to_expiry()
        ticks, self.ticks = self.ticks, 0
        return COUNTER.pack(ticks)

    def _sleep_to_expiry(self) -> WouldBlock:
        """Sleep until the next expiration (for ever if disarmed: only a signal ends that)."""
        deterministic = self.kernel.options.deterministic
        host = None
        if self.expiry is not None and not deterministic:
            host = self.expiry  # kernel.monotonic() is the host's clock outside --deterministic
        return WouldBlock("timerfd read", deadline=host, every_pass=True,
                          clock_deadline=self.expiry if deterministic else None)

    def write(self, data: bytes) -> int:
        raise SyscallError(errno.EINVAL, "timerfd cannot be written")

    def poll(self, events: int) -> int:
        self._advance()
        return POLLIN & events if self.ticks else 0

    def wakeups(self) -> int:
        self._advance()
        return self.expirations

    def next_event(self) -> float | None:
        self._advance()
        return self.expiry


class SignalFd(AnonFile):
    """Reads take the reader's pending signals in `mask` (man 2 signalfd)."""

    kind = "signalfd"

    def __init__(self, kernel: Kernel, mask: int, flags: int) -> None:
        super().__init__(flags)
        self.kernel = kernel
        self.mask = mask

    def _pending(self, task: Task) -> list[int]:
        """The caller's pending signals in the mask: its own first, lowest number first."""
        own = sorted(s for s in task.pending if self.mask >> (s - 1) & 1)
        shared = sorted(s for s in task.group.pending if self.mask >> (s - 1) & 1 and s not in own)
        return own + shared

    def read(self, n: int) -> bytes:
        if n < SIGNALFD_SIGINFO.size:
            raise SyscallError(errno.EINVAL, f"signalfd read of {n} bytes ({SIGNALFD_SIGINFO.size} needed)")
        task = self.kernel.current
        records = []
        for signo in self._pending(task)[: n // SIGNALFD_SIGINFO.size]:
            info = task.pending.pop(signo) if signo in task.pending else task.group.pending.pop(signo)
            records.append(signalfd_record(info))
        if not records:
            raise self._empty("no signal in the signalfd's mask is pending")
        return b"".join(records)

    def poll(self, events: int) -> int:
        task = self.kernel.current
        return POLLIN & events if task is not None and self._pending(task) else 0


def signalfd_record(info: bytes) -> bytes:
    """struct signalfd_siginfo from the kernel's siginfo_t (signalfd_copyinfo): the union's
    fields as the signal's kind sets them."""
    signo, err, code = struct.unpack_from("<iii", info, 0)
    pid, uid = struct.unpack_from("<iI", info, 16)
    status_or_int = struct.unpack_from("<i", info, 24)[0]
    ptr = struct.unpack_from("<Q", info, 24)[0]
    addr = struct.unpack_from("<Q", info, 16)[0]
    fault = signo in (4, 5, 7, 8, 11)  # SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGSEGV: si_addr
    return SIGNALFD_SIGINFO.pack(signo, err, code, 0 if fault else pid, 0 if fault else uid, 0, 0, 0, 0, 0,
                                 status_or_int, status_or_int, ptr, 0, 0, addr if fault else 0, 0)


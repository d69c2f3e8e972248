"""Pipes: the buffer two ends share (`Pipe`) and each end's open file (`PipeEnd`), for
pipe(2), pipe2(2) and the FIFOs of the view (man 7 pipe; Linux fs/pipe.c).

A read of an empty pipe sleeps until a writer acts (EAGAIN with O_NONBLOCK); a blocking
write takes all its bytes, sleeping while the pipe is full; the capacity is charged, in
pages, to the sandbox-wide pipe budget while any end is open.
"""

from __future__ import annotations

import errno
import itertools
import stat
from collections.abc import Callable
from typing import TYPE_CHECKING

from sandbox.errors import SyscallError, WouldBlock
from sandbox.kernel.files import (
    O_NONBLOCK,
    O_RDONLY,
    O_RDWR,
    O_WRONLY,
    PIPE_BUF,
    POLLERR,
    POLLHUP,
    POLLIN,
    POLLOUT,
    File,
    Stat,
)
from sandbox.mm import PAGE_SHIFT, PAGE_SIZE

if TYPE_CHECKING:
    from sandbox.kernel.accounting import Budget

PIPE_DEF_PAGES = 16  # Linux's default pipe buffer, 64 KiB (man 7 pipe; PIPE_DEF_BUFFERS)
PIPE_MIN_DEF_PAGES = 2  # a new pipe's buffer past pipe-user-pages-soft (fs/pipe.c)


class Pipe:
    """The buffer between the two ends of a pipe, its capacity, and how many ends of each
    kind are open.

    The capacity is counted in pages against the sandbox-wide `budget` (Linux's
    `account_pipe_buffers`) from the moment the first end is opened until the last closes:
    16 pages (64 KiB, man 7 pipe) or, once the budget is past its soft bound
    (pipe-user-pages-soft), `PIPE_MIN_DEF_PAGES`; past the hard bound no pipe is made
    (ENFILE). The bytes held never exceed the capacity.
    """

    #: pipefs inode numbers: sequential, as Linux's (never a host address, as id() is).
    _inodes = itertools.count(1)

    def __init__(self, budget: Budget) -> None:
        self.ino = next(Pipe._inodes)
        self.data = bytearray()
        self.readers = 0
        self.writers = 0
        self.budget = budget
        self.pages = 0  # charged to the budget while any end is open
        #: Opens of each kind ever made: a FIFO's blocked open waits for the other kind's to
        #: change (fs/pipe.c r_counter, w_counter, wait_for_partner).
        self.read_opens = 0
        self.write_opens = 0
        #: Called when the last end closes (a FIFO leaves the table of open FIFOs).
        self.on_empty: Callable[[], None] | None = None
        self.changes = 0  # data in, data out, an end closed: what wakes the pipe's waiters

    @property
    def capacity(self) -> int:
        """Bytes the buffer may hold (F_GETPIPE_SZ)."""
        return self.pages << PAGE_SHIFT

    def open_end(self, reading: bool) -> None:
        """An end gets its first descriptor; the first end of all charges the buffer."""
        if not self.readers and not self.writers:
            pages = PIPE_MIN_DEF_PAGES if self.budget.over_soft(PIPE_DEF_PAGES) else PIPE_DEF_PAGES
            self.budget.charge(pages)
            self.pages = pages
        if reading:
            self.readers += 1
            self.read_opens += 1
        else:
            self.writers += 1
            self.write_opens += 1

    def close_end(self, reading: bool) -> None:
        """An end's last descriptor closed; the last end of all frees the buffer."""
        self.changes += 1
        if reading:
            self.readers -= 1
        else:
            self.writers -= 1
        if not self.readers and not self.writers:
            self.budget.release(self.pages)
            self.pages = 0
            self.data = bytearray()
            if self.on_empty is not None:
                self.on_empty()

    def unread(self, data: bytes) -> None:
        """Put bytes taken by a read back at the head (a splice whose write fell short)."""
        self.data[0:0] = data

    def resize(self, requested: int, max_size: int) -> int:
        """F_SETPIPE_SZ as Linux's `pipe_set_size` (fs/pipe.c): round up to a power-of-two
        number of pages; EINVAL past 2**31, EPERM to grow past pipe-max-size (`max_size`)
        or past the budget's soft bound, EBUSY below what the pipe holds. Returns the size."""
        requested &= 0xFFFF_FFFF  # the kernel takes an unsigned int
        if requested > 1 << 31:
            raise SyscallError(errno.EINVAL, f"pipe size {requested}")
        size = PAGE_SIZE if requested < PAGE_SIZE else 1 << (requested - 1).bit_length()
        pages = size >> PAGE_SHIFT
        growing = pages > self.pages
        if growing and (size > max_size or self.budget.over_soft(pages - self.pages)):
            raise SyscallError(errno.EPERM, f"pipe size {size}: past pipe-max-size or the pipe pages")
        if len(self.data) > size:
            raise SyscallError(errno.EBUSY, f"pipe holds {len(self.data)} bytes, more than {size}")
        if growing:
            self.budget.charge(pages - self.pages)
        else:
            self.budget.release(self.pages - pages)
        self.pages = pages
        return size


class PipeEnd(File):
    """One end of a pipe (or both, for a FIFO opened O_RDWR). A read from an empty pipe
    sleeps until a writer acts (EAGAIN with O_NONBLOCK). A write with no reader left is
    EPIPE, and the kernel sends SIGPIPE. A blocking write takes all its bytes, sleeping while
    the pipe is full, and returns the whole count unless a signal ends the sleep after some
    progress (then that count); a write of at most PIPE_BUF bytes is atomic: it waits for
    room for all of it (man 7 pipe; fs/pipe.c pipe_write)."""

    def __init__(self, pipe: Pipe, reading: bool, flags: int, both: bool = False) -> None:
        mode = O_RDWR if both else O_RDONLY if reading else O_WRONLY
        super().__init__(mode | (flags & O_NONBLOCK))
        self.pipe = pipe
        self.reading = reading or both
        self.writing = not reading or both
        self.name = "pipe"
        #: A FIFO's end reports the node's own stat (set by whoever opened the node).
        self.node_stat: Stat | None = None

    def attach(self) -> None:
        """The first descriptor opens this end (and may charge the pipe: ENFILE)."""
        if self.refs == 0:
            if self.reading:
                self.pipe.open_end(True)
            if self.writing:
                try:
                    self.pipe.open_end(False)
                except SyscallError:
                    if self.reading:
                        self.pipe.close_end(True)
                    raise
        super().attach()

    def read(self, n: int) -> bytes:
        if not self.reading:
            raise SyscallError(errno.EBADF, "write end of a pipe")
        if not self.pipe.data:
            if self.pipe.writers == 0:
                return b""
            if self.flags & O_NONBLOCK:
                raise SyscallError(errno.EAGAIN, "empty pipe")
            raise WouldBlock("empty pipe")
        data = bytes(self.pipe.data[:n])
        del self.pipe.data[:n]
        self.pipe.changes += 1
        return data

    def write(self, data: bytes) -> int:
        if not self.writing:
            raise SyscallError(errno.EBADF, "read end of a pipe")
        return self._write_from(memoryview(bytes(data)), 0)

    def _write_from(self, view: memoryview, done: int) -> int:
        """Put `view[done:]` into the pipe as room allows; the count written in all. Sleeps
        while the pipe is full (the retry continues from what was written, so nothing is
        written twice or lost); EPIPE when no reader is left before the first byte."""
        if self.pipe.readers == 0:
            if done:
                return done
            raise SyscallError(errno.EPIPE, "no reader")
        room = self.pipe.capacity - len(self.pipe.data)
        if room > 0 and not (len(view) <= PIPE_BUF and room < len(view)):
            take = min(room, len(view) - done)
            self.pipe.data += view[done : done + take]
            self.pipe.changes += 1
            done += take
            if done == len(view):
                return done
        if self.flags & O_NONBLOCK:
            if done:
                return done
            raise SyscallError(errno.EAGAIN, "pipe full")
        raise WouldBlock("full pipe", retry=lambda: self._write_from(view, done),
                         on_interrupt=(lambda: done) if done else None)

    def room(self) -> int:
        """Bytes one write takes now without sleeping (sendfile and splice read no more than
        that, so nothing they read is held back): if none, the caller sleeps and its call
        runs again (EAGAIN under O_NONBLOCK, EPIPE without a reader)."""
        if not self.writing:
            raise SyscallError(errno.EBADF, "read end of a pipe")
        if self.pipe.readers == 0:
            raise SyscallError(errno.EPIPE, "no reader")
        room = self.pipe.capacity - len(self.pipe.data)
        if room > 0:
            return room
        if self.flags & O_NONBLOCK:
            raise SyscallError(errno.EAGAIN, "pipe full")
        raise WouldBlock("full pipe")

    def stat(self) -> Stat:
        if self.node_stat is not None:
            return self.node_stat
        return Stat(dev=12, ino=self.pipe.ino, mode=stat.S_IFIFO | 0o600, blksize=4096)

    def poll(self, events: int) -> int:
        ready = 0
        if self.reading and (self.pipe.data or self.pipe.writers == 0):
            ready |= POLLIN
        if self.writing and len(self.pipe.data) < self.pipe.capacity:
            ready |= POLLOUT
        if self.reading and self.pipe.writers == 0:
            ready |= POLLHUP
        if self.writing and self.pipe.readers == 0:
            ready |= POLLERR
        return ready & (events | POLLHUP | POLLERR)

    def wakeups(self) -> int:
        return self.pipe.changes

    def queued_bytes(self) -> int:
        return len(self.pipe.data)

    def close(self) -> None:
        if self.reading:
            self.pipe.close_end(True)
        if self.writing:
            self.pipe.close_end(False)

"""Files backed by host descriptors: regular files and directories reached through the
guest's view (`HostFile`), and the host's standard streams (`HostStream`). Host errors
become the guest's errno here; every host file is reached by descriptor, never by path.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import stat
from collections.abc import Callable
from typing import TYPE_CHECKING

from sandbox.errors import SyscallError, WouldBlock
from sandbox.kernel.files import (
    DT_DIR,
    DT_LNK,
    DT_REG,
    DT_UNKNOWN,
    KIND_DTYPE,
    O_APPEND,
    O_NONBLOCK,
    O_RDONLY,
    PIPE_BUF,
    POLLERR,
    POLLHUP,
    POLLIN,
    POLLNVAL,
    POLLOUT,
    DirEntry,
    File,
    Stat,
)
from sandbox.mm import PAGE_SHIFT

if TYPE_CHECKING:
    from sandbox.kernel.accounting import Budget
    from sandbox.kernel.identity import Identity
    from sandbox.kernel.inotify import Notifier
    from sandbox.kernel.quota import DiskQuota
    from sandbox.mm.pagecache import CachedFile, PageCache

#: Host bytes one listed entry takes besides its name (the record, its int and bytes objects).
LISTING_ENTRY_COST = 160

#: What a host call can raise for a guest's values: its own errno, or a value Python's API
#: cannot take at all (an offset past 2**63, a NUL in a path), which is EINVAL.
HOST_ERRORS = (OSError, OverflowError, ValueError)


def _oserror(error: Exception) -> SyscallError:
    if isinstance(error, OSError):
        return SyscallError(error.errno or errno.EIO, str(error))
    return SyscallError(errno.EINVAL, str(error))


class HostFd(File):
    """A file backed by a host descriptor: host errors become the guest's errno."""

    fd: int

    def host(self, call, *args):
        """`call(self.fd, *args)`, with host errors mapped (HOST_ERRORS -> SyscallError)."""
        try:
            return call(self.fd, *args)
        except HOST_ERRORS as error:
            raise _oserror(error) from None

    def seek(self, offset: int, whence: int) -> int:
        return self.host(os.lseek, offset, whence)

    def stat(self) -> Stat:
        return Stat.from_host(self.host(os.fstat))


class HostFile(HostFd):
    """A host file or directory, opened through the guest's view; `guest` is its guest path."""

    def __init__(self, fd: int, guest: str, flags: int,
                 extra_entries: Callable[[], list[tuple[str, str]]] | None = None) -> None:
        super().__init__(flags)
        self.fd = fd
        self.guest = guest
        self.name = guest
        self._extra_entries = extra_entries
        self._listing: list[DirEntry] | None = None
        self.dir_position = 0

    #: The machine's page cache, which reads and writes keep coherent with mappings.
    cache: PageCache | None = None
    #: The disk quota that writes are charged to, and the translation of inode numbers.
    quota: DiskQuota | None = None
    identity: Identity | None = None
    #: The host lstat when opened, for a regular file the quota follows (None otherwise).
    _held: os.stat_result | None = None
    #: False for a file of a read-only mount: fchmod, fchown and futimens answer EROFS.
    on_writable_mount = True
    #: Whether a listing is sorted by name (--deterministic) rather than in the host's order.
    sorted_listing = False
    #: The budget a directory's listing is charged to while this description holds it.
    listings: Budget | None = None
    _listing_cost = 0
    #: The budget of host descriptors this file's descriptor is charged to (released at close).
    host_files: Budget | None = None
    #: The snapshots' file journal (sandbox.kernel.fsjournal.Journals), told before a write
    #: or truncation; set by a snapshot on the files open then.
    journal = None
    #: The sandbox's inotify, for a file the guest opened by path: told of its reads, writes,
    #: truncations and its close (inotify.Notifier).
    notify: Notifier | None = None

    def hold(self, quota: DiskQuota, identity: Identity, st: os.stat_result | None = None) -> None:
        """Charge this file's writes to `quota`; a regular file is held open in its count
        (`st`: the descriptor's fstat, if the caller has it)."""
        self.quota, self.identity = quota, identity
        st = st or self.host(os.fstat)
        if stat.S_ISREG(st.st_mode):
            self._held = st
            quota.opened(st)

    #: RLIMIT_FSIZE (limits.file_room): how many of n bytes written at a position the
    #: writing process may write; EFBIG (and SIGXFSZ) for none. None: no limit to check.
    write_room: Callable[[int, int], int] | None = None

    def _within_size_limit(self, data: bytes, offset: int | None) -> bytes:
        """`data` cut to what RLIMIT_FSIZE leaves from where it goes (`offset`, or the file
        offset, or the end under O_APPEND): generic_write_check_limits."""
        if self.write_room is None or not data:
            return data
        if offset is None:
            offset = self.host(os.fstat).st_size if self.flags & O_APPEND else self.host(os.lseek, 0, os.SEEK_CUR)
        return data[: self.write_room(offset, len(data))]

    def _charged(self, data: bytes, write: Callable[[bytes], int]) -> int:
        """`write(data)`, cut to what the disk quota allows, charged for the blocks it added."""
        if self.journal is not None and self.writable:  # snapshots save the contents first
            self.journal.changing_file(self)
        if self.quota is None or not self.writable:
            return write(data)
        before = self.host(os.fstat).st_blocks
        n = write(data[: self.quota.room(len(data))])
        self.quota.charge_blocks(self.host(os.fstat).st_blocks - before)
        return n

    def _transfer(self, writing: bool, call, *args):
        """A host read or write on this file, if it was opened for it (else EBADF)."""
        if not (self.writable if writing else self.readable):
            raise SyscallError(errno.EBADF, f"{self.name} is not open for {'writing' if writing else 'reading'}")
        done = self.host(call, *args)
        if self.notify is not None:
            self.notify.transferred(self, writing, done)
        return done

    _inode: tuple[int, int] | None = None

    def _cached(self) -> CachedFile | None:
        """This file's page-cache entry, if something maps it (no host call while nothing
        is mapped; the (device, inode) key is read once)."""
        if self.cache is None or not self.cache.files:
            return None
        if self._inode is None:
            st = self.host(os.fstat)
            self._inode = (st.st_dev, st.st_ino)
        return self.cache.files.get(self._inode)

    def _before_read(self, offset: int | None, n: int) -> None:
        """Store pages that shared mappings may have written, so the host file is current."""
        cached = self._cached()
        if cached is not None and n:
            offset = self.host(os.lseek, 0, os.SEEK_CUR) if offset is None else offset
            cached.writeback(self.cache.mem, offset >> PAGE_SHIFT, (offset + n - 1) >> PAGE_SHIFT)

    def _after_write(self, offset: int | None, data: bytes, n: int) -> int:
        """Copy what was written into the cached pages it covers (mappings see it)."""
        cached = self._cached()
        if cached is not None and n > 0:
            offset = self.host(os.lseek, 0, os.SEEK_CUR) - n if offset is None else offset
            if cached.wrote(offset, bytes(data[:n]), self.cache.mem):
                self.cache.on_change()
        return n

    def read(self, n: int) -> bytes:
        self._before_read(None, n)
        return self._transfer(False, os.read, n)

    def write(self, data: bytes) -> int:
        data = self._within_size_limit(data, None)
        n = self._charged(data, lambda part: self._transfer(True, os.write, part))
        return self._after_write(None, data, n)

    def pread(self, n: int, offset: int) -> bytes:
        self._before_read(offset, n)
        return self._transfer(False, os.pread, n, offset)

    def pwrite(self, data: bytes, offset: int) -> int:
        data = self._within_size_limit(data, offset)
        n = self._charged(data, lambda part: self._transfer(True, os.pwrite, part, offset))
        return self._after_write(offset, data, n)

    def seek(self, offset: int, whence: int) -> int:
        """A directory seeks to a cookie (a position in its listing); back to 0 (rewinddir)
        it is listed afresh at the next getdents, as Linux re-reads it, so entries made
        since show."""
        if self._listing is not None or stat.S_ISDIR(self.stat().mode):
            if whence != os.SEEK_SET or offset < 0:
                raise SyscallError(errno.EINVAL, "directories seek only to a cookie")
            if offset == 0:
                self._drop_listing()
            self.dir_position = offset
            return offset
        return super().seek(offset, whence)

    def _drop_listing(self) -> None:
        if self._listing is not None and self.listings is not None:
            self.listings.release(self._listing_cost)
        self._listing, self._listing_cost = None, 0

    def entries(self) -> list[DirEntry]:
        """'.', '..', then the directory's names (and mount points), listed at the first
        getdents after the open or a rewind, in the host's order (sorted by name under
        --deterministic: the host file system's order differs between machines)."""
        if self._listing is None:
            st = self.stat()
            if not stat.S_ISDIR(st.mode):
                raise SyscallError(errno.ENOTDIR, self.name)
            ino = self.identity.present(st).ino if self.identity is not None else st.ino
            listing = [DirEntry(ino, DT_DIR, b"."), DirEntry(ino, DT_DIR, b"..")]
            try:
                with os.scandir(self.fd) as it:
                    names = {e.name: e for e in it}
            except HOST_ERRORS as error:  # e.g. an O_PATH descriptor cannot be listed: EBADF
                raise _oserror(error) from None
            for name, kind in self._extra_entries() if self._extra_entries else []:
                names.setdefault(name, kind)
            for name in sorted(names) if self.sorted_listing else names:
                entry = _dir_entry(name, names[name])
                if self.identity is not None and not isinstance(names[name], str):
                    entry = entry._replace(ino=self.identity.ino(st.dev, entry.ino))
                listing.append(entry)
            self._hold_listing(sum(LISTING_ENTRY_COST + len(e.name) for e in listing))
            self._listing = listing
        return self._listing

    def truncate(self, length: int) -> None:
        if not self.writable:
            raise SyscallError(errno.EINVAL, f"{self.name} is not open for writing")
        if self.write_room is not None:
            self.write_room(length, 0)  # EFBIG past RLIMIT_FSIZE (inode_newsize_ok)
        self._charged(b"", lambda _: self.host(os.ftruncate, length))
        if self.notify is not None:
            self.notify.truncated(self)

    def sync(self) -> None:
        self.host(os.fsync)

    def set_status_flags(self, flags: int) -> None:
        """O_APPEND is the host's business too: writes go through the host descriptor."""
        host_flags = self.host(fcntl.fcntl, fcntl.F_GETFL)
        self.host(fcntl.fcntl, fcntl.F_SETFL, (host_flags & ~O_APPEND) | (flags & O_APPEND))
        self.flags = flags

    def _hold_listing(self, cost: int) -> None:
        """Charge a listing's host memory (ENOMEM past the sandbox's budget)."""
        if self.listings is not None:
            self.listings.charge(cost)
            self._listing_cost = cost

    def close(self) -> None:
        if self.notify is not None:
            self.notify.closing(self)
        if self.host_files is not None:
            self.host_files.release(1)
        self._drop_listing()
        if self._held is not None:
            try:
                self.quota.closed(os.fstat(self.fd))
            except OSError:
                pass
        os.close(self.fd)


def _dir_entry(name: str, entry: os.DirEntry | str) -> DirEntry:
    """A getdents record for a scandir entry (or a mount point or placed node, by kind)."""
    if isinstance(entry, str):
        return DirEntry(1, KIND_DTYPE[entry], os.fsencode(name))
    try:
        if entry.is_symlink():
            kind = DT_LNK
        elif entry.is_dir(follow_symlinks=False):
            kind = DT_DIR
        elif entry.is_file(follow_symlinks=False):
            kind = DT_REG
        else:
            kind = DT_UNKNOWN
        return DirEntry(entry.inode(), kind, os.fsencode(name))
    except OSError:
        return DirEntry(0, DT_UNKNOWN, os.fsencode(name))


class HostStream(HostFd):
    """One of the host's standard streams (fd 0, 1 or 2), shared with the guest."""

    def __init__(self, fd: int) -> None:
        # The host's own access mode: reading a stderr that is a pipe's write end fails with
        # EBADF, as natively, instead of waiting for input that cannot come. A stream the
        # host has closed allows neither.
        try:
            self.mode: int | None = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
        except OSError:
            self.mode = None
        super().__init__(O_RDONLY if self.mode is None else self.mode)
        self.fd = fd
        self.name = ("stdin", "stdout", "stderr")[fd] if fd < 3 else f"host fd {fd}"
        # Whether a write of PIPE_BUF bytes can block although poll said POLLOUT: never for
        # a regular file, nor for a pipe (POLLOUT means a free PIPE_BUF slot, pipe(7));
        # a terminal reports POLLOUT with any room, and a socket with its own measure.
        try:
            mode = os.fstat(fd).st_mode
            self._may_block = not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode))
            self._regular = stat.S_ISREG(mode)
        except OSError:
            self._may_block = self._regular = False
        self._poller: select.poll | None = None
        self.drained = 0  # reads that found nothing, writes that found no room (wakeups)

    @property
    def readable(self) -> bool:
        return self.mode in (os.O_RDONLY, os.O_RDWR)

    @property
    def writable(self) -> bool:
        return self.mode in (os.O_WRONLY, os.O_RDWR)

    @property
    def pollable(self) -> bool:
        return not self._regular  # a stream redirected from or to a regular file has no poll

    @property
    def host_fd(self) -> int:  # type: ignore[override]
        return self.fd

    def wakeups(self) -> int:
        """How often a call found the stream drained or full: edge-triggered epoll reports
        it again once it is ready, when Linux's wake-up would have come (the host's data
        moves no counter of the sandbox's, but an edge-triggered reader drains to EAGAIN
        before it waits again)."""
        return self.drained

    def poll(self, events: int) -> int:
        """The host's readiness of the stream now (poll(2) with no wait)."""
        if self._poller is None:  # one poll set per stream: a write polls every PIPE_BUF
            self._poller = select.poll()
            self._poller.register(self.fd, 0xFFFF)  # every event; each caller masks its own
        ready = self._poller.poll(0)
        return ready[0][1] & (events | POLLERR | POLLHUP | POLLNVAL) if ready else 0

    def read(self, n: int) -> bytes:
        """Never blocks the sandbox: if nothing is ready the process sleeps on the host fd
        (EAGAIN under O_NONBLOCK)."""
        if not self.poll(POLLIN):
            self.drained += 1
            if self.flags & O_NONBLOCK:
                raise SyscallError(errno.EAGAIN, f"{self.name} has no input yet")
            raise WouldBlock(f"{self.name} has no input yet", host_waits=((self.fd, POLLIN),))
        return self.host(os.read, n)

    def write(self, data: bytes) -> int:
        """Write all of `data`, PIPE_BUF bytes at a time while the host stream takes them
        (a pipe that polls writable has room for PIPE_BUF, man 7 pipe), so the host write never
        blocks: when the stream is full the process sleeps in the scheduler until it drains
        (EAGAIN under O_NONBLOCK), and a signal then ends the call with the count written."""
        return self._write_from(memoryview(bytes(data)), 0)

    def room(self) -> int:
        """What one host write takes now without blocking; if nothing, the process sleeps
        until the stream drains and its call runs again (EAGAIN under O_NONBLOCK)."""
        if self.poll(POLLOUT):
            return PIPE_BUF
        if self.flags & O_NONBLOCK:
            raise SyscallError(errno.EAGAIN, f"{self.name} is full")
        raise WouldBlock(f"{self.name} is full (nobody reads it)", host_waits=((self.fd, POLLOUT),))

    def _write_from(self, view: memoryview, done: int) -> int:
        """Write `view` from `done` on; the count written in all. A regular file takes it
        all without blocking; anything else is fed PIPE_BUF at a time while it polls
        writable."""
        chunk = len(view) if self._regular else PIPE_BUF
        while done < len(view):
            try:
                n = self._write_chunk(view[done : done + chunk]) if self._regular or self.poll(POLLOUT) else None
            except OSError as error:
                if done:
                    break
                raise _oserror(error) from None
            if n is None:
                self.drained += 1
                if self.flags & O_NONBLOCK:
                    if done:
                        return done
                    raise SyscallError(errno.EAGAIN, f"{self.name} is full")
                raise self._full(view, done)
            done += n
        return done

    def _write_chunk(self, chunk: memoryview) -> int | None:
        """One host write that cannot block the sandbox: None if the stream takes nothing
        now. "Writable" from poll means some room, not room for the whole chunk (a
        terminal's), so a stream that can block is written without blocking."""
        return write_nonblocking(self.fd, chunk) if self._may_block else os.write(self.fd, chunk)

    def _full(self, view: memoryview, done: int) -> WouldBlock:
        """Sleep until the host stream takes more, then write the rest of `view`."""
        return WouldBlock(f"{self.name} is full (nobody reads it)", host_waits=((self.fd, POLLOUT),),
                          retry=lambda: self._write_from(view, done), on_interrupt=(lambda: done) if done else None)

    @property
    def is_terminal(self) -> bool:
        """Whether the host stream is a terminal (its ioctls are sandbox/kernel/tty.py's)."""
        return os.isatty(self.fd)

    def ioctl(self, request: int, arg: bytes | int) -> bytes | int:
        """One of the host terminal's own requests (tty.HOST_REQUESTS: its modes, size,
        queues), made on the host stream if it is a terminal; ENOTTY otherwise."""
        from sandbox.kernel.tty import HOST_REQUESTS  # tty.py builds on this module

        if request not in HOST_REQUESTS or not self.is_terminal:
            raise SyscallError(errno.ENOTTY, f"{self.name} is not a terminal")
        return self.host(fcntl.ioctl, request, arg)


def write_nonblocking(fd: int, data) -> int | None:
    """os.write that cannot block: None if the stream takes nothing now. O_NONBLOCK is set
    for that one call only: the description is the host's, shared with whoever else uses
    the stream (a terminal's, a parent shell's)."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    if not flags & os.O_NONBLOCK:
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    try:
        return os.write(fd, data)
    except BlockingIOError:
        return None
    finally:
        if not flags & os.O_NONBLOCK:
            fcntl.fcntl(fd, fcntl.F_SETFL, flags)

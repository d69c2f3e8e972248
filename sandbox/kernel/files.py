"""Open files and descriptor tables.

A `File` is an open file description (shared by dup'd descriptors, with one offset); an
`FdTable` maps small integers to files plus a close-on-exec flag. Kinds of file: host files
and directories reached through the guest's view (`HostFile`), the host's standard streams
(`HostStream`), synthetic devices (`DeviceFile`) and generated /proc contents (`ProcFile`);
pipes are in pipe.py. Each raises `SyscallError` for what it cannot do, with Linux's errno.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import stat
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple, TypeVar

from sandbox.abi import MAX_LFS_FILESIZE
from sandbox.errors import SyscallError, WouldBlock
from sandbox.kernel.locks import release_on_close
from sandbox.mm import PAGE_SHIFT

if TYPE_CHECKING:
    from sandbox.kernel.accounting import Budget
    from sandbox.kernel.identity import Identity
    from sandbox.kernel.inotify import Notifier
    from sandbox.kernel.procfs import ProcContent
    from sandbox.kernel.quota import DiskQuota
    from sandbox.mm.pagecache import CachedFile, PageCache

MAX_FDS = 1024  # RLIMIT_NOFILE's usual soft limit
NR_OPEN_DEFAULT = 64  # a new descriptor table's slots: BITS_PER_LONG (include/linux/fdtable.h)
FDTABLE_GROWTH_SLOTS = 128  # a grown table has a power of two times 1024 / sizeof(struct file *)
PIPE_BUF = 4096  # writes up to this size are atomic (man 7 pipe)
O_ACCMODE, O_RDONLY, O_WRONLY, O_RDWR = 0o3, 0o0, 0o1, 0o2
O_APPEND, O_NONBLOCK = 0o2000, 0o4000
O_PATH = 0o10000000  # a handle only: neither read nor written, nor mapped (open(2))
POLLIN, POLLOUT, POLLERR, POLLHUP, POLLNVAL = 0x1, 0x4, 0x8, 0x10, 0x20
POLLPRI, POLLRDNORM, POLLRDBAND, POLLWRNORM, POLLWRBAND, POLLRDHUP = 0x2, 0x40, 0x80, 0x100, 0x200, 0x2000
# d_type values (include/linux/fs_types.h / dirent.h).
DT_UNKNOWN, DT_CHR, DT_DIR, DT_REG, DT_LNK, DT_FIFO = 0, 2, 4, 8, 10, 1


class Stat(NamedTuple):
    """What fstat reports (the fields of struct stat, times in nanoseconds)."""

    dev: int = 0
    ino: int = 0
    mode: int = 0
    nlink: int = 1
    uid: int = 0
    gid: int = 0
    rdev: int = 0
    size: int = 0
    blksize: int = 4096
    blocks: int = 0
    atime_ns: int = 0
    mtime_ns: int = 0
    ctime_ns: int = 0
    host: bool = False  # the host's ids and numbers, not yet translated (identity.present)

    @classmethod
    def from_host(cls, st: os.stat_result) -> Stat:
        return cls(st.st_dev, st.st_ino, st.st_mode, st.st_nlink, st.st_uid, st.st_gid, st.st_rdev,
                   st.st_size, st.st_blksize, st.st_blocks, st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns,
                   True)


#: Host bytes one listed entry takes besides its name (the record, its int and bytes objects).
LISTING_ENTRY_COST = 160


class DirEntry(NamedTuple):
    ino: int
    type: int
    name: bytes


#: What a host call can raise for a guest's values: its own errno, or a value Python's API
#: cannot take at all (an offset past 2**63, a NUL in a path), which is EINVAL.
HOST_ERRORS = (OSError, OverflowError, ValueError)


def _oserror(error: Exception) -> SyscallError:
    if isinstance(error, OSError):
        return SyscallError(error.errno or errno.EIO, str(error))
    return SyscallError(errno.EINVAL, str(error))


class File:
    """An open file description. Subclasses override what they support."""

    name = "?"

    def __init__(self, flags: int = O_RDONLY) -> None:
        self.flags = flags
        self.refs = 0  # descriptors naming this description, in every process

    @property
    def readable(self) -> bool:
        return self.flags & O_ACCMODE in (O_RDONLY, O_RDWR) and not self.flags & O_PATH

    @property
    def writable(self) -> bool:
        return self.flags & O_ACCMODE in (O_WRONLY, O_RDWR) and not self.flags & O_PATH

    def set_status_flags(self, flags: int) -> None:
        """F_SETFL: the new file status flags (the caller keeps the unchangeable ones)."""
        self.flags = flags

    def read(self, n: int) -> bytes:
        raise SyscallError(errno.EINVAL, f"{self.name} cannot be read")

    def write(self, data: bytes) -> int:
        raise SyscallError(errno.EINVAL, f"{self.name} cannot be written")

    def pread(self, n: int, offset: int) -> bytes:
        raise SyscallError(errno.ESPIPE, f"{self.name} is not seekable")

    def pwrite(self, data: bytes, offset: int) -> int:
        raise SyscallError(errno.ESPIPE, f"{self.name} is not seekable")

    def seek(self, offset: int, whence: int) -> int:
        raise SyscallError(errno.ESPIPE, f"{self.name} is not seekable")

    def stat(self) -> Stat:
        return Stat(mode=stat.S_IFREG | 0o444)

    def entries(self) -> list[DirEntry]:
        raise SyscallError(errno.ENOTDIR, f"{self.name} is not a directory")

    def truncate(self, length: int) -> None:
        raise SyscallError(errno.EINVAL, f"{self.name} cannot be truncated")

    def sync(self) -> None:
        """Nothing to flush by default."""

    def ioctl(self, request: int, arg: bytes) -> bytes:
        raise SyscallError(errno.ENOTTY, f"{self.name} is not a terminal")

    def poll(self, events: int) -> int:
        """Ready events among `events` (regular files are always ready)."""
        return events & (POLLIN | POLLOUT)

    @property
    def pollable(self) -> bool:
        """Whether the file has a poll of its own (Linux's f_op->poll): epoll refuses those
        without one (regular files, directories) with EPERM."""
        return type(self).poll is not File.poll

    def queued_bytes(self) -> int:
        """FIONREAD: the bytes a read would find now; ENOTTY for files that cannot say."""
        raise SyscallError(errno.ENOTTY, f"{self.name}: FIONREAD")

    #: The host descriptor whose readiness is this file's (a host stream or socket): poll,
    #: select and epoll give it to the scheduler, so an idle sandbox wakes when it is ready.
    host_fd: int | None = None

    def wakeups(self) -> int | None:
        """A count of the events that changed the file's readiness (data in, room made, an
        end closed), which edge-triggered epoll reports; None if the file keeps none."""
        return None

    def close(self) -> None:
        """Called when the last descriptor referring to this file closes."""

    def attach(self) -> None:
        """One more descriptor names this file."""
        self.refs += 1

    def detach(self) -> None:
        """A descriptor naming this file went away; the last one closes it."""
        self.refs -= 1
        if self.refs == 0:
            self.close()


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
        if self._listing is not None or stat.S_ISDIR(self.stat().mode):
            if whence != os.SEEK_SET or offset < 0:
                raise SyscallError(errno.EINVAL, "directories seek only to a cookie")
            self.dir_position = offset
            return offset
        return super().seek(offset, whence)

    def entries(self) -> list[DirEntry]:
        """'.', '..', then the directory's names (and mount points), read once per open."""
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
            for name in sorted(names):
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
        if self.listings is not None:
            self.listings.release(self._listing_cost)
        if self._held is not None:
            try:
                self.quota.closed(os.fstat(self.fd))
            except OSError:
                pass
        os.close(self.fd)


#: getdents d_type of the view's node kinds (vfs.Synthetic.kind, mount points).
KIND_DTYPE = {"dir": DT_DIR, "file": DT_REG, "link": DT_LNK, "device": DT_CHR}


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


class DeviceFile(File):
    """/dev/null, /dev/zero, /dev/full, /dev/urandom and /dev/random."""

    def __init__(self, device: str, flags: int, random: Callable[[int], bytes]) -> None:
        super().__init__(flags)
        self.device = device
        self.name = f"/dev/{device}"
        self._random = random
        #: Whether a write never reads its buffer (drivers/char/mem.c: write_null, write_zero
        #: and write_full look only at the count): write() then calls `discard`, not `write`.
        self.ignores_data = device in ("null", "zero", "full")

    def discard(self, n: int) -> int:
        """A write of `n` bytes that reads none of them (`ignores_data`): /dev/full's ENOSPC,
        or all `n` taken."""
        if self.device == "full":
            raise SyscallError(errno.ENOSPC, "/dev/full")
        return n

    def read(self, n: int) -> bytes:
        device = self.device
        if device == "zero" or device == "full":  # (zero first: the syscall path's benchmark)
            return bytes(n)
        if device == "null":
            return b""
        if device in ("urandom", "random"):
            return self._random(n)
        return bytes(n)

    def write(self, data: bytes) -> int:
        if self.device == "full":
            raise SyscallError(errno.ENOSPC, "/dev/full")
        return len(data)

    def pread(self, n: int, offset: int) -> bytes:
        return self.read(n)

    def pwrite(self, data: bytes, offset: int) -> int:
        return self.write(data)

    def seek(self, offset: int, whence: int) -> int:
        return 0

    def stat(self) -> Stat:
        rdev = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9),
                "tty": (5, 0)}[self.device]  # Documentation/admin-guide/devices.txt
        return Stat(dev=5, ino=1000 + rdev[1], mode=stat.S_IFCHR | 0o666, rdev=os.makedev(*rdev), blksize=4096)


class ProcFile(File):
    """A /proc file read through its `content` (see procfs): a snapshot taken at open and
    charged to the sandbox's /proc budget while a descriptor names it (ENOMEM past it), or
    bytes each read takes from a process's memory (cmdline, environ), as Linux's fs/proc."""

    def __init__(self, name: str, content: ProcContent) -> None:
        super().__init__(O_RDONLY)
        self.name = name
        self.content = content
        self.offset = 0

    def attach(self) -> None:
        """The first descriptor holds the content (ENOMEM past the /proc budget)."""
        if self.refs == 0:
            self.content.hold()
        super().attach()

    def close(self) -> None:
        self.content.drop()

    def read(self, n: int) -> bytes:
        data = self.content.read(self.offset, n)
        self.offset += len(data)
        return data

    def pread(self, n: int, offset: int) -> bytes:
        return self.content.read(offset, n)

    def seek(self, offset: int, whence: int) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.offset, os.SEEK_END: self.content.size}.get(whence)
        if base is None or not 0 <= base + offset <= MAX_LFS_FILESIZE:  # loff_t, as vfs_setpos
            raise SyscallError(errno.EINVAL, "bad seek")
        self.offset = base + offset
        return self.offset

    def stat(self) -> Stat:
        return Stat(dev=4, ino=4026531840 + len(self.name), mode=stat.S_IFREG | 0o444, size=0, blksize=1024)


class SyntheticDir(File):
    """A synthetic directory (/proc, /proc/self, /dev, one above a mount): listing only."""

    def __init__(self, guest: str, names: list[tuple[str, str]]) -> None:
        super().__init__(O_RDONLY)
        self.name = guest
        self.guest = guest
        self.dir_position = 0
        self._names = names

    def entries(self) -> list[DirEntry]:
        return [DirEntry(1, DT_DIR, b"."), DirEntry(1, DT_DIR, b"..")] + [
            DirEntry(2 + i, KIND_DTYPE[kind], os.fsencode(name)) for i, (name, kind) in enumerate(self._names)]

    def seek(self, offset: int, whence: int) -> int:
        """A listing position, as dcache_dir_lseek: SEEK_SET or SEEK_CUR to a position >= 0,
        else EINVAL (fs/libfs.c)."""
        if whence == os.SEEK_CUR:
            offset += self.dir_position
        elif whence != os.SEEK_SET:
            raise SyscallError(errno.EINVAL, f"whence {whence} on a directory")
        if not 0 <= offset <= MAX_LFS_FILESIZE:
            raise SyscallError(errno.EINVAL, f"directory position {offset}")
        self.dir_position = offset
        return offset

    def stat(self) -> Stat:
        return Stat(dev=4, ino=1, mode=stat.S_IFDIR | 0o555, nlink=2)

    def read(self, n: int) -> bytes:
        raise SyscallError(errno.EISDIR, self.name)


FileT = TypeVar("FileT", bound="File")


class FdEntry:
    """One descriptor: the open file it names and its FD_CLOEXEC flag."""

    __slots__ = ("file", "cloexec")

    def __init__(self, file: File, cloexec: bool = False) -> None:
        self.file = file
        self.cloexec = cloexec


def fdtable_size(fd: int) -> int:
    """The size Linux gives a descriptor table that must hold `fd` (fs/file.c
    alloc_fdtable): NR_OPEN_DEFAULT slots at first, then a power of two times 128."""
    if fd < NR_OPEN_DEFAULT:
        return NR_OPEN_DEFAULT
    blocks = fd // FDTABLE_GROWTH_SLOTS + 1
    return (1 << (blocks - 1).bit_length()) * FDTABLE_GROWTH_SLOTS  # roundup_pow_of_two(blocks)


class FdTable:
    """A process's descriptors: small integers naming open files, each with FD_CLOEXEC.

    `max_fds` is the size Linux's table would have (it only grows, and a fork's copy is
    sized by the highest descriptor open): select looks no further (core_sys_select)."""

    def __init__(self, limit: int = MAX_FDS) -> None:
        self._fds: dict[int, FdEntry] = {}
        self.limit = limit
        self.max_fds = NR_OPEN_DEFAULT

    @classmethod
    def with_stdio(cls) -> FdTable:
        """fds 0, 1, 2 bound to the host's standard streams."""
        table = cls()
        for fd in range(3):
            table.replace(fd, HostStream(fd))
        return table

    def copy(self) -> FdTable:
        """fork: the same open files under the same numbers (descriptions are shared)."""
        table = FdTable(self.limit)
        for fd, entry in self._fds.items():
            table.replace(fd, entry.file, entry.cloexec)
        # dup_fd sizes the copy by count_open_files: whole 64-bit words of open descriptors
        open_words = max(self._fds, default=0) // NR_OPEN_DEFAULT + 1
        table.max_fds = fdtable_size(open_words * NR_OPEN_DEFAULT - 1)
        return table

    def __contains__(self, fd: int) -> bool:
        return fd in self._fds

    def get(self, fd: int) -> File:
        """The file behind `fd`, or EBADF."""
        entry = self._fds.get(fd)
        if entry is None:
            raise SyscallError(errno.EBADF, f"fd {fd} is not open")
        return entry.file

    def get_as(self, fd: int, kind: type[FileT], error: int, what: str) -> FileT:
        """The file behind `fd` if it is a `kind`: EBADF if `fd` is not open, `error` (EINVAL
        for an epoll or inotify call, ENOTSOCK for a socket call...) if it is something else."""
        file = self.get(fd)
        if not isinstance(file, kind):
            raise SyscallError(error, f"fd {fd} is not {what}")
        return file

    def entry(self, fd: int) -> FdEntry:
        self.get(fd)
        return self._fds[fd]

    def install(self, file: File, lowest: int = 0, cloexec: bool = False) -> int:
        """Bind `file` to the lowest free descriptor >= `lowest`; EMFILE if none."""
        fd = lowest
        while fd in self._fds:
            fd += 1
        if fd >= self.limit:
            raise SyscallError(errno.EMFILE, "too many open files")
        file.attach()
        self._fds[fd] = FdEntry(file, cloexec)
        self._grow(fd)
        return fd

    def _grow(self, fd: int) -> None:
        """expand_files: the table grows to hold `fd` and never shrinks."""
        if fd >= self.max_fds:
            self.max_fds = fdtable_size(fd)

    def replace(self, fd: int, file: File, cloexec: bool = False) -> None:
        """dup2/dup3: make `fd` name `file`, closing what it named before."""
        if not 0 <= fd < self.limit:
            raise SyscallError(errno.EBADF, f"fd {fd} out of range")
        file.attach()
        old = self._fds.get(fd)
        self._fds[fd] = FdEntry(file, cloexec)
        self._grow(fd)
        if old is not None:
            self._release(old.file)

    def close(self, fd: int) -> None:
        """Release `fd`; EBADF if it was not open."""
        entry = self._fds.pop(fd, None)
        if entry is None:
            raise SyscallError(errno.EBADF, f"fd {fd} is not open")
        self._release(entry.file)

    def _release(self, file: File) -> None:
        """One descriptor of `file` is gone: the locks its closing drops go first (the
        process's POSIX locks on the inode; with the last reference, the description's OFD
        locks and flocks), then the description loses the reference."""
        release_on_close(self, file)
        file.detach()

    def close_range(self, first: int, last: int, cloexec: bool) -> None:
        """close_range(2): close every open descriptor in [first, last], or with `cloexec`
        mark each FD_CLOEXEC instead."""
        for fd in sorted(fd for fd in self._fds if first <= fd <= last):
            if cloexec:
                self._fds[fd].cloexec = True
            else:
                self.close(fd)

    def close_on_exec(self) -> None:
        """execve: close every descriptor marked FD_CLOEXEC."""
        for fd in [fd for fd, entry in self._fds.items() if entry.cloexec]:
            self.close(fd)

    def close_all(self) -> None:
        """Close every descriptor (process exit)."""
        for fd in list(self._fds):
            self.close(fd)

    def __len__(self) -> int:
        return len(self._fds)

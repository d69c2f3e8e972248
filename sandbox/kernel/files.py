"""Open files and descriptor tables.

A `File` is an open file description (shared by dup'd descriptors, with one offset); an
`FdTable` maps small integers to files plus a close-on-exec flag. Kinds of file: synthetic
devices (`DeviceFile`), generated /proc contents (`ProcFile`) and directories
(`SyntheticDir`) here; host files and directories reached through the guest's view, and the
host's standard streams, in hostfiles.py; pipes in pipe.py. Each raises `SyscallError` for
what it cannot do, with Linux's errno.
"""

from __future__ import annotations

import errno
import os
import stat
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple, TypeVar

from sandbox.abi import MAX_LFS_FILESIZE
from sandbox.errors import SyscallError
from sandbox.kernel.locks import release_on_close

if TYPE_CHECKING:
    from sandbox.kernel.procfs import ProcContent

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


class DirEntry(NamedTuple):
    ino: int
    type: int
    name: bytes


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


#: getdents d_type of the view's node kinds (vfs_nodes.Synthetic.kind, mount points).
KIND_DTYPE = {"dir": DT_DIR, "file": DT_REG, "link": DT_LNK, "device": DT_CHR}


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


def synthetic_ino(guest: str) -> int:
    """The inode number of a node the sandbox makes up (/proc, /dev, directories above
    mounts): distinct and stable per guest path, and the same for stat(2) of the path and
    fstat(2) of a descriptor opened on it (cp checks the two agree)."""
    return zlib.crc32(guest.encode()) + 2


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
        return Stat(dev=4, ino=synthetic_ino(self.name), mode=stat.S_IFREG | 0o444, size=0, blksize=1024)


class SyntheticDir(File):
    """A synthetic directory (/proc, /proc/self, /dev, one above a mount): listing only."""

    def __init__(self, guest: str, lister: Callable[[], list[tuple[str, str]]]) -> None:
        """`lister` gives the (name, kind) pairs: asked at the first getdents and after a
        rewind, as Linux lists /proc/PID/fd when it is read (the descriptor listing it, and
        any opened since, are in it)."""
        super().__init__(O_RDONLY)
        self.name = guest
        self.guest = guest
        self.dir_position = 0
        self._lister = lister
        self._listing: list[DirEntry] | None = None

    def entries(self) -> list[DirEntry]:
        if self._listing is None:
            self._listing = [DirEntry(1, DT_DIR, b"."), DirEntry(1, DT_DIR, b"..")] + [
                DirEntry(2 + i, KIND_DTYPE[kind], os.fsencode(name)) for i, (name, kind) in enumerate(self._lister())]
        return self._listing

    def seek(self, offset: int, whence: int) -> int:
        """A listing position, as dcache_dir_lseek: SEEK_SET or SEEK_CUR to a position >= 0,
        else EINVAL (fs/libfs.c)."""
        if whence == os.SEEK_CUR:
            offset += self.dir_position
        elif whence != os.SEEK_SET:
            raise SyscallError(errno.EINVAL, f"whence {whence} on a directory")
        if not 0 <= offset <= MAX_LFS_FILESIZE:
            raise SyscallError(errno.EINVAL, f"directory position {offset}")
        if offset == 0:
            self._listing = None  # rewinddir: listed afresh
        self.dir_position = offset
        return offset

    def stat(self) -> Stat:
        return Stat(dev=4, ino=synthetic_ino(self.guest), mode=stat.S_IFDIR | 0o555, nlink=2)

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
        from sandbox.kernel.hostfiles import HostStream  # (it imports this module)

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

    def open_files(self) -> list[File]:
        """The open files the table names (a file under several numbers, once per number)."""
        return [entry.file for entry in self._fds.values()]

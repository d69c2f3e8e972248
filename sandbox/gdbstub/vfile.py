"""gdb's Host I/O packets, `vFile:...`: the files gdb reads through the target (GDB manual,
"Host I/O Packets"; gdbserver/hostio.cc does the same on a real host).

With `set sysroot target:` (gdb's default with a remote target) gdb reads the program and
its shared libraries through these packets, so it sees the files the guest sees: every
path is resolved by the sandbox's own VFS, as the debugged process would resolve it (its
mounts, its chroot, /proc as the sandbox makes it up, its permissions), and never by the
host. What is served, and what is not:

- open is read-only: any flag gdb could write with is refused (EROFS), as are pwrite and
  unlink; a FIFO or device is refused too (ENODEV: opening one may block or act);
- a descriptor is the stub's own, never one of the guest's; at most MAX_OPEN at once
  (EMFILE past that), each also charged to the sandbox's host-file budget, and all closed
  when gdb goes;
- one pread answers at most what fits in a packet with every byte escaped;
- `vFile:setfs:PID` picks whose view (credentials, root) later paths mean: 0 is the
  process gdb looks at; a process gdb does not debug is refused (EINVAL: gdb's File-I/O
  errno list has no ESRCH).

Replies are `F<result>[;<attachment>]`, or `F-1,<errno>` with gdb's File-I/O errno
numbers ("Errno Values"), which differ from Linux's past EROFS.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sandbox.abi import MAX_LFS_FILESIZE
from sandbox.errors import SyscallError
from sandbox.kernel.files import File
from sandbox.kernel.hostfiles import HOST_ERRORS
from sandbox.kernel.sys_fs import open_file
from sandbox.kernel.vfs_walk import PATH_MAX

if TYPE_CHECKING:
    from sandbox.gdbstub.stub import GdbStub
    from sandbox.kernel.task import Task

#: Files gdb may hold open through the stub at once (gdb itself keeps a handful).
MAX_OPEN = 32
#: gdb's File-I/O open flags ("Open Flags"): anything but O_RDONLY (0) would write.
FILEIO_O_RDONLY = 0
#: gdb's File-I/O errno values ("Errno Values"): Linux's numbers up to EROFS, but these.
FILEIO_ENAMETOOLONG, FILEIO_EUNKNOWN = 91, 9999
_SAME_ERRNOS = frozenset((errno.EPERM, errno.ENOENT, errno.EINTR, errno.EBADF, errno.EACCES, errno.EFAULT,
                          errno.EBUSY, errno.EEXIST, errno.ENODEV, errno.ENOTDIR, errno.EISDIR, errno.EINVAL,
                          errno.ENFILE, errno.EMFILE, errno.EFBIG, errno.ENOSPC, errno.ESPIPE, errno.EROFS))
#: gdb's struct stat ("struct stat"), big-endian: dev, ino, mode, nlink, uid, gid, rdev as
#: 32 bits; size, blksize, blocks as 64; atime, mtime, ctime as 32.
FILEIO_STAT = struct.Struct(">IIIIIIIQQQIII")
_U32 = 0xFFFFFFFF
#: The mode bits gdb's File-I/O knows: S_IFREG, S_IFDIR and the permissions.
FILEIO_MODE_MASK = stat.S_IFREG | stat.S_IFDIR | 0o777


class HostIOError(Exception):
    """A vFile request refused with `errno` (Linux's number)."""

    def __init__(self, number: int) -> None:
        super().__init__(number)
        self.errno = number


def fileio_errno(number: int) -> int:
    """Linux errno `number` as gdb's File-I/O numbers it."""
    if number in _SAME_ERRNOS:
        return number
    return FILEIO_ENAMETOOLONG if number == errno.ENAMETOOLONG else FILEIO_EUNKNOWN


def _fields(args: bytes, count: int) -> list[bytes]:
    """`count` comma-separated fields (EINVAL if fewer or more)."""
    fields = args.split(b",")
    if len(fields) != count:
        raise HostIOError(errno.EINVAL)
    return fields


def _number(text: bytes, limit: int = MAX_LFS_FILESIZE) -> int:
    """A hex field in [0, limit] (EINVAL otherwise: gdb never sends a negative count)."""
    try:
        value = int(text, 16)
    except ValueError:
        raise HostIOError(errno.EINVAL) from None
    if not 0 <= value <= limit:
        raise HostIOError(errno.EINVAL)
    return value


def _path(text: bytes) -> bytes:
    """A hex-encoded file name (ENAMETOOLONG past PATH_MAX, EINVAL if not hex or with a NUL)."""
    if len(text) >= 2 * PATH_MAX:
        raise HostIOError(errno.ENAMETOOLONG)
    try:
        path = bytes.fromhex(text.decode("ascii"))
    except ValueError:
        raise HostIOError(errno.EINVAL) from None
    if b"\0" in path:
        raise HostIOError(errno.EINVAL)
    return path


class HostIO:
    """The files one gdb session opened through the stub, and the vFile packets' handlers."""

    def __init__(self, stub: GdbStub, max_read: int) -> None:
        self.stub = stub
        self.max_read = max_read  # bytes one pread may answer (escaped, they fit a packet)
        self.files: dict[int, File] = {}
        self.fs_pid = 0  # vFile:setfs: whose view paths mean (0: the process gdb looks at)

    def handle(self, args: bytes) -> bytes:
        """`vFile:OPERATION:ARGS`'s reply (empty for an operation gdb may do without)."""
        operation, _, rest = args.partition(b":")
        handler = _OPERATIONS.get(operation)
        if handler is None:
            return b""
        try:
            return handler(self, rest)
        except HostIOError as error:
            return b"F-1,%x" % fileio_errno(error.errno)
        except SyscallError as error:
            return b"F-1,%x" % fileio_errno(error.errno)

    def close_all(self) -> None:
        """gdb went: every file it left open closes."""
        files, self.files, self.fs_pid = self.files, {}, 0
        for file in files.values():
            file.detach()

    # -- the operations ---------------------------------------------------------------

    def _viewer(self) -> Task:
        """The task whose view of the filesystem paths are resolved in (see setfs)."""
        tasks = self.stub.known_tasks()
        if self.fs_pid:
            task = next((t for t in tasks if t.pid == self.fs_pid), None)
        else:
            task = self.stub.thread if self.stub.thread in tasks else next(iter(tasks), None)
        if task is None or task.space is None:
            raise HostIOError(errno.EINVAL)  # the process went: nobody's view to read in
        return task

    @contextmanager
    def _viewing(self) -> Iterator[Task]:
        """The viewer (`_viewer`) is, for the walk, the kernel's current task: its root
        (chroot) confines the path, /proc/self is it. The machine is stopped while gdb is
        served, so nothing else runs meanwhile; the current task is put back after."""
        task = self._viewer()
        kernel = task.kernel
        previous, kernel.current = kernel.current, task
        try:
            yield task
        finally:
            kernel.current = previous

    def setfs(self, args: bytes) -> bytes:
        """vFile:setfs:PID."""
        pid = _number(args)
        if pid and pid not in {t.pid for t in self.stub.known_tasks()}:
            raise HostIOError(errno.EINVAL)
        self.fs_pid = pid
        return b"F0"

    def open(self, args: bytes) -> bytes:
        """vFile:open:PATHNAME,FLAGS,MODE: read-only, regular files and /proc's."""
        name, flags, _mode = _fields(args, 3)
        path = _path(name)
        if _number(flags, _U32) != FILEIO_O_RDONLY:
            raise HostIOError(errno.EROFS)
        if len(self.files) >= MAX_OPEN:
            raise HostIOError(errno.EMFILE)
        with self._viewing() as task:
            _require_plain(task, path)
            file = open_file(task, path, "/", os.O_RDONLY, 0)
        file.attach()
        number = min(set(range(MAX_OPEN)) - self.files.keys())
        self.files[number] = file
        return b"F%x" % number

    def _file(self, text: bytes) -> tuple[int, File]:
        number = _number(text)
        file = self.files.get(number)
        if file is None:
            raise HostIOError(errno.EBADF)
        return number, file

    def close(self, args: bytes) -> bytes:
        """vFile:close:FD."""
        number, file = self._file(args)
        del self.files[number]
        file.detach()
        return b"F0"

    def pread(self, args: bytes) -> bytes:
        """vFile:pread:FD,COUNT,OFFSET: at most `max_read` bytes, binary."""
        fd, count, offset = _fields(args, 3)
        _, file = self._file(fd)
        n = min(_number(count), self.max_read)
        data = _host(file.pread, n, _number(offset))
        return b"F%x;" % len(data) + data

    def fstat(self, args: bytes) -> bytes:
        """vFile:fstat:FD: gdb's struct stat, binary."""
        _, file = self._file(args)
        st = self.stub.kernel.identity.present(_host(file.stat))
        packed = FILEIO_STAT.pack(st.dev & _U32, st.ino & _U32, st.mode & FILEIO_MODE_MASK, st.nlink & _U32,
                                  st.uid & _U32, st.gid & _U32, st.rdev & _U32, max(st.size, 0), st.blksize,
                                  max(st.blocks, 0), (st.atime_ns // 10**9) & _U32,
                                  (st.mtime_ns // 10**9) & _U32, (st.ctime_ns // 10**9) & _U32)
        return b"F%x;" % len(packed) + packed

    def readlink(self, args: bytes) -> bytes:
        """vFile:readlink:PATHNAME: the link's target, as readlink(2) in the guest."""
        with self._viewing() as task:
            node = task.kernel.fs.resolve(_path(args), "/", follow=False)
        if node.synthetic is not None:
            if node.synthetic.kind != "link":
                raise HostIOError(errno.EINVAL)
            target = os.fsencode(node.synthetic.name)
        elif not node.on_host or node.name == ".":
            raise HostIOError(errno.EINVAL)
        else:
            target = os.fsencode(_host(os.readlink, node.name, dir_fd=node.dirfd))
        target = target[:PATH_MAX]
        return b"F%x;" % len(target) + target

    def refuse(self, _args: bytes) -> bytes:
        """vFile:pwrite and vFile:unlink: the view is read-only."""
        raise HostIOError(errno.EROFS)


def _host(call, *args, **kwargs):  # noqa: ANN001, ANN202 - any host call
    """A host call whose error is the reply's errno."""
    try:
        return call(*args, **kwargs)
    except HOST_ERRORS as error:
        raise HostIOError(getattr(error, "errno", None) or errno.EINVAL) from None


def _require_plain(task: Task, path: bytes) -> None:
    """Refuse, before opening, what opening could block on or act upon (a FIFO, a device,
    a socket): regular files, directories and /proc's made-up files only. The guest is
    stopped while gdb is served, so what is checked here is what is opened."""
    fs = task.kernel.fs
    node = fs.resolve(path, "/", follow=True)
    if node.synthetic is not None:
        if node.synthetic.kind not in ("file", "dir"):
            raise HostIOError(errno.ENODEV)
        return
    st = fs.lstat(node) if node.on_host else None
    if st is not None and not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        raise HostIOError(errno.ENODEV)


_OPERATIONS = {
    b"setfs": HostIO.setfs, b"open": HostIO.open, b"close": HostIO.close, b"pread": HostIO.pread,
    b"fstat": HostIO.fstat, b"readlink": HostIO.readlink, b"pwrite": HostIO.refuse, b"unlink": HostIO.refuse,
}

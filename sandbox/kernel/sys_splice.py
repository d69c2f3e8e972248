"""Transfers between descriptors and the smaller file calls: splice, tee, vmsplice,
copy_file_range, preadv/pwritev and their *2 forms, fallocate, fadvise64, sync, syncfs,
close_range (man 2 of each).

Every transfer that may sleep part-way (a full or empty pipe) decides how much it moves
before it takes anything: it reads no more than the output takes now (`room_for`), so a
read is never followed by a write that sleeps holding the bytes (the sendfile defect of
issue 15: the input's offset advanced, the retry read on from there and the bytes were lost).
sendfile itself is sys_io.py's; what it refuses by kind of file, as Linux, is `check_sendfile`'s.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat

from sandbox.abi import MAX_LFS_FILESIZE
from sandbox.errors import SyscallError, WouldBlock
from sandbox.kernel import inotify
from sandbox.kernel.checked import LOFF, verify_area
from sandbox.kernel.files import O_APPEND, O_NONBLOCK, File
from sandbox.kernel.hostfiles import HostFile, HostStream
from sandbox.kernel.pipe import PipeEnd
from sandbox.kernel.sys_io import MAX_TRANSFER, gather, iovecs, room_for, scatter, write_now
from sandbox.kernel.syscalls import syscall, to_int32, to_signed
from sandbox.kernel.task import Task
from sandbox.mm.uaccess import copy_in, copy_out

SPLICE_F_MOVE, SPLICE_F_NONBLOCK, SPLICE_F_MORE, SPLICE_F_GIFT = 1, 2, 4, 8  # include/linux/splice.h
SPLICE_FLAGS = SPLICE_F_MOVE | SPLICE_F_NONBLOCK | SPLICE_F_MORE | SPLICE_F_GIFT
RWF_HIPRI, RWF_DSYNC, RWF_SYNC, RWF_NOWAIT, RWF_APPEND = 0x1, 0x2, 0x4, 0x8, 0x10  # include/uapi/linux/fs.h
FALLOC_FL_KEEP_SIZE = 0x1  # include/uapi/linux/falloc.h
POSIX_FADV_NOREUSE = 5  # the largest advice (include/uapi/linux/fadvise.h)
CLOSE_RANGE_UNSHARE, CLOSE_RANGE_CLOEXEC = 0x2, 0x4  # include/uapi/linux/close_range.h
_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)


# -- sendfile's kinds of file (fs/read_write.c do_sendfile, fs/splice.c) ------------------------


def check_sendfile(source: File, target: File, offset: int, count: int) -> None:
    """What sendfile refuses before it moves a byte, in Linux's order (Linux 6.x, checked
    against it by tests/terminal/sendfile_kinds.c): an offset for an input that has no pread
    (a pipe, socket, terminal, anon inode: ESPIPE, do_sendfile's FMODE_PREAD); into a
    non-pipe, an O_APPEND output or an input that cannot seek (a pipe, socket, terminal:
    EINVAL, splice_direct_to_actor's FMODE_LSEEK, "we don't want to randomly drop data");
    then, unless `count` is 0, an input with no splice_read (a pipe, directory, anon inode:
    EINVAL, do_splice_read)."""
    kind = stat.S_IFMT(source.stat().mode)
    streaming = kind in (stat.S_IFIFO, stat.S_IFSOCK) or _is_terminal(source)
    if offset and (streaming or kind == 0):
        raise SyscallError(errno.ESPIPE, f"sendfile at an offset from {source.name}, which has no pread")
    if not stat.S_ISFIFO(target.stat().mode):
        if target.flags & O_APPEND:
            raise SyscallError(errno.EINVAL, f"sendfile into {target.name}, opened O_APPEND")
        if streaming:
            raise SyscallError(errno.EINVAL, f"sendfile from {source.name}, which cannot seek, into a non-pipe")
    if count and kind in (0, stat.S_IFIFO, stat.S_IFDIR):
        raise SyscallError(errno.EINVAL, f"sendfile from {source.name}, which has no splice_read")


def _is_terminal(file: File) -> bool:
    return isinstance(file, HostStream) and file.is_terminal


def _file(proc: Task, fd: int, writing: bool) -> File:
    """The file behind `fd`, open for reading or writing (EBADF otherwise)."""
    file = proc.files.get(to_int32(fd))
    if not (file.writable if writing else file.readable):
        raise SyscallError(errno.EBADF, f"fd {to_int32(fd)} is not open for {'writing' if writing else 'reading'}")
    return file


def _nonblocking(call, nonblock: bool):
    """`call()`, with a sleep turned into EAGAIN when `nonblock` (SPLICE_F_NONBLOCK,
    RWF_NOWAIT)."""
    try:
        return call()
    except WouldBlock:
        if nonblock:
            raise SyscallError(errno.EAGAIN, "the transfer would sleep") from None
        raise


# -- splice, tee, vmsplice ------------------------------------------------------------------


def _read_offset(proc: Task, addr: int, file: File) -> int | None:
    """The position at `addr` (NULL: None, the file's own offset); ESPIPE for a pipe."""
    if not addr:
        return None
    if isinstance(file, PipeEnd):
        raise SyscallError(errno.ESPIPE, "an offset for a pipe")
    position = LOFF.unpack(copy_in(proc.space, addr, LOFF.size))[0]
    if position < 0:
        raise SyscallError(errno.EINVAL, f"offset {position}")
    return position


@syscall("splice", "fd_in off_in fd_out off_out len flags")
def sys_splice(proc: Task, fd_in: int, off_in: int, fd_out: int, off_out: int, length: int, flags: int) -> int:
    """Move up to `len` bytes where one side is a pipe: read no more than the output
    takes now, so nothing read is lost when the output is full; a pipe's bytes that a file
    does not take go back into the pipe."""
    source, target = _file(proc, fd_in, False), _file(proc, fd_out, True)
    flags = to_int32(flags)
    if flags & ~SPLICE_FLAGS or not (isinstance(source, PipeEnd) or isinstance(target, PipeEnd)):
        raise SyscallError(errno.EINVAL, "splice needs a pipe on one side")
    if isinstance(source, PipeEnd) and isinstance(target, PipeEnd) and source.pipe is target.pipe:
        raise SyscallError(errno.EINVAL, "splice of a pipe into itself")
    if target.flags & O_APPEND:
        raise SyscallError(errno.EINVAL, "splice into an O_APPEND file")
    read_at, write_at = _read_offset(proc, off_in, source), _read_offset(proc, off_out, target)
    if length == 0:
        return 0
    nonblock = bool(flags & SPLICE_F_NONBLOCK)
    count = min(length, MAX_TRANSFER, _nonblocking(lambda: room_for(target), nonblock))
    data = _nonblocking(lambda: source.read(count) if read_at is None else source.pread(count, read_at), nonblock)
    written = 0
    try:
        written = write_now(target, data) if write_at is None else target.pwrite(data, write_at)
    finally:
        _give_back(source, data[written:], read_at is None)
    for addr, position in ((off_in, read_at), (off_out, write_at)):
        if position is not None:
            copy_out(proc.space, addr, LOFF.pack(position + written))
    return written


def _give_back(source: File, rest: bytes, moved: bool) -> None:
    """Bytes read but not written return to where they came from: a pipe's head, or the
    input's offset (if the read moved it)."""
    if not rest:
        return
    if isinstance(source, PipeEnd):
        source.pipe.unread(rest)
    elif moved:
        source.seek(-len(rest), os.SEEK_CUR)


@syscall("tee", "fd_in fd_out len flags")
def sys_tee(proc: Task, fd_in: int, fd_out: int, length: int, flags: int) -> int:
    """Copy up to `len` bytes from one pipe to another without consuming them."""
    source, target = _file(proc, fd_in, False), _file(proc, fd_out, True)
    flags = to_int32(flags)
    if flags & ~SPLICE_FLAGS or not (isinstance(source, PipeEnd) and isinstance(target, PipeEnd)) \
            or source.pipe is target.pipe:
        raise SyscallError(errno.EINVAL, "tee needs two different pipes")
    if length == 0:
        return 0
    nonblock = bool(flags & SPLICE_F_NONBLOCK)
    count = min(length, MAX_TRANSFER, _nonblocking(lambda: room_for(target), nonblock))
    if not source.pipe.data:
        if source.pipe.writers == 0:
            return 0
        if nonblock or source.flags & O_NONBLOCK:
            raise SyscallError(errno.EAGAIN, "empty pipe")
        raise WouldBlock("tee: empty pipe")
    return write_now(target, bytes(source.pipe.data[:count]))


@syscall("vmsplice", "fd iov nr_segs flags")
def sys_vmsplice(proc: Task, fd: int, iov: int, nr_segs: int, flags: int) -> int:
    """Guest memory into a pipe (as writev), or a pipe's bytes into guest memory (as
    readv): pages are copied, never gifted (SPLICE_F_GIFT is a hint). EBADF for anything
    but a pipe, as Linux."""
    file = proc.files.get(to_int32(fd))
    flags = to_int32(flags)
    if not isinstance(file, PipeEnd):
        raise SyscallError(errno.EBADF, "vmsplice needs a pipe")
    if flags & ~SPLICE_FLAGS:
        raise SyscallError(errno.EINVAL, f"vmsplice flags {flags:#x}")
    nonblock = bool(flags & SPLICE_F_NONBLOCK)
    if file.writable:
        data = gather(proc, iov, nr_segs)
        return _nonblocking(lambda: file.write(data), nonblock) if data else 0
    vectors = iovecs(proc, iov, nr_segs)
    total = sum(n for _, n in vectors)
    return scatter(proc, vectors, _nonblocking(lambda: file.read(total), nonblock)) if total else 0


# -- copy_file_range ------------------------------------------------------------------------


@syscall("copy_file_range", "fd_in off_in fd_out off_out len flags")
def sys_copy_file_range(proc: Task, fd_in: int, off_in: int, fd_out: int, off_out: int, length: int,
                        flags: int) -> int:
    """Copy up to `len` bytes between regular files, through the sandbox's own reads and
    writes (so the disk quota and the page cache see them)."""
    source, target = proc.files.get(to_int32(fd_in)), proc.files.get(to_int32(fd_out))
    if to_int32(flags):
        raise SyscallError(errno.EINVAL, f"copy_file_range flags {to_int32(flags):#x}")
    for file in (source, target):  # the types first, then the modes (generic_file_rw_checks)
        kind = stat.S_IFMT(file.stat().mode)
        if kind != stat.S_IFREG:
            error = errno.EISDIR if kind == stat.S_IFDIR else errno.EINVAL
            raise SyscallError(error, f"{file.name} is not a regular file")
    _file(proc, fd_in, False), _file(proc, fd_out, True)
    if target.flags & O_APPEND:
        raise SyscallError(errno.EBADF, "copy_file_range into an O_APPEND file")
    read_at = _read_offset(proc, off_in, source)
    write_at = _read_offset(proc, off_out, target)
    start = source.seek(0, os.SEEK_CUR) if read_at is None else read_at
    end = target.seek(0, os.SEEK_CUR) if write_at is None else write_at
    verify_area(start, length)
    verify_area(end, length)
    if source.stat()[:2] == target.stat()[:2] and start < end + length and end < start + length:
        raise SyscallError(errno.EINVAL, "overlapping ranges of one file")
    data = source.pread(min(length, MAX_TRANSFER), start)
    written = target.pwrite(data, end) if data else 0
    _advance(proc, source, off_in, start, written)
    _advance(proc, target, off_out, end, written)
    return written


def _advance(proc: Task, file: File, addr: int, position: int, n: int) -> None:
    """Past the bytes moved: *addr if given, else the file's own offset."""
    if addr:
        copy_out(proc.space, addr, LOFF.pack(position + n))
    else:
        file.seek(position + n, os.SEEK_SET)


# -- preadv, pwritev and their *2 forms -----------------------------------------------------


def _vector_read(proc: Task, fd: int, iov: int, iovcnt: int, position: int | None, nowait: bool) -> int:
    file = _file(proc, fd, False)
    vectors = iovecs(proc, iov, iovcnt)
    if position is not None:
        verify_area(position, 0)
    total = sum(n for _, n in vectors)
    if not total:
        return 0
    data = _nonblocking(lambda: file.read(total) if position is None else file.pread(total, position), nowait)
    return scatter(proc, vectors, data)


def _vector_write(proc: Task, fd: int, iov: int, iovcnt: int, position: int | None, flags: int) -> int:
    file = _file(proc, fd, True)
    data = gather(proc, iov, iovcnt)
    if flags & RWF_APPEND and position is not None:
        position = file.stat().size
    if position is not None:
        verify_area(position, len(data))
    if not data:
        return 0
    nowait = bool(flags & RWF_NOWAIT)
    written = _nonblocking(lambda: file.write(data) if position is None else file.pwrite(data, position), nowait)
    if flags & (RWF_DSYNC | RWF_SYNC):
        file.sync()
    return written


@syscall("preadv", "fd iov iovcnt pos_l pos_h")
def sys_preadv(proc: Task, fd: int, iov: int, iovcnt: int, pos_l: int, pos_h: int) -> int:
    """readv at a position (x86-64 passes it whole in pos_l)."""
    return _vector_read(proc, fd, iov, iovcnt, _position(pos_l), False)


@syscall("pwritev", "fd iov iovcnt pos_l pos_h")
def sys_pwritev(proc: Task, fd: int, iov: int, iovcnt: int, pos_l: int, pos_h: int) -> int:
    return _vector_write(proc, fd, iov, iovcnt, _position(pos_l), 0)


def _position(pos: int) -> int:
    position = to_signed(pos)
    if position < 0:
        raise SyscallError(errno.EINVAL, f"position {position}")
    return position


def _rwf(flags: int, supported: int) -> int:
    """The RWF_* flags of a *v2 call: EOPNOTSUPP for one not known or not meant for it."""
    flags = to_int32(flags)
    if flags & ~supported:
        raise SyscallError(errno.EOPNOTSUPP, f"RWF flags {flags:#x}")
    return flags


@syscall("preadv2", "fd iov iovcnt pos_l pos_h flags")
def sys_preadv2(proc: Task, fd: int, iov: int, iovcnt: int, pos_l: int, pos_h: int, flags: int) -> int:
    """preadv, or readv at the file's offset for position -1; RWF_NOWAIT makes a read that
    would sleep fail with EAGAIN."""
    flags = _rwf(flags, RWF_HIPRI | RWF_DSYNC | RWF_SYNC | RWF_NOWAIT | RWF_APPEND)
    position = None if to_signed(pos_l) == -1 else _position(pos_l)
    return _vector_read(proc, fd, iov, iovcnt, position, bool(flags & RWF_NOWAIT))


@syscall("pwritev2", "fd iov iovcnt pos_l pos_h flags")
def sys_pwritev2(proc: Task, fd: int, iov: int, iovcnt: int, pos_l: int, pos_h: int, flags: int) -> int:
    """pwritev, or writev at the file's offset for position -1; RWF_DSYNC/RWF_SYNC sync
    what was written, RWF_APPEND writes at the end."""
    flags = _rwf(flags, RWF_HIPRI | RWF_DSYNC | RWF_SYNC | RWF_NOWAIT | RWF_APPEND)
    position = None if to_signed(pos_l) == -1 else _position(pos_l)
    return _vector_write(proc, fd, iov, iovcnt, position, flags)


# -- fallocate, fadvise64, sync, syncfs, close_range ----------------------------------------


@syscall("fallocate", "fd mode offset len")
def sys_fallocate(proc: Task, fd: int, mode: int, offset: int, length: int) -> int:
    """Allocate blocks for [offset, offset + len) of a regular file (mode 0 grows the file,
    FALLOC_FL_KEEP_SIZE does not), charged to the disk quota: ENOSPC past it, as a full
    disk. Other modes (punching and collapsing holes) are EOPNOTSUPP."""
    mode, offset, length = to_int32(mode), to_signed(offset), to_signed(length)
    file = _file(proc, fd, True)
    if offset < 0 or length <= 0:
        raise SyscallError(errno.EINVAL, f"fallocate of {length} bytes at {offset}")
    if mode & ~FALLOC_FL_KEEP_SIZE:
        raise SyscallError(errno.EOPNOTSUPP, f"fallocate mode {mode:#x}")
    if offset + length > MAX_LFS_FILESIZE:
        raise SyscallError(errno.EFBIG, "past the largest file size")
    if isinstance(file, PipeEnd):
        raise SyscallError(errno.ESPIPE, "fallocate on a pipe")
    kind = stat.S_IFMT(file.stat().mode)
    if kind == stat.S_IFDIR:
        raise SyscallError(errno.EISDIR, file.name)
    if kind != stat.S_IFREG or not isinstance(file, HostFile):
        raise SyscallError(errno.ENODEV, f"{file.name} is not a regular file")
    return _allocate(file, mode, offset, length)


def _allocate(file: HostFile, mode: int, offset: int, length: int) -> int:
    """The host's fallocate, refused first if the quota could not hold all of it."""
    quota = file.quota
    before = file.host(os.fstat).st_blocks
    if quota is not None and length > quota.free:
        raise SyscallError(errno.ENOSPC, f"disk quota: {quota.free} bytes free, {length} wanted")
    if _libc.fallocate(file.fd, mode, offset, length) != 0:
        raise SyscallError(ctypes.get_errno() or errno.EIO, "fallocate")
    inotify.file_changed(file, inotify.IN_MODIFY)
    if quota is not None:
        quota.charge_blocks(file.host(os.fstat).st_blocks - before)
    return 0


@syscall("fadvise64", "fd offset len advice")
def sys_fadvise64(proc: Task, fd: int, offset: int, length: int, advice: int) -> int:
    """Advice is validated and accepted (it changes nothing a program can see)."""
    file = proc.files.get(to_int32(fd))
    if isinstance(file, PipeEnd):
        raise SyscallError(errno.ESPIPE, "fadvise on a pipe")
    if not 0 <= to_int32(advice) <= POSIX_FADV_NOREUSE or to_signed(length) < 0:
        raise SyscallError(errno.EINVAL, f"advice {to_int32(advice)}, length {to_signed(length)}")
    return 0


@syscall("sync", "")
def sys_sync(proc: Task) -> int:
    """Every write already went to the host's page cache, which the host writes back."""
    return 0


@syscall("syncfs", "fd")
def sys_syncfs(proc: Task, fd: int) -> int:
    proc.files.get(to_int32(fd))
    return 0


def _shared_table(proc: Task) -> bool:
    """Does another live process use this process's descriptor table (CLONE_FILES)?"""
    return any(group is not proc.group and group.alive and group.files is proc.files
               for group in proc.kernel.processes.values())


@syscall("close_range", "first last flags")
def sys_close_range(proc: Task, first: int, last: int, flags: int) -> int:
    """Close (or, with CLOSE_RANGE_CLOEXEC, mark close-on-exec) every descriptor in
    [first, last]; CLOSE_RANGE_UNSHARE first gives the process a table of its own."""
    first, last, flags = first & 0xFFFF_FFFF, last & 0xFFFF_FFFF, to_int32(flags)
    if flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC) or first > last:
        raise SyscallError(errno.EINVAL, f"close_range {first} {last} {flags:#x}")
    if flags & CLOSE_RANGE_UNSHARE and _shared_table(proc):
        proc.files = proc.files.copy()  # the old table stays with the processes sharing it
    proc.files.close_range(first, last, bool(flags & CLOSE_RANGE_CLOEXEC))
    return 0


"""Descriptor system calls: read/write and their vector and positional forms, lseek, close,
dup, fcntl (with its record locks, and flock), ioctl, ftruncate, fsync, sendfile, pipe
(man 2 of each; poll and select are in sys_poll.py)."""

from __future__ import annotations

import errno
import struct

from sandbox.errors import SyscallError, WouldBlock
from sandbox.kernel import pty, tty
from sandbox.kernel.checked import LOFF, verify_area
from sandbox.kernel.eventfiles import AnonFile
from sandbox.kernel.files import O_APPEND, O_NONBLOCK, O_PATH, DeviceFile, File
from sandbox.kernel.hostfiles import HostFile, HostStream
from sandbox.kernel.locks import (
    F_RDLCK,
    F_UNLCK,
    F_WRLCK,
    LOCK_EX,
    LOCK_NB,
    LOCK_SH,
    LOCK_UN,
    OFFSET_MAX,
    Waiter,
    lock_key,
    locks_of,
)
from sandbox.kernel.pipe import Pipe, PipeEnd
from sandbox.kernel.syscalls import syscall, to_int32, to_signed
from sandbox.kernel.task import Task
from sandbox.mm import USER_END
from sandbox.mm.uaccess import access_ok, copy_in, copy_out

#: Largest transfer one call makes (Linux's MAX_RW_COUNT is ~2 GiB; the host buffer for one
#: call is bounded here so a guest cannot make the sandbox allocate what it asks for).
MAX_TRANSFER = 1 << 20
#: What one read or write may count at most, Linux's MAX_RW_COUNT (INT_MAX & PAGE_MASK): a
#: write that reads nothing (/dev/null) takes this much of a larger count, as Linux's does.
MAX_RW_COUNT = 0x7FFF_F000
IOV_MAX = 1024  # man 2 writev, UIO_MAXIOV
IOVEC = struct.Struct("<QQ")  # struct iovec { void *iov_base; size_t iov_len; }
F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL = 0, 1, 2, 3, 4
F_GETLK, F_SETLK, F_SETLKW, F_DUPFD_CLOEXEC = 5, 6, 7, 1030
F_SETPIPE_SZ, F_GETPIPE_SZ = 1031, 1032  # F_LINUX_SPECIFIC_BASE + 7, + 8
FD_CLOEXEC = 1
O_CLOEXEC = 0o2000000
O_LARGEFILE = 0o100000
#: Flags that act at open and are not kept in the open file's status (O_CREAT, O_EXCL,
#: O_NOCTTY, O_TRUNC, and O_CLOEXEC, which is the descriptor's).
OPEN_TIME_FLAGS = 0o100 | 0o200 | 0o400 | 0o1000 | O_CLOEXEC
FIONREAD, FIONBIO, FIONCLEX, FIOCLEX, FIOASYNC = 0x541B, 0x5421, 0x5450, 0x5451, 0x5452
F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW = 36, 37, 38  # include/uapi/asm-generic/fcntl.h
#: struct flock { short l_type, l_whence; off_t l_start, l_len; pid_t l_pid; } (x86-64, 32 bytes).
FLOCK = struct.Struct("<hh4xqqi4x")
OFD_PID = -1  # what F_GETLK reports as the holder of an OFD lock
SEEK_SET, SEEK_CUR, SEEK_END = 0, 1, 2
NFDS_MAX = 1024
#: Descriptors below this are their own int value (to_int32's conversion is then skipped).
INT_SIGN = 1 << 31


def _readable(proc: Task, fd: int):
    file = proc.group.files.get(fd if fd < INT_SIGN else to_int32(fd))
    if not file.readable:
        raise SyscallError(errno.EBADF, f"fd {to_int32(fd)} is not open for reading")
    if isinstance(file, HostStream):  # job control: SIGTTIN for a background reader of the terminal
        tty.check_read(proc, file)
    return file


def _writable(proc: Task, fd: int):
    file = proc.group.files.get(fd if fd < INT_SIGN else to_int32(fd))
    if not file.writable:
        raise SyscallError(errno.EBADF, f"fd {to_int32(fd)} is not open for writing")
    if isinstance(file, HostStream):  # job control: SIGTTOU for a background writer (TOSTOP)
        tty.check_write(proc, file)
    return file


@syscall("read", "fd buf count")
def sys_read(proc: Task, fd: int, buf: int, count: int) -> int:
    """Read up to `count` bytes from `fd` into guest memory at `buf`."""
    file = proc.group.files.get(fd if fd < INT_SIGN else to_int32(fd))  # _readable's common case, inline
    if not file.readable or isinstance(file, HostStream):
        file = _readable(proc, fd)  # EBADF; a terminal's job control
    if count == 0 and not isinstance(file, AnonFile):  # event files judge a 0-byte read (EINVAL)
        return 0
    if buf + count > USER_END:  # access_ok's test for unsigned registers
        access_ok(buf, count)
    data = file.read(count if count < MAX_TRANSFER else MAX_TRANSFER)
    # A device's read ends short at a page it cannot write (read_iter_zero, get_random_bytes_user).
    return copy_out(proc.group.space, buf, data, isinstance(file, DeviceFile))


@syscall("write", "fd buf count")
def sys_write(proc: Task, fd: int, buf: int, count: int) -> int:
    """Write `count` bytes of guest memory at `buf` to `fd`."""
    file = proc.group.files.get(fd if fd < INT_SIGN else to_int32(fd))  # _writable's common case, inline
    if not file.writable or isinstance(file, HostStream):
        file = _writable(proc, fd)  # EBADF; a terminal's job control
    if count == 0 and not isinstance(file, AnonFile):
        return 0
    if buf + count > USER_END:  # access_ok's test for unsigned registers
        access_ok(buf, count)
    if isinstance(file, DeviceFile) and file.ignores_data:  # /dev/null: the buffer is never read
        return file.discard(count if count < MAX_RW_COUNT else MAX_RW_COUNT)
    return file.write(copy_in(proc.group.space, buf, count if count < MAX_TRANSFER else MAX_TRANSFER))


@syscall("pread64", "fd buf count offset")
def sys_pread64(proc: Task, fd: int, buf: int, count: int, offset: int) -> int:
    file = _readable(proc, fd)
    verify_area(to_signed(offset), count)
    data = file.pread(min(count, MAX_TRANSFER), offset)
    copy_out(proc.space, buf, data)
    return len(data)


@syscall("pwrite64", "fd buf count offset")
def sys_pwrite64(proc: Task, fd: int, buf: int, count: int, offset: int) -> int:
    file = _writable(proc, fd)
    verify_area(to_signed(offset), count)
    return file.pwrite(copy_in(proc.space, buf, min(count, MAX_TRANSFER)), offset)


def iovecs(proc: Task, iov: int, iovcnt: int) -> list[tuple[int, int]]:
    """The (base, length) pairs of an iovec array, lengths capped at MAX_TRANSFER in total."""
    iovcnt = to_int32(iovcnt)
    if not 0 <= iovcnt <= IOV_MAX:
        raise SyscallError(errno.EINVAL, f"iovcnt {iovcnt}")
    out, total = [], 0
    for base, length in IOVEC.iter_unpack(copy_in(proc.space, iov, IOVEC.size * iovcnt)):
        if length >> 63:
            raise SyscallError(errno.EINVAL, "iov_len overflows ssize_t")
        take = min(length, MAX_TRANSFER - total)
        out.append((base, take))
        total += take
    return out


def gather(proc: Task, iov: int, iovcnt: int) -> bytes:
    """The bytes of the buffers an iovec array describes, in order (one write's data)."""
    return b"".join(copy_in(proc.space, base, n) for base, n in iovecs(proc, iov, iovcnt) if n)


def scatter(proc: Task, vectors: list[tuple[int, int]], data: bytes) -> int:
    """Copy `data` over the buffers in order; the count copied. A bad buffer after the
    first byte ends the copy short, as copy_to_iter does; before it, EFAULT."""
    done = 0
    for base, n in vectors:
        piece = data[done : done + n]
        if not piece:
            break
        try:
            copy_out(proc.space, base, piece)
        except SyscallError:
            if done:
                break
            raise
        done += len(piece)
    return done


@syscall("writev", "fd iov iovcnt")
def sys_writev(proc: Task, fd: int, iov: int, iovcnt: int) -> int:
    """Gather the buffers described at `iov` and write them as one (a pipe takes them all,
    sleeping as it fills: the retry writes on from where it stopped)."""
    file = _writable(proc, fd)
    data = gather(proc, iov, iovcnt)
    return file.write(data) if data else 0


@syscall("readv", "fd iov iovcnt")
def sys_readv(proc: Task, fd: int, iov: int, iovcnt: int) -> int:
    """Read once, then scatter the bytes over the buffers in order."""
    file = _readable(proc, fd)
    vectors = iovecs(proc, iov, iovcnt)
    total = sum(n for _, n in vectors)
    return scatter(proc, vectors, file.read(total)) if total else 0


@syscall("lseek", "fd offset whence")
def sys_lseek(proc: Task, fd: int, offset: int, whence: int) -> int:
    file, whence = proc.files.get(to_int32(fd)), to_int32(whence)  # EBADF before EINVAL
    if whence not in (0, 1, 2, 3, 4):
        raise SyscallError(errno.EINVAL, f"whence {whence}")
    return file.seek(to_signed(offset), whence)


@syscall("close", "fd")
def sys_close(proc: Task, fd: int) -> int:
    proc.files.close(to_int32(fd))
    return 0


@syscall("dup", "fd")
def sys_dup(proc: Task, fd: int) -> int:
    return proc.files.install(proc.files.get(to_int32(fd)))


@syscall("dup2", "oldfd newfd")
def sys_dup2(proc: Task, oldfd: int, newfd: int) -> int:
    oldfd, newfd = to_int32(oldfd), to_int32(newfd)
    file = proc.files.get(oldfd)
    if oldfd != newfd:
        proc.files.replace(newfd, file)
    return newfd


@syscall("dup3", "oldfd newfd flags")
def sys_dup3(proc: Task, oldfd: int, newfd: int, flags: int) -> int:
    oldfd, newfd, flags = to_int32(oldfd), to_int32(newfd), to_int32(flags)
    if oldfd == newfd or flags & ~O_CLOEXEC:
        raise SyscallError(errno.EINVAL, "dup3 onto itself or unknown flags")
    proc.files.replace(newfd, proc.files.get(oldfd), cloexec=bool(flags & O_CLOEXEC))
    return newfd


@syscall("fcntl", "fd cmd arg")
def sys_fcntl(proc: Task, fd: int, cmd: int, arg: int) -> int:
    fd, cmd = to_int32(fd), to_int32(cmd)
    entry = proc.files.entry(fd)
    if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
        lowest = to_int32(arg)
        if not 0 <= lowest < proc.files.limit:  # man 2 fcntl: EINVAL past RLIMIT_NOFILE
            raise SyscallError(errno.EINVAL, f"fd {lowest} out of range")
        return proc.files.install(entry.file, lowest, cloexec=cmd == F_DUPFD_CLOEXEC)
    if cmd == F_GETFD:
        return FD_CLOEXEC if entry.cloexec else 0
    if cmd == F_SETFD:
        entry.cloexec = bool(arg & FD_CLOEXEC)
        return 0
    if cmd == F_GETFL:  # open-time flags are gone; a file opened by path is O_LARGEFILE (do_dentry_open)
        largefile = O_LARGEFILE if isinstance(entry.file, HostFile) else 0
        return entry.file.flags & ~OPEN_TIME_FLAGS | largefile
    if cmd == F_SETFL:  # only O_APPEND and O_NONBLOCK may change (man 2 fcntl)
        changeable = O_APPEND | O_NONBLOCK
        entry.file.set_status_flags((entry.file.flags & ~changeable) | (to_int32(arg) & changeable))
        return 0
    if cmd in (F_GETPIPE_SZ, F_SETPIPE_SZ):
        if not isinstance(entry.file, PipeEnd):
            raise SyscallError(errno.EBADF, "not a pipe")
        pipe = entry.file.pipe
        return pipe.capacity if cmd == F_GETPIPE_SZ else pipe.resize(arg, proc.kernel.options.pipe_max_size)
    if cmd in (F_GETLK, F_OFD_GETLK):
        return _getlk(proc, entry.file, cmd, arg)
    if cmd in (F_SETLK, F_SETLKW, F_OFD_SETLK, F_OFD_SETLKW):
        return _setlk(proc, fd, entry.file, cmd, arg)
    raise SyscallError(errno.EINVAL, f"fcntl command {cmd}")


# -- record locks (fcntl F_GETLK/F_SETLK/F_SETLKW and the OFD forms; fs/locks.c) ------------


class LockRequest:
    """A struct flock decoded: the lock type and the inclusive byte range it covers."""

    __slots__ = ("type", "start", "end", "raw")

    def __init__(self, type: int, start: int, end: int, raw: bytes) -> None:
        self.type = type
        self.start = start
        self.end = end
        self.raw = raw  # the struct as the guest gave it (F_GETLK writes it back changed)


def _read_flock(proc: Task, file: File, cmd: int, arg: int) -> LockRequest:
    """Decode the guest's struct flock at `arg` as fcntl_getlk/fcntl_setlk do: EFAULT,
    EBADF for an O_PATH descriptor, EINVAL for a bad type or whence, a range that starts
    before 0 or an OFD request with l_pid != 0; EOVERFLOW for a range past OFFSET_MAX."""
    if file.flags & O_PATH:
        raise SyscallError(errno.EBADF, "an O_PATH descriptor holds no locks")
    raw = copy_in(proc.space, arg, FLOCK.size)
    type, whence, start, length, pid = FLOCK.unpack(raw)
    valid = (F_RDLCK, F_WRLCK) if cmd in (F_GETLK, F_OFD_GETLK) else (F_RDLCK, F_WRLCK, F_UNLCK)
    if type not in valid:
        raise SyscallError(errno.EINVAL, f"lock type {type}")
    start, end = _lock_range(file, whence, start, length)
    if cmd in (F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW) and pid != 0:
        raise SyscallError(errno.EINVAL, f"an OFD lock request with l_pid {pid}")
    return LockRequest(type, start, end, raw)


def _lock_range(file: File, whence: int, start: int, length: int) -> tuple[int, int]:
    """[start, end] of a struct flock's (l_whence, l_start, l_len), as Linux's
    flock_to_posix_lock: a negative length counts back from l_start, 0 means to the end."""
    if whence == SEEK_SET:
        base = 0
    elif whence == SEEK_CUR:
        base = _position(file)
    elif whence == SEEK_END:
        base = file.stat().size
    else:
        raise SyscallError(errno.EINVAL, f"l_whence {whence}")
    if start > OFFSET_MAX - base:
        raise SyscallError(errno.EOVERFLOW, f"lock start {start} past the largest offset")
    start += base
    if start < 0:
        raise SyscallError(errno.EINVAL, f"lock starts at {start}")
    if length > 0:
        if length - 1 > OFFSET_MAX - start:
            raise SyscallError(errno.EOVERFLOW, f"lock of {length} bytes at {start} passes the largest offset")
        return start, start + length - 1
    if length < 0:
        if start + length < 0:
            raise SyscallError(errno.EINVAL, f"lock of {length} bytes at {start} starts before 0")
        return start + length, start - 1
    return start, OFFSET_MAX


def _position(file: File) -> int:
    """The description's offset (a pipe's is 0, as its f_pos)."""
    try:
        return file.seek(0, SEEK_CUR)
    except SyscallError:
        return 0


def _getlk(proc: Task, file: File, cmd: int, arg: int) -> int:
    """F_GETLK: the first lock that would block the request, or l_type F_UNLCK."""
    request = _read_flock(proc, file, cmd, arg)
    owner = file if cmd == F_OFD_GETLK else proc.files
    held = locks_of(proc.kernel).test(lock_key(file), owner, request.start, request.end, request.type)
    if held is None:
        copy_out(proc.space, arg, struct.pack("<h", F_UNLCK) + request.raw[2:])
        return 0
    length = 0 if held.end == OFFSET_MAX else held.end - held.start + 1
    copy_out(proc.space, arg, FLOCK.pack(held.type, SEEK_SET, held.start, length, held.pid))
    return 0


def _setlk(proc: Task, fd: int, file: File, cmd: int, arg: int) -> int:
    """F_SETLK (EAGAIN on a conflict) or F_SETLKW (sleep until granted; EDEADLK if the wait
    would close a cycle of POSIX lock waits): for the process (POSIX) or the description (OFD)."""
    request = _read_flock(proc, file, cmd, arg)
    if (request.type == F_RDLCK and not file.readable) or (request.type == F_WRLCK and not file.writable):
        raise SyscallError(errno.EBADF, f"fd {fd} is not open for a lock of type {request.type}")
    ofd = cmd in (F_OFD_SETLK, F_OFD_SETLKW)
    table, key = locks_of(proc.kernel), lock_key(file)
    owner = file if ofd else proc.files
    pid = OFD_PID if ofd else proc.pid

    def forget() -> None:
        waiter = table.waiting.get(owner)
        if waiter is not None and waiter.task is proc:
            del table.waiting[owner]

    def attempt() -> int:
        if fd not in proc.files or proc.files.get(fd) is not file:  # closed while asleep
            forget()
            raise SyscallError(errno.EBADF, f"fd {fd} was closed while waiting for a lock")
        blocker = table.set(key, owner, request.start, request.end, request.type, pid)
        if blocker is None:
            forget()
            return 0
        if cmd in (F_SETLK, F_OFD_SETLK):
            raise SyscallError(errno.EAGAIN, "a conflicting lock is held")
        if not ofd and table.deadlocks(owner, blocker):
            forget()
            raise SyscallError(errno.EDEADLK, "waiting would deadlock")
        if not ofd:
            table.waiting[owner] = Waiter(proc, key, request.start, request.end, request.type)
        raise WouldBlock("waiting for a file lock", retry=attempt, on_interrupt=forget)
    return attempt()


@syscall("flock", "fd operation")
def sys_flock(proc: Task, fd: int, operation: int) -> int:
    """flock(2): a shared or exclusive lock of the whole file, held by the open file
    description; LOCK_NB fails with EWOULDBLOCK instead of sleeping."""
    fd, operation = to_int32(fd), to_int32(operation)
    file = proc.files.get(fd)
    kind = operation & ~LOCK_NB
    if kind not in (LOCK_SH, LOCK_EX, LOCK_UN):
        raise SyscallError(errno.EINVAL, f"flock operation {operation:#x}")
    if file.flags & O_PATH:
        raise SyscallError(errno.EBADF, "an O_PATH descriptor holds no locks")
    table, key = locks_of(proc.kernel), lock_key(file)

    def attempt() -> int:
        if file.refs == 0:  # every descriptor closed while asleep: locked and at once released
            return 0
        if table.flock(key, file, kind):
            return 0
        if operation & LOCK_NB:
            raise SyscallError(errno.EWOULDBLOCK, "another description holds a conflicting flock")
        raise WouldBlock("waiting for a flock", retry=attempt)
    return attempt()


@syscall("ioctl", "fd request arg")
def sys_ioctl(proc: Task, fd: int, request: int, arg: int) -> int:
    """The requests every descriptor takes (FIOCLEX, FIONCLEX, FIONBIO, FIOASYNC), then a
    terminal's (sandbox/kernel/tty.py) on host streams that are terminals, then FIONREAD;
    anything else is ENOTTY."""
    file = proc.files.get(to_int32(fd))
    request &= 0xFFFF_FFFF
    if request in (FIOCLEX, FIONCLEX):  # do_vfs_ioctl
        proc.files.entry(to_int32(fd)).cloexec = request == FIOCLEX
        return 0
    if request in (FIONBIO, FIOASYNC):
        on = struct.unpack("<i", copy_in(proc.space, arg, 4))[0] != 0
        if request == FIONBIO:
            file.set_status_flags(file.flags | O_NONBLOCK if on else file.flags & ~O_NONBLOCK)
        elif on:
            raise SyscallError(errno.EINVAL, "FIOASYNC: the sandbox sends no SIGIO, so it refuses to promise one")
        return 0
    if isinstance(file, HostStream) and file.is_terminal:
        return tty.ioctl(proc, file, request, arg)
    if isinstance(file, pty.PtyFile):  # the guest's own pseudo-terminals
        from sandbox.kernel import pty_ioctl  # (only for the guest's ptys: not at start-up)

        return pty_ioctl.ioctl(proc, file, request, arg)
    if request == FIONREAD:
        copy_out(proc.space, arg, struct.pack("<i", min(file.queued_bytes(), 0x7FFF_FFFF)))
        return 0
    raise SyscallError(errno.ENOTTY, f"ioctl {request:#x}")


@syscall("ftruncate", "fd length")
def sys_ftruncate(proc: Task, fd: int, length: int) -> int:
    if to_signed(length) < 0:
        raise SyscallError(errno.EINVAL, "negative length")
    proc.files.get(to_int32(fd)).truncate(length)
    return 0


@syscall("fsync", "fd")
def sys_fsync(proc: Task, fd: int) -> int:
    proc.files.get(to_int32(fd)).sync()
    return 0


@syscall("fdatasync", "fd")
def sys_fdatasync(proc: Task, fd: int) -> int:
    return sys_fsync(proc, fd)


@syscall("sendfile", "out_fd in_fd offset count")
def sys_sendfile(proc: Task, out_fd: int, in_fd: int, offset: int, count: int) -> int:
    """Copy up to `count` bytes between descriptors, from *offset (then updated) or from
    the input's position."""
    source, target = _readable(proc, in_fd), _writable(proc, out_fd)
    position = LOFF.unpack(copy_in(proc.space, offset, LOFF.size))[0] if offset else 0
    from sandbox.kernel.sys_splice import check_sendfile  # (it builds on this module)

    check_sendfile(source, target, offset, count)  # ESPIPE, EINVAL as Linux for the kinds it refuses
    verify_area(position, count)
    if count == 0:
        return 0
    count = min(count, MAX_TRANSFER, room_for(target))
    if offset:
        data = source.pread(count, position)
    else:
        data = source.read(count)
    written = 0
    try:
        written = write_now(target, data)
    finally:  # what was read and not written goes back: the input's offset, or *offset
        if offset:
            copy_out(proc.space, offset, LOFF.pack(position + written))
        elif written < len(data):
            source.seek(written - len(data), 1)
    return written


def write_now(target: File, data: bytes) -> int:
    """Write `data` to `target` without sleeping part-way: the count written, or, if the
    write would sleep before its first byte, a WouldBlock that runs the whole call again
    (the caller gives back what it read first). A host stream may still take only part
    (a terminal's "writable" means some room): that part is the result."""
    if not data:
        return 0
    try:
        return target.write(data)
    except WouldBlock as would_block:
        done = would_block.on_interrupt() if would_block.on_interrupt is not None else None
        if done:
            return done
        raise WouldBlock(would_block.why, host_waits=would_block.host_waits) from None


def room_for(target: File) -> int:
    """What a write to `target` takes now without sleeping. A call that reads from one file
    to write to another reads no more than this: a read whose bytes the write then sleeps on
    would be lost (the input's offset has advanced; a retry reads on from there). A pipe or
    host stream with no room puts the caller to sleep first (its call then runs again)."""
    if isinstance(target, (PipeEnd, HostStream)):
        return target.room()
    return MAX_TRANSFER


@syscall("pipe2", "pipefd flags")
def sys_pipe2(proc: Task, pipefd: int, flags: int) -> int:
    flags = to_int32(flags)
    if flags & ~(O_CLOEXEC | O_NONBLOCK):
        raise SyscallError(errno.EINVAL, f"pipe2 flags {flags:#x}")
    pipe = Pipe(proc.kernel.budgets.pipe_pages)
    cloexec = bool(flags & O_CLOEXEC)
    fds: list[int] = []
    try:
        for end in (PipeEnd(pipe, True, flags), PipeEnd(pipe, False, flags)):
            fds.append(proc.files.install(end, cloexec=cloexec))
        copy_out(proc.space, pipefd, struct.pack("<ii", *fds))
    except BaseException:  # EMFILE, ENFILE, EFAULT: nothing of the pipe stays (do_pipe2)
        for fd in fds:
            proc.files.close(fd)
        raise
    return 0


@syscall("pipe", "pipefd")
def sys_pipe(proc: Task, pipefd: int) -> int:
    return sys_pipe2(proc, pipefd, 0)


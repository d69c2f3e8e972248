"""Descriptor system calls: read/write and their vector and positional forms, lseek, close,
dup, fcntl, ioctl, ftruncate, fsync, pipe, poll (man 2 of each)."""

from __future__ import annotations

import errno
import struct
import time

from sandbox.errors import SyscallError, WouldBlock
from sandbox.kernel.checked import LOFF, read_timespec, verify_area
from sandbox.kernel.files import O_APPEND, O_NONBLOCK, POLLNVAL, File, HostStream, Pipe, PipeEnd
from sandbox.kernel.sched import sleep
from sandbox.kernel.structs import POLLFD
from sandbox.kernel.syscalls import syscall, to_int32, to_signed
from sandbox.kernel.task import Task
from sandbox.mm.uaccess import copy_in, copy_out

#: Largest transfer one call makes (Linux's MAX_RW_COUNT is ~2 GiB; the host buffer for one
#: call is bounded here so a guest cannot make the sandbox allocate what it asks for).
MAX_TRANSFER = 1 << 20
IOV_MAX = 1024  # man 2 writev, UIO_MAXIOV
IOVEC = struct.Struct("<QQ")  # struct iovec { void *iov_base; size_t iov_len; }
F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL = 0, 1, 2, 3, 4
F_GETLK, F_SETLK, F_SETLKW, F_DUPFD_CLOEXEC = 5, 6, 7, 1030
F_SETPIPE_SZ, F_GETPIPE_SZ = 1031, 1032  # F_LINUX_SPECIFIC_BASE + 7, + 8
FD_CLOEXEC = 1
O_CLOEXEC = 0o2000000
TCGETS, TIOCGWINSZ, TIOCGPGRP = 0x5401, 0x5413, 0x540F
_IOCTL_SIZES = {TCGETS: 60, TIOCGWINSZ: 8, TIOCGPGRP: 4}  # struct termios, winsize, pid_t
F_UNLCK = 2
NFDS_MAX = 1024


def _readable(proc: Task, fd: int):
    file = proc.files.get(to_int32(fd))
    if not file.readable:
        raise SyscallError(errno.EBADF, f"fd {to_int32(fd)} is not open for reading")
    return file


def _writable(proc: Task, fd: int):
    file = proc.files.get(to_int32(fd))
    if not file.writable:
        raise SyscallError(errno.EBADF, f"fd {to_int32(fd)} is not open for writing")
    return file


@syscall("read", "fd buf count")
def sys_read(proc: Task, fd: int, buf: int, count: int) -> int:
    """Read up to `count` bytes from `fd` into guest memory at `buf`."""
    file = _readable(proc, fd)
    if count == 0:
        return 0
    data = file.read(min(count, MAX_TRANSFER))
    copy_out(proc.space, buf, data)
    return len(data)


@syscall("write", "fd buf count")
def sys_write(proc: Task, fd: int, buf: int, count: int) -> int:
    """Write `count` bytes of guest memory at `buf` to `fd`."""
    file = _writable(proc, fd)
    if count == 0:
        return 0
    return file.write(copy_in(proc.space, buf, min(count, MAX_TRANSFER)))


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


def _iovecs(proc: Task, iov: int, iovcnt: int) -> list[tuple[int, int]]:
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


@syscall("writev", "fd iov iovcnt")
def sys_writev(proc: Task, fd: int, iov: int, iovcnt: int) -> int:
    """Gather the buffers described at `iov` and write them as one."""
    file = _writable(proc, fd)
    data = b"".join(copy_in(proc.space, base, n) for base, n in _iovecs(proc, iov, iovcnt) if n)
    return file.write(data) if data else 0


@syscall("readv", "fd iov iovcnt")
def sys_readv(proc: Task, fd: int, iov: int, iovcnt: int) -> int:
    """Read once, then scatter the bytes over the buffers in order."""
    file = _readable(proc, fd)
    vectors = _iovecs(proc, iov, iovcnt)
    total = sum(n for _, n in vectors)
    data = file.read(total) if total else b""
    done = 0
    for base, n in vectors:
        piece = data[done : done + n]
        if not piece:
            break
        copy_out(proc.space, base, piece)
        done += len(piece)
    return done


@syscall("lseek", "fd offset whence")
def sys_lseek(proc: Task, fd: int, offset: int, whence: int) -> int:
    whence = to_int32(whence)
    if whence not in (0, 1, 2, 3, 4):
        raise SyscallError(errno.EINVAL, f"whence {whence}")
    return proc.files.get(to_int32(fd)).seek(to_signed(offset), whence)


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
    if cmd == F_GETFL:
        return entry.file.flags
    if cmd == F_SETFL:  # only O_APPEND and O_NONBLOCK may change (man 2 fcntl)
        changeable = O_APPEND | O_NONBLOCK
        entry.file.set_status_flags((entry.file.flags & ~changeable) | (to_int32(arg) & changeable))
        return 0
    if cmd in (F_GETPIPE_SZ, F_SETPIPE_SZ):
        if not isinstance(entry.file, PipeEnd):
            raise SyscallError(errno.EBADF, "not a pipe")
        pipe = entry.file.pipe
        return pipe.capacity if cmd == F_GETPIPE_SZ else pipe.resize(arg, proc.kernel.options.pipe_max_size)
    if cmd in (F_SETLK, F_SETLKW):
        return 0  # one process: every lock is granted
    if cmd == F_GETLK:  # struct flock: short l_type first; nothing else holds a lock
        copy_out(proc.space, arg, struct.pack("<h", F_UNLCK))
        return 0
    raise SyscallError(errno.EINVAL, f"fcntl command {cmd}")


@syscall("ioctl", "fd request arg")
def sys_ioctl(proc: Task, fd: int, request: int, arg: int) -> int:
    """Terminal queries (TCGETS, TIOCGWINSZ, TIOCGPGRP) on streams that are terminals."""
    file = proc.files.get(to_int32(fd))
    request &= 0xFFFF_FFFF
    size = _IOCTL_SIZES.get(request)
    if size is None or not isinstance(file, HostStream):
        raise SyscallError(errno.ENOTTY, f"ioctl {request:#x}")
    answer = file.ioctl(request, bytes(size))  # ENOTTY unless the stream is a terminal
    if request == TIOCGPGRP:  # the guest's own foreground group, never the host's
        answer = struct.pack("<i", proc.pgid)
    copy_out(proc.space, arg, answer)
    return 0


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
    verify_area(position, count)
    count = min(count, MAX_TRANSFER)
    if isinstance(target, HostStream):  # read no more than the stream takes now (may sleep first)
        count = min(count, target.room())
    if offset:
        data = source.pread(count, position)
    else:
        data = source.read(count)
    written = target.write(data) if data else 0
    if offset:
        copy_out(proc.space, offset, LOFF.pack(position + written))
    elif written < len(data):
        source.seek(written - len(data), 1)
    return written


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


def _poll(proc: Task, fds: int, nfds: int, timeout_ns: int | None) -> int:
    """Ready events for each pollfd, waiting up to `timeout_ns` (None: for ever) in the
    scheduler: host streams wake it when the host says so, pipes when another process acts,
    signals end it with EINTR and --timeout ends the run."""
    if nfds > NFDS_MAX:
        raise SyscallError(errno.EINVAL, f"nfds {nfds}")
    entries = list(POLLFD.iter_unpack(copy_in(proc.space, fds, POLLFD.size * nfds)))
    results = _all_revents(proc, entries)
    if any(results) or timeout_ns == 0:
        return _poll_report(proc, fds, entries, results)
    streams = tuple((file.fd, events) for file, events in
                    ((_open_file(proc, fd), events) for fd, events, _ in entries) if isinstance(file, HostStream))
    if not streams and timeout_ns is not None and proc.kernel.options.deterministic:
        return sleep(proc, timeout_ns, "poll", lambda: _poll_report(proc, fds, entries, _all_revents(proc, entries)))
    deadline = None if timeout_ns is None else time.monotonic() + timeout_ns / 1e9

    def attempt() -> int:
        ready = _all_revents(proc, entries)
        if any(ready) or (deadline is not None and time.monotonic() >= deadline):
            return _poll_report(proc, fds, entries, ready)
        raise WouldBlock("poll: nothing ready yet", retry=attempt, deadline=deadline, host_waits=streams,
                         every_pass=True)
    return attempt()


def _open_file(proc: Task, fd: int) -> File | None:
    return proc.files.get(fd) if fd >= 0 and fd in proc.files else None


def _all_revents(proc: Task, entries: list[tuple[int, int, int]]) -> list[int]:
    return [_revents(proc, fd, events) for fd, events, _ in entries]


def _poll_report(proc: Task, fds: int, entries: list[tuple[int, int, int]], results: list[int]) -> int:
    """Write each pollfd's `results` as its revents; the count of ready descriptors."""
    copy_out(proc.space, fds, b"".join(POLLFD.pack(fd, events, r) for (fd, events, _), r in
                                       zip(entries, results, strict=True)))
    return sum(1 for r in results if r)


def _revents(proc: Task, fd: int, events: int) -> int:
    if fd < 0:
        return 0
    if fd not in proc.files:
        return POLLNVAL
    return proc.files.get(fd).poll(events)


@syscall("poll", "fds nfds timeout")
def sys_poll(proc: Task, fds: int, nfds: int, timeout: int) -> int:
    """A negative timeout (in ms) waits for ever (man 2 poll)."""
    timeout = to_int32(timeout)
    return _poll(proc, fds, nfds, None if timeout < 0 else timeout * 10**6)


@syscall("ppoll", "fds nfds tmo sigmask sigsetsize")
def sys_ppoll(proc: Task, fds: int, nfds: int, tmo: int, sigmask: int, sigsetsize: int) -> int:
    """A NULL timeout waits for ever; a huge one as long as Linux keeps (KTIME_MAX)."""
    return _poll(proc, fds, nfds, read_timespec(proc.space, tmo) if tmo else None)


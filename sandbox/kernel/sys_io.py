"""I/O system calls on descriptors: read, write, writev (man 2 read, write, writev)."""

from __future__ import annotations

import errno
import struct

from sandbox.errors import SyscallError
from sandbox.kernel.process import Process
from sandbox.kernel.syscalls import syscall, to_int32
from sandbox.mm.uaccess import copy_in, copy_out

#: Largest transfer one call makes (Linux's MAX_RW_COUNT is ~2 GiB; the host buffer for one
#: call is bounded here so a guest cannot make the sandbox allocate what it asks for).
MAX_TRANSFER = 1 << 20
IOV_MAX = 1024  # man 2 writev, UIO_MAXIOV
IOVEC = struct.Struct("<QQ")  # struct iovec { void *iov_base; size_t iov_len; }


@syscall("read", "fd buf count")
def sys_read(proc: Process, fd: int, buf: int, count: int) -> int:
    """Read up to `count` bytes from `fd` into guest memory at `buf`."""
    file = proc.files.get(to_int32(fd))
    if count == 0:
        return 0
    data = file.read(min(count, MAX_TRANSFER))
    copy_out(proc.space, buf, data)
    return len(data)


@syscall("write", "fd buf count")
def sys_write(proc: Process, fd: int, buf: int, count: int) -> int:
    """Write `count` bytes of guest memory at `buf` to `fd`."""
    file = proc.files.get(to_int32(fd))
    if count == 0:
        return 0
    return file.write(copy_in(proc.space, buf, min(count, MAX_TRANSFER)))


@syscall("writev", "fd iov iovcnt")
def sys_writev(proc: Process, fd: int, iov: int, iovcnt: int) -> int:
    """Gather the `iovcnt` buffers described at `iov` and write them as one."""
    file = proc.files.get(to_int32(fd))
    iovcnt = to_int32(iovcnt)
    if not 0 <= iovcnt <= IOV_MAX:
        raise SyscallError(errno.EINVAL, f"iovcnt {iovcnt}")
    vectors = copy_in(proc.space, iov, IOVEC.size * iovcnt)
    parts, total = [], 0
    for base, length in IOVEC.iter_unpack(vectors):
        if length >> 63:
            raise SyscallError(errno.EINVAL, "iov_len overflows ssize_t")
        take = min(length, MAX_TRANSFER - total)
        if take:
            parts.append(copy_in(proc.space, base, take))
            total += take
    return file.write(b"".join(parts)) if total else 0

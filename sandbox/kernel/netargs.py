"""A socket call's user arguments, decoded as net/socket.c does: the socket behind a
descriptor, socket addresses, iovecs and the bounds on them, and `complete` for calls that
sleep (a retried call finishes through the same code). Shared by sys_net.py and
sys_netmsg.py.
"""

from __future__ import annotations

import errno
import signal
from collections.abc import Callable

from sandbox import abi
from sandbox.errors import SyscallError, WouldBlock
from sandbox.kernel import signal_delivery
from sandbox.kernel.files import File
from sandbox.kernel.net.base import INT, MSG_NOSIGNAL, Socket
from sandbox.kernel.sigframe import pack_siginfo
from sandbox.kernel.sys_io import IOVEC, MAX_TRANSFER
from sandbox.kernel.syscalls import to_int32
from sandbox.kernel.task import Task
from sandbox.mm.uaccess import copy_in, copy_out

SOCKADDR_STORAGE = 128  # the largest address a call takes (EINVAL beyond)
UIO_MAXIOV = 1024
MAX_RW_COUNT = 0x7FFF_F000  # INT_MAX rounded down to a page: the most one transfer moves
TASK_SIZE_MAX = 0x7FFF_FFFF_F000  # the top of x86-64 user space (4-level paging)


def socket_at(proc: Task, fd: int) -> Socket:
    """The socket behind `fd` (EBADF, or ENOTSOCK for another kind of file)."""
    return proc.files.get_as(to_int32(fd), Socket, errno.ENOTSOCK, "a socket")


def read_sockaddr(proc: Task, addr: int, addrlen: int) -> bytes | None:
    """A socket address from the guest (move_addr_to_kernel): EINVAL for a length past
    sockaddr_storage or negative, EFAULT; None for no address (NULL or length 0)."""
    length = to_int32(addrlen)
    if not addr:
        return None
    if not 0 <= length <= SOCKADDR_STORAGE:
        raise SyscallError(errno.EINVAL, f"address length {length}")
    return copy_in(proc.space, addr, length) if length else None


def write_sockaddr(proc: Task, addr: int, addrlen_ptr: int, packed: bytes) -> None:
    """Give an address back (move_addr_to_user): as much as *addrlen allows, and its
    full length in *addrlen; EINVAL for a negative *addrlen."""
    if not addr:
        return
    length = INT.unpack(copy_in(proc.space, addrlen_ptr, INT.size))[0]
    if length < 0:
        raise SyscallError(errno.EINVAL, f"address length {length}")
    if length:
        copy_out(proc.space, addr, packed[:length])
    copy_out(proc.space, addrlen_ptr, INT.pack(len(packed)))


def complete(call: Callable[[], object], finish: Callable[[object], int] = lambda r: r,
              failed: Callable[[SyscallError], None] | None = None) -> int:
    """`finish(call())`, also when the call sleeps first (its retry is wrapped the same
    way); `failed` sees the error a call ends with."""
    try:
        result = call()
    except SyscallError as error:
        if failed is not None:
            failed(error)
        raise
    except WouldBlock as sleeping:
        inner = sleeping.retry
        sleeping.retry = lambda: complete(inner, finish, failed)
        raise
    return finish(result)


def sigpipe_on_epipe(proc: Task, flags: int) -> Callable[[SyscallError], None]:
    """EPIPE raises SIGPIPE unless MSG_NOSIGNAL (sk_stream_error, unix_stream_sendmsg)."""
    def failed(error: SyscallError) -> None:
        if error.errno == errno.EPIPE and not flags & MSG_NOSIGNAL and proc.alive:
            info = pack_siginfo(signal.SIGPIPE, abi.SI_USER, pid=proc.pid, uid=proc.kernel.identity.uid)
            signal_delivery.send_to_task(proc.kernel, proc, signal.SIGPIPE, info)  # send_sig(current)
    return failed


def read_iovecs(proc: Task, iov: int, iovlen: int) -> tuple[list[tuple[int, int]], int]:
    """A msghdr's (base, length) pairs, capped at MAX_TRANSFER in total, and the length
    asked for: EMSGSIZE past UIO_MAXIOV vectors, EINVAL for a length past ssize_t."""
    if iovlen > UIO_MAXIOV:
        raise SyscallError(errno.EMSGSIZE, f"{iovlen} iovecs")
    out, total, asked = [], 0, 0
    for base, length in IOVEC.iter_unpack(copy_in(proc.space, iov, IOVEC.size * iovlen)):
        if length >> 63:
            raise SyscallError(errno.EINVAL, "iov_len overflows ssize_t")
        check_user_range(base, length)
        take = min(length, MAX_TRANSFER - total)
        out.append((base, take))
        total, asked = total + take, asked + length
    return out, asked


def check_user_range(addr: int, length: int) -> None:
    """A buffer (its length clamped to MAX_RW_COUNT, as import_ubuf does) must lie below the
    top of user space (access_ok): EFAULT otherwise, before anything is transferred."""
    if addr + min(length, MAX_RW_COUNT) > TASK_SIZE_MAX:
        raise SyscallError(errno.EFAULT, f"{length} bytes at {addr:#x} pass user space")


def check_datagram_size(sock: Socket, length: int) -> None:
    """A datagram past the largest the socket sends is EMSGSIZE before any byte is read."""
    limit = sock.max_message()
    if limit is not None and length > limit:
        raise SyscallError(errno.EMSGSIZE, f"{length} bytes in one datagram")


def scatter_into(proc: Task, vectors: list[tuple[int, int]]) -> Callable[[bytes], None]:
    """A sink writing received bytes over `vectors` in order."""
    position = [0, 0]  # vector, offset in it

    def sink(data: bytes) -> None:
        done = 0
        while done < len(data) and position[0] < len(vectors):
            base, length = vectors[position[0]]
            take = min(length - position[1], len(data) - done)
            copy_out(proc.space, base + position[1], data[done : done + take])
            done += take
            position[1] += take
            if position[1] == length:
                position[0], position[1] = position[0] + 1, 0
    return sink


def drop_files(files: list[File]) -> None:
    for file in files:
        file.detach()

"""sendmsg, recvmsg, sendmmsg and recvmmsg (man 2 sendmsg, recvmsg, sendmmsg, recvmmsg):
msghdrs, their iovecs and control messages (SCM_RIGHTS, SCM_CREDENTIALS), decoded as
net/socket.c's ___sys_sendmsg/___sys_recvmsg do.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable

from sandbox.errors import SyscallError, WouldBlock
from sandbox.kernel.checked import read_timespec
from sandbox.kernel.files import File
from sandbox.kernel.net.base import (
    INT,
    MSG_CMSG_CLOEXEC,
    MSG_CTRUNC,
    MSG_DONTWAIT,
    MSG_WAITFORONE,
    SCM_CREDENTIALS,
    SCM_RIGHTS,
    SOL_SOCKET,
    UCRED,
    Creds,
    Received,
    Socket,
)
from sandbox.kernel.net.unix import UnixSocket
from sandbox.kernel.netargs import (
    UIO_MAXIOV,
    check_datagram_size,
    complete,
    drop_files,
    read_iovecs,
    read_sockaddr,
    scatter_into,
    sigpipe_on_epipe,
    socket_at,
)
from sandbox.kernel.syscalls import syscall, to_int32
from sandbox.kernel.task import Task
from sandbox.mm.uaccess import copy_in, copy_out

SCM_MAX_FD = 253  # descriptors in one SCM_RIGHTS message (include/net/scm.h)
OPTMEM_MAX = 20480  # /proc/sys/net/core/optmem_max: the largest control buffer sent
MSGHDR = struct.Struct("<QI4xQQQQi4x")  # struct user_msghdr, 56 bytes
MMSGHDR_SIZE = 64  # struct mmsghdr: a msghdr and an unsigned msg_len, padded
NAMELEN_AT, CONTROLLEN_AT, FLAGS_AT, MSG_LEN_AT = 8, 40, 48, 56
CMSGHDR = struct.Struct("<Qii")  # struct cmsghdr { size_t len; int level; int type; }


def _cmsg_align(n: int) -> int:
    return (n + 7) & ~7


class _Header:
    """A user_msghdr read from the guest."""

    def __init__(self, proc: Task, addr: int) -> None:
        fields = MSGHDR.unpack(copy_in(proc.space, addr, MSGHDR.size))
        self.addr = addr
        self.name, namelen, self.iov, self.iovlen, self.control, self.controllen, _ = fields
        self.namelen = to_int32(namelen)
        if self.namelen < 0:
            raise SyscallError(errno.EINVAL, f"msg_namelen {self.namelen}")
        self.vectors, self.length = read_iovecs(proc, self.iov, self.iovlen)


def _control(proc: Task, sock: Socket, header: _Header) -> tuple[list[File], Creds | None]:
    """The descriptors and credentials a sendmsg carries (__scm_send): EINVAL for a
    malformed cmsg or too many descriptors, EBADF, EPERM for credentials not the
    sender's, ETOOMANYREFS past the descriptors the sandbox lets be in flight."""
    if not header.controllen or not isinstance(sock, UnixSocket):
        return [], None
    if header.controllen > OPTMEM_MAX:
        raise SyscallError(errno.ENOBUFS, f"msg_controllen {header.controllen}")
    buffer = copy_in(proc.space, header.control, header.controllen)
    rights, creds, offset = [], None, 0
    while offset + CMSGHDR.size <= len(buffer):
        length, level, kind = CMSGHDR.unpack_from(buffer, offset)
        if length < CMSGHDR.size or length > len(buffer) - offset:
            raise SyscallError(errno.EINVAL, f"cmsg_len {length}")
        body = buffer[offset + CMSGHDR.size : offset + length]
        if level == SOL_SOCKET:
            if kind == SCM_RIGHTS:
                rights += _rights(proc, body, len(rights))
            elif kind == SCM_CREDENTIALS:
                creds = _credentials(proc, body)
            else:
                raise SyscallError(errno.EINVAL, f"SOL_SOCKET cmsg type {kind}")
        offset += _cmsg_align(length)
    if rights and sock.net.in_flight + len(rights) > proc.files.limit:
        raise SyscallError(errno.ETOOMANYREFS, "too many descriptors in flight")
    return rights, creds


def _rights(proc: Task, body: bytes, already: int) -> list[File]:
    count = len(body) // INT.size
    if count == 0 or already + count > SCM_MAX_FD:
        raise SyscallError(errno.EINVAL, f"{already + count} descriptors in one message")
    return [proc.files.get(fd) for (fd,) in INT.iter_unpack(body[: count * INT.size])]


def _credentials(proc: Task, body: bytes) -> Creds:
    if len(body) != UCRED.size:
        raise SyscallError(errno.EINVAL, "SCM_CREDENTIALS is a struct ucred")
    creds = Creds(*UCRED.unpack(body))
    identity = proc.kernel.identity
    if identity.uid == 0:  # root may name any process and ids, if the process exists
        if creds.pid != proc.pid and creds.pid not in proc.kernel.processes:
            raise SyscallError(errno.ESRCH, f"no process {creds.pid}")
    elif creds != (proc.pid, identity.uid, identity.gid):  # scm_check_creds, unprivileged
        raise SyscallError(errno.EPERM, f"credentials {creds} are not the sender's")
    return creds


def _prepare_send(proc: Task, sock: Socket, header: _Header) -> tuple[bytes, bytes | None, list[File], Creds | None]:
    dest = read_sockaddr(proc, header.name, header.namelen)
    check_datagram_size(sock, header.length)
    rights, creds = _control(proc, sock, header)
    data = b"".join(copy_in(proc.space, base, n) for base, n in header.vectors if n)
    return data, dest, rights, creds


@syscall("sendmsg", "fd msg flags")
def sys_sendmsg(proc: Task, fd: int, msg: int, flags: int) -> int:
    sock = socket_at(proc, fd)
    flags &= 0xFFFF_FFFF
    data, dest, rights, creds = _prepare_send(proc, sock, _Header(proc, msg))
    return complete(lambda: sock.send(data, flags, dest, rights, creds), failed=sigpipe_on_epipe(proc, flags))


def _finish_recv(proc: Task, header: _Header, flags: int, got: Received) -> int:
    """Write what recvmsg got besides the data: the source address, the control messages
    (credentials, then descriptors installed here), msg_flags (MSG_CTRUNC if the control
    buffer was short), and the lengths."""
    try:
        if header.name and header.namelen:
            copy_out(proc.space, header.name, (got.source or b"")[: header.namelen])
        control, truncated = _control_out(proc, header.controllen, flags, got)
    finally:
        drop_files(got.rights)
    if control:
        copy_out(proc.space, header.control, control)
    msg_flags = got.msg_flags | (MSG_CTRUNC if truncated else 0)
    copy_out(proc.space, header.addr + NAMELEN_AT, INT.pack(len(got.source or b"")))
    copy_out(proc.space, header.addr + CONTROLLEN_AT, struct.pack("<Q", len(control)))
    copy_out(proc.space, header.addr + FLAGS_AT, INT.pack(msg_flags))
    return got.length


def _control_out(proc: Task, room: int, flags: int, got: Received) -> tuple[bytes, bool]:
    """The control messages that fit in `room` bytes (put_cmsg, scm_detach_fds) and
    whether any was cut; descriptors that do not fit are not installed."""
    out, truncated = bytearray(), False
    if got.creds is not None:
        record = _cmsg(SCM_CREDENTIALS, UCRED.pack(*got.creds))
        if len(record) > room - len(out):
            truncated = True
        else:
            out += record
    if got.rights:
        fit = max(0, (room - len(out) - CMSGHDR.size) // INT.size)
        fds = []
        for file in got.rights[:fit]:
            try:
                fds.append(proc.files.install(file, cloexec=bool(flags & MSG_CMSG_CLOEXEC)))
            except SyscallError:
                break
        truncated = truncated or len(fds) < len(got.rights)
        if fds:
            out += _cmsg(SCM_RIGHTS, b"".join(INT.pack(fd) for fd in fds))[: room - len(out)]
    return bytes(out), truncated


def _cmsg(kind: int, body: bytes) -> bytes:
    """One SOL_SOCKET control message, padded to CMSG_SPACE."""
    record = CMSGHDR.pack(CMSGHDR.size + len(body), SOL_SOCKET, kind) + body
    return record.ljust(_cmsg_align(len(record)), b"\0")


@syscall("recvmsg", "fd msg flags")
def sys_recvmsg(proc: Task, fd: int, msg: int, flags: int) -> int:
    sock = socket_at(proc, fd)
    flags &= 0xFFFF_FFFF
    header = _Header(proc, msg)
    n = sum(length for _, length in header.vectors)
    return complete(lambda: sock.recv(n, flags, scatter_into(proc, header.vectors)),
                     lambda got: _finish_recv(proc, header, flags, got))


@syscall("sendmmsg", "fd msgvec vlen flags")
def sys_sendmmsg(proc: Task, fd: int, msgvec: int, vlen: int, flags: int) -> int:
    """Send up to `vlen` messages, each as sendmsg would (sleeping if it must); the count
    sent, an error only if none was (__sys_sendmmsg)."""
    sock = socket_at(proc, fd)
    flags &= 0xFFFF_FFFF
    vlen = min(vlen & 0xFFFF_FFFF, UIO_MAXIOV)

    def one(i: int) -> int:
        data, dest, rights, creds = _prepare_send(proc, sock, _Header(proc, msgvec + i * MMSGHDR_SIZE))
        return complete(lambda: sock.send(data, flags, dest, rights, creds),
                         lambda n: _store_len(proc, msgvec, i, n), sigpipe_on_epipe(proc, flags))
    return _each_message(0, vlen, one, lambda: False)


def _each_message(i: int, vlen: int, one: Callable[[int], int], done: Callable[[], bool]) -> int:
    """Messages i.. of a sendmmsg or recvmmsg, each through `one(i)`, which may sleep;
    `done()` ends the call early (a timeout). After the first message, an error or a
    signal during a sleep ends the call with the count so far (do_recvmmsg, __sys_sendmmsg)."""
    if i == vlen or (i and done()):
        return i
    try:
        return complete(lambda: one(i), lambda _n: _each_message(i + 1, vlen, one, done))
    except SyscallError:
        if i == 0:
            raise
        return i
    except WouldBlock as sleeping:
        if i:
            _ends_with_count(sleeping, i)
        raise


def _ends_with_count(sleeping: WouldBlock, count: int) -> None:
    """Make a sleep for message `count` end the call with `count` if it fails or a signal
    cuts it short (the innermost sleep names the count; outer ones leave it)."""
    if sleeping.on_interrupt is None:
        sleeping.on_interrupt = lambda: count
    retry = sleeping.retry

    def retried() -> int:
        try:
            return retry()
        except SyscallError:
            return count
        except WouldBlock as again:
            _ends_with_count(again, count)
            raise
    sleeping.retry = retried


def _store_len(proc: Task, msgvec: int, i: int, n: int) -> int:
    copy_out(proc.space, msgvec + i * MMSGHDR_SIZE + MSG_LEN_AT, INT.pack(n))
    return n


@syscall("recvmmsg", "fd msgvec vlen flags timeout")
def sys_recvmmsg(proc: Task, fd: int, msgvec: int, vlen: int, flags: int, timeout: int) -> int:
    """Receive up to `vlen` messages, each as recvmsg would (sleeping if it must), the rest
    without sleeping once one came under MSG_WAITFORONE. The timeout is looked at after
    each message only, as Linux does (man 2 recvmmsg, BUGS)."""
    sock = socket_at(proc, fd)
    flags &= 0xFFFF_FFFF
    deadline = None
    if timeout:
        deadline = proc.kernel.monotonic() + read_timespec(proc.space, timeout) / 1e9
    vlen = min(vlen & 0xFFFF_FFFF, UIO_MAXIOV)

    def one(i: int) -> int:
        header = _Header(proc, msgvec + i * MMSGHDR_SIZE)
        n = sum(length for _, length in header.vectors)
        now = (flags & ~MSG_WAITFORONE) | (MSG_DONTWAIT if i and flags & MSG_WAITFORONE else 0)
        return complete(lambda: sock.recv(n, now, scatter_into(proc, header.vectors)),
                         lambda got: _store_len(proc, msgvec, i, _finish_recv(proc, header, now, got)))
    return _each_message(0, vlen, one, lambda: deadline is not None and proc.kernel.monotonic() >= deadline)

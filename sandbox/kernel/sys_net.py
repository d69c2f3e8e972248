"""Socket system calls (man 2 socket, socketpair, bind, listen, accept, connect, shutdown,
send, recv, sendmsg, recvmsg, sendmmsg, recvmmsg, getsockname, getpeername, getsockopt):
decode the guest's arguments as net/socket.c does, call the socket (sandbox.kernel.net),
copy results out. A call that sleeps finishes through the same code when it is retried
(`_complete`), so the copy-out, SIGPIPE and msghdr updates happen either way.
"""

from __future__ import annotations

import errno
import signal
import struct
from collections.abc import Callable

from sandbox import abi
from sandbox.errors import SyscallError, WouldBlock
from sandbox.kernel import signal_delivery
from sandbox.kernel.checked import read_timespec
from sandbox.kernel.files import File
from sandbox.kernel.net.base import (
    AF_INET,
    AF_INET6,
    AF_MAX,
    AF_UNIX,
    INT,
    MSG_CMSG_CLOEXEC,
    MSG_CTRUNC,
    MSG_DONTWAIT,
    MSG_NOSIGNAL,
    MSG_WAITFORONE,
    SCM_CREDENTIALS,
    SCM_RIGHTS,
    SOCK_CLOEXEC,
    SOCK_DGRAM,
    SOCK_MAX,
    SOCK_NONBLOCK,
    SOCK_RAW,
    SOCK_SEQPACKET,
    SOCK_STREAM,
    SOCK_TYPE_MASK,
    SOL_SOCKET,
    UCRED,
    Creds,
    Received,
    Socket,
    network_of,
)
from sandbox.kernel.net.host import open_host_socket
from sandbox.kernel.net.inet import IPPROTO_TCP, IPPROTO_UDP, InetSocket
from sandbox.kernel.net.unix import UnixSocket, socketpair
from sandbox.kernel.sigframe import pack_siginfo
from sandbox.kernel.sys_io import IOVEC, MAX_TRANSFER
from sandbox.kernel.syscalls import syscall, to_int32
from sandbox.kernel.task import Task
from sandbox.mm.uaccess import copy_in, copy_out

SOCKADDR_STORAGE = 128  # the largest address a call takes (EINVAL beyond)
SOMAXCONN = 4096  # /proc/sys/net/core/somaxconn: listen's backlog is clamped to it
UIO_MAXIOV = 1024
SCM_MAX_FD = 253  # descriptors in one SCM_RIGHTS message (include/net/scm.h)
OPTMEM_MAX = 20480  # /proc/sys/net/core/optmem_max: the largest control buffer sent
INT_MAX = 0x7FFF_FFFF
MAX_RW_COUNT = 0x7FFF_F000  # INT_MAX rounded down to a page: the most one transfer moves
TASK_SIZE_MAX = 0x7FFF_FFFF_F000  # the top of x86-64 user space (4-level paging)
OPTION_BYTES = 64  # the most of an option value any option reads
MSGHDR = struct.Struct("<QI4xQQQQi4x")  # struct user_msghdr, 56 bytes
MMSGHDR_SIZE = 64  # struct mmsghdr: a msghdr and an unsigned msg_len, padded
NAMELEN_AT, CONTROLLEN_AT, FLAGS_AT, MSG_LEN_AT = 8, 40, 48, 56
CMSGHDR = struct.Struct("<Qii")  # struct cmsghdr { size_t len; int level; int type; }
SHUTDOWN_BITS = {0: 1, 1: 2, 2: 3}  # SHUT_RD/WR/RDWR -> RCV/SEND shutdown bits


def _cmsg_align(n: int) -> int:
    return (n + 7) & ~7


# -- common decoding ----------------------------------------------------------------------


def _socket(proc: Task, fd: int) -> Socket:
    """The socket behind `fd` (EBADF, or ENOTSOCK for another kind of file)."""
    return proc.files.get_as(to_int32(fd), Socket, errno.ENOTSOCK, "a socket")


def _read_addr(proc: Task, addr: int, addrlen: int) -> bytes | None:
    """A socket address from the guest (move_addr_to_kernel): EINVAL for a length past
    sockaddr_storage or negative, EFAULT; None for no address (NULL or length 0)."""
    length = to_int32(addrlen)
    if not addr:
        return None
    if not 0 <= length <= SOCKADDR_STORAGE:
        raise SyscallError(errno.EINVAL, f"address length {length}")
    return copy_in(proc.space, addr, length) if length else None


def _write_addr(proc: Task, addr: int, addrlen_ptr: int, packed: bytes) -> None:
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


def _complete(call: Callable[[], object], finish: Callable[[object], int] = lambda r: r,
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
        sleeping.retry = lambda: _complete(inner, finish, failed)
        raise
    return finish(result)


def _sigpipe(proc: Task, flags: int) -> Callable[[SyscallError], None]:
    """EPIPE raises SIGPIPE unless MSG_NOSIGNAL (sk_stream_error, unix_stream_sendmsg)."""
    def failed(error: SyscallError) -> None:
        if error.errno == errno.EPIPE and not flags & MSG_NOSIGNAL and proc.alive:
            info = pack_siginfo(signal.SIGPIPE, abi.SI_USER, pid=proc.pid, uid=proc.kernel.identity.uid)
            signal_delivery.send_to_task(proc.kernel, proc, signal.SIGPIPE, info)  # send_sig(current)
    return failed


def _iovecs(proc: Task, iov: int, iovlen: int) -> tuple[list[tuple[int, int]], int]:
    """A msghdr's (base, length) pairs, capped at MAX_TRANSFER in total, and the length
    asked for: EMSGSIZE past UIO_MAXIOV vectors, EINVAL for a length past ssize_t."""
    if iovlen > UIO_MAXIOV:
        raise SyscallError(errno.EMSGSIZE, f"{iovlen} iovecs")
    out, total, asked = [], 0, 0
    for base, length in IOVEC.iter_unpack(copy_in(proc.space, iov, IOVEC.size * iovlen)):
        if length >> 63:
            raise SyscallError(errno.EINVAL, "iov_len overflows ssize_t")
        _check_range(base, length)
        take = min(length, MAX_TRANSFER - total)
        out.append((base, take))
        total, asked = total + take, asked + length
    return out, asked


def _check_range(addr: int, length: int) -> None:
    """A buffer (its length clamped to MAX_RW_COUNT, as import_ubuf does) must lie below the
    top of user space (access_ok): EFAULT otherwise, before anything is transferred."""
    if addr + min(length, MAX_RW_COUNT) > TASK_SIZE_MAX:
        raise SyscallError(errno.EFAULT, f"{length} bytes at {addr:#x} pass user space")


def _check_size(sock: Socket, length: int) -> None:
    """A datagram past the largest the socket sends is EMSGSIZE before any byte is read."""
    limit = sock.max_message()
    if limit is not None and length > limit:
        raise SyscallError(errno.EMSGSIZE, f"{length} bytes in one datagram")


def _scatter(proc: Task, vectors: list[tuple[int, int]]) -> Callable[[bytes], None]:
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


def _install(proc: Task, sock: Socket, flags: int) -> int:
    """A descriptor for a new socket; the socket is closed if none can be had (EMFILE)."""
    try:
        return proc.files.install(sock, cloexec=bool(flags & SOCK_CLOEXEC))
    except SyscallError:
        sock.close()
        raise


# -- making sockets -----------------------------------------------------------------------


def _make(proc: Task, domain: int, kind: int, protocol: int, flags: int) -> Socket:
    """A new socket of (domain, type, protocol), as __sock_create and each family's create."""
    net = network_of(proc.kernel)
    if not 0 <= domain < AF_MAX:
        raise SyscallError(errno.EAFNOSUPPORT, f"address family {domain}")
    if not 0 <= kind < SOCK_MAX:
        raise SyscallError(errno.EINVAL, f"socket type {kind}")
    if domain == AF_UNIX:
        if protocol not in (0, AF_UNIX):
            raise SyscallError(errno.EPROTONOSUPPORT, f"protocol {protocol}")
        kind = SOCK_DGRAM if kind == SOCK_RAW else kind  # unix_create does the same
        if kind not in (SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET):
            raise SyscallError(errno.ESOCKTNOSUPPORT, f"unix socket type {kind}")
        return UnixSocket(net, kind, flags)
    if domain in (AF_INET, AF_INET6):
        wanted = {SOCK_STREAM: IPPROTO_TCP, SOCK_DGRAM: IPPROTO_UDP}.get(kind)
        if kind == SOCK_RAW:
            raise SyscallError(errno.EPERM, "raw sockets need CAP_NET_RAW")
        if wanted is None:
            raise SyscallError(errno.ESOCKTNOSUPPORT, f"inet socket type {kind}")
        if protocol not in (0, wanted):
            raise SyscallError(errno.EPROTONOSUPPORT, f"protocol {protocol} for type {kind}")
        if proc.kernel.options.net == "host":  # --net host: a host socket (net/host.py)
            return open_host_socket(net, domain, kind, wanted, flags)
        return InetSocket(net, domain, kind, wanted, flags)
    raise SyscallError(errno.EAFNOSUPPORT, f"address family {domain} is not in the sandbox")


def _type_flags(type_: int) -> tuple[int, int]:
    """(socket type, SOCK_NONBLOCK|SOCK_CLOEXEC) of a type argument; EINVAL for others."""
    flags = type_ & ~SOCK_TYPE_MASK
    if flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC):
        raise SyscallError(errno.EINVAL, f"socket type flags {flags:#x}")
    return type_ & SOCK_TYPE_MASK, flags


@syscall("socket", "domain type protocol")
def sys_socket(proc: Task, domain: int, type_: int, protocol: int) -> int:
    kind, flags = _type_flags(to_int32(type_))
    return _install(proc, _make(proc, to_int32(domain), kind, to_int32(protocol), flags), flags)


@syscall("socketpair", "domain type protocol sv")
def sys_socketpair(proc: Task, domain: int, type_: int, protocol: int, sv: int) -> int:
    """Two connected unix sockets; other families have no pairs (EOPNOTSUPP)."""
    domain, protocol = to_int32(domain), to_int32(protocol)
    kind, flags = _type_flags(to_int32(type_))
    if domain != AF_UNIX:
        _make(proc, domain, kind, protocol, flags).close()
        raise SyscallError(errno.EOPNOTSUPP, f"no socket pairs in family {domain}")
    _make(proc, domain, kind, protocol, flags).close()  # the same checks as socket()
    pair = socketpair(network_of(proc.kernel), SOCK_DGRAM if kind == SOCK_RAW else kind, flags)
    fds: list[int] = []
    try:
        for sock in pair:
            fds.append(_install(proc, sock, flags))
        copy_out(proc.space, sv, struct.pack("<ii", *fds))
    except BaseException:
        for fd in fds:
            proc.files.close(fd)
        for sock in pair[len(fds):]:
            if not sock.closed and sock.refs == 0:
                sock.close()
        raise
    return 0


# -- names and connections ----------------------------------------------------------------


@syscall("bind", "fd addr addrlen")
def sys_bind(proc: Task, fd: int, addr: int, addrlen: int) -> int:
    sock = _socket(proc, fd)
    sock.bind(_read_addr(proc, addr, addrlen) or b"")
    return 0


@syscall("connect", "fd addr addrlen")
def sys_connect(proc: Task, fd: int, addr: int, addrlen: int) -> int:
    sock = _socket(proc, fd)
    return sock.connect(_read_addr(proc, addr, addrlen) or b"")


@syscall("listen", "fd backlog")
def sys_listen(proc: Task, fd: int, backlog: int) -> int:
    backlog = to_int32(backlog)
    _socket(proc, fd).listen(backlog if 0 <= backlog <= SOMAXCONN else SOMAXCONN)
    return 0


@syscall("accept4", "fd addr addrlen flags")
def sys_accept4(proc: Task, fd: int, addr: int, addrlen: int, flags: int) -> int:
    """A new descriptor for the next connection; its peer's address is copied out after
    (a fault then loses the connection, as Linux's do_accept)."""
    flags = to_int32(flags)
    if flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC):
        raise SyscallError(errno.EINVAL, f"accept4 flags {flags:#x}")
    sock = _socket(proc, fd)

    def finish(new: Socket) -> int:
        new.flags = (new.flags & ~SOCK_NONBLOCK) | (flags & SOCK_NONBLOCK)
        newfd = _install(proc, new, flags)
        try:
            _write_addr(proc, addr, addrlen, new.peername() if addr else b"")
        except SyscallError:
            proc.files.close(newfd)
            raise
        return newfd
    return _complete(lambda: sock.accept(flags), finish)


@syscall("accept", "fd addr addrlen")
def sys_accept(proc: Task, fd: int, addr: int, addrlen: int) -> int:
    return sys_accept4(proc, fd, addr, addrlen, 0)


@syscall("shutdown", "fd how")
def sys_shutdown(proc: Task, fd: int, how: int) -> int:
    sock = _socket(proc, fd)
    bits = SHUTDOWN_BITS.get(to_int32(how))
    if bits is None:
        raise SyscallError(errno.EINVAL, f"shutdown how {to_int32(how)}")
    sock.shutdown(bits)
    return 0


@syscall("getsockname", "fd addr addrlen")
def sys_getsockname(proc: Task, fd: int, addr: int, addrlen: int) -> int:
    name = _socket(proc, fd).sockname()
    _write_addr(proc, addr, addrlen, name) if addr else _null_addr(proc, addrlen)
    return 0


@syscall("getpeername", "fd addr addrlen")
def sys_getpeername(proc: Task, fd: int, addr: int, addrlen: int) -> int:
    name = _socket(proc, fd).peername()
    _write_addr(proc, addr, addrlen, name) if addr else _null_addr(proc, addrlen)
    return 0


def _null_addr(proc: Task, addrlen: int) -> None:
    """A NULL address with a length to fill: the copy of a non-zero length faults."""
    length = INT.unpack(copy_in(proc.space, addrlen, INT.size))[0]
    if length < 0:
        raise SyscallError(errno.EINVAL, f"address length {length}")
    if length:
        raise SyscallError(errno.EFAULT, "NULL address")


# -- data ---------------------------------------------------------------------------------


@syscall("sendto", "fd buf len flags addr addrlen")
def sys_sendto(proc: Task, fd: int, buf: int, length: int, flags: int, addr: int, addrlen: int) -> int:
    sock = _socket(proc, fd)
    flags &= 0xFFFF_FFFF
    dest = _read_addr(proc, addr, addrlen)
    _check_size(sock, length)
    _check_range(buf, length)
    data = copy_in(proc.space, buf, min(length, INT_MAX, MAX_TRANSFER))
    return _complete(lambda: sock.send(data, flags, dest, [], None), failed=_sigpipe(proc, flags))


@syscall("recvfrom", "fd buf len flags addr addrlen")
def sys_recvfrom(proc: Task, fd: int, buf: int, length: int, flags: int, addr: int, addrlen: int) -> int:
    sock = _socket(proc, fd)
    flags &= 0xFFFF_FFFF
    _check_range(buf, length)
    n = min(length, INT_MAX, MAX_TRANSFER)

    def finish(got: Received) -> int:
        _drop(got.rights)
        if addr:
            _write_addr(proc, addr, addrlen, got.source or b"")
        return got.length
    return _complete(lambda: sock.recv(n, flags, _scatter(proc, [(buf, n)])), finish)


def _drop(files: list[File]) -> None:
    for file in files:
        file.detach()


class _Header:
    """A user_msghdr read from the guest."""

    def __init__(self, proc: Task, addr: int) -> None:
        fields = MSGHDR.unpack(copy_in(proc.space, addr, MSGHDR.size))
        self.addr = addr
        self.name, namelen, self.iov, self.iovlen, self.control, self.controllen, _ = fields
        self.namelen = to_int32(namelen)
        if self.namelen < 0:
            raise SyscallError(errno.EINVAL, f"msg_namelen {self.namelen}")
        self.vectors, self.length = _iovecs(proc, self.iov, self.iovlen)


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
    dest = _read_addr(proc, header.name, header.namelen)
    _check_size(sock, header.length)
    rights, creds = _control(proc, sock, header)
    data = b"".join(copy_in(proc.space, base, n) for base, n in header.vectors if n)
    return data, dest, rights, creds


@syscall("sendmsg", "fd msg flags")
def sys_sendmsg(proc: Task, fd: int, msg: int, flags: int) -> int:
    sock = _socket(proc, fd)
    flags &= 0xFFFF_FFFF
    data, dest, rights, creds = _prepare_send(proc, sock, _Header(proc, msg))
    return _complete(lambda: sock.send(data, flags, dest, rights, creds), failed=_sigpipe(proc, flags))


def _finish_recv(proc: Task, header: _Header, flags: int, got: Received) -> int:
    """Write what recvmsg got besides the data: the source address, the control messages
    (credentials, then descriptors installed here), msg_flags (MSG_CTRUNC if the control
    buffer was short), and the lengths."""
    try:
        if header.name and header.namelen:
            copy_out(proc.space, header.name, (got.source or b"")[: header.namelen])
        control, truncated = _control_out(proc, header.controllen, flags, got)
    finally:
        _drop(got.rights)
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
    sock = _socket(proc, fd)
    flags &= 0xFFFF_FFFF
    header = _Header(proc, msg)
    n = sum(length for _, length in header.vectors)
    return _complete(lambda: sock.recv(n, flags, _scatter(proc, header.vectors)),
                     lambda got: _finish_recv(proc, header, flags, got))


@syscall("sendmmsg", "fd msgvec vlen flags")
def sys_sendmmsg(proc: Task, fd: int, msgvec: int, vlen: int, flags: int) -> int:
    """Send up to `vlen` messages, each as sendmsg would (sleeping if it must); the count
    sent, an error only if none was (__sys_sendmmsg)."""
    sock = _socket(proc, fd)
    flags &= 0xFFFF_FFFF
    vlen = min(vlen & 0xFFFF_FFFF, UIO_MAXIOV)

    def one(i: int) -> int:
        data, dest, rights, creds = _prepare_send(proc, sock, _Header(proc, msgvec + i * MMSGHDR_SIZE))
        return _complete(lambda: sock.send(data, flags, dest, rights, creds),
                         lambda n: _store_len(proc, msgvec, i, n), _sigpipe(proc, flags))
    return _each_message(0, vlen, one, lambda: False)


def _each_message(i: int, vlen: int, one: Callable[[int], int], done: Callable[[], bool]) -> int:
    """Messages i.. of a sendmmsg or recvmmsg, each through `one(i)`, which may sleep;
    `done()` ends the call early (a timeout). After the first message, an error or a
    signal during a sleep ends the call with the count so far (do_recvmmsg, __sys_sendmmsg)."""
    if i == vlen or (i and done()):
        return i
    try:
        return _complete(lambda: one(i), lambda _n: _each_message(i + 1, vlen, one, done))
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
    sock = _socket(proc, fd)
    flags &= 0xFFFF_FFFF
    deadline = None
    if timeout:
        deadline = proc.kernel.monotonic() + read_timespec(proc.space, timeout) / 1e9
    vlen = min(vlen & 0xFFFF_FFFF, UIO_MAXIOV)

    def one(i: int) -> int:
        header = _Header(proc, msgvec + i * MMSGHDR_SIZE)
        n = sum(length for _, length in header.vectors)
        now = (flags & ~MSG_WAITFORONE) | (MSG_DONTWAIT if i and flags & MSG_WAITFORONE else 0)
        return _complete(lambda: sock.recv(n, now, _scatter(proc, header.vectors)),
                         lambda got: _store_len(proc, msgvec, i, _finish_recv(proc, header, now, got)))
    return _each_message(0, vlen, one, lambda: deadline is not None and proc.kernel.monotonic() >= deadline)


# -- options ------------------------------------------------------------------------------


@syscall("setsockopt", "fd level optname optval optlen")
def sys_setsockopt(proc: Task, fd: int, level: int, optname: int, optval: int, optlen: int) -> int:
    sock = _socket(proc, fd)
    length = to_int32(optlen)
    if length < 0:
        raise SyscallError(errno.EINVAL, f"option length {length}")
    value = copy_in(proc.space, optval, min(length, OPTION_BYTES))
    sock.setsockopt(to_int32(level), to_int32(optname), value)
    return 0


@syscall("getsockopt", "fd level optname optval optlen")
def sys_getsockopt(proc: Task, fd: int, level: int, optname: int, optval: int, optlen: int) -> int:
    sock = _socket(proc, fd)
    length = INT.unpack(copy_in(proc.space, optlen, INT.size))[0]
    if length < 0:
        raise SyscallError(errno.EINVAL, f"option length {length}")
    value = sock.getsockopt(to_int32(level), to_int32(optname))[:length]
    copy_out(proc.space, optval, value)
    copy_out(proc.space, optlen, INT.pack(len(value)))
    return 0

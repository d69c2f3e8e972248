"""Socket system calls (man 2 socket, socketpair, bind, listen, accept, connect, shutdown,
sendto, recvfrom, getsockname, getpeername, getsockopt, setsockopt): decode the guest's
arguments as net/socket.c does, call the socket (sandbox.kernel.net), copy results out. A
call that sleeps finishes through the same code when it is retried (`netargs.complete`),
so the copy-out and SIGPIPE happen either way. The msghdr calls are in sys_netmsg.py.
"""

from __future__ import annotations

import errno
import struct

from sandbox.errors import SyscallError
from sandbox.kernel.net.base import (
    AF_INET,
    AF_INET6,
    AF_MAX,
    AF_UNIX,
    INT,
    SOCK_CLOEXEC,
    SOCK_DGRAM,
    SOCK_MAX,
    SOCK_NONBLOCK,
    SOCK_RAW,
    SOCK_SEQPACKET,
    SOCK_STREAM,
    SOCK_TYPE_MASK,
    Received,
    Socket,
    network_of,
)
from sandbox.kernel.net.host import open_host_socket
from sandbox.kernel.net.inet import IPPROTO_TCP, IPPROTO_UDP, InetSocket
from sandbox.kernel.net.unix import UnixSocket, socketpair
from sandbox.kernel.netargs import (
    check_datagram_size,
    check_user_range,
    complete,
    drop_files,
    read_sockaddr,
    scatter_into,
    sigpipe_on_epipe,
    socket_at,
    write_sockaddr,
)
from sandbox.kernel.sys_io import MAX_TRANSFER
from sandbox.kernel.syscalls import syscall, to_int32
from sandbox.kernel.task import Task
from sandbox.mm.uaccess import copy_in, copy_out

SOMAXCONN = 4096  # /proc/sys/net/core/somaxconn: listen's backlog is clamped to it
INT_MAX = 0x7FFF_FFFF
OPTION_BYTES = 64  # the most of an option value any option reads
SHUTDOWN_BITS = {0: 1, 1: 2, 2: 3}  # SHUT_RD/WR/RDWR -> RCV/SEND shutdown bits


# -- common decoding ----------------------------------------------------------------------


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
    sock = socket_at(proc, fd)
    sock.bind(read_sockaddr(proc, addr, addrlen) or b"")
    return 0


@syscall("connect", "fd addr addrlen")
def sys_connect(proc: Task, fd: int, addr: int, addrlen: int) -> int:
    sock = socket_at(proc, fd)
    return sock.connect(read_sockaddr(proc, addr, addrlen) or b"")


@syscall("listen", "fd backlog")
def sys_listen(proc: Task, fd: int, backlog: int) -> int:
    backlog = to_int32(backlog)
    socket_at(proc, fd).listen(backlog if 0 <= backlog <= SOMAXCONN else SOMAXCONN)
    return 0


@syscall("accept4", "fd addr addrlen flags")
def sys_accept4(proc: Task, fd: int, addr: int, addrlen: int, flags: int) -> int:
    """A new descriptor for the next connection; its peer's address is copied out after
    (a fault then loses the connection, as Linux's do_accept)."""
    flags = to_int32(flags)
    if flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC):
        raise SyscallError(errno.EINVAL, f"accept4 flags {flags:#x}")
    sock = socket_at(proc, fd)

    def finish(new: Socket) -> int:
        new.flags = (new.flags & ~SOCK_NONBLOCK) | (flags & SOCK_NONBLOCK)
        newfd = _install(proc, new, flags)
        try:
            write_sockaddr(proc, addr, addrlen, new.peername() if addr else b"")
        except SyscallError:
            proc.files.close(newfd)
            raise
        return newfd
    return complete(lambda: sock.accept(flags), finish)


@syscall("accept", "fd addr addrlen")
def sys_accept(proc: Task, fd: int, addr: int, addrlen: int) -> int:
    return sys_accept4(proc, fd, addr, addrlen, 0)


@syscall("shutdown", "fd how")
def sys_shutdown(proc: Task, fd: int, how: int) -> int:
    sock = socket_at(proc, fd)
    bits = SHUTDOWN_BITS.get(to_int32(how))
    if bits is None:
        raise SyscallError(errno.EINVAL, f"shutdown how {to_int32(how)}")
    sock.shutdown(bits)
    return 0


@syscall("getsockname", "fd addr addrlen")
def sys_getsockname(proc: Task, fd: int, addr: int, addrlen: int) -> int:
    name = socket_at(proc, fd).sockname()
    write_sockaddr(proc, addr, addrlen, name) if addr else _null_addr(proc, addrlen)
    return 0


@syscall("getpeername", "fd addr addrlen")
def sys_getpeername(proc: Task, fd: int, addr: int, addrlen: int) -> int:
    name = socket_at(proc, fd).peername()
    write_sockaddr(proc, addr, addrlen, name) if addr else _null_addr(proc, addrlen)
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
    sock = socket_at(proc, fd)
    flags &= 0xFFFF_FFFF
    dest = read_sockaddr(proc, addr, addrlen)
    check_datagram_size(sock, length)
    check_user_range(buf, length)
    data = copy_in(proc.space, buf, min(length, INT_MAX, MAX_TRANSFER))
    return complete(lambda: sock.send(data, flags, dest, [], None), failed=sigpipe_on_epipe(proc, flags))


@syscall("recvfrom", "fd buf len flags addr addrlen")
def sys_recvfrom(proc: Task, fd: int, buf: int, length: int, flags: int, addr: int, addrlen: int) -> int:
    sock = socket_at(proc, fd)
    flags &= 0xFFFF_FFFF
    check_user_range(buf, length)
    n = min(length, INT_MAX, MAX_TRANSFER)

    def finish(got: Received) -> int:
        drop_files(got.rights)
        if addr:
            write_sockaddr(proc, addr, addrlen, got.source or b"")
        return got.length
    return complete(lambda: sock.recv(n, flags, scatter_into(proc, [(buf, n)])), finish)


# -- options ------------------------------------------------------------------------------


@syscall("setsockopt", "fd level optname optval optlen")
def sys_setsockopt(proc: Task, fd: int, level: int, optname: int, optval: int, optlen: int) -> int:
    sock = socket_at(proc, fd)
    length = to_int32(optlen)
    if length < 0:
        raise SyscallError(errno.EINVAL, f"option length {length}")
    value = copy_in(proc.space, optval, min(length, OPTION_BYTES))
    sock.setsockopt(to_int32(level), to_int32(optname), value)
    return 0


@syscall("getsockopt", "fd level optname optval optlen")
def sys_getsockopt(proc: Task, fd: int, level: int, optname: int, optval: int, optlen: int) -> int:
    sock = socket_at(proc, fd)
    length = INT.unpack(copy_in(proc.space, optlen, INT.size))[0]
    if length < 0:
        raise SyscallError(errno.EINVAL, f"option length {length}")
    value = sock.getsockopt(to_int32(level), to_int32(optname))[:length]
    copy_out(proc.space, optval, value)
    copy_out(proc.space, optlen, INT.pack(len(value)))
    return 0

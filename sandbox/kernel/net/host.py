"""AF_INET and AF_INET6 sockets backed by host sockets: `--net host` (man 7 ip, tcp, udp).

Only with `sandbox run --net host`; by default guest inet sockets live on the sandbox's own
loopback network (inet.py) and no host socket exists. A `HostSocket` is a thin adapter:
the guest's own bytes (socket addresses, option values, data) go to the host kernel as
they are, through libc, and the host's answer is the guest's, errno included. So the
sandbox never parses a guest address for the host: whatever it holds, the host reads it
as an address of the socket's (inet) family.

Invariants:
- The host descriptor is always non-blocking and close-on-exec, and every host call
  passes MSG_DONTWAIT (and MSG_NOSIGNAL: EPIPE is the guest's SIGPIPE, never the host's).
  A guest call that must wait sleeps in the scheduler with the host descriptor in its
  `host_waits` (POLLIN or POLLOUT), or answers EAGAIN when the guest asked not to wait;
  the sandbox itself never blocks on the network.
- Each open HostSocket holds one unit of the sandbox's host-file budget (ENFILE beyond)
  and SOCKET_COST of its socket budget, from its creation to its close; its descriptor
  counts against the process's descriptor limit (EMFILE) like any other.
- Only allow-listed options reach the host (`HOST_OPTIONS`); the rest are kept in the
  guest-side record (base.Socket) or refused (ENOPROTOOPT). Options that would let the
  guest make the host hold more than it grants an unprivileged user (SO_*BUFFORCE,
  SO_MARK, SO_BINDTODEVICE) or block the sandbox (a lingering close) never reach it.
- Raw, packet and netlink sockets are never made (sys_net refuses them first).

poll, select and epoll give the scheduler its host descriptor (`host_fd`), so an idle
sandbox wakes when the host socket becomes ready.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import select
import termios
from typing import TYPE_CHECKING

from sandbox.errors import SyscallError, WouldBlock
from sandbox.kernel.files import POLLERR, POLLHUP, POLLNVAL, POLLOUT, File
from sandbox.kernel.hostfiles import HostFd
from sandbox.kernel.net.base import (
    INT,
    LINGER,
    MSG_DONTWAIT,
    MSG_NOSIGNAL,
    MSG_PEEK,
    MSG_TRUNC,
    MSG_WAITALL,
    SO_ACCEPTCONN,
    SO_BROADCAST,
    SO_DOMAIN,
    SO_DONTROUTE,
    SO_ERROR,
    SO_KEEPALIVE,
    SO_LINGER,
    SO_OOBINLINE,
    SO_PROTOCOL,
    SO_RCVBUF,
    SO_RCVLOWAT,
    SO_REUSEADDR,
    SO_REUSEPORT,
    SO_SNDBUF,
    SO_TYPE,
    SOCK_CLOEXEC,
    SOCK_NONBLOCK,
    SOCK_STREAM,
    SOCKET_COST,
    SOL_SOCKET,
    Again,
    Creds,
    Network,
    Received,
    Sink,
    Socket,
)

if TYPE_CHECKING:
    from sandbox.kernel.accounting import Budget

IPPROTO_IP, IPPROTO_TCP, IPPROTO_IPV6 = 0, 6, 41
MSG_OOB, MSG_DONTROUTE, MSG_EOR, MSG_CONFIRM, MSG_MORE = 0x1, 0x4, 0x80, 0x800, 0x8000
#: Flags a guest's send or receive passes on to the host; the others are the sandbox's
#: business (MSG_DONTWAIT, MSG_WAITALL, MSG_NOSIGNAL) or are dropped, as Linux ignores
#: flags a protocol does not know (MSG_ZEROCOPY, MSG_FASTOPEN, MSG_ERRQUEUE are not given).
SEND_FLAGS = MSG_OOB | MSG_DONTROUTE | MSG_EOR | MSG_CONFIRM | MSG_MORE
RECV_FLAGS = MSG_OOB | MSG_PEEK | MSG_TRUNC
#: The options the host answers (level, name). SO_ERROR, SO_TYPE... are read-only there.
HOST_OPTIONS = frozenset(
    [(SOL_SOCKET, name) for name in (SO_REUSEADDR, SO_TYPE, SO_ERROR, SO_DONTROUTE, SO_BROADCAST, SO_SNDBUF,
                                     SO_RCVBUF, SO_KEEPALIVE, SO_OOBINLINE, SO_REUSEPORT, SO_RCVLOWAT,
                                     SO_ACCEPTCONN, SO_PROTOCOL, SO_DOMAIN)]
    # TCP_NODELAY, MAXSEG, CORK, KEEPIDLE, KEEPINTVL, KEEPCNT, SYNCNT, LINGER2, DEFER_ACCEPT,
    # WINDOW_CLAMP, INFO, QUICKACK, CONGESTION, USER_TIMEOUT, NOTSENT_LOWAT (include/uapi/linux/tcp.h)
    + [(IPPROTO_TCP, name) for name in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 18, 25)]
    # IP_TOS, IP_TTL, IP_MTU_DISCOVER, IP_RECVERR, IP_MULTICAST_TTL, IP_MULTICAST_LOOP (in.h)
    + [(IPPROTO_IP, name) for name in (1, 2, 10, 11, 33, 34)]
    # IPV6_UNICAST_HOPS, IPV6_MULTICAST_HOPS, IPV6_MULTICAST_LOOP, IPV6_V6ONLY, IPV6_TCLASS (in6.h)
    + [(IPPROTO_IPV6, name) for name in (16, 18, 19, 26, 67)])
SOCKADDR_MAX = 128  # sizeof(struct sockaddr_storage)
OPTION_MAX = 256  # room for the largest allow-listed answer (struct tcp_info is 232 bytes)
RECV_CHUNK = 1 << 16  # bytes one host receive takes (a datagram's most, with MSG_TRUNC)
SEND_ROOM = 1 << 16  # what sendfile/splice read ahead for a socket that polls writable

_libc = ctypes.CDLL(None, use_errno=True)
_socklen_p = ctypes.POINTER(ctypes.c_uint32)
for _name, _args in {
    "socket": (ctypes.c_int, ctypes.c_int, ctypes.c_int),
    "bind": (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32),
    "connect": (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32),
    "listen": (ctypes.c_int, ctypes.c_int),
    "accept4": (ctypes.c_int, ctypes.c_void_p, _socklen_p, ctypes.c_int),
    "shutdown": (ctypes.c_int, ctypes.c_int),
    "getsockname": (ctypes.c_int, ctypes.c_void_p, _socklen_p),
    "getpeername": (ctypes.c_int, ctypes.c_void_p, _socklen_p),
    "getsockopt": (ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p, _socklen_p),
    "setsockopt": (ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32),
    "sendto": (ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32),
    "recvfrom": (ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p, _socklen_p),
}.items():
    getattr(_libc, _name).argtypes = _args
    getattr(_libc, _name).restype = ctypes.c_ssize_t if _name in ("sendto", "recvfrom") else ctypes.c_int


def _host(name: str, *args) -> int:
    """libc's `name(*args)`; a failure is the guest's SyscallError with the host's errno."""
    result = getattr(_libc, name)(*args)
    if result < 0:
        error = ctypes.get_errno() or errno.EIO
        raise SyscallError(error, f"host {name}: {errno.errorcode.get(error, error)}")
    return result


def _addr(addr: bytes | None) -> tuple[bytes | None, int]:
    """A guest sockaddr as libc takes it: (buffer, length); (NULL, 0) for none."""
    return (addr, len(addr)) if addr else (None, 0)


def open_host_socket(net: Network, family: int, kind: int, protocol: int, flags: int) -> HostSocket:
    """socket(2) on the host for a guest AF_INET/AF_INET6 socket (the caller checked the
    family, type and protocol): ENFILE past the host-file budget, ENOBUFS past the socket
    budget, or the host's own refusal (EAFNOSUPPORT where the host has no IPv6)."""
    budget = net.kernel.budgets.host_files
    budget.check(1)
    net.budget.check(SOCKET_COST)
    fd = _host("socket", family, kind | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol)
    return HostSocket(net, family, kind, protocol, flags, fd, budget)


class HostSocket(HostFd, Socket):
    """A guest inet socket whose every operation is the host socket `fd`'s (HostFd gives
    the host calls; Socket the guest-side record, names and the send/recv plumbing)."""

    def __init__(self, net: Network, family: int, kind: int, protocol: int, flags: int, fd: int,
                 budget: Budget) -> None:
        """Wrap the host socket `fd` (non-blocking, close-on-exec), which it now owns: one
        unit of `budget` and SOCKET_COST are charged here, and if either cannot be, `fd` is
        closed and the error raised."""
        try:
            budget.charge(1)
        except SyscallError:
            os.close(fd)
            raise
        try:
            Socket.__init__(self, net, kind, protocol, flags)  # charges SOCKET_COST
        except SyscallError:
            budget.release(1)
            os.close(fd)
            raise
        self.fd = fd
        self.family = family
        self.host_files = budget
        self.drained = 0  # calls that found nothing to read or no room (wakeups)
        self.name = f"socket:[{self.ino}]"
        self._poller = select.poll()
        self._poller.register(fd, 0xFFFF)  # every event; each caller masks its own

    # -- what the host gives -------------------------------------------------------------

    stat = Socket.stat  # (not HostFd's: the guest sees the sandbox's socket inode)

    @property
    def host_fd(self) -> int:  # type: ignore[override]
        return self.fd

    def poll(self, events: int) -> int:
        """The host socket's readiness now (poll(2) with no wait): tcp_poll, udp_poll."""
        ready = self._poller.poll(0)
        return ready[0][1] & (events | POLLERR | POLLHUP | POLLNVAL) if ready and not self.closed else 0

    def room(self) -> int:
        """What sendfile or splice may read ahead for this socket: the call sleeps (or
        answers EAGAIN) while the host socket has no room."""
        if self.poll(POLLOUT | POLLERR | POLLHUP):
            return SEND_ROOM
        if self.nonblocking(0):
            raise SyscallError(errno.EAGAIN, f"{self.name} is full")
        raise WouldBlock(f"{self.name} is full", host_waits=((self.fd, POLLOUT),))

    def wakeups(self) -> int:
        """How often a call found the host socket drained (or full): edge-triggered epoll
        then reports it again as soon as it is ready, which is when Linux's wake-up would
        have come (data from the host network moves no counter of the sandbox's, but an
        edge-triggered reader always drains to EAGAIN before it waits again)."""
        return self.drained

    def queued_bytes(self) -> int:
        """FIONREAD, as the host counts it."""
        return INT.unpack(self.host(fcntl.ioctl, termios.FIONREAD, bytes(INT.size)))[0]

    def found_nothing(self) -> None:
        self.drained += 1

    # -- names and connections -------------------------------------------------------------

    def bind(self, addr: bytes) -> None:
        """The host binds: EADDRINUSE, EADDRNOTAVAIL, EACCES below port 1024 unless the
        host lets this user bind there (net.ipv4.ip_unprivileged_port_start)."""
        _host("bind", self.fd, *_addr(addr))

    def listen(self, backlog: int) -> None:
        _host("listen", self.fd, backlog)
        self.listening = True

    def connect(self, addr: bytes) -> int:
        """A connection by the host: at once (UDP, or a refusal), EINPROGRESS for a
        non-blocking guest (SO_ERROR tells the end), else a sleep until the host socket is
        writable and SO_ERROR's answer (EINPROGRESS past SO_SNDTIMEO, as Linux's)."""
        try:
            return _host("connect", self.fd, *_addr(addr))
        except SyscallError as error:
            if error.errno != errno.EINPROGRESS or self.nonblocking(0):
                raise

        def attempt() -> int:
            if not self.poll(POLLOUT | POLLERR | POLLHUP):
                raise Again
            failure = self.take_host_error()
            if failure:
                raise SyscallError(failure, "connect failed")
            return 0
        return self.blocking(attempt, 0, True, "connect: the connection is under way", timeout_errno=errno.EINPROGRESS)

    def take_host_error(self) -> int:
        """SO_ERROR of the host socket, which reading clears (sock_error)."""
        return INT.unpack(self._get_host(SOL_SOCKET, SO_ERROR)[: INT.size])[0]

    def accept(self, flags: int) -> Socket:
        """The next connection from the host's queue, as a new HostSocket; ENFILE/ENOBUFS
        past the budgets with the connection left queued (checked before it is taken)."""
        def attempt() -> Socket:
            self.host_files.check(1)
            self.net.budget.check(SOCKET_COST)
            try:
                fd = _host("accept4", self.fd, None, None, SOCK_NONBLOCK | SOCK_CLOEXEC)
            except SyscallError as error:
                if error.errno == errno.EAGAIN:
                    raise Again from None
                raise
            return HostSocket(self.net, self.family, self.kind, self.protocol, 0, fd, self.host_files)
        return self.blocking(attempt, 0, False, "accept: no connection yet")

    def shutdown(self, how: int) -> None:
        """`how` is sys_net's RCV_SHUTDOWN/SEND_SHUTDOWN bits: SHUT_RD, SHUT_WR, SHUT_RDWR
        are those bits less one."""
        _host("shutdown", self.fd, how - 1)

    def sockname(self) -> bytes:
        return self._name_of("getsockname")

    def peername(self) -> bytes:
        return self._name_of("getpeername")

    def _name_of(self, call: str) -> bytes:
        buffer = ctypes.create_string_buffer(SOCKADDR_MAX)
        length = ctypes.c_uint32(SOCKADDR_MAX)
        _host(call, self.fd, buffer, ctypes.byref(length))
        return buffer.raw[: min(length.value, SOCKADDR_MAX)]

    # -- transfers ---------------------------------------------------------------------------

    def send(self, data: bytes, flags: int, dest: bytes | None, rights: list[File], creds: Creds | None) -> int:
        """A datagram, or a stream's bytes: all of them unless the guest does not wait (then
        what the host took, EAGAIN for nothing), a timeout or a signal ends the sleep with
        some sent, or an error comes after some were (the count; the error is the next
        call's, as tcp_sendmsg leaves it)."""
        host_flags = (flags & SEND_FLAGS) | MSG_DONTWAIT | MSG_NOSIGNAL
        dest_buffer, dest_length = _addr(dest)
        stream = self.kind == SOCK_STREAM
        done = 0

        def attempt() -> int:
            nonlocal done
            while True:
                try:
                    done += _host("sendto", self.fd, data[done:], len(data) - done, host_flags, dest_buffer,
                                  dest_length)
                except SyscallError as error:
                    if error.errno == errno.EAGAIN:
                        raise Again from None
                    if done:
                        return done
                    raise
                if not stream or done >= len(data):
                    return done
        return self.blocking(attempt, flags, True, "send: the host socket is full", partial=lambda: done or None)

    def recv(self, n: int, flags: int, sink: Sink) -> Received:
        """What the host socket has: a datagram (its full length with MSG_TRUNC, and
        MSG_TRUNC in msg_flags if it was cut), or a stream's bytes (all `n` with
        MSG_WAITALL unless the end, an error or a signal comes first; MSG_TRUNC discards)."""
        if self.kind != SOCK_STREAM:
            return self.blocking(lambda: self._recv_datagram(n, flags, sink), flags, False, "no datagram yet")
        waitall = bool(flags & MSG_WAITALL) and not flags & MSG_PEEK
        got = 0

        def attempt() -> Received:
            nonlocal got
            while True:
                try:
                    data, _ = self._recv_host(min(n - got, RECV_CHUNK), flags & RECV_FLAGS)
                except SyscallError as error:
                    if error.errno == errno.EAGAIN:
                        raise Again from None
                    if got:
                        return Received(got)  # the error is the next call's
                    raise
                if not flags & MSG_TRUNC:
                    sink(data)
                got += len(data)
                if not data or got >= n or not waitall:
                    return Received(got)
        return self.blocking(attempt, flags, False, "no data yet", partial=lambda: got or None, as_result=Received)

    def _recv_datagram(self, n: int, flags: int, sink: Sink) -> Received:
        """One datagram, asked of the host with MSG_TRUNC so its full length is known."""
        try:
            data, source = self._recv_host(min(n, RECV_CHUNK), (flags & RECV_FLAGS) | MSG_TRUNC)
        except SyscallError as error:
            if error.errno == errno.EAGAIN:
                raise Again from None
            raise
        length, data = len(data), data[:n]
        sink(data)
        cut = MSG_TRUNC if length > n else 0
        return Received(length if flags & MSG_TRUNC else len(data), source, None, [], cut)

    def _recv_host(self, n: int, flags: int) -> tuple[bytes, bytes | None]:
        """One non-blocking host receive: (the bytes, or with MSG_TRUNC on a datagram as
        many as its full length, padded; the source address or None)."""
        buffer = ctypes.create_string_buffer(max(n, 1))
        source = ctypes.create_string_buffer(SOCKADDR_MAX)
        length = ctypes.c_uint32(SOCKADDR_MAX)
        got = _host("recvfrom", self.fd, buffer, n, flags | MSG_DONTWAIT, source, ctypes.byref(length))
        data = buffer.raw[: min(got, n)].ljust(got, b"\0")
        return data, source.raw[: min(length.value, SOCKADDR_MAX)] or None

    # -- options ---------------------------------------------------------------------------

    def setsockopt(self, level: int, name: int, value: bytes) -> None:
        """Allow-listed options are the host's; SO_LINGER is kept here and the host only
        told of an abortive close ({1, 0}: a reset), since a lingering close would block
        the sandbox; the rest go to the guest-side record (or ENOPROTOOPT)."""
        if (level, name) == (SOL_SOCKET, SO_LINGER):
            Socket.setsockopt(self, level, name, value)
            host = LINGER.pack(1, 0) if self.linger == (1, 0) else LINGER.pack(0, 0)
            _host("setsockopt", self.fd, level, name, host, len(host))
        elif (level, name) in HOST_OPTIONS:
            _host("setsockopt", self.fd, level, name, value, len(value))
        else:
            Socket.setsockopt(self, level, name, value)

    def getsockopt(self, level: int, name: int) -> bytes:
        if (level, name) in HOST_OPTIONS:
            return self._get_host(level, name)
        return Socket.getsockopt(self, level, name)

    def _get_host(self, level: int, name: int) -> bytes:
        buffer = ctypes.create_string_buffer(OPTION_MAX)
        length = ctypes.c_uint32(OPTION_MAX)
        _host("getsockopt", self.fd, level, name, buffer, ctypes.byref(length))
        return buffer.raw[: min(length.value, OPTION_MAX)]

    def proto_option(self, level: int, name: int, value: bytes | None) -> bytes | None:
        raise SyscallError(errno.ENOPROTOOPT, f"option {level}/{name} is not given to the host")

    # -- end -----------------------------------------------------------------------------------

    def close(self) -> None:
        """The last descriptor went: the host socket closes (never lingering), and the
        budgets are given back."""
        self._poller.unregister(self.fd)
        os.close(self.fd)
        self.host_files.release(1)
        Socket.close(self)


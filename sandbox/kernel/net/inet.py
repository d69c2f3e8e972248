"""AF_INET and AF_INET6 sockets on the sandbox's own loopback network (man 7 ip, ipv6, tcp,
udp): the only interface is lo, with 127.0.0.0/8 and ::1; nothing reaches the host.

Addresses are kept as 16-byte IPv6 addresses (an IPv4 address v4-mapped, ::ffff:a.b.c.d),
so one port table serves both families: a socket bound to :: without IPV6_V6ONLY also
covers every IPv4 address, as Linux's. TCP connects synchronously (the listener's end is
made at once and queued for accept, or the connection waits for room in the backlog);
a segment to a closed port is refused (ECONNREFUSED); closing with unread data resets the
peer (ECONNRESET). There is no TIME_WAIT: a port is free again as soon as it is closed.
"""

from __future__ import annotations

import errno
import struct
from collections import deque

from sandbox.errors import SyscallError
from sandbox.kernel.files import POLLIN, File
from sandbox.kernel.net.base import (
    AF_INET,
    AF_INET6,
    AF_UNSPEC,
    INT,
    MESSAGE_OVERHEAD,
    MSG_OOB,
    MSG_TRUNC,
    RCV_SHUTDOWN,
    SEND_SHUTDOWN,
    SHUTDOWN_MASK,
    SO_REUSEADDR,
    SO_REUSEPORT,
    SOCK_STREAM,
    Again,
    Creds,
    Message,
    Network,
    Received,
    Sink,
    Socket,
    read_message,
    recv_stream,
    stream_poll,
)

IPPROTO_IP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_IPV6 = 0, 6, 17, 41
SOCKADDR_IN = struct.Struct(">H2s4s8x")  # family is host order: packed apart
SOCKADDR_IN_SIZE, SOCKADDR_IN6_SIZE, SIN6_LEN_RFC2133 = 16, 28, 24
V4_MAPPED = bytes(10) + b"\xff\xff"
ANY4, ANY6 = V4_MAPPED + bytes(4), bytes(16)
LOOP4, LOOP6 = V4_MAPPED + b"\x7f\0\0\1", bytes(15) + b"\1"
EPHEMERAL_FIRST, EPHEMERAL_LAST = 32768, 60999  # /proc/sys/net/ipv4/ip_local_port_range
PROT_SOCK = 1024  # ports below need privilege (ip_unprivileged_port_start)
MAX_UDP = {AF_INET: 65507, AF_INET6: 65527}  # 65535 less the IP and UDP headers
TCP_SNDBUF, TCP_RCVBUF = 16384, 131072  # tcp_wmem[1], tcp_rmem[1]
TCP_SEGMENT = 65483  # the loopback MSS: one queued message at most
TCP_NODELAY, TCP_MAXSEG, TCP_CORK, TCP_CONGESTION = 1, 2, 3, 13
IPV6_V6ONLY = 26
#: Protocol options kept as given (those that are flags as 0/1), with their defaults.
OPTION_DEFAULTS = {
    (IPPROTO_IP, 1): 0, (IPPROTO_IP, 2): 64, (IPPROTO_IP, 8): 0, (IPPROTO_IP, 10): 1, (IPPROTO_IP, 11): 0,
    (IPPROTO_IP, 13): 0, (IPPROTO_IP, 15): 0, (IPPROTO_IP, 24): 0, (IPPROTO_IP, 33): 1, (IPPROTO_IP, 34): 1,
    (IPPROTO_IPV6, 16): 64, (IPPROTO_IPV6, 19): 1, (IPPROTO_IPV6, 25): 0, (IPPROTO_IPV6, 49): 0,
    (IPPROTO_IPV6, 67): 0, (IPPROTO_IPV6, IPV6_V6ONLY): 0,
}
TCP_DEFAULTS = {TCP_NODELAY: 0, TCP_MAXSEG: 536, TCP_CORK: 0, 4: 7200, 5: 75, 6: 9, 7: 6, 8: 60, 9: 0, 10: 0,
                12: 1, 18: 0, 23: 0, 25: 0xFFFF_FFFF}
FLAG_OPTIONS = {(IPPROTO_TCP, TCP_NODELAY), (IPPROTO_TCP, TCP_CORK), (IPPROTO_IPV6, IPV6_V6ONLY)}
CONGESTION = (b"cubic", b"reno")
TCP_CA_NAME_MAX = 16


def is_v4(ip: bytes) -> bool:
    return ip[:12] == V4_MAPPED


def is_any(ip: bytes) -> bool:
    return ip in (ANY4, ANY6)


def is_local(ip: bytes) -> bool:
    """An address of the sandbox's only interface (lo), or the wildcard."""
    return ip in (ANY6, LOOP6, ANY4) or (is_v4(ip) and ip[12] == 127)


def route(ip: bytes) -> bytes:
    """Where a connection to `ip` goes: the wildcard means this host (Linux connects to
    0.0.0.0 as to 127.0.0.1); ENETUNREACH past loopback (no other route exists)."""
    if ip == ANY4:
        return LOOP4
    if ip == ANY6:
        return LOOP6
    if not is_local(ip):
        raise SyscallError(errno.ENETUNREACH, "the sandbox's network is loopback only")
    return ip


class InetSocket(Socket):
    """A TCP or UDP socket of family AF_INET or AF_INET6."""

    def __init__(self, net: Network, family: int, kind: int, protocol: int, flags: int) -> None:
        super().__init__(net, kind, protocol, flags)
        self.family = family
        self.tcp = kind == SOCK_STREAM
        self.local: tuple[bytes, int] | None = None  # (address, port) bound
        self.registered = False  # in net.ports
        self.remote: tuple[bytes, int] | None = None
        self.peer: InetSocket | None = None
        self.state = "closed"  # TCP: closed, connecting, established
        self.connecting_call = False  # a non-blocking connect answered EINPROGRESS
        self.pending: deque[InetSocket] = deque()
        self.backlog = 0
        self.proto_options: dict[tuple[int, int], int] = {}
        self.congestion = CONGESTION[0]
        if self.tcp:
            self.sndbuf, self.rcvbuf = TCP_SNDBUF, TCP_RCVBUF

    # -- addresses ------------------------------------------------------------------------

    def parse(self, addr: bytes, binding: bool) -> tuple[bytes, int]:
        """(address, port) of a sockaddr_in / sockaddr_in6 for this socket's family."""
        if self.family == AF_INET:
            if len(addr) < SOCKADDR_IN_SIZE:
                raise SyscallError(errno.EINVAL, f"sockaddr_in of {len(addr)} bytes")
            family = int.from_bytes(addr[:2], "little")
            port, ip = int.from_bytes(addr[2:4], "big"), V4_MAPPED + addr[4:8]
            if family != AF_INET and not (binding and family == AF_UNSPEC and ip == ANY4):
                raise SyscallError(errno.EAFNOSUPPORT, f"family {family} on an AF_INET socket")
            return ip, port
        if len(addr) < SIN6_LEN_RFC2133:
            raise SyscallError(errno.EINVAL, f"sockaddr_in6 of {len(addr)} bytes")
        if int.from_bytes(addr[:2], "little") != AF_INET6:
            raise SyscallError(errno.EAFNOSUPPORT, "not an AF_INET6 address")
        ip = addr[8:24]
        if is_v4(ip) and self.v6only:
            raise SyscallError(errno.EINVAL if binding else errno.ENETUNREACH, "v4-mapped on a v6-only socket")
        return ip, int.from_bytes(addr[2:4], "big")

    def pack(self, ip: bytes, port: int) -> bytes:
        """The sockaddr this socket's family gives for (address, port)."""
        if self.family == AF_INET:
            return AF_INET.to_bytes(2, "little") + port.to_bytes(2, "big") + ip[12:] + bytes(8)
        return AF_INET6.to_bytes(2, "little") + port.to_bytes(2, "big") + bytes(4) + ip + bytes(4)

    @property
    def v6only(self) -> bool:
        return bool(self.proto_options.get((IPPROTO_IPV6, IPV6_V6ONLY)))

    def spaces(self) -> set[int]:
        """The address families a bound address covers (4, 6 or both)."""
        ip = self.local[0]
        if is_v4(ip):
            return {4}
        return {4, 6} if ip == ANY6 and not self.v6only else {6}

    def covers(self, ip: bytes) -> bool:
        """Would a packet to `ip` reach this bound socket?"""
        if (4 if is_v4(ip) else 6) not in self.spaces():
            return False
        return is_any(self.local[0]) or self.local[0] == ip

    def conflicts(self, other: InetSocket) -> bool:
        """Would binding this socket clash with `other` on the same port (EADDRINUSE)?"""
        if not self.spaces() & other.spaces():
            return False
        mine, theirs = self.local[0], other.local[0]
        if not (is_any(mine) or is_any(theirs) or mine == theirs):
            return False
        if self.option(SO_REUSEPORT) and other.option(SO_REUSEPORT):
            return False
        return not (self.option(SO_REUSEADDR) and other.option(SO_REUSEADDR) and not other.listening)

    def _take_port(self, ip: bytes, port: int) -> None:
        """Bind to (ip, port), port 0 meaning a free ephemeral one (EADDRINUSE if taken)."""
        self.local = (ip, port)
        if port == 0:
            self.local = (ip, self._free_port(ip))
        elif any(self.conflicts(o) for o in self.net.ports.get((self.protocol, port), [])):
            self.local = None
            raise SyscallError(errno.EADDRINUSE, f"port {port} is in use")
        self.net.ports.setdefault((self.protocol, self.local[1]), []).append(self)
        self.registered = True

    def _free_port(self, ip: bytes) -> int:
        span = EPHEMERAL_LAST - EPHEMERAL_FIRST + 1
        for i in range(span):
            port = EPHEMERAL_FIRST + (self.net.next_port + i) % span
            self.local = (ip, port)
            if not any(self.conflicts(o) for o in self.net.ports.get((self.protocol, port), [])):
                self.net.next_port = (self.net.next_port + i + 1) % span
                return port
        self.local = None
        raise SyscallError(errno.EADDRINUSE, "no ephemeral port left")

    def bind(self, addr: bytes) -> None:
        ip, port = self.parse(addr, binding=True)
        if not is_local(ip):
            raise SyscallError(errno.EADDRNOTAVAIL, "not an address of the sandbox's loopback")
        if self.local is not None:
            raise SyscallError(errno.EINVAL, f"{self.name} is bound already")
        if 0 < port < PROT_SOCK and self.net.kernel.identity.uid != 0:
            raise SyscallError(errno.EACCES, f"port {port} needs privilege")
        self._take_port(ip, port)

    def _autobind(self, toward: bytes | None = None) -> None:
        """An ephemeral port, and the source address for `toward` if the address is the
        wildcard (the loopback address of the destination's family)."""
        if self.local is None:
            self._take_port(ANY6 if self.family == AF_INET6 else ANY4, 0)
        if toward is not None and is_any(self.local[0]):
            self.local = (LOOP4 if is_v4(toward) else LOOP6, self.local[1])

    def sockname(self) -> bytes:
        ip, port = self.local or (ANY4 if self.family == AF_INET else ANY6, 0)
        return self.pack(ip, port)

    def peername(self) -> bytes:
        if self.remote is None or (self.tcp and self.state != "established"):
            raise SyscallError(errno.ENOTCONN, f"{self.name} is not connected")
        return self.pack(*self.remote)

    def max_message(self) -> int | None:
        return None if self.tcp else MAX_UDP[self.family]

    # -- TCP connections ------------------------------------------------------------------

    def listen(self, backlog: int) -> None:
        if not self.tcp:
            raise SyscallError(errno.EOPNOTSUPP, "UDP cannot listen")
        if self.state != "closed":
            raise SyscallError(errno.EINVAL, f"{self.name} is connected")
        self._autobind()
        self.backlog = backlog
        self.listening = True

    def connect(self, addr: bytes) -> int:
        if len(addr) >= 2 and int.from_bytes(addr[:2], "little") == AF_UNSPEC:
            return self._disconnect()
        if not self.tcp:
            ip, port = self.parse(addr, binding=False)
            ip = route(ip)
            self._autobind(ip)
            self.remote = (ip, port)
            return 0
        if self.connecting_call:
            return self._connect_again()
        if self.listening or self.state == "established":
            raise SyscallError(errno.EISCONN, f"{self.name} is connected or listens")
        ip, port = self.parse(addr, binding=False)
        ip = route(ip)
        self._autobind(ip)
        self.remote, self.state = (ip, port), "connecting"
        if self.nonblocking(0):
            self.connecting_call = True
            self.progress()
            raise SyscallError(errno.EINPROGRESS, "the connection is under way")

        def attempt() -> int:
            if not self._try_connect():
                raise Again
            return 0
        return self.blocking(attempt, 0, True, "connect: the listener's backlog is full",
                             timeout_errno=errno.EINPROGRESS)

    def _connect_again(self) -> int:
        """A connect after EINPROGRESS: 0 once established (then EISCONN), EALREADY while
        under way, the error that ended it (inet_stream_connect)."""
        self.progress()
        if self.state == "connecting":
            raise SyscallError(errno.EALREADY, "the connection is under way")
        self.connecting_call = False
        if self.state == "established":
            return 0
        raise SyscallError(self.take_error() or errno.ECONNABORTED, "the connection failed")

    def _disconnect(self) -> int:
        """connect(AF_UNSPEC): UDP forgets its peer; TCP is left as it is."""
        if not self.tcp:
            self.remote = None
        return 0

    def progress(self) -> None:
        """A connection that waits for room in the backlog tries again (a SYN resent);
        a refusal becomes the pending error."""
        if self.tcp and self.state == "connecting":
            try:
                self._try_connect()
            except SyscallError as error:
                self.error = error.errno

    def _try_connect(self) -> bool:
        """Join the listener at `remote`: True once established, False while its backlog
        is full; ECONNREFUSED (the socket closed) if none listens."""
        listener = self._listener(*self.remote)
        if listener is None:
            self.state = "closed"
            self.shut = SHUTDOWN_MASK
            raise SyscallError(errno.ECONNREFUSED, f"nothing listens on port {self.remote[1]}")
        if len(listener.pending) > listener.backlog:
            return False
        embryo = InetSocket(self.net, listener.family, SOCK_STREAM, listener.protocol, 0)
        embryo.local, embryo.remote = self.remote, self.local
        embryo.state = self.state = "established"
        embryo.peer, self.peer = self, embryo
        embryo.options, embryo.proto_options = dict(listener.options), dict(listener.proto_options)
        listener.pending.append(embryo)
        return True

    def _listener(self, ip: bytes, port: int) -> InetSocket | None:
        """The listening socket a connection to (ip, port) reaches, an exact address first."""
        found = [s for s in self.net.ports.get((self.protocol, port), []) if s.listening and s.covers(ip)]
        found.sort(key=lambda s: is_any(s.local[0]))
        return found[0] if found else None

    def accept(self, flags: int) -> Socket:
        if not self.tcp:
            raise SyscallError(errno.EOPNOTSUPP, "UDP cannot accept")
        if not self.listening:
            raise SyscallError(errno.EINVAL, f"{self.name} does not listen")

        def attempt() -> Socket:
            if not self.listening:
                raise SyscallError(errno.EINVAL, f"{self.name} stopped listening")
            if not self.pending:
                raise Again
            return self.pending.popleft()
        return self.blocking(attempt, 0, False, "accept: no connection yet")

    def shutdown(self, how: int) -> None:
        """inet_shutdown: the bits are set even when it fails (ENOTCONN unconnected)."""
        self.progress()
        if self.listening and how & RCV_SHUTDOWN:
            self._stop_listening()
            return
        connected = self.state == "established" if self.tcp else self.remote is not None
        self.shut |= how
        if self.tcp and connected and how & SEND_SHUTDOWN and not self.peer.closed:
            self.peer.shut |= RCV_SHUTDOWN  # a FIN
        if not connected:
            raise SyscallError(errno.ENOTCONN, f"{self.name} is not connected")

    def _stop_listening(self) -> None:
        """The connections never accepted are reset (their clients see ECONNRESET)."""
        self.listening = False
        while self.pending:
            embryo = self.pending.popleft()
            embryo.linger = (1, 0)
            embryo.close()

    def reset(self, why: int) -> None:
        """The connection ended by a reset: `why` is the pending error, both ways shut."""
        self.error = why
        self.shut = SHUTDOWN_MASK
        self.state = "closed"

    # -- transfers ------------------------------------------------------------------------

    def send(self, data: bytes, flags: int, dest: bytes | None, rights: list[File], creds: Creds | None) -> int:
        if not self.tcp:
            return self._send_udp(data, dest)
        self.progress()
        if self.state == "connecting":
            def attempt_connected() -> None:
                self.progress()
                if self.state == "connecting":
                    raise Again
            self.blocking(attempt_connected, flags, True, "send: still connecting")
        done = 0

        def attempt() -> int:
            nonlocal done
            try:
                self._check_sending()
                if self.peer.closed:  # the peer answers with a reset; these bytes are lost
                    self.reset(errno.EPIPE)
                    return len(data)
                while done < len(data):
                    room = self.sndbuf + self.peer.rcvbuf - self.peer.queue.used - MESSAGE_OVERHEAD
                    if room <= 0:
                        raise Again
                    chunk = data[done : done + min(room, TCP_SEGMENT)]
                    self.peer.queue.push(Message(chunk))
                    done += len(chunk)
            except SyscallError:
                if done:
                    return done
                raise
            return done
        return self.blocking(attempt, flags, True, "the peer's window is full", partial=lambda: done or None)

    def _check_sending(self) -> None:
        """tcp_sendmsg's checks: a pending error or a shut end fails (the error once, then
        EPIPE); so does a socket never connected (EPIPE)."""
        if self.error or self.shut & SEND_SHUTDOWN:
            raise SyscallError(self.take_error() or errno.EPIPE, "the connection is closed")
        if self.state != "established":
            raise SyscallError(errno.EPIPE, f"{self.name} is not connected")

    def _send_udp(self, data: bytes, dest: bytes | None) -> int:
        """One datagram to `dest` or the connected peer; lost if nobody is bound there or
        its buffer is full (a connected socket learns ECONNREFUSED, as from an ICMP
        port unreachable)."""
        if len(data) > MAX_UDP[self.family]:
            raise SyscallError(errno.EMSGSIZE, f"{len(data)} bytes in one UDP datagram")
        if dest is not None:
            ip, port = self.parse(dest, binding=False)
            ip = route(ip)
        elif self.remote is not None:
            ip, port = self.remote
        else:
            raise SyscallError(errno.EDESTADDRREQ, f"{self.name} has no peer")
        if self.shut & SEND_SHUTDOWN:
            raise SyscallError(errno.EPIPE, f"{self.name} was shut for writing")
        self.raise_error()
        self._autobind(ip)
        source = (self.local[0] if not is_any(self.local[0]) else LOOP4 if is_v4(ip) else LOOP6, self.local[1])
        receiver = self._udp_receiver(ip, port, source)
        if receiver is None:
            if self.remote is not None:
                self.error = errno.ECONNREFUSED
            return len(data)
        message = Message(data, receiver.pack(*source))
        if receiver.queue.used + message.cost <= receiver.rcvbuf and not receiver.shut & RCV_SHUTDOWN:
            receiver.queue.push(message)
        return len(data)

    def _udp_receiver(self, ip: bytes, port: int, source: tuple[bytes, int]) -> InetSocket | None:
        bound = [s for s in self.net.ports.get((self.protocol, port), [])
                 if s.covers(ip) and (s.remote is None or s.remote == source) and not s.closed]
        bound.sort(key=lambda s: (s.remote is None, is_any(s.local[0])))
        return bound[0] if bound else None

    def recv(self, n: int, flags: int, sink: Sink) -> Received:
        if not self.tcp:
            return self._recv_udp(n, flags, sink)
        if flags & MSG_OOB:
            raise SyscallError(errno.EINVAL, "no urgent data")
        self.progress()
        if self.state != "established" and not self.queue:
            if self.error:
                self.raise_error()
            if self.state == "closed" and self.shut & RCV_SHUTDOWN and self.peer is not None:
                return Received(0)
            raise SyscallError(errno.ENOTCONN, f"{self.name} is not connected")
        if flags & MSG_TRUNC:
            sink = _discard  # tcp_recvmsg drops the bytes instead of copying them
        return recv_stream(self, n, flags, sink, False)

    def _recv_udp(self, n: int, flags: int, sink: Sink) -> Received:
        def attempt() -> Received:
            if self.queue:
                return read_message(self.queue, n, flags, sink, False)
            self.raise_error()
            if self.shut & RCV_SHUTDOWN:
                return Received(0)
            raise Again
        return self.blocking(attempt, flags, False, "no datagram yet")

    # -- readiness and end ----------------------------------------------------------------

    def poll(self, events: int) -> int:
        """tcp_poll / udp_poll."""
        if self.listening:
            return POLLIN & events if self.pending else 0
        if not self.tcp:
            return stream_poll(self, events, bool(self.queue), True, False)
        self.progress()
        if self.state == "connecting":
            return 0
        writable = bool(self.shut & SEND_SHUTDOWN) or self.state != "established" or self.peer.closed or \
            self.peer.queue.used + MESSAGE_OVERHEAD < self.sndbuf + self.peer.rcvbuf
        return stream_poll(self, events, bool(self.queue), writable, self.state == "closed")

    def close(self) -> None:
        """The port goes back; a listener resets the connections never accepted; a
        connection sends its peer a FIN, or a reset if data was left unread (or
        SO_LINGER is on with a zero time)."""
        if self.registered:
            bound = self.net.ports.get((self.protocol, self.local[1]), [])
            if self in bound:
                bound.remove(self)
            if not bound:
                self.net.ports.pop((self.protocol, self.local[1]), None)
        self._stop_listening()
        peer = self.peer
        if self.tcp and peer is not None and not peer.closed and self.state == "established":
            if self.queue or self.linger == (1, 0):
                peer.reset(errno.ECONNRESET)
            else:
                peer.shut |= RCV_SHUTDOWN
        self.state = "closed"
        super().close()

    # -- options --------------------------------------------------------------------------

    def proto_option(self, level: int, name: int, value: bytes | None) -> bytes | None:
        """IPPROTO_IP, IPPROTO_IPV6 (AF_INET6 only) and IPPROTO_TCP (TCP only) options."""
        if level == IPPROTO_TCP and self.tcp and name == TCP_CONGESTION:
            return self._congestion(value)
        defaults = OPTION_DEFAULTS if level != IPPROTO_TCP else {(IPPROTO_TCP, k): v for k, v in TCP_DEFAULTS.items()}
        known = (level, name) in defaults and (level != IPPROTO_IPV6 or self.family == AF_INET6) \
            and (level != IPPROTO_TCP or self.tcp)
        if not known:
            raise SyscallError(errno.ENOPROTOOPT, f"option {level}/{name}")
        if value is None:
            return INT.pack(self.proto_options.get((level, name), defaults[(level, name)]))
        if len(value) < INT.size:
            raise SyscallError(errno.EINVAL, f"option {level}/{name} takes an int")
        val = INT.unpack(value[: INT.size])[0]
        if (level, name) == (IPPROTO_IPV6, IPV6_V6ONLY) and self.local is not None:
            raise SyscallError(errno.EINVAL, "IPV6_V6ONLY after bind")
        self.proto_options[(level, name)] = int(val != 0) if (level, name) in FLAG_OPTIONS else val
        return None

    def _congestion(self, value: bytes | None) -> bytes | None:
        """TCP_CONGESTION: the algorithm's name (cubic; reno may be chosen; ENOENT else)."""
        if value is None:
            return self.congestion.ljust(TCP_CA_NAME_MAX, b"\0")
        name = value.split(b"\0", 1)[0]
        if name not in CONGESTION:
            raise SyscallError(errno.ENOENT, f"congestion control {name!r}")
        self.congestion = name
        return None


def _discard(_data: bytes) -> None:
    """A sink that keeps nothing (MSG_TRUNC on TCP)."""

"""What every socket shares: the `Socket` file, its receive `Queue`, socket-level options,
blocking, and the sandbox's `Network` (man 7 socket).

Invariants:
- A queue's `used` is the sum of its messages' `cost`, and exactly that much is charged
  to the sandbox's socket-buffer budget (with `SOCKET_COST` per open socket), so no number
  of sockets or processes holds more host memory than --socket-buffer-bytes.
- A descriptor in flight (a `Message.rights` entry) holds one reference (`File.attach`) on
  its file from the moment it is queued until it is received or its queue is purged; a
  socket counts its own in-flight references in `inflight` (for unix.collect_garbage).
- A closed socket (`closed`) holds nothing: its queue is purged, its names and ports given
  back; a call that slept on it ends with EBADF.
"""

from __future__ import annotations

import errno
import itertools
import stat
import struct
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from sandbox.errors import SyscallError, WouldBlock
from sandbox.kernel.files import O_NONBLOCK, O_RDWR, POLLERR, POLLHUP, POLLIN, POLLOUT, File, Stat

if TYPE_CHECKING:
    from sandbox.kernel.kernel import Kernel

AF_UNSPEC, AF_UNIX, AF_INET, AF_INET6 = 0, 1, 2, 10
AF_MAX = 46
SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, SOCK_SEQPACKET = 1, 2, 3, 5
SOCK_MAX = 11
SOCK_TYPE_MASK = 0xF
SOCK_NONBLOCK, SOCK_CLOEXEC = 0o4000, 0o2000000
MSG_OOB, MSG_PEEK, MSG_CTRUNC, MSG_TRUNC, MSG_DONTWAIT = 0x1, 0x2, 0x8, 0x20, 0x40
MSG_EOR, MSG_WAITALL, MSG_NOSIGNAL, MSG_MORE, MSG_WAITFORONE = 0x80, 0x100, 0x4000, 0x8000, 0x10000
MSG_CMSG_CLOEXEC = 0x40000000
SHUT_RD, SHUT_WR, SHUT_RDWR = 0, 1, 2
RCV_SHUTDOWN, SEND_SHUTDOWN = 1, 2  # sk_shutdown bits (include/net/sock.h)
SHUTDOWN_MASK = RCV_SHUTDOWN | SEND_SHUTDOWN
POLLRDHUP = 0x2000
SOL_SOCKET = 1
SO_DEBUG, SO_REUSEADDR, SO_TYPE, SO_ERROR, SO_DONTROUTE, SO_BROADCAST = 1, 2, 3, 4, 5, 6
SO_SNDBUF, SO_RCVBUF, SO_KEEPALIVE, SO_OOBINLINE, SO_NO_CHECK, SO_PRIORITY = 7, 8, 9, 10, 11, 12
SO_LINGER, SO_REUSEPORT, SO_PASSCRED, SO_PEERCRED, SO_RCVLOWAT, SO_SNDLOWAT = 13, 15, 16, 17, 18, 19
SO_RCVTIMEO, SO_SNDTIMEO, SO_TIMESTAMP, SO_ACCEPTCONN = 20, 21, 29, 30
SO_SNDBUFFORCE, SO_RCVBUFFORCE, SO_MARK, SO_PROTOCOL, SO_DOMAIN = 32, 33, 36, 38, 39
SO_BUSY_POLL, SO_ZEROCOPY, SO_RCVTIMEO_NEW, SO_SNDTIMEO_NEW = 46, 60, 66, 67
SCM_RIGHTS, SCM_CREDENTIALS = 1, 2
#: Socket-level options that are plain flags (getsockopt answers 0 or 1, whatever was set).
BOOL_OPTIONS = frozenset({SO_DEBUG, SO_REUSEADDR, SO_DONTROUTE, SO_BROADCAST, SO_KEEPALIVE, SO_OOBINLINE,
                          SO_NO_CHECK, SO_REUSEPORT, SO_PASSCRED, SO_TIMESTAMP, SO_ZEROCOPY})
#: Socket-level options that keep the int they are given.
INT_OPTIONS = frozenset({SO_PRIORITY, SO_MARK, SO_BUSY_POLL, SO_SNDLOWAT})
#: Options getsockopt answers and setsockopt refuses (ENOPROTOOPT, as sock_setsockopt).
READ_ONLY_OPTIONS = frozenset({SO_TYPE, SO_ERROR, SO_PEERCRED, SO_ACCEPTCONN, SO_PROTOCOL, SO_DOMAIN})
INT = struct.Struct("<i")
LINGER = struct.Struct("<ii")  # struct linger { int l_onoff; int l_linger; }
TIMEVAL = struct.Struct("<qq")
UCRED = struct.Struct("<iII")  # struct ucred { pid_t pid; uid_t uid; gid_t gid; }
#: Linux's net.core.{w,r}mem_default and _max: a new socket's buffers and what
#: SO_SNDBUF/SO_RCVBUF may ask for (the kernel doubles the value for its bookkeeping).
WMEM_DEFAULT = RMEM_DEFAULT = WMEM_MAX = RMEM_MAX = 212992
SOCK_MIN_SNDBUF, SOCK_MIN_RCVBUF = 4608, 2304  # include/net/sock.h (2 x a small skb)
#: Host bytes a queued message costs besides its data (Linux charges an skb's truesize).
MESSAGE_OVERHEAD = 256
#: Host bytes an open socket costs, charged while it exists (embryos in a backlog too).
SOCKET_COST = 1024
USEC_PER_SEC = 10**6
NO_CREDS = (0, 0xFFFF_FFFF, 0xFFFF_FFFF)  # cred_to_ucred without a peer: pid 0, ids -1


class Creds(NamedTuple):
    """A process's credentials as SCM_CREDENTIALS and SO_PEERCRED carry them."""

    pid: int
    uid: int
    gid: int


class Again(Exception):
    """An attempt cannot finish now: the caller sleeps, or answers EAGAIN."""


class Message:
    """One queued unit: a datagram, or a segment of a stream with what was sent with it."""

    __slots__ = ("data", "source", "creds", "rights", "cost")

    def __init__(self, data: bytes, source: bytes | None = None, creds: Creds | None = None,
                 rights: list[File] | None = None) -> None:
        self.data = data
        self.source = source  # the sender's address (a packed sockaddr), for recvfrom
        self.creds = creds
        self.rights = rights or []
        self.cost = len(data) + MESSAGE_OVERHEAD


class Received(NamedTuple):
    """What one receive got (its data already went to the caller's sink)."""

    length: int  # the call's result
    source: bytes | None = None
    creds: Creds | None = None
    rights: list[File] = []  # each with one reference the receiver must detach
    msg_flags: int = 0


Sink = Callable[[bytes], None]


class Network:
    """One sandbox's sockets: the unix name table, inet ports, descriptors in flight."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.budget = kernel.budgets.socket_bytes
        self.unix_names: dict[tuple, File] = {}  # ("path", dev, ino) or ("abstract", name)
        self.unix_sockets: set[File] = set()  # open unix sockets (for the garbage collector)
        self.ports: dict[tuple[int, int], list[File]] = {}  # (protocol, port) -> bound sockets
        self.next_port = 0
        self.next_autobind = 0
        self.in_flight = 0  # descriptors queued in all sockets
        self.collecting = False  # the unix garbage collector runs (no re-entry)
        #: Bytes queued or taken anywhere: what edge-triggered epoll counts as news (File.wakeups).
        self.changes = 0

    def creds(self) -> Creds:
        """The calling process's credentials (pid and the guest's ids)."""
        task, identity = self.kernel.current, self.kernel.identity
        return Creds(task.pid if task is not None else 0, identity.uid, identity.gid)

    def hold_rights(self, files: list[File]) -> None:
        """Descriptors go into flight: each keeps its file open (and is counted)."""
        for file in files:
            file.attach()
            if isinstance(file, Socket):
                file.inflight += 1
        self.in_flight += len(files)

    def land(self, files: list[File]) -> list[File]:
        """In-flight references become the receiver's (one each, for it to detach)."""
        self.in_flight -= len(files)
        for file in files:
            if isinstance(file, Socket):
                file.inflight -= 1
        return files

    def drop_rights(self, files: list[File]) -> None:
        """In-flight references end (received, or their message went away)."""
        self.in_flight -= len(files)
        for file in files:
            if isinstance(file, Socket):
                file.inflight -= 1
            file.detach()


_NETWORKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def network_of(kernel: Kernel) -> Network:
    """The sandbox's network, made on first use."""
    net = _NETWORKS.get(kernel)
    if net is None:
        net = _NETWORKS[kernel] = Network(kernel)
    return net


class Queue:
    """A socket's receive queue: messages in order, charged to the network's budget."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self.messages: deque[Message] = deque()
        self.used = 0  # cost of the messages held (bytes, with overheads)

    def __len__(self) -> int:
        return len(self.messages)

    def push(self, message: Message) -> None:
        """Queue `message` (ENOBUFS past the budget, nothing queued then)."""
        self.net.budget.charge(message.cost)
        self.net.hold_rights(message.rights)
        self.messages.append(message)
        self.used += message.cost
        self.net.changes += 1

    def pop(self) -> Message:
        """Take the first message; its rights are now the caller's to receive or drop."""
        message = self.messages.popleft()
        self._release(message.cost)
        return message

    def trim(self, n: int) -> None:
        """Consume `n` bytes of the first message (a partial stream read)."""
        message = self.messages[0]
        message.data = message.data[n:]
        message.cost -= n
        self._release(n)

    def _release(self, cost: int) -> None:
        self.used -= cost
        self.net.budget.release(cost)
        self.net.changes += 1

    def purge(self) -> list[Message]:
        """Empty the queue, dropping the descriptors in flight in it; returns the messages."""
        messages = list(self.messages)
        self.messages.clear()
        self._release(self.used)
        for message in messages:
            self.net.drop_rights(message.rights)
        return messages

    def read_stream(self, n: int, peek: bool, sink: Sink) -> tuple[int, Creds | None, list[File]]:
        """Up to `n` bytes from the front, as unix_stream_read_generic: a read stops before
        a segment carrying descriptors once it has bytes, and after the segment whose
        descriptors it takes (which become the caller's). Data goes to `sink` before it
        leaves the queue (a fault loses nothing)."""
        done, creds, rights = 0, None, []
        for message in list(self.messages):
            if done >= n or (done and message.rights):
                break
            chunk = message.data[: n - done]
            sink(chunk)
            creds = creds or message.creds
            done += len(chunk)
            if message.rights:
                rights = list(message.rights)
                if not peek:
                    message.rights = []
                    self.net.land(rights)
                else:
                    for file in rights:
                        file.attach()  # a peek passes duplicates (scm_fp_dup)
            if not peek:
                if len(chunk) == len(message.data):
                    self.pop()
                else:
                    self.trim(len(chunk))
            if rights:
                break
        return done, creds, rights


class Socket(File):
    """A socket file. Subclasses give the family's addresses and the type's transfers."""

    family = AF_UNSPEC
    _inodes = itertools.count(1)

    def __init__(self, net: Network, kind: int, protocol: int, flags: int) -> None:
        net.budget.charge(SOCKET_COST)
        super().__init__(O_RDWR | (flags & O_NONBLOCK))
        self.net = net
        self.kind = kind
        self.protocol = protocol
        self.ino = next(Socket._inodes)
        self.name = f"socket:[{self.ino}]"
        self.queue = Queue(net)
        self.shut = 0  # RCV_SHUTDOWN / SEND_SHUTDOWN of this end (sk_shutdown)
        self.error = 0  # a pending asynchronous error (sk_err), reported once
        self.options: dict[int, int] = {}
        self.timeouts: dict[bool, int | None] = {False: None, True: None}  # ns, by "sending"
        self.deadlines: dict[bool, float | None] = {False: None, True: None}
        self.sndbuf, self.rcvbuf = WMEM_DEFAULT, RMEM_DEFAULT
        self.linger = (0, 0)
        self.inflight = 0
        self.listening = False
        self.closed = False

    def wakeups(self) -> int:
        """Any queue's change may make this socket readable or writable: edge-triggered
        epoll reports it again then (a spurious report costs the reader one EAGAIN)."""
        return self.net.changes

    def queued_bytes(self) -> int:
        """FIONREAD: a stream's queued bytes, or the size of the next datagram."""
        sizes = [len(m.data) for m in self.queue.messages]
        return sum(sizes) if self.kind == SOCK_STREAM else (sizes[0] if sizes else 0)

    # -- what subclasses give -----------------------------------------------------------

    def bind(self, addr: bytes) -> None:
        raise SyscallError(errno.EOPNOTSUPP, "bind")

    def listen(self, backlog: int) -> None:
        raise SyscallError(errno.EOPNOTSUPP, f"{self.name} cannot listen")

    def accept(self, flags: int) -> Socket:
        raise SyscallError(errno.EOPNOTSUPP, f"{self.name} cannot accept")

    def connect(self, addr: bytes) -> int:
        raise SyscallError(errno.EOPNOTSUPP, "connect")

    def send(self, data: bytes, flags: int, dest: bytes | None, rights: list[File], creds: Creds | None) -> int:
        raise SyscallError(errno.EOPNOTSUPP, "send")

    def recv(self, n: int, flags: int, sink: Sink) -> Received:
        raise SyscallError(errno.EOPNOTSUPP, "recv")

    def shutdown(self, how: int) -> None:
        raise SyscallError(errno.EOPNOTSUPP, "shutdown")

    def sockname(self) -> bytes:
        raise SyscallError(errno.EOPNOTSUPP, "getsockname")

    def peername(self) -> bytes:
        raise SyscallError(errno.EOPNOTSUPP, "getpeername")

    def peer_creds(self) -> tuple[int, int, int]:
        return NO_CREDS

    def max_message(self) -> int | None:
        """The largest datagram (EMSGSIZE beyond); None for a stream."""
        return None

    def proto_option(self, level: int, name: int, value: bytes | None) -> bytes | None:
        """A protocol-level option: set it (`value` given) or answer it (ENOPROTOOPT)."""
        raise SyscallError(errno.ENOPROTOOPT, f"option {level}/{name}")

    # -- files ----------------------------------------------------------------------------

    def read(self, n: int) -> bytes:
        """read(2) is recv with no flags. If it must sleep, the handler runs again when
        woken (it copies out what it gets), so nothing read is lost meanwhile."""
        parts: list[bytes] = []
        try:
            self.recv(n, 0, parts.append)
        except WouldBlock as sleeping:
            sleeping.retry = None
            raise
        return b"".join(parts)

    def write(self, data: bytes) -> int:
        return self.send(data, 0, None, [], None)

    def stat(self) -> Stat:
        return Stat(dev=8, ino=self.ino, mode=stat.S_IFSOCK | 0o777, blksize=4096)

    def take_error(self) -> int:
        """SO_ERROR: the pending error, cleared (sock_error)."""
        error, self.error = self.error, 0
        return error

    def raise_error(self) -> None:
        """Report a pending asynchronous error as the call's failure, once."""
        if self.error:
            raise SyscallError(self.take_error(), "pending socket error")

    def nonblocking(self, flags: int) -> bool:
        return bool(self.flags & O_NONBLOCK or flags & MSG_DONTWAIT)

    def close(self) -> None:
        """The last descriptor (or in-flight reference) went: give everything back."""
        self.closed = True
        self.queue.purge()
        self.net.budget.release(SOCKET_COST)

    # -- blocking -------------------------------------------------------------------------

    def blocking(self, attempt: Callable[[], object], flags: int, sending: bool, why: str,
                 partial: Callable[[], int | None] | None = None, timeout_errno: int = errno.EAGAIN,
                 as_result: Callable[[int], object] = int):
        """`attempt()`'s result, sleeping while it raises Again: not at all when the call is
        non-blocking (EAGAIN, or `partial()`'s count of what was done if any, made the
        call's result by `as_result`: a receive's is a `Received`), up to SO_RCVTIMEO /
        SO_SNDTIMEO (the same), or until woken (by the host, for a socket with a `host_fd`).
        A signal ends the sleep with the bare count (or EINTR if none). A call that slept on
        a socket since closed ends with EBADF."""
        nonblocking = self.nonblocking(flags)
        timeout = self.timeouts[sending]
        waits = () if self.host_fd is None else ((self.host_fd, POLLOUT if sending else POLLIN),)

        def step():
            if self.closed:
                raise SyscallError(errno.EBADF, f"{self.name} was closed")
            try:
                result = attempt()
            except Again:
                self.found_nothing()
            else:
                self.deadlines[sending] = None
                return result
            deadline = self._deadline(sending, timeout)
            if nonblocking or timeout == 0 or (deadline is not None and time.monotonic() >= deadline):
                self.deadlines[sending] = None
                done = partial() if partial is not None else None
                if done:
                    return as_result(done)
                raise SyscallError(timeout_errno, why)
            raise WouldBlock(why, retry=step, deadline=deadline, host_waits=waits, every_pass=True,
                             on_interrupt=partial, restart=False if deadline is not None else None)
        return step()

    def found_nothing(self) -> None:
        """A call found nothing to take or no room (a host socket counts it: wakeups)."""

    def _deadline(self, sending: bool, timeout: int | None) -> float | None:
        """When a sleep that starts now (or started earlier in this call) times out."""
        if timeout is None or timeout == 0:
            return None
        if self.deadlines[sending] is None:
            self.deadlines[sending] = time.monotonic() + timeout / 1e9
        return self.deadlines[sending]

    # -- options --------------------------------------------------------------------------

    def setsockopt(self, level: int, name: int, value: bytes) -> None:
        """setsockopt(2): SOL_SOCKET here, other levels by the protocol."""
        if level != SOL_SOCKET:
            self.proto_option(level, name, value)
            return
        if name in (SO_RCVTIMEO, SO_SNDTIMEO, SO_RCVTIMEO_NEW, SO_SNDTIMEO_NEW):
            self.timeouts[name in (SO_SNDTIMEO, SO_SNDTIMEO_NEW)] = _timeout_of(value)
            return
        if name == SO_LINGER:
            if len(value) < LINGER.size:
                raise SyscallError(errno.EINVAL, "struct linger is 8 bytes")
            onoff, seconds = LINGER.unpack(value[: LINGER.size])
            self.linger = (int(onoff != 0), seconds)
            return
        if len(value) < INT.size:
            raise SyscallError(errno.EINVAL, f"option {name} takes an int")
        self._set_int(name, INT.unpack(value[: INT.size])[0])

    def _set_int(self, name: int, val: int) -> None:
        if name in BOOL_OPTIONS:
            self.options[name] = int(val != 0)
        elif name in INT_OPTIONS:
            self.options[name] = val
        elif name == SO_RCVLOWAT:
            self.options[name] = max(val, 1) if val >= 0 else 0x7FFF_FFFF
        elif name in (SO_SNDBUF, SO_SNDBUFFORCE):
            self.sndbuf = _buffer_size(val, WMEM_MAX, SOCK_MIN_SNDBUF)
        elif name in (SO_RCVBUF, SO_RCVBUFFORCE):
            self.rcvbuf = _buffer_size(val, RMEM_MAX, SOCK_MIN_RCVBUF)
        else:
            raise SyscallError(errno.ENOPROTOOPT, f"socket option {name}")

    def getsockopt(self, level: int, name: int) -> bytes:
        """getsockopt(2): the option's value as the bytes Linux copies (before truncation)."""
        if level != SOL_SOCKET:
            return self.proto_option(level, name, None)
        if name in (SO_RCVTIMEO, SO_SNDTIMEO, SO_RCVTIMEO_NEW, SO_SNDTIMEO_NEW):
            ns = self.timeouts[name in (SO_SNDTIMEO, SO_SNDTIMEO_NEW)] or 0
            return TIMEVAL.pack(ns // 10**9, ns % 10**9 // 1000)
        if name == SO_LINGER:
            return LINGER.pack(*self.linger)
        if name == SO_PEERCRED:
            return UCRED.pack(*self.peer_creds())
        return INT.pack(self._get_int(name))

    def _get_int(self, name: int) -> int:
        fixed = {SO_TYPE: self.kind, SO_PROTOCOL: self.protocol, SO_DOMAIN: self.family,
                 SO_ACCEPTCONN: int(self.listening), SO_SNDBUF: self.sndbuf, SO_RCVBUF: self.rcvbuf}
        if name in fixed:
            return fixed[name]
        if name == SO_ERROR:
            self.progress()
            return self.take_error()
        if name in BOOL_OPTIONS or name in INT_OPTIONS:
            return self.options.get(name, 0)
        if name == SO_RCVLOWAT:
            return self.options.get(name, 1)
        raise SyscallError(errno.ENOPROTOOPT, f"socket option {name}")

    def progress(self) -> None:
        """Let a connection that waits for room in a backlog go on (TCP overrides)."""

    def option(self, name: int) -> bool:
        return bool(self.options.get(name))


def _buffer_size(val: int, limit: int, minimum: int) -> int:
    """SO_SNDBUF/SO_RCVBUF as sock_setsockopt keeps them: the value as a u32 clamped to the
    maximum, doubled (room for the kernel's bookkeeping), at least `minimum`."""
    return max(min(val & 0xFFFF_FFFF, limit) * 2, minimum)


def _timeout_of(value: bytes) -> int | None:
    """SO_RCVTIMEO/SO_SNDTIMEO's struct timeval (sock_set_timeout): EINVAL if short, EDOM
    for microseconds out of range; {0, 0} is for ever (None), a negative time 0 (never
    wait)."""
    if len(value) < TIMEVAL.size:
        raise SyscallError(errno.EINVAL, "struct timeval is 16 bytes")
    sec, usec = TIMEVAL.unpack(value[: TIMEVAL.size])
    if not 0 <= usec < USEC_PER_SEC:
        raise SyscallError(errno.EDOM, f"tv_usec {usec}")
    if sec < 0:
        return 0
    if sec == 0 and usec == 0:
        return None
    return min(sec * 10**9 + usec * 1000, (1 << 63) - 1)


def stream_poll(sock: Socket, events: int, readable: bool, writable: bool, hangup: bool) -> int:
    """The readiness bits most sockets report (unix_poll, tcp_poll), among `events`."""
    ready = 0
    if sock.error:
        ready |= POLLERR
    if hangup or sock.shut == SHUTDOWN_MASK:
        ready |= POLLHUP
    if sock.shut & RCV_SHUTDOWN:
        ready |= POLLIN | POLLRDHUP
    if readable:
        ready |= POLLIN
    if writable:
        ready |= POLLOUT
    return ready & (events | POLLHUP | POLLERR)


def read_message(queue: Queue, n: int, flags: int, sink: Sink, with_creds: bool) -> Received:
    """One datagram from the front of `queue` (which must hold one): up to `n` bytes to
    `sink`, MSG_TRUNC in the flags if it was longer, and its full length as the result
    with MSG_TRUNC (man 7 unix, man 7 udp). MSG_PEEK leaves it queued and passes
    duplicates of its descriptors."""
    message = queue.messages[0]
    data = message.data[:n]
    sink(data)
    if flags & MSG_PEEK:
        rights = list(message.rights)
        for file in rights:
            file.attach()
    else:
        queue.pop()
        rights = queue.net.land(message.rights)
    length = len(message.data) if flags & MSG_TRUNC else len(data)
    msg_flags = MSG_TRUNC if len(message.data) > n else 0
    return Received(length, message.source, message.creds if with_creds else None, rights, msg_flags)


def recv_stream(sock: Socket, n: int, flags: int, sink: Sink, with_creds: bool) -> Received:
    """Bytes from a connected stream's queue (unix_stream_read_generic, tcp_recvmsg): what
    is there, or all `n` with MSG_WAITALL unless descriptors, an error or the end come
    first; 0 at the end; a pending error (ECONNRESET) when nothing is left. The caller
    checked the connection."""
    peek = bool(flags & MSG_PEEK)
    waitall = bool(flags & MSG_WAITALL) and not peek
    got, creds = 0, None

    def attempt() -> Received:
        nonlocal got, creds
        if sock.queue:
            k, first, rights = sock.queue.read_stream(n - got, peek, sink)
            got, creds = got + k, creds or first
            if rights or got >= n or not waitall:
                return Received(got, None, creds if with_creds else None, rights)
        if got and not waitall:
            return Received(got, None, creds if with_creds else None)
        if not got:
            sock.raise_error()
        if sock.shut & RCV_SHUTDOWN:
            return Received(got, None, creds if with_creds else None)
        raise Again
    return sock.blocking(attempt, flags, False, "no data yet", partial=lambda: got or None, as_result=Received)

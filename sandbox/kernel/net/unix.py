"""AF_UNIX sockets (man 7 unix): stream, datagram and seqpacket, as Linux's net/unix/af_unix.c.

Names: a path name is a socket node that bind makes in the guest's view (mknod S_IFSOCK on
the host: no host socket, nothing a host process could connect to), found again by the
node's (device, inode); an abstract name (a leading NUL) lives only in the network's table;
an address of just the family autobinds to an abstract name of five hex digits.

A connection is two sockets, each the other's `peer`; connect to a listener makes the
listener's end at once (an embryo in its `pending` queue, as Linux's), so a client may
write before it is accepted. Descriptors sent with SCM_RIGHTS stay open while in flight;
`collect_garbage` closes the sockets that only messages in flight keep alive (a socket sent
through itself, loops of them), as net/unix/garbage.c does.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import Counter, deque

from sandbox.errors import SyscallError
from sandbox.kernel.files import POLLIN, File
from sandbox.kernel.identity import HOST_MODE_MASK
from sandbox.kernel.net.base import (
    AF_UNIX,
    MESSAGE_OVERHEAD,
    MSG_OOB,
    RCV_SHUTDOWN,
    SEND_SHUTDOWN,
    SHUTDOWN_MASK,
    SO_PASSCRED,
    SOCK_DGRAM,
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
from sandbox.kernel.sys_fs import create_entry, host_lstat

SUN_PATH_OFFSET = 2  # offsetof(struct sockaddr_un, sun_path)
SOCKADDR_UN_SIZE = 110
FAMILY = AF_UNIX.to_bytes(2, "little")
MAX_DGRAM_QLEN = 10  # /proc/sys/net/unix/max_dgram_qlen
AUTOBIND_NAMES = 1 << 20  # five hex digits (unix_autobind)
DGRAM_HEADROOM = 32  # a datagram may be at most sndbuf - 32 bytes (unix_dgram_sendmsg)


def parse_name(addr: bytes) -> tuple[str, bytes]:
    """("path", path), ("abstract", sun_path with its NUL) or ("auto", b"") for an address
    of the family alone; EINVAL for a wrong length or family (unix_validate_addr)."""
    if len(addr) < SUN_PATH_OFFSET or len(addr) > SOCKADDR_UN_SIZE or addr[:2] != FAMILY:
        raise SyscallError(errno.EINVAL, f"not a sockaddr_un of {len(addr)} bytes")
    path = addr[SUN_PATH_OFFSET:]
    if not path:
        return "auto", b""
    if path[0] == 0:
        return "abstract", path
    return "path", path.split(b"\0", 1)[0]


class UnixSocket(Socket):
    """One AF_UNIX socket of type `kind`."""

    family = AF_UNIX

    def __init__(self, net: Network, kind: int, flags: int) -> None:
        super().__init__(net, kind, 0, flags)
        self.addr: bytes | None = None  # the packed sockaddr of its name
        self.key: tuple | None = None  # its entry in net.unix_names
        self.peer: UnixSocket | None = None
        self.peercred: Creds | None = None
        self.backlog = 0
        self.pending: deque[UnixSocket] = deque()  # embryos, for accept
        self.embryo = False
        net.unix_sockets.add(self)

    @property
    def connected_type(self) -> bool:
        return self.kind != SOCK_DGRAM

    # -- names ----------------------------------------------------------------------------

    def bind(self, addr: bytes) -> None:
        kind, name = parse_name(addr)
        if self.addr is not None:
            raise SyscallError(errno.EINVAL, f"{self.name} is bound already")
        if kind == "auto":
            self.autobind()
        elif kind == "abstract":
            self._register(("abstract", name), FAMILY + name)
        else:
            self._register(self._make_node(name), FAMILY + name + b"\0")

    def autobind(self) -> None:
        """Take a free abstract name of five hex digits (unix_autobind); nothing if bound."""
        if self.addr is not None:
            return
        for _ in range(AUTOBIND_NAMES):
            name = b"\0" + b"%05x" % self.net.next_autobind
            self.net.next_autobind = (self.net.next_autobind + 1) % AUTOBIND_NAMES
            if ("abstract", name) not in self.net.unix_names:
                self._register(("abstract", name), FAMILY + name)
                return
        raise SyscallError(errno.ENOSPC, "no autobind name left")

    def _register(self, key: tuple, addr: bytes) -> None:
        if key in self.net.unix_names:
            raise SyscallError(errno.EADDRINUSE, f"{addr[2:]!r} is in use")
        self.net.unix_names[key] = self
        self.key, self.addr = key, addr

    def _make_node(self, path: bytes) -> tuple:
        """The socket node at `path` in the guest's view, made as mknod would (EADDRINUSE if
        something is there); its key is the host node's (device, inode)."""
        kernel = self.net.kernel
        proc = kernel.current
        node = kernel.fs.writable_entry(path, proc.cwd, creating=True)
        mode = 0o777 & ~proc.umask  # a socket inode is 0777 (sock_alloc), less the umask
        try:
            create_entry(proc, node, lambda name, fd: os.mknod(name, stat.S_IFSOCK | (mode & HOST_MODE_MASK),
                                                                 dir_fd=fd))
        except SyscallError as error:
            if error.errno == errno.EEXIST:
                raise SyscallError(errno.EADDRINUSE, os.fsdecode(path)) from None
            raise
        st = host_lstat(proc, node)
        kernel.identity.created(st, mode)
        return ("path", st.st_dev, st.st_ino)

    def find(self, addr: bytes) -> UnixSocket:
        """The socket named by `addr` (unix_find_other): ENOENT for a missing path,
        ECONNREFUSED for a node no socket is bound to, EPROTOTYPE for another type."""
        kind, name = parse_name(addr)
        if kind == "auto":
            raise SyscallError(errno.EINVAL, "an address without a name")
        if kind == "abstract":
            other = self.net.unix_names.get(("abstract", name))
        else:
            kernel = self.net.kernel
            st = kernel.fs.lstat(kernel.fs.resolve(name, kernel.current.cwd))
            if st is None or not stat.S_ISSOCK(st.st_mode):
                raise SyscallError(errno.ECONNREFUSED, f"{name!r} is not a socket")
            other = self.net.unix_names.get(("path", st.st_dev, st.st_ino))
        if other is None or other.closed:
            raise SyscallError(errno.ECONNREFUSED, f"nobody is bound to {name!r}")
        if other.kind != self.kind:
            raise SyscallError(errno.EPROTOTYPE, f"{name!r} is another type of socket")
        return other

    def sockname(self) -> bytes:
        return self.addr or FAMILY

    def peername(self) -> bytes:
        if self.peer is None or (self.kind == SOCK_DGRAM and self.peer.closed):
            raise SyscallError(errno.ENOTCONN, f"{self.name} is not connected")
        return self.peer.addr or FAMILY

    def peer_creds(self) -> tuple[int, int, int]:
        return tuple(self.peercred) if self.peercred is not None else super().peer_creds()

    def max_message(self) -> int | None:
        return None if self.kind == SOCK_STREAM else self.sndbuf - DGRAM_HEADROOM

    def proto_option(self, level: int, name: int, value: bytes | None) -> bytes | None:
        """Unix sockets have no options but SOL_SOCKET's (no setsockopt op: EOPNOTSUPP)."""
        raise SyscallError(errno.EOPNOTSUPP, f"option level {level} on a unix socket")

    # -- connections ----------------------------------------------------------------------

    def listen(self, backlog: int) -> None:
        if not self.connected_type:
            raise SyscallError(errno.EOPNOTSUPP, "a datagram socket cannot listen")
        if self.addr is None or self.peer is not None:
            raise SyscallError(errno.EINVAL, f"{self.name} is unbound or connected")
        self.backlog = backlog
        if not self.listening:
            self.peercred = self.net.creds()  # init_peercred: the listener's at listen time
        self.listening = True

    def connect(self, addr: bytes) -> int:
        if addr[:2] == b"\0\0" and len(addr) >= 2 and self.kind == SOCK_DGRAM:
            self.peer = None  # AF_UNSPEC dissolves a datagram association
            return 0
        target = self.find(addr)
        if self.option(SO_PASSCRED):
            self.autobind()
        if self.kind == SOCK_DGRAM:
            if target.closed:
                raise SyscallError(errno.ECONNREFUSED, "the socket went away")
            self.peer = target
            return 0
        if self.listening:
            raise SyscallError(errno.EINVAL, f"{self.name} listens")
        if self.peer is not None:
            raise SyscallError(errno.EISCONN, f"{self.name} is connected")

        def attempt() -> int:
            if target.closed or not target.listening:
                raise SyscallError(errno.ECONNREFUSED, "the listener went away")
            if len(target.pending) > target.backlog:  # unix_recvq_full
                raise Again
            self._join(target)
            return 0
        return self.blocking(attempt, 0, True, "connect: the listener's backlog is full")

    def _join(self, listener: UnixSocket) -> None:
        """Make the listener's end of a new connection and queue it for accept."""
        embryo = UnixSocket(self.net, self.kind, 0)
        embryo.embryo = True
        embryo.addr = listener.addr
        embryo.options[SO_PASSCRED] = listener.options.get(SO_PASSCRED, 0)
        embryo.peer, self.peer = self, embryo
        embryo.peercred, self.peercred = self.net.creds(), listener.peercred
        listener.pending.append(embryo)

    def accept(self, flags: int) -> Socket:
        if not self.connected_type:
            raise SyscallError(errno.EOPNOTSUPP, "a datagram socket cannot accept")
        if not self.listening:
            raise SyscallError(errno.EINVAL, f"{self.name} does not listen")

        def attempt() -> Socket:
            if not self.listening:
                raise SyscallError(errno.EINVAL, f"{self.name} stopped listening")
            if not self.pending:
                raise Again
            embryo = self.pending.popleft()
            embryo.embryo = False
            return embryo
        return self.blocking(attempt, 0, False, "accept: no connection yet")

    def shutdown(self, how: int) -> None:
        """Shut this end; a connected peer's opposite direction goes too (unix_shutdown)."""
        self.shut |= how
        if self.peer is not None and self.connected_type:
            mirrored = (RCV_SHUTDOWN if how & SEND_SHUTDOWN else 0) | (SEND_SHUTDOWN if how & RCV_SHUTDOWN else 0)
            self.peer.shut |= mirrored

    # -- transfers ------------------------------------------------------------------------

    def send(self, data: bytes, flags: int, dest: bytes | None, rights: list[File], creds: Creds | None) -> int:
        if flags & MSG_OOB:
            raise SyscallError(errno.EOPNOTSUPP, "no out-of-band data on unix sockets")
        creds = creds or self.net.creds()
        if self.kind == SOCK_STREAM:
            if dest is not None:
                raise SyscallError(errno.EISCONN if self.peer else errno.EOPNOTSUPP, "an address on a stream")
            return self._send_stream(data, flags, rights, creds)
        return self._send_datagram(data, flags, None if self.connected_type else dest, rights, creds)

    def _send_stream(self, data: bytes, flags: int, rights: list[File], creds: Creds) -> int:
        """Queue `data` in the peer in pieces that fit its room (sleeping for more), the
        descriptors with the first piece; a count if something went before an error."""
        if self.peer is None:
            raise SyscallError(errno.ENOTCONN, f"{self.name} is not connected")
        if self.shut & SEND_SHUTDOWN:
            raise SyscallError(errno.EPIPE, f"{self.name} was shut for writing")
        if not data:  # nothing is queued, descriptors neither (the loop never runs)
            return 0
        done = 0

        def attempt() -> int:
            nonlocal done
            peer = self.peer
            try:
                if peer.closed or peer.shut & RCV_SHUTDOWN or self.shut & SEND_SHUTDOWN:
                    raise SyscallError(errno.EPIPE, "the peer is gone")
                while done < len(data):
                    room = self.sndbuf - peer.queue.used - MESSAGE_OVERHEAD
                    if room <= 0:
                        raise Again
                    chunk = data[done : done + room]
                    peer.queue.push(Message(chunk, None, creds, rights if done == 0 else None))
                    done += len(chunk)
            except SyscallError:
                if done:
                    return done
                raise
            return done
        return self.blocking(attempt, flags, True, "the peer's buffer is full", partial=lambda: done or None)

    def _send_datagram(self, data: bytes, flags: int, dest: bytes | None, rights: list[File], creds: Creds) -> int:
        """One datagram to `dest` or the peer, as unix_dgram_sendmsg."""
        if len(data) > self.sndbuf - DGRAM_HEADROOM:
            raise SyscallError(errno.EMSGSIZE, f"{len(data)} bytes in one datagram")
        if self.connected_type and self.peer is None:
            raise SyscallError(errno.ENOTCONN, f"{self.name} is not connected")
        target = self.find(dest) if dest is not None else self.peer
        if target is None:
            raise SyscallError(errno.ENOTCONN, f"{self.name} has no peer")
        if self.option(SO_PASSCRED):
            self.autobind()
        message = Message(data, self.addr, creds, rights)

        def attempt() -> int:
            self._check_target(target)
            full = target.queue.used + message.cost > max(self.sndbuf, target.rcvbuf)
            if full or (target.peer is not self and len(target.queue) >= MAX_DGRAM_QLEN):
                raise Again
            target.queue.push(message)
            return len(data)
        return self.blocking(attempt, flags, True, "the receiver's queue is full")

    def _check_target(self, target: UnixSocket) -> None:
        """Can a datagram go to `target` now? ECONNREFUSED if it went away (a peer is then
        forgotten), EPIPE for a shut or gone seqpacket peer, EPERM if it is connected to
        another socket (unix_may_send)."""
        if self.shut & SEND_SHUTDOWN:
            raise SyscallError(errno.EPIPE, f"{self.name} was shut for writing")
        if target.closed or target.shut & RCV_SHUTDOWN:
            if self.connected_type:
                raise SyscallError(errno.EPIPE, "the peer is gone")
            if target is self.peer and target.closed:
                self.peer = None
            raise SyscallError(errno.ECONNREFUSED, "the receiver went away")
        if target.peer is not None and target.peer is not self and not target.peer.closed:
            raise SyscallError(errno.EPERM, "the receiver is connected to another socket")

    def recv(self, n: int, flags: int, sink: Sink) -> Received:
        if flags & MSG_OOB:
            raise SyscallError(errno.EOPNOTSUPP, "no out-of-band data on unix sockets")
        if self.kind == SOCK_STREAM:
            if self.peer is None:
                raise SyscallError(errno.EINVAL, f"{self.name} is not connected")
            return recv_stream(self, n, flags, sink, self.option(SO_PASSCRED))
        if self.connected_type and self.peer is None:
            raise SyscallError(errno.ENOTCONN, f"{self.name} is not connected")

        def attempt() -> Received:
            if self.queue:
                return read_message(self.queue, n, flags, sink, self.option(SO_PASSCRED))
            self.raise_error()
            if self.shut & RCV_SHUTDOWN:
                return Received(0)
            raise Again
        return self.blocking(attempt, flags, False, "no datagram yet")

    # -- readiness and end ----------------------------------------------------------------

    def poll(self, events: int) -> int:
        """unix_poll / unix_dgram_poll: writable while the peer has room (also when it is
        gone: the write then fails at once); a connection-type socket never connected
        reports POLLHUP."""
        if self.listening:
            return POLLIN & events if self.pending else 0
        writable = True
        peer = self.peer
        if peer is not None and not peer.closed:
            writable = peer.queue.used + MESSAGE_OVERHEAD < max(self.sndbuf, peer.rcvbuf if self.kind != SOCK_STREAM
                                                                 else 0)
            if self.kind != SOCK_STREAM and peer.peer is not self and len(peer.queue) >= MAX_DGRAM_QLEN:
                writable = False
        hangup = self.connected_type and peer is None
        return stream_poll(self, events, bool(self.queue), writable, hangup)

    def detach(self) -> None:
        super().detach()
        if self.net.in_flight and self.refs and self.refs == self.inflight:
            collect_garbage(self.net)

    def close(self) -> None:
        """Names go, a connected peer sees the end (ECONNRESET if this end left data unread
        or was never accepted), embryos of a listener close, then the queue is purged."""
        self.net.unix_sockets.discard(self)
        if self.key is not None and self.net.unix_names.get(self.key) is self:
            del self.net.unix_names[self.key]
        peer = self.peer
        if peer is not None and self.connected_type:
            peer.shut = SHUTDOWN_MASK
            if self.queue or self.embryo:
                peer.error = errno.ECONNRESET
        self.listening = False
        while self.pending:
            self.pending.popleft().close()
        super().close()
        if self.net.in_flight:
            collect_garbage(self.net)


def socketpair(net: Network, kind: int, flags: int) -> tuple[UnixSocket, UnixSocket]:
    """Two connected, unnamed sockets (unix_socketpair), each with the creator's creds."""
    first = UnixSocket(net, kind, flags)
    try:
        second = UnixSocket(net, kind, flags)
    except SyscallError:
        first.close()
        raise
    first.peer, second.peer = second, first
    first.peercred = second.peercred = net.creds()
    return first, second


def _rights_held(sock: UnixSocket) -> list[File]:
    """The descriptors in flight in `sock`'s queue and in its embryos' queues."""
    queues = [sock.queue] + [embryo.queue for embryo in sock.pending]
    return [file for queue in queues for message in queue.messages for file in message.rights]


def collect_garbage(net: Network) -> None:
    """Close the sockets only descriptors in flight keep alive, in cycles (unix_gc): those
    whose every reference is in flight in the queues of such sockets, and that no socket
    with a descriptor still open reaches through those queues."""
    if net.collecting:
        return
    candidates = {s for s in net.unix_sockets if s.inflight and s.refs == s.inflight and not s.closed}
    if not candidates:
        return
    internal: Counter[UnixSocket] = Counter()
    for sock in candidates:
        internal.update(f for f in _rights_held(sock) if f in candidates)
    reachable = [s for s in candidates if s.refs > internal[s]]
    seen = set(reachable)
    while reachable:
        for file in _rights_held(reachable.pop()):
            if file in candidates and file not in seen:
                seen.add(file)
                reachable.append(file)
    net.collecting = True
    try:
        for sock in candidates - seen:
            for queue in [sock.queue] + [embryo.queue for embryo in sock.pending]:
                queue.purge()
    finally:
        net.collecting = False

"""GDB remote serial protocol framing: packets over one TCP connection.

A packet is `$payload#cc`, `cc` the two-hex-digit sum of the payload's bytes modulo 256; the
receiver answers `+` (good) or `-` (resend). Inside a payload `}` escapes the next byte (XOR
0x20) and `*` is run-length encoding, which gdb never sends and we never use. A lone 0x03
outside a packet is an interrupt (Ctrl-C). GDB manual, "Remote Protocol", "Overview".

Everything the client sends is untrusted: a packet longer than MAX_PACKET is dropped whole
(and answered `-`) rather than buffered without end; a bad checksum is answered `-`.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable

#: The largest packet we buffer or send (qSupported's PacketSize, in bytes of payload).
MAX_PACKET = 0x4000
#: Ctrl-C from gdb: an out-of-band interrupt request.
INTERRUPT = 0x03
ESCAPE = 0x7D  # '}'
#: Seconds between looks at `interrupted_by_host` while waiting for gdb.
WAIT_SLICE = 0.2
_MUST_ESCAPE = frozenset(b"$#}*")


def checksum(payload: bytes) -> int:
    """The modulo-256 sum of the payload's bytes."""
    return sum(payload) & 0xFF


def frame(payload: bytes) -> bytes:
    """`$payload#cc`, with $, #, } and * escaped."""
    escaped = bytearray()
    for byte in payload:
        if byte in _MUST_ESCAPE:
            escaped += bytes((ESCAPE, byte ^ 0x20))
        else:
            escaped.append(byte)
    return b"$" + bytes(escaped) + b"#%02x" % checksum(bytes(escaped))


def unescape(data: bytes) -> bytes:
    """The binary data of an X packet or similar: `}x` is x ^ 0x20."""
    out = bytearray()
    escaped = False
    for byte in data:
        if escaped:
            out.append(byte ^ 0x20)
            escaped = False
        elif byte == ESCAPE:
            escaped = True
        else:
            out.append(byte)
    return bytes(out)


class Disconnected(Exception):
    """The client closed the connection (or it broke)."""


class Connection:
    """One gdb client: reads packets and interrupts, writes replies (acknowledged mode)."""

    def __init__(self, sock: socket.socket, host_wants_out: Callable[[], bool] = lambda: False) -> None:
        self.sock = sock
        #: True when a signal to the sandbox itself (Ctrl-C in its terminal) must end a
        #: wait for gdb: waits then raise Disconnected.
        self.host_wants_out = host_wants_out
        self._buffer = bytearray()
        self.interrupted = False  # a 0x03 arrived while we waited for a packet or ran
        self.no_ack = False

    def close(self) -> None:
        """Close the socket (idempotent)."""
        try:
            self.sock.close()
        except OSError:
            pass

    def _fill(self, timeout: float | None) -> bool:
        """Read what the socket has (waiting up to `timeout`, None: until data comes or the
        host wants out); False if nothing came."""
        while True:
            ready, _, _ = select.select([self.sock], [], [], WAIT_SLICE if timeout is None else timeout)
            if ready:
                break
            if timeout is not None:
                return False
            if self.host_wants_out():
                raise Disconnected
        try:
            data = self.sock.recv(MAX_PACKET)
        except OSError:
            data = b""
        if not data:
            raise Disconnected
        self._buffer += data
        return True

    def wait_readable(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for gdb to send something (it stays unread)."""
        select.select([self.sock], [], [], timeout)

    def poll_interrupt(self) -> bool:
        """While the guest runs: True if gdb sent Ctrl-C (other bytes stay buffered).
        Raises Disconnected."""
        while not self.interrupted and self._fill(0):
            self._take_interrupts()
        return self.interrupted

    def _take_interrupts(self) -> None:
        """Drop acks and interrupts before a packet's start; note an interrupt."""
        while self._buffer and self._buffer[0] != ord("$"):
            if self._buffer[0] == INTERRUPT:
                self.interrupted = True
            del self._buffer[0]

    def read_packet(self) -> bytes | None:
        """The next good packet's payload (acknowledged); None for an interrupt. Raises
        Disconnected. Bad packets are answered `-` and skipped."""
        while True:
            self._take_interrupts()
            if self.interrupted:
                self.interrupted = False
                return None
            end = self._buffer.find(b"#")
            if end >= 0 and len(self._buffer) >= end + 3:
                payload = self._take_packet(end)
                if payload is not None:
                    return payload
                continue
            if len(self._buffer) > MAX_PACKET + 4:  # no end in sight: drop it, ask again
                self._buffer.clear()
                self._send_raw(b"-")
            self._fill(None)

    def _take_packet(self, end: int) -> bytes | None:
        """Cut the packet `$...#cc` ending at `end` from the buffer; its payload if the
        checksum holds (acknowledged), else None (answered `-`)."""
        payload = bytes(self._buffer[1:end])
        given = bytes(self._buffer[end + 1 : end + 3])
        del self._buffer[: end + 3]
        try:
            good = int(given, 16) == checksum(payload)
        except ValueError:
            good = False
        if self.no_ack:
            return payload if good else None
        self._send_raw(b"+" if good else b"-")
        return payload if good else None

    def send(self, payload: bytes) -> None:
        """Send one reply packet (not waiting for its ack: acks are skipped on reading)."""
        self._send_raw(frame(payload))

    def _send_raw(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:
            raise Disconnected from None


def listen(port: int) -> socket.socket:
    """A listening TCP socket on 127.0.0.1:`port` (0: a free one)."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(1)
    return server


def accept(server: socket.socket, timeout: float | None = None,
           host_wants_out: Callable[[], bool] = lambda: False) -> Connection:
    """Wait for the one client: at most `timeout` seconds (TimeoutError), and only while
    the host does not want out (Disconnected)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        if host_wants_out():
            raise Disconnected
        left = WAIT_SLICE if deadline is None else min(WAIT_SLICE, deadline - time.monotonic())
        if left <= 0:
            raise TimeoutError
        ready, _, _ = select.select([server], [], [], left)
        if ready:
            break
    sock, _ = server.accept()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return Connection(sock, host_wants_out)

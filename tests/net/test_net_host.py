"""`--net host` (issue 15 B): guest inet sockets backed by host sockets. The guest only ever
talks to servers on 127.0.0.1: a TCP and a UDP server in threads of this test process,
and guest servers this process connects to. tests/net/net_host.c runs natively and in the
sandbox against the same servers with the same output; busybox nc is a client and a
server; without --net host the same connects stay inside the sandbox (no host traffic)."""

from __future__ import annotations

import errno
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from sandbox.errors import SyscallError
from sandbox.kernel.accounting import Budget
from sandbox.kernel.net.base import SOCK_STREAM
from sandbox.kernel.net.host import open_host_socket
from tests.conftest import ROOT, require_tool, run_native, run_sandbox

SOURCE = ROOT / "tests" / "net" / "net_host.c"
LOOP = "127.0.0.1"


@pytest.fixture(scope="module")
def prog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = require_tool("gcc")
    out = tmp_path_factory.mktemp("net_host") / "net_host"
    subprocess.run([gcc, "-static", "-O2", "-w", "-o", str(out), str(SOURCE)], check=True)
    return out


def boxed(args: list[str], *more: str, net: str = "host") -> subprocess.CompletedProcess:
    """Run `args` in the sandbox with --net `net` (the program's directory mounted)."""
    where = Path(args[0]).parent
    return run_sandbox(["run", "--timeout", "60", "--net", net, "--mount", f"{where}:{where}:ro", *more, *args])


def same(argv: list[str], *more: str) -> subprocess.CompletedProcess:
    """Natively and with --net host: the same stdout, stderr and status."""
    native, sandboxed = run_native(argv), boxed(argv, *more)
    assert (sandboxed.stdout.decode(), sandboxed.stderr, sandboxed.returncode) == \
        (native.stdout.decode(), native.stderr, native.returncode)
    return sandboxed


# -- servers on the host ------------------------------------------------------------------


class TcpServer:
    """Reads each connection to its end (or a line "nb"), then answers: "nb" is echoed,
    anything else gets its byte count and first line back. Counts the connections."""

    def __init__(self) -> None:
        self.listener = socket.create_server((LOOP, 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    @staticmethod
    def _answer(conn: socket.socket) -> None:
        with conn:
            data = b""
            while data != b"nb\n" and (chunk := conn.recv(65536)):
                data += chunk
            reply = data if data == b"nb\n" else b"%d bytes, first line %s" % (len(data), data.split(b"\n")[0])
            conn.sendall(reply)

    def close(self) -> None:
        self.listener.close()


class UdpServer:
    """Answers each datagram with REPLY- and the datagram."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOP, 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(65536)
            except OSError:
                return
            self.sock.sendto(b"REPLY-" + data, peer)


@pytest.fixture
def tcp_server() -> Iterator[TcpServer]:
    server = TcpServer()
    yield server
    server.close()


@pytest.fixture
def udp_server() -> Iterator[UdpServer]:
    server = UdpServer()
    yield server
    server.sock.close()


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound once, then let go)."""
    with socket.socket() as probe:
        probe.bind((LOOP, 0))
        return probe.getsockname()[1]


# -- the guest as a client ----------------------------------------------------------------


def test_tcp_client(prog: Path, tcp_server: TcpServer) -> None:
    """connect, names, options, a send that must wait for the server, shutdown, recv."""
    out = same([str(prog), "tcp", str(tcp_server.port)]).stdout.decode()
    assert "connect OK\n" in out and "200011 bytes, first line hello host" in out


def test_nonblocking_connect_and_poll(prog: Path, tcp_server: TcpServer) -> None:
    out = same([str(prog), "nonblock", str(tcp_server.port)]).stdout.decode()
    assert out.endswith("poll 1 revents-out 1\nso_error OK\nconnect-again OK\nrecv-empty EAGAIN\n"
                        "poll 1 revents-in 1\ngot nb\n")


def test_signal_and_timeout_end_a_wait(prog: Path, tcp_server: TcpServer) -> None:
    """A recv sleeping on the host socket: EINTR for a signal, EAGAIN past SO_RCVTIMEO;
    MSG_WAITALL returns at the end of the stream with what came."""
    assert same([str(prog), "interrupt", str(tcp_server.port)]).stdout == \
        b"connect OK\nrecv EINTR\nrecv-timed EAGAIN\ngot 3\n"


def test_udp_client(prog: Path, udp_server: UdpServer) -> None:
    out = same([str(prog), "udp", str(udp_server.port)]).stdout.decode()
    assert "got 4 REPL trunc 1 from-port-matches 1\n" in out and "got 11\n" in out


def test_refused(prog: Path) -> None:
    assert same([str(prog), "refused", str(closed_port())]).stdout == \
        b"connect ECONNREFUSED\nnonblocking ECONNREFUSED\n"


def test_busybox_nc_client(tcp_server: TcpServer) -> None:
    require_tool("busybox")
    result = run_sandbox(["run", "--timeout", "60", "--net", "host", "/bin/busybox", "nc", LOOP,
                          str(tcp_server.port)], stdin=b"from busybox\n")
    assert (result.stdout, result.returncode) == (b"13 bytes, first line from busybox", 0), result.stderr


def test_attacks(prog: Path) -> None:
    """Bad pointers, lengths, families and options get the host kernel's own answers."""
    out = same([str(prog), "attack", str(closed_port())]).stdout.decode()
    assert "connect-badptr EFAULT\n" in out and "close-again EBADF\n" in out


# -- the guest as a server ----------------------------------------------------------------


def _talk_to_guest_server(process: subprocess.Popen) -> None:
    """Connect to the ports the guest server printed on stderr: a TCP exchange, then UDP."""
    tcp_port, udp_port = map(int, process.stderr.readline().split())
    with socket.create_connection((LOOP, tcp_port)) as conn:
        conn.sendall(b"from the host\n")
        conn.shutdown(socket.SHUT_WR)
        reply = b"".join(iter(lambda: conn.recv(4096), b""))
    assert reply == b"FROM THE HOST\n"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.sendto(b"ping", (LOOP, udp_port))
        assert udp.recvfrom(100)[0] == b"REPLY"


def _serve(argv: list[str]) -> tuple[bytes, int]:
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _talk_to_guest_server(process)
        stdout, _ = process.communicate(timeout=120)
    finally:
        process.kill()
        process.wait()
    return stdout, process.returncode


def test_guest_tcp_and_udp_server(prog: Path) -> None:
    native = _serve([str(prog), "server"])
    sandboxed = _serve([sys.executable, "-m", "sandbox", "run", "--timeout", "60", "--net", "host",
                        "--mount", f"{prog.parent}:{prog.parent}:ro", str(prog), "server"])
    assert sandboxed == native
    assert native[0] == b"listening 1\naccepted from 127.0.0.1\ntcp done\nudp ping\n"


def test_busybox_nc_server() -> None:
    """busybox nc -l in the sandbox; this process connects from the host."""
    require_tool("busybox")
    port = closed_port()
    process = subprocess.Popen([sys.executable, "-m", "sandbox", "run", "--timeout", "60", "--net", "host",
                                "/bin/busybox", "nc", "-l", "-p", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _ in range(600):  # until the guest listens (each try is refused at once)
            try:
                conn = socket.create_connection((LOOP, port))
                break
            except ConnectionRefusedError:
                threading.Event().wait(0.1)
        with conn:
            conn.sendall(b"to busybox\n")
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
        process.wait()
    assert (stdout, process.returncode) == (b"to busybox\n", 0), stderr


# -- the default stays inside the sandbox -------------------------------------------------


def test_without_net_host_nothing_reaches_the_host(prog: Path, tcp_server: TcpServer) -> None:
    """The loopback network is the sandbox's own: the host server's port is refused there
    and the server never sees a connection; an address past loopback is unreachable."""
    result = boxed([str(prog), "refused", str(tcp_server.port)], net="loopback")
    assert result.stdout == b"connect ECONNREFUSED\nnonblocking ECONNREFUSED\n"
    assert boxed([str(prog), "unreach"], net="loopback").stdout == b"connect ENETUNREACH\n"
    plain = run_sandbox(["run", "--timeout", "60", "--mount", f"{prog.parent}:{prog.parent}:ro", str(prog),
                         "refused", str(tcp_server.port)])
    assert plain.stdout == result.stdout
    assert tcp_server.connections == 0


# -- bounds -------------------------------------------------------------------------------


def test_many_sockets_end_in_emfile(prog: Path) -> None:
    """Sockets up to the descriptor limit: EMFILE, as natively; raw and packet sockets are
    never given (the run is root's natively, so only the sandbox's answer is checked)."""
    native = run_native([str(prog), "many"]).stdout.decode().splitlines()
    sandboxed = boxed([str(prog), "many"], "--max-open-files", "40")
    lines = sandboxed.stdout.decode().splitlines()
    assert lines[:2] == native[:2] == ["made 37 then EMFILE", "after OK"]
    assert lines[2:] == ["raw EPERM", "packet EAFNOSUPPORT"], sandboxed.stderr


def fake_net(host_files: int) -> SimpleNamespace:
    """What open_host_socket needs of a Network: its kernel's budgets and its own."""
    budgets = SimpleNamespace(host_files=Budget("open host files", host_files, errno.ENFILE))
    return SimpleNamespace(kernel=SimpleNamespace(budgets=budgets), changes=0,
                           budget=Budget("socket bytes", 1 << 20, errno.ENOBUFS))


def test_host_file_budget_gives_enfile() -> None:
    """Host sockets are host files: past the budget ENFILE (no host socket made), and every
    close gives its unit back."""
    net = fake_net(3)
    socks = [open_host_socket(net, socket.AF_INET, SOCK_STREAM, 0, 0) for _ in range(3)]
    with pytest.raises(SyscallError) as refused:
        open_host_socket(net, socket.AF_INET, SOCK_STREAM, 0, 0)
    assert refused.value.errno == errno.ENFILE
    socks.pop().close()
    socks.append(open_host_socket(net, socket.AF_INET, socket.SOCK_DGRAM, 0, 0))
    for sock in socks:
        sock.close()
    assert net.kernel.budgets.host_files.used == 0 and net.budget.used == 0

"""Sockets (issue 15 B): tests/net/net.c and attacks.c run natively and in the sandbox with
the same output; busybox nc and httpd talk to each other inside one sandbox; the unix
garbage collector and the socket-buffer budget checked on plain objects."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from sandbox.kernel.accounting import Budget
from sandbox.kernel.net.base import SOCK_DGRAM, SOCK_STREAM, Network
from sandbox.kernel.net.unix import socketpair
from tests.conftest import ROOT, require_tool, run_native, run_sandbox

SOURCES = ROOT / "tests" / "net"
SAME = ["net pingpong", "net rights", "net path", "net abstract", "net boundaries", "net tcp4", "net tcp6",
        "net udp", "net nonblocking", "atk huge", "atk many", "atk backlog", "atk midway", "atk loops", "atk waitall"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = require_tool("gcc")
    out = tmp_path_factory.mktemp("net")
    for name, source in (("net", "net.c"), ("atk", "attacks.c")):
        subprocess.run([gcc, "-static", "-O2", "-w", "-o", str(out / name), str(SOURCES / source)], check=True)
    return out


def both(built: Path, command: str) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    name, *args = command.split()
    argv = [str(built / name), *args]
    boxed = run_sandbox(["run", "--timeout", "60", "--mount", f"{built}:{built}:ro", *argv])
    return run_native(argv), boxed


@pytest.mark.parametrize("command", SAME)
def test_as_natively(built: Path, command: str) -> None:
    native, boxed = both(built, command)
    assert (boxed.stdout, boxed.stderr, boxed.returncode) == (native.stdout, native.stderr, native.returncode)


def test_errors_and_sigpipe(built: Path) -> None:
    """Errno answers, SIGPIPE caught, then a write to an unconnected TCP socket kills
    (the sandbox adds its one-line account of the death on stderr)."""
    native, boxed = both(built, "net errors")
    assert boxed.stdout == native.stdout and b"SIGPIPE\n" in boxed.stdout
    assert (native.returncode, boxed.returncode) == (-13, 128 + 13)  # killed by SIGPIPE either way


def busybox_sh(script: str) -> subprocess.CompletedProcess:
    return run_sandbox(["run", "--timeout", "60", "/bin/busybox", "sh", "-c", script])


def test_busybox_nc_server_and_client() -> None:
    require_tool("busybox")
    boxed = busybox_sh("busybox nc -l -p 8080 > /tmp/out &\n"
                       "until echo hi | busybox nc 127.0.0.1 8080 2>/dev/null; do sleep 0.1; done\n"
                       "wait; cat /tmp/out")
    assert (boxed.stdout, boxed.returncode) == (b"hi\n", 0), boxed.stderr.decode()


def test_http_between_two_guest_processes() -> None:
    """busybox httpd serves a file; busybox wget fetches it and a 404, over 127.0.0.1."""
    require_tool("busybox")
    boxed = busybox_sh("mkdir -p /tmp/www && echo 'hello over http' > /tmp/www/index.html\n"
                       "busybox httpd -f -p 127.0.0.1:8081 -h /tmp/www & pid=$!\n"
                       "until busybox wget -q -O - http://127.0.0.1:8081/index.html 2>/dev/null; do sleep 0.1; done\n"
                       "busybox wget -q -O - http://127.0.0.1:8081/missing 2>&1\n"
                       "kill $pid; wait $pid; echo status $?")
    assert boxed.stdout == (b"hello over http\nwget: server returned error: HTTP/1.1 404 Not Found\n"
                            b"status 143\n"), boxed.stderr.decode()


# -- on plain objects: the collector and the budget ---------------------------------------


def network(limit: int = 1 << 20) -> Network:
    kernel = SimpleNamespace(budgets=SimpleNamespace(socket_bytes=Budget("socket bytes", limit, 105)),
                             current=SimpleNamespace(pid=7), identity=SimpleNamespace(uid=1, gid=1))
    return Network(kernel)


def send_rights(sender, files) -> None:
    sender.send(b"x", 0, None, list(files), None)


@pytest.mark.parametrize("kind", [SOCK_STREAM, SOCK_DGRAM])
def test_a_socket_sent_through_itself_is_collected(kind: int) -> None:
    net = network()
    a, b = socketpair(net, kind, 0)
    a.attach()
    b.attach()
    send_rights(b, [a])  # a's own descriptor waits in a's queue
    send_rights(a, [b])
    a.detach()
    b.detach()
    assert a.closed and b.closed
    assert net.budget.used == 0 and net.in_flight == 0 and not net.unix_sockets


def test_a_cycle_held_from_outside_survives_until_closed() -> None:
    net = network()
    a, b = socketpair(net, SOCK_STREAM, 0)
    c, d = socketpair(net, SOCK_STREAM, 0)
    for sock in (a, b, c, d):
        sock.attach()
    send_rights(a, [c])  # c waits in b's queue, a in d's: a ring through b and d
    send_rights(c, [a])
    a.detach()
    c.detach()
    assert not a.closed and not c.closed  # b and d are open, so both are reachable
    b.detach()
    d.detach()
    assert all(s.closed for s in (a, b, c, d)) and net.budget.used == 0 and net.in_flight == 0


def test_the_budget_bounds_queued_bytes() -> None:
    net = network(limit=64 << 10)
    a, b = socketpair(net, SOCK_DGRAM, 0)
    a.attach()
    b.attach()
    sent = 0
    with pytest.raises(Exception) as stopped:
        while True:
            a.send(b"y" * 1000, 0x40, None, [], None)  # MSG_DONTWAIT
            sent += 1
    assert getattr(stopped.value, "errno", None) in (11, 105)  # EAGAIN (queue) or ENOBUFS (budget)
    assert net.budget.used <= 64 << 10
    a.detach()
    b.detach()
    assert net.budget.used == 0

"""Readiness and event descriptors (issue 15 B): eventfd, timerfd, signalfd, epoll, select,
pselect6 and poll, each mode of ev.c and attacks.c run natively and in the sandbox with the
same output; and real programs that need them: a Go program (the docker CLI: its runtime's
netpoller is epoll with an eventfd, its timers futexes and signals), make -j."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, build_c, require_tool, run_native, run_sandbox

SOURCES = ROOT / "tests" / "events"
MODES = ["eventfd", "timerfd", "signalfd", "epoll", "select", "rtqueue", "ioctls", "anon"]
ATTACKS = ["nest", "reuse", "faults", "fasttimer", "hugecount", "partialpipe", "getfl", "longpath"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("events")
    for name in ("ev", "attacks"):
        build_c(SOURCES / f"{name}.c", out)
    return out


def boxed(built: Path, *argv: str, flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return run_sandbox(["run", "--timeout", "60", *flags, "--mount", f"{built}:{built}:ro", *argv])


def same(native: subprocess.CompletedProcess, sandboxed: subprocess.CompletedProcess) -> None:
    assert (sandboxed.stdout.decode(), sandboxed.stderr.decode(), sandboxed.returncode) == \
        (native.stdout.decode(), native.stderr.decode(), native.returncode)


@pytest.mark.parametrize("mode", MODES)
def test_as_natively(built: Path, mode: str) -> None:
    same(run_native([str(built / "ev"), mode]), boxed(built, str(built / "ev"), mode))


@pytest.mark.parametrize("mode", ["epoll", "select", "timerfd"])
def test_timed_waits_under_the_deterministic_clock(built: Path, mode: str) -> None:
    """The sandbox's clock jumps to the next timer or timeout when nothing else can run."""
    same(run_native([str(built / "ev"), mode]), boxed(built, str(built / "ev"), mode, flags=("--deterministic",)))


@pytest.mark.parametrize("mode", ATTACKS)
def test_attacks_as_natively(built: Path, mode: str) -> None:
    same(run_native([str(built / "attacks"), mode]), boxed(built, str(built / "attacks"), mode))


def test_a_wait_nobody_can_end_is_a_deadlock(built: Path) -> None:
    """epoll_wait for ever on an eventfd no one else holds: reported, never a hang."""
    result = boxed(built, str(built / "attacks"), "forever")
    assert result.returncode == 137
    assert b"deadlock: epoll_wait" in result.stderr


def _docker() -> str:
    return require_tool("docker")


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["context", "ls"], ["context", "inspect"],
                                  ["context", "ls", "--format", "json"], ["version"]])
def test_a_go_program_runs_as_natively(args: list[str]) -> None:
    """The docker CLI is a static Go program: goroutines on several threads, the netpoller
    (epoll_create1, eventfd2, epoll_ctl refusing regular files with EPERM), futexes,
    signal-based preemption, GC, JSON encoding, and (`version`) a unix-socket connect to a
    daemon that is not there, failing as natively."""
    docker = _docker()
    env = {"HOME": "/root", "PATH": "/usr/bin:/bin"}
    native = run_native([docker, *args], env=env)
    sandboxed = run_sandbox(["run", "--timeout", "120", "--env", "HOME=/root", docker, *args])
    same(native, sandboxed)


def test_make_runs_jobs_in_parallel(tmp_path: Path) -> None:
    """GNU make -j waits for its children with pselect6 and a signal mask (its jobserver)."""
    require_tool("make")
    (tmp_path / "Makefile").write_text("all: a b c\n\t@echo all done\na b c:\n\t@sleep 0.1; echo $@ > $@.out\n")
    script = "make -s -j3 && cat a.out b.out c.out"
    native = run_native(["/bin/sh", "-c", script], cwd=tmp_path)
    for name in ("a", "b", "c"):
        os.unlink(tmp_path / f"{name}.out")
    sandboxed = run_sandbox(["run", "--timeout", "60", "--mount", f"{tmp_path}:/w", "/bin/sh", "-c",
                             f"cd /w && {script}"])
    same(native, sandboxed)


ASYNCIO = """\
import asyncio, selectors, threading
async def handle(r, w):
    w.write((await r.readline()).upper()); await w.drain(); w.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    r, w = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    w.write(b"hello asyncio\\n"); await w.drain()
    print((await r.readline()).decode().strip())
    print(await asyncio.gather(*(asyncio.sleep(0.01 * (5 - i), result=i) for i in range(5))))
    print(type(selectors.DefaultSelector()).__name__)
    server.close(); await server.wait_closed()
asyncio.run(main())
"""


def test_python_asyncio_runs_as_natively(tmp_path: Path) -> None:
    """CPython's asyncio: an epoll selector, a socketpair to wake itself (made non-blocking
    with FIONBIO), TCP over loopback, timers."""
    python = "/usr/bin/python3"  # Debian's, whatever python3 the PATH finds first
    script = tmp_path / "aio.py"
    script.write_text(ASYNCIO)
    native = run_native([python, str(script)])
    sandboxed = run_sandbox(["run", "--timeout", "120", "--mount", f"{tmp_path}:{tmp_path}:ro", python, str(script)])
    same(native, sandboxed)

"""Issue 16, items 1 and 2: programs on a terminal, and signals the sandbox is sent.

Every guest runs on a pseudo-terminal that is its controlling terminal (tests/terminal/
pty_session.py), natively and in the sandbox, and must print the same: terminal modes set
(raw mode) and given back, window sizes, foreground process groups, the errors of bad
requests; an interactive `busybox sh` answers through it. Signals sent to the sandbox
process reach the guest's foreground process group: a handler runs, a default action gives
a shell's status with one line said, and the private root is removed.
"""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, build_c, require_tool
from tests.terminal.pty_session import PtySession

SOURCES = ROOT / "tests" / "terminal"
SANDBOX = [sys.executable, "-m", "sandbox", "run", "--timeout", "60"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("terminal")
    for name in ("termprobe", "hostsig"):
        build_c(SOURCES / f"{name}.c", out)
    return out


def _sandboxed(built: Path, *argv: str) -> list[str]:
    return [*SANDBOX, "--mount", f"{built}:{built}:ro", *argv]


def _on_pty(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, bytes, list]:
    """Run `argv` on a pty to its end: (status, output, the pty's modes afterwards)."""
    session = PtySession(argv, env)
    try:
        status, out = session.finish()
        return status, out, session.modes()
    finally:
        session.close()


@pytest.mark.parametrize("what", ["modes", "sizes", "groups", "attacks", "sessions"])
def test_terminal_requests_answer_as_natively(built: Path, what: str) -> None:
    prog = str(built / "termprobe")
    native = _on_pty([prog, what])
    sandboxed = _on_pty(_sandboxed(built, prog, what))
    assert sandboxed[:2] == native[:2]
    assert native[1].startswith(b"isatty 0 = 1\r\nisatty 1 = 1\r\n") and native[0] == 0


def test_raw_mode_left_by_the_guest_is_undone_at_exit(built: Path) -> None:
    """A guest that leaves the terminal raw: natively it stays raw, the sandbox gives the
    host's modes back when the run ends."""
    prog = str(built / "termprobe")
    session = PtySession(_sandboxed(built, prog, "leave-raw"))
    try:
        original = session.modes()
        status, out = session.finish()
        assert status == 0 and b"raw: icanon=0 echo=0 isig=0" in out
        assert session.modes() == original
    finally:
        session.close()


def test_raw_mode_is_undone_when_a_signal_ends_the_run(built: Path) -> None:
    session = PtySession(_sandboxed(built, str(built / "termprobe"), "raw-pause"))
    try:
        original = session.modes()
        session.expect(b"ready\n")  # raw: no \r added
        assert session.modes() != original
        session.proc.send_signal(signal.SIGTERM)
        status, _ = session.finish()
        assert status == 128 + signal.SIGTERM
        assert session.modes() == original
    finally:
        session.close()


def test_tiocsti_is_refused(built: Path) -> None:
    status, out, _ = _on_pty(_sandboxed(built, str(built / "termprobe"), "sti"))
    assert status == 0 and b"TIOCSTI = -1 Input/output error" in out


def test_interactive_busybox_sh_through_a_terminal() -> None:
    busybox = require_tool("busybox")
    session = PtySession([*SANDBOX, "--env", "PS1=box$ ", busybox, "sh"])
    try:
        session.expect(b"box$ ")
        session.type(b"echo hi\r")
        assert session.expect(b"box$ ").replace(b"\r", b"").split(b"\n")[-2:] == [b"hi", b"box$ "]
        session.type(b"echo hellx\x7f\x7fp\r")  # the line editor takes the backspaces
        assert session.expect(b"box$ ").replace(b"\r", b"").split(b"\n")[-2:] == [b"help", b"box$ "]
        session.type(b"exit 3\r")
        status, _ = session.finish()
        assert status == 3
    finally:
        session.close()


def test_ctrl_c_typed_on_the_terminal_reaches_the_guests_handler(built: Path) -> None:
    """^C makes the terminal send SIGINT to its foreground group: the sandbox, which gives it
    to the guest's; the handler runs and the guest goes on, as natively."""
    results = []
    for argv in ([str(built / "hostsig"), "handle", "2"], _sandboxed(built, str(built / "hostsig"), "handle", "2")):
        session = PtySession(argv)
        try:
            session.expect(b"ready\r\n")
            session.type(b"\x03")
            results.append(session.finish())
        finally:
            session.close()
    assert results[0] == (5, b"^C" + b"handler: signal 2\r\nsigsuspend returned\r\n")
    assert results[1] == results[0]


def test_a_resized_terminal_reaches_the_guest(built: Path) -> None:
    """The host terminal resized: SIGWINCH to the sandbox, its guest's handler runs and
    TIOCGWINSZ gives the new size, as natively."""
    results = []
    for argv in ([str(built / "hostsig"), "handle", "28"], _sandboxed(built, str(built / "hostsig"), "handle", "28")):
        session = PtySession(argv)
        try:
            session.expect(b"ready\r\n")
            fcntl.ioctl(session.master, termios.TIOCSWINSZ, struct.pack("<HHHH", 33, 111, 0, 0))
            results.append(session.finish())
        finally:
            session.close()
    assert results[0] == (5, b"handler: signal 28\r\nsigsuspend returned\r\nsize 33x111\r\n")
    assert results[1] == results[0]


def test_python_repl_edits_lines_and_takes_ctrl_c() -> None:
    """A line-editing program (Python's REPL with readline, dynamic): a line typed answers,
    ^C raises KeyboardInterrupt in the guest and the REPL goes on, exit(4) gives 4."""
    session = PtySession([*SANDBOX, "/usr/bin/python3", "-q"])
    try:
        session.expect(b">>> ")
        session.type(b"print(6*8)\x7f\x7f7)\r")  # two backspaces: print(6*7)
        assert session.expect(b">>> ").endswith(b"\r\n42\r\n>>> ")
        session.wait_for_input_wait()  # Ctrl-C while Python waits for the line, not just before
        session.type(b"\x03")
        assert b"KeyboardInterrupt" in session.expect(b">>> ")
        session.type(b"exit(4)\r")
        assert session.finish()[0] == 4
    finally:
        session.close()


def _ready(argv: list[str], env: dict[str, str] | None = None, on_pty: bool = False):
    """Start `argv` and wait for its "ready" line: (the process, a reader of the rest)."""
    if on_pty:
        session = PtySession(argv, env)
        session.expect(b"ready\r\n")
        return session.proc, session
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout.readline() == b"ready\n"
    return proc, None


def _signalled(argv: list[str], signo: int, env: dict[str, str] | None = None, on_pty: bool = False):
    """(status, stdout after "ready", stderr) of `argv` sent `signo` once it is ready."""
    proc, session = _ready(argv, env, on_pty)
    proc.send_signal(signo)
    if session is not None:
        try:
            status, out = session.finish()
        finally:
            session.close()
        return status, out.replace(b"\r", b""), b""
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


@pytest.mark.parametrize("on_pty", [False, True], ids=["pipes", "pty"])
@pytest.mark.parametrize("signo", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGWINCH])
def test_a_guest_handler_runs_for_a_signal_sent_to_the_sandbox(built: Path, signo: int, on_pty: bool) -> None:
    prog = str(built / "hostsig")
    native = _signalled([prog, "handle", str(int(signo))], signo, on_pty=on_pty)
    sandboxed = _signalled(_sandboxed(built, prog, "handle", str(int(signo))), signo, on_pty=on_pty)
    assert native[0] == 5 and native[1].startswith(f"handler: signal {int(signo)}\nsigsuspend returned\n".encode())
    assert sandboxed == native


@pytest.mark.parametrize(("signo", "how"), [(signal.SIGTERM, "pause"), (signal.SIGINT, "pause"),
                                            (signal.SIGHUP, "spin")])
def test_default_action_gives_the_shells_status_and_removes_the_root(built: Path, tmp_path: Path, signo: int,
                                                                     how: str) -> None:
    """On a terminal pause() waits for the signal (no deadlock); its default action ends
    the guest: 128 + N, one line, no private root left."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    status, out, _ = _signalled(_sandboxed(built, str(built / "hostsig"), how), signo, env=env, on_pty=True)
    name = signal.Signals(signo).name
    assert (status, out) == (128 + signo, f"sandbox: {built / 'hostsig'}: killed by {name} sent to the sandbox\n"
                             .encode())
    assert os.listdir(tmp_path) == []


def test_pause_without_a_terminal_or_handler_waits_for_a_host_signal(built: Path) -> None:
    """Off a terminal, with no handler, pause() waits as natively until a signal comes, and
    SIGTERM's default action ends it (it was taken for a deadlock and killed at once)."""
    prog = str(built / "hostsig")
    native = _signalled([prog, "pause"], signal.SIGTERM)
    status, out, err = _signalled(_sandboxed(built, prog, "pause"), signal.SIGTERM)
    assert native[0] == -signal.SIGTERM and status == 128 + signal.SIGTERM
    assert out == native[1] and err == f"sandbox: {prog}: killed by SIGTERM sent to the sandbox\n".encode()


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


def test_sigtstp_the_guest_does_not_handle_stops_the_whole_sandbox(built: Path) -> None:
    """No job control inside: an unhandled SIGTSTP stops the sandbox as a shell's job stops
    (host modes given back meanwhile), SIGCONT resumes it."""
    session = PtySession(_sandboxed(built, str(built / "hostsig"), "spin"))
    try:
        session.expect(b"ready\r\n")
        session.proc.send_signal(signal.SIGTSTP)
        deadline = time.monotonic() + 60
        while _state(session.proc.pid) != "T":
            assert time.monotonic() < deadline, "the sandbox never stopped"
            time.sleep(0.05)
        session.proc.send_signal(signal.SIGCONT)
        while _state(session.proc.pid) == "T":
            assert time.monotonic() < deadline, "the sandbox never continued"
            time.sleep(0.05)
        session.proc.send_signal(signal.SIGTERM)
        assert session.finish()[0] == 128 + signal.SIGTERM
    finally:
        session.close()

"""Issue 16, guest-visible differences on a terminal: ttyname(3) and /dev/pts, sendfile(2)
from the kinds of descriptor Linux refuses, and the siginfo of a signal sent to the sandbox.

Each runs natively and in the sandbox, on a pseudo-terminal where it matters
(tests/terminal/pty_session.py), and must print the same; where the two cannot be the same by
design (a host sender's pid is outside the guest's pid namespace) the sandbox's answer is the
one Linux gives a process in a namespace of its own.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, build_c, require_tool
from tests.terminal.pty_session import PtySession

SOURCES = ROOT / "tests" / "terminal"
SANDBOX = [sys.executable, "-m", "sandbox", "run", "--timeout", "60"]
TTYNAME = "import os; print(os.ttyname(0), os.ttyname(1)); a, b = os.fstat(0), os.stat(os.ttyname(0)); " \
          "print((a.st_dev, a.st_ino, a.st_rdev, a.st_mode) == (b.st_dev, b.st_ino, b.st_rdev, b.st_mode))"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("visible")
    for name in ("sendfile_kinds", "siginfo_probe"):
        build_c(SOURCES / f"{name}.c", out)
    return out


@pytest.fixture
def spare_pty():
    """A pty held open meanwhile, so that the one under test is not /dev/pts/0 (the name
    must be the host's, not a made-up first number)."""
    master, slave = os.openpty()
    yield
    os.close(master)
    os.close(slave)


def _mounted(built: Path, *argv: str) -> list[str]:
    return [*SANDBOX, "--mount", f"{built}:{built}", *argv]


def _on_pty(argv: list[str], typed: bytes = b"", after: bytes = b"") -> tuple[int, bytes, str]:
    """Run `argv` on a fresh pty (typing `typed` once `after` has appeared): (status, output
    with CRs dropped, the pty's name)."""
    session = PtySession(argv)
    try:
        shown = session.expect(after) if typed else b""
        session.type(typed)
        status, out = session.finish()
        return status, (shown + out).replace(b"\r", b""), session.slave_name
    finally:
        session.close()


# -- 1. ttyname and /dev/pts ---------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["/usr/bin/tty"], ["/usr/bin/python3", "-c", TTYNAME]], ids=["tty", "python"])
def test_ttyname_names_the_terminal_as_natively(spare_pty, argv: list[str]) -> None:
    if not os.path.exists(argv[0]):
        pytest.skip(f"no {argv[0]}")
    native = _on_pty(argv)
    sandboxed = _on_pty([*SANDBOX, *argv])
    assert native[0] == 0 and native[2].encode() in native[1]
    # each run has its own pty, whose number other tests running at once may change
    assert sandboxed[2].encode() in sandboxed[1]
    assert (sandboxed[0], sandboxed[1].replace(sandboxed[2].encode(), b"TTY")) == (
        native[0], native[1].replace(native[2].encode(), b"TTY"))


def test_dev_pts_holds_the_given_terminal_alone(spare_pty) -> None:
    """Only the terminal the sandbox was given, stat-ing as natively (type, modes, device
    numbers); no /dev/ptmx, no other number."""
    busybox = require_tool("busybox")
    script = 'stat -c "%n %F %a %t,%T" "$(tty)"'
    native = _on_pty([busybox, "sh", "-c", script])
    sandboxed = _on_pty([*SANDBOX, busybox, "sh", "-c", script + "; ls /dev/pts"])
    number = native[2].rsplit("/", 1)[1]
    assert native[0] == 0 and native[1].startswith(f"{native[2]} character special file ".encode())
    assert sandboxed[1] == native[1] + f"{number}\n".encode()


def test_the_pts_node_opens_the_same_terminal(spare_pty) -> None:
    busybox = require_tool("busybox")
    script = 'echo "through the node" > "$(tty)"; readlink /proc/self/fd/0'
    status, out, name = _on_pty([*SANDBOX, busybox, "sh", "-c", script])
    assert status == 0 and out == f"through the node\n{name}\n".encode()


def test_no_other_host_pty_is_reachable(spare_pty) -> None:
    """Every other number under /dev/pts is ENOENT while the guest has no pseudo-terminal of
    its own open (/dev/ptmx makes the guest's, tests/pty); the node is gone without a
    terminal (the run's stdio are pipes)."""
    busybox = require_tool("busybox")
    names = [*map(str, range(11)), "99", "../pts/7"]
    probe = f"for n in {' '.join(names)}; do [ \"/dev/pts/$n\" = \"$(tty)\" ] || " \
            "cat /dev/pts/$n 2>&1 | head -1; done"
    status, out, name = _on_pty([*SANDBOX, busybox, "sh", "-c", probe])
    lines = out.decode().splitlines()
    assert len(lines) == len([n for n in names if f"/dev/pts/{n}" != name])
    assert all(line.endswith("No such file or directory") for line in lines), lines
    piped = subprocess.run([*SANDBOX, busybox, "ls", "-a", "/dev/pts"], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=120)
    assert piped.stdout == b".\n..\n"


# -- 2. sendfile from what Linux refuses ---------------------------------------------------------


def test_sendfile_refuses_the_kinds_linux_refuses(built: Path) -> None:
    prog = str(built / "sendfile_kinds")
    native = subprocess.run([prog, "kinds", str(built)], capture_output=True, timeout=60)
    sandboxed = subprocess.run(_mounted(built, prog, "kinds", str(built)), capture_output=True, timeout=120)
    assert native.returncode == 0 and b"pipe -> file (5): -1 EINVAL" in native.stdout
    assert (sandboxed.returncode, sandboxed.stdout, sandboxed.stderr) == (0, native.stdout, native.stderr)


def test_sendfile_from_the_terminal(built: Path) -> None:
    """Into a file: EINVAL at once (it used to wait for the terminal); at an offset ESPIPE;
    into a pipe, what was typed."""
    prog = str(built / "sendfile_kinds")
    native = _on_pty([prog, "tty", str(built)], b"typed\n", b"ready\r\n")
    sandboxed = _on_pty(_mounted(built, prog, "tty", str(built)), b"typed\n", b"ready\r\n")
    assert b"terminal -> file (5): -1 EINVAL\n" in native[1] and b'moved "typed"' in native[1]
    assert sandboxed[:2] == native[:2]


def test_busybox_cat_reads_the_terminal() -> None:
    """busybox cat tries sendfile first and reads on after its EINVAL."""
    busybox = require_tool("busybox")
    native = _on_pty([busybox, "cat"], b"a line\n\x04", b"")
    sandboxed = _on_pty([*SANDBOX, busybox, "cat"], b"a line\n\x04", b"")
    assert native[:2] == (0, b"a line\na line\n") and sandboxed[:2] == native[:2]


# -- 3. the siginfo of a host signal -------------------------------------------------------------


def _sent(argv: list[str], ctrl_c: bool) -> tuple[int, bytes]:
    session = PtySession(argv)
    try:
        session.expect(b"ready\r\n")
        if ctrl_c:
            session.wait_for_input_wait()
            session.type(b"\x03")
        else:
            session.proc.send_signal(signal.SIGTERM)
        status, out = session.finish()
        return status, out.replace(b"\r", b"")
    finally:
        session.close()


def test_ctrl_c_is_si_kernel_as_natively(built: Path, tmp_path: Path) -> None:
    prog = str(built / "siginfo_probe")
    trace = tmp_path / "trace"
    native = _sent([prog], ctrl_c=True)
    sandboxed = _sent([*SANDBOX, "--trace-out", str(trace), "--mount", f"{built}:{built}:ro", prog], ctrl_c=True)
    assert native == (0, b"^Csignal 2 code 128 pid 0 uid 0\n") and sandboxed == native
    assert "--- SIGINT {si_signo=SIGINT, si_code=SI_KERNEL} ---" in trace.read_text()


@pytest.mark.parametrize("uid", [None, 1000])
def test_kill_from_the_host_is_si_user_from_outside_the_namespace(built: Path, tmp_path: Path,
                                                                   uid: int | None) -> None:
    """Natively si_pid is the sender's; the guest's pid namespace does not hold it: 0. The
    sender is the host user running the sandbox: si_uid is the guest's own uid."""
    prog = str(built / "siginfo_probe")
    trace = tmp_path / "trace"
    native = _sent([prog], ctrl_c=False)
    assert native == (0, f"signal 15 code 0 pid {os.getpid()} uid {os.getuid()}\n".encode())
    options = [] if uid is None else ["--uid", str(uid)]
    sandboxed = _sent([*SANDBOX, *options, "--trace-out", str(trace), "--mount", f"{built}:{built}:ro", prog],
                      ctrl_c=False)
    guest_uid = 0 if uid is None else uid
    assert sandboxed == (0, f"signal 15 code 0 pid 0 uid {guest_uid}\n".encode())
    line = f"--- SIGTERM {{si_signo=SIGTERM, si_code=SI_USER, si_pid=0, si_uid={guest_uid}}} ---"
    assert line in trace.read_text()


def test_a_host_signal_to_a_piped_run_is_si_user(built: Path) -> None:
    """Without a terminal too (the daemon case: a guest waiting for SIGTERM)."""
    prog = str(built / "siginfo_probe")
    proc = subprocess.Popen(_mounted(built, prog), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert (proc.returncode, out, err) == (0, b"signal 15 code 0 pid 0 uid 0\n", b"")


def test_a_sender_the_guest_does_not_map_shows_the_overflow_uid() -> None:
    """si_uid of a host sender other than the user running the sandbox: 65534, as an
    unmapped uid in a user namespace; tkill keeps SI_TKILL; the terminal's, SI_KERNEL."""
    from sandbox.kernel.tty import Terminal

    terminal = Terminal()
    terminal._senders[signal.SIGTERM] = [(0, 4321), (-6, 0), (0x80, 0)]
    shown = [struct.unpack_from("<iii4xiI", terminal._siginfo(signal.SIGTERM, 0, 1000)) for _ in range(4)]
    assert shown == [(15, 0, 0, 0, 65534), (15, 0, -6, 0, 1000), (15, 0, 0x80, 0, 0), (15, 0, 0x80, 0, 0)]

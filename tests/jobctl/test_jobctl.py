"""Issue 16: job control inside the guest -- stop signals, SIGCONT, and what wait4, waitid
and SIGCHLD say of them (tests/jobctl/jobs.c), a background process group and its terminal
(ttyjobs.c), and an interactive `busybox sh` whose Ctrl-Z, `jobs`, `fg` and `cat &` work as
on a terminal of its own. Each is run natively and in the sandbox and must print the same.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, assert_as_natively, require_tool, run_native, run_sandbox
from tests.terminal.pty_session import PtySession

SOURCES = ROOT / "tests" / "jobctl"
SANDBOX = [sys.executable, "-m", "sandbox", "run", "--timeout", "60"]
MODES = ["stop", "siginfo", "nocldstop", "waitid", "conthandler", "discard", "orphan", "kill", "threads",
         "threadstop", "cycles", "hangup", "efault", "many"]
PROMPT = b"box$ "


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = require_tool("gcc")
    out = tmp_path_factory.mktemp("jobctl")
    for name in ("jobs", "ttyjobs"):
        subprocess.run([gcc, "-static", "-O2", "-w", "-pthread", "-o", str(out / name), str(SOURCES / f"{name}.c")],
                       check=True)
    return out


def _boxed(built: Path, *argv: str) -> list[str]:
    return ["run", "--timeout", "60", "--mount", f"{built}:{built}:ro", *argv]


@pytest.mark.parametrize("mode", MODES)
def test_stops_and_continues_as_natively(built: Path, mode: str) -> None:
    prog = str(built / "jobs")
    assert_as_natively(run_native([prog, mode]), run_sandbox(_boxed(built, prog, mode)))


def test_a_process_stopped_for_ever_is_a_deadlock(built: Path) -> None:
    """The first process stops itself and nothing can continue it (no terminal): reported
    as a deadlock, not a hang; the run's status is SIGKILL's."""
    done = run_sandbox(_boxed(built, str(built / "jobs"), "selfstop"))
    assert done.stdout == b"stopping myself\n"
    assert done.returncode == 128 + signal.SIGKILL
    assert b"deadlock: stopped by SIGSTOP, and no other process can continue it" in done.stderr


def _session(argv: list[str], steps: list[tuple[bytes, bytes]]) -> bytes:
    """Run `argv` on a pty: for each step wait for its text, then type its input; the
    whole output at the end."""
    session = PtySession(argv)
    try:
        out = b""
        for text, typed in steps:
            out += session.expect(text)
            session.type(typed)
        status, rest = session.finish()
        return out + rest + f"\nstatus {status}".encode()
    finally:
        session.close()


def test_a_background_group_and_its_terminal(built: Path) -> None:
    """SIGTTIN for a read, SIGTTOU for a write under TOSTOP and for tcsetpgrp, EIO when
    blocked, ignored or orphaned; a shell-like parent moves the child to the foreground."""
    steps = [(b"type a line\r\n", b"xyz\r")]
    prog = str(built / "ttyjobs")
    native = _session([prog], steps)
    assert b"stopped by 21" in native and b"stopped by 22" in native
    assert _session([*SANDBOX, "--mount", f"{built}:{built}:ro", prog], steps) == native


def _lines(out: bytes) -> list[bytes]:
    """A shell session's lines without prompts, empty lines and cursor queries: when the
    shell reports a job's change (before or after a prompt) is timing, the lines are not."""
    lines = out.replace(b"\x1b[6n", b"").replace(b"\r", b"").split(b"\n")
    return [line.removeprefix(PROMPT) for line in lines if line.removeprefix(PROMPT).strip()]


#: A foreground job that says when it runs: the subshell puts itself in the foreground
#: before its first command, so a Ctrl-Z typed after "ready" reaches it; after `fg` it says
#: "got" once it has the terminal again, so the Ctrl-C that follows is the job's, not the
#: shell's (typed while `fg` still runs, it would leave the job stopped).
JOB = b"( echo ready; read x; echo got $x; sleep 30; echo never )\r"


def test_busybox_sh_job_control_as_natively() -> None:
    """Ctrl-Z stops the foreground job and the shell gets the terminal back; `jobs`, `fg`,
    Ctrl-C; a background `cat` that reads the terminal is stopped (tty input), and `fg`
    gives it the terminal: it reads a line, and Ctrl-D ends it."""
    busybox = require_tool("busybox")
    steps = [(PROMPT, JOB), (b"ready\r\n", b"\x1a"), (b"Stopped", b""), (PROMPT, b"jobs\r"),
             (PROMPT, b"fg\r"), (b"echo never)\r\n", b"go\r"), (b"got go\r\n", b"\x03"),
             (PROMPT, b"cat & wait; jobs\r"),
             (b"tty input", b""), (PROMPT, b"fg\r"), (b"cat\r\n", b"hello\r"), (b"hello\r\nhello\r\n", b"\x04"),
             (PROMPT, b"exit\r")]
    native = _lines(_session(["env", "-i", f"PS1={PROMPT.decode()}", busybox, "sh", "-i"], steps))
    boxed = _lines(_session([*SANDBOX, "--env", f"PS1={PROMPT.decode()}", busybox, "sh", "-i"], steps))
    assert b"[1]+  Stopped                    (echo ready; read x; echo got ${x}; sleep 30; echo never)" in native
    assert b"[1]+  Stopped (tty input)        cat" in native
    assert native[-1] == b"status 0"
    assert boxed == native


def test_a_shell_that_exits_leaves_no_stopped_job() -> None:
    """`exit` twice with a job stopped: the shell ends, the job's group is orphaned and
    gets SIGHUP and SIGCONT, so the run ends as natively instead of waiting for ever."""
    busybox = require_tool("busybox")
    steps = [(PROMPT, JOB), (b"ready\r\n", b"\x1a"), (b"Stopped", b""), (PROMPT, b"exit\r"),
             (b"stopped jobs", b""), (PROMPT, b"exit\r")]
    native = _session(["env", "-i", f"PS1={PROMPT.decode()}", busybox, "sh", "-i"], steps)
    boxed = _session([*SANDBOX, "--env", f"PS1={PROMPT.decode()}", busybox, "sh", "-i"], steps)
    assert native.endswith(b"status 0") and _lines(boxed) == _lines(native)

"""The guest's own pseudo-terminals (sandbox/kernel/pty.py), against native runs: a child in
a new session on the slave (its controlling terminal) while the parent types on the master
(ptyprobe.c); Python's os.openpty and pty.spawn; util-linux script; and attacks (ptyattack.c).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, require_tool, run_native, run_sandbox

SOURCES = ROOT / "tests" / "pty"
PYTHON = "/usr/bin/python3"

#: (probe arguments): each a session whose master output and end are compared with native.
SESSIONS = {
    "stty and read": ["sh", "stty -a; echo hi; read x; echo got $x", "hi", r"abc\r"],
    "erase and kill": ["sh", 'echo hi; read x; echo "[$x]"; read y; echo "[$y]"', "hi", r"ab\x7fc\r", "]",
                       r"xyz\x15def\r"],
    "word erase": ["sh", 'echo hi; read x; echo "[$x]"', "hi", r"one two\x17\x17three\r"],
    "eof ends cat": ["sh", "echo hi; cat; echo rc=$?", "hi", r"hello\r\x04"],
    "eof mid line": ["sh", "echo hi; cat; echo rc=$?", "hi", r"part\x04", "part", r"\x04"],
    "intr ends a read": ["c", "intr", "ready", "ab", "ab", r"\x03", "ints", r"q\r"],
    "quit kills": ["sh", "echo hi; read x", "hi", r"\x1c"],
    "raw vmin": ["c", "raw", "go", "ab", "-", "c"],
    "winsize and sigwinch": ["c", "winch", "ready", "@winch"],
    "master closed": ["c", "hup", "ready", "@close"],
    "no echo, igncr": ["sh", 'stty -echo; echo hi; read x; echo "[$x]"; stty echo -icrnl igncr; echo ho; read y; '
                       'echo "[$y]"', "hi", r"secret\r", "ho", r"a\rb\n"],
    "inlcr, no onlcr": ["sh", 'stty inlcr -onlcr; echo hi; read x; echo "[$x]"', "hi", r"ab\n\r"],
    "exit status": ["sh", "exit 3"],
    "dev tty is the pty": ["sh", "echo hi >/dev/tty; read x </dev/tty; echo got $x >/dev/tty", "hi", r"abc\r"],
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = require_tool("gcc")
    out = tmp_path_factory.mktemp("pty")
    for name in ("ptyprobe", "ptyattack"):
        subprocess.run([gcc, "-static", "-O2", "-w", "-o", str(out / name), str(SOURCES / f"{name}.c")], check=True)
    return out


def boxed(built: Path, argv: list[str], stdin: bytes = b"") -> subprocess.CompletedProcess:
    return run_sandbox(["run", "--timeout", "60", "--mount", f"{built}:{built}:ro", *argv], stdin=stdin)


def same(native: subprocess.CompletedProcess, boxed_run: subprocess.CompletedProcess) -> None:
    assert (boxed_run.stdout, boxed_run.stderr, boxed_run.returncode) == \
        (native.stdout, native.stderr, native.returncode)


@pytest.mark.parametrize("session", SESSIONS)
def test_session_as_natively(built: Path, session: str) -> None:
    argv = [str(built / "ptyprobe"), *SESSIONS[session]]
    same(run_native(argv), boxed(built, argv))


def test_slave_opened_by_ptsname(built: Path) -> None:
    """The child opens ptsname's /dev/pts/N (the host here may have no such node: sandbox only)."""
    argv = [str(built / "ptyprobe"), "sh", "tty | cut -c1-9; echo hi; read x; echo got $x", "hi", r"abc\r"]
    result = run_sandbox(["run", "--timeout", "60", "--env", "PTYPROBE_BY_NAME=1", "--mount",
                          f"{built}:{built}:ro", *argv])
    assert result.stdout.decode().splitlines()[:4] == [r"/dev/pts/\x0d\n", r"hi\x0d\n", r"abc\x0d\n",
                                                       r"got abc\x0d\n"], result
    assert result.returncode == 0


@pytest.mark.parametrize("mode", ["flood", "loop", "efault"])
def test_attack_as_natively(built: Path, mode: str) -> None:
    argv = [str(built / "ptyattack"), mode]
    same(run_native(argv), boxed(built, argv))


def test_pair_cap(built: Path) -> None:
    """Thousands of ptmx opens: ENOSPC at the sandbox's cap; all closed, another opens."""
    result = boxed(built, [str(built / "ptyattack"), "cap"])
    assert result.stdout == b"open 64 failed: No space left on device\nafter closing: open\n", result


def test_tiocsti_refused(built: Path) -> None:
    result = boxed(built, [str(built / "ptyattack"), "sti"])
    assert result.stdout == b"TIOCSTI: -1 Input/output error\n", result


def test_dev_pts_listing(built: Path) -> None:
    """/dev/ptmx and /dev/pts/ptmx are there (the latter not listed: tests/terminal wants the host
    terminal alone in a listing); a pair's slave is listed while its master is open."""
    code = ("import os; m, s = os.openpty(); n = os.ttyname(s); print(os.path.exists('/dev/ptmx'), "
            "os.path.basename(n) in os.listdir('/dev/pts'), os.path.exists('/dev/pts/ptmx'), "
            "os.stat(n).st_rdev == os.fstat(s).st_rdev); os.close(m); os.close(s); "
            "print(os.path.exists(n))")
    result = run_sandbox(["run", "--timeout", "60", PYTHON, "-c", code])
    assert result.stdout == b"True True True True\nFalse\n", result


PYTHON_PROGRAMS = {
    "openpty": 'import os\nm, s = os.openpty(); print(os.ttyname(s)[:9]); os.write(m, b"hey\\r")\n'
               'print(os.read(s, 100)); print(os.read(m, 100))',
    "spawn": 'import pty, sys; sys.stdout.flush(); pty.spawn(["/bin/sh", "-c", "echo hi; stty size; tty | cut -c1-9"])',
}


@pytest.mark.parametrize("program", PYTHON_PROGRAMS)
def test_python_pty_as_natively(program: str) -> None:
    require_tool("python3")
    argv = [PYTHON, "-c", PYTHON_PROGRAMS[program]]
    same(run_native(argv), run_sandbox(["run", "--timeout", "60", *argv]))


def test_script_as_natively() -> None:
    script = require_tool("script")
    argv = [script, "-qc", "echo hi; stty size", "/dev/null"]
    same(run_native(argv), run_sandbox(["run", "--timeout", "60", *argv]))

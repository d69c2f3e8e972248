"""--step-faults (issue 16, tools that teach virtual memory): a panel per page fault, and on
a terminal a pause after each, answered from /dev/tty.

The guest (fewfaults.c, no C library) takes exactly six faults, natively meaningless but
fixed in the sandbox: its first stack page (by exec), its code, three bss pages, and its
read-only data (by write). The terminal tests run the sandbox on a pseudo-terminal that is
its controlling terminal (tests/terminal/pty_session.py) and type the answers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, build_c, run_native, run_sandbox
from tests.terminal.pty_session import PtySession

FAULTS = 6  # fewfaults' page faults in the sandbox
PROMPT = b"[q Enter] end the run (status 130) "
SANDBOX = [sys.executable, "-m", "sandbox", "run", "--timeout", "60", "--step-faults"]


@pytest.fixture(scope="module")
def prog(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("teach")
    return str(build_c(ROOT / "tests" / "teach" / "fewfaults.c", out, "-nostdlib", "-fno-stack-protector"))


def _panel(n: int) -> bytes:
    return f"-- page fault {n} --".encode()


def _settled(session: PtySession) -> bytes:
    """What the session printed once it has printed nothing more for a moment."""
    while session._read(0.3):
        pass
    return session.output


def test_enter_shows_one_fault_at_a_time(prog: str) -> None:
    session = PtySession([*SANDBOX, prog])
    try:
        for n in range(1, FAULTS + 1):
            panel = session.expect(PROMPT)
            assert _panel(n) in panel and b"entry    before: " in panel and b"after:  pfn 0x" in panel
            assert _panel(n + 1) not in _settled(session), "the run waits for Enter"
            session.type(b"\r")
        status, rest = session.finish()
        assert status == 0 and b"done" in rest and _panel(FAULTS + 1) not in rest
    finally:
        session.close()


def test_a_panel_names_the_fault(prog: str) -> None:
    session = PtySession([*SANDBOX, prog])
    try:
        for _ in range(2):
            session.expect(PROMPT)
            session.type(b"\r")
        third = session.expect(PROMPT).decode()  # the first bss page, written by the guest
        assert "address  0x403000: write, from user mode" in third
        assert "rip      0x40" in third and "mov byte ptr" in third
        assert "kind     demand-zero:" in third and "region   0x403000-0x406000 rw-p bss" in third
        assert "walk     PML4[0] PDPT[0] PD[2] PT[3]" in third
        assert "before: empty (not present)" in third and " P RW US" in third and "frame    pfn 0x" in third
        session.type(b"c\r")
        assert session.finish()[0] == 0
    finally:
        session.close()


def test_c_runs_on_without_pausing(prog: str) -> None:
    session = PtySession([*SANDBOX, prog])
    try:
        session.expect(PROMPT)
        session.type(b"c\r")
        status, rest = session.finish()
        assert status == 0 and b"done" in rest and b"running on, no more faults shown" in rest
        assert _panel(2) not in rest and PROMPT not in rest
    finally:
        session.close()


@pytest.mark.parametrize("at", [1, 3])  # the kernel's fault in exec (no CPU running), a user fault
def test_q_ends_the_run_as_ctrl_c_would(prog: str, at: int) -> None:
    session = PtySession([*SANDBOX, prog])
    try:
        for _ in range(at - 1):
            session.expect(PROMPT)
            session.type(b"\r")
        session.expect(PROMPT)
        session.type(b"q\r")
        status, rest = session.finish()
        assert status == 130 and b"done" not in rest and f"q at fault {at}".encode() in rest
        assert _panel(at + 1) not in rest
    finally:
        session.close()


def test_other_answers_ask_again(prog: str) -> None:
    session = PtySession([*SANDBOX, prog])
    try:
        session.expect(PROMPT)
        session.type(b"what\r")
        assert b"? 'what'" in session.expect(PROMPT)
        assert _panel(2) not in _settled(session)
        session.type(b"c\r")
        assert session.finish()[0] == 0
    finally:
        session.close()


def test_a_signal_at_the_pause_goes_to_the_guest(prog: str) -> None:
    """Ctrl-C (SIGINT to the sandbox) while it waits: the pause ends and the guest gets it."""
    session = PtySession([*SANDBOX, prog])
    try:
        for _ in range(2):
            session.expect(PROMPT)
            session.type(b"\r")
        session.expect(PROMPT)  # fault 3, in the guest's loop
        session.proc.send_signal(signal.SIGINT)
        status, rest = session.finish()
        assert status == 130 and b"done" not in rest and b"a signal came" in rest
        assert _panel(4) not in rest
    finally:
        session.close()


def _controlling_terminal(name: str):  # noqa: ANN202 - a preexec function
    def become() -> None:
        os.setsid()
        os.close(os.open(name, os.O_RDWR))  # a session leader's first terminal becomes its own
    return become


def test_answers_come_from_the_terminal_not_the_guests_stdin(prog: str) -> None:
    """stdin is a pipe the guest reads; Enter comes from /dev/tty: both get what is theirs."""
    master, slave = os.openpty()
    name = os.ttyname(slave)
    proc = subprocess.Popen([*SANDBOX, prog, "read"], stdin=subprocess.PIPE, stdout=slave, stderr=slave,
                            preexec_fn=_controlling_terminal(name), close_fds=True)
    session = PtySession.__new__(PtySession)
    session.master, session.slave, session.proc, session.output, session.slave_name = master, slave, proc, b"", name
    try:
        proc.stdin.write(b"from stdin\n")
        proc.stdin.close()
        seen = b""
        for _ in range(FAULTS):
            seen += session.expect(PROMPT)
            session.type(b"\r")
        status, rest = session.finish()
        assert status == 0 and b"from stdin\r\n" in seen + rest and b"done" in rest
    finally:
        session.close()


def test_off_a_terminal_every_fault_is_shown_without_pausing(prog: str, tmp_path: Path) -> None:
    stats = tmp_path / "stats.json"
    boxed = run_sandbox(["run", "--step-faults", "--stats-json", str(stats), prog], stdin=b"\n" * 10)
    native = run_native([prog])
    assert (boxed.stdout, boxed.returncode) == (native.stdout, native.returncode)
    err = boxed.stderr.decode()
    assert err.count("without pausing") == 1 and "[Enter]" not in err
    assert err.count("-- page fault ") == json.loads(stats.read_text())["faults_total"] == FAULTS
    assert "bits     P present, RW writable, US user" in err  # the first panel names the bits


def test_step_faults_works_for_maps_and_pagetable(prog: str) -> None:
    for command in ("maps", "pagetable"):
        boxed = run_sandbox([command, "--step-faults", prog])
        assert boxed.returncode == 0 and boxed.stderr.decode().count("-- page fault ") == FAULTS


def test_a_pause_reads_a_line_though_the_guest_made_the_terminal_raw(prog: str) -> None:
    session = PtySession([*SANDBOX, prog, "raw"])
    try:
        original = session.modes()
        for _ in range(FAULTS):
            session.expect(PROMPT)
            session.type(b"\r")  # a line only in the pause's line mode (ICRNL, ICANON)
        status, rest = session.finish()
        assert status == 0 and b"done" in rest
        assert session.modes() == original  # and the sandbox gave the host's modes back
    finally:
        session.close()


def test_end_of_input_at_the_pause_runs_on(prog: str) -> None:
    session = PtySession([*SANDBOX, prog])
    try:
        session.expect(PROMPT)
        session.type(b"\x04")  # Ctrl-D on an empty line: the terminal's end of input
        status, rest = session.finish()
        assert status == 0 and b"done" in rest and b"no more answers from the terminal" in rest
    finally:
        session.close()


def test_a_name_the_guest_chose_reaches_the_terminal_escaped() -> None:
    from sandbox.mm.vma import PROT_READ, Region
    from sandbox.stepper import _region

    region = Region(0x1000, 0x2000, PROT_READ, name="/tmp/x\x1b]0;pwned\x07")
    assert _region(region) == "0x1000-0x2000 r--p /tmp/x\\x1b]0;pwned\\x07"

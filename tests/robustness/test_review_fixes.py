"""Holes a second adversarial review found after the containment work (issue 12), each kept
as an attack: a terminal nobody reads, the last page of a 2^63-byte file, unknown system
call numbers, the sandbox's own last message, host descriptors, /proc positions."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

import pytest

from tests.conftest import guest, run_sandbox

SANDBOX = [sys.executable, "-m", "sandbox", "run"]


@pytest.mark.parametrize("size", [65536, 3000])
def test_a_terminal_nobody_reads_ends_at_the_timeout(size: int) -> None:
    """poll says a pty is writable when it has any room; a 4 KiB write then blocked inside
    the host kernel, past --timeout and SIGTERM. Writes to a stream are non-blocking now."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([*SANDBOX, "--timeout", "2", guest("escape-musl"), "flood", "1", str(size)],
                            stdin=subprocess.DEVNULL, stdout=terminal, stderr=subprocess.PIPE)
    os.close(terminal)
    try:
        _, err = proc.communicate(timeout=120)  # the guard: the run itself must end at 2 s
    finally:
        os.close(controller)
    assert proc.returncode == 137 and b"time limit of 2 s reached" in err


def test_the_last_page_below_2_63_reads_as_natively() -> None:
    """A page-cache fill read whole pages, and at 2^63 - 4096 the host's pread answered
    EINVAL (exit 70). As Linux's file_mmap_ok, that page cannot be mapped (EOVERFLOW); the
    one before it reads. Needs a tmpfs $TMPDIR, where a memfd may be that large."""
    if os.statvfs("/dev/shm").f_bsize == 0 or not os.path.ismount("/dev/shm"):
        pytest.skip("no tmpfs at /dev/shm")
    env = {**os.environ, "TMPDIR": "/dev/shm"}
    native = subprocess.run([guest("escape-glibc"), "lastpage", "-"], capture_output=True, env=env, timeout=60)
    sandboxed = run_sandbox(["run", guest("escape-glibc"), "lastpage", "-"], env=env)
    assert sandboxed.returncode == native.returncode == 0, sandboxed.stderr
    assert sandboxed.stdout == native.stdout and b"Value too large" in native.stdout


def test_unknown_system_call_numbers_share_one_counter(capfd) -> None:
    """--stats counted each unknown number under its own key: a guest grew a host table by
    ~125 bytes per call, without bound."""
    from sandbox.api import Sandbox
    from sandbox.kernel.entries import UNKNOWN_SYSCALL

    with Sandbox() as sb:
        assert sb.run(guest("escape-musl"), ["escape", "numbers", "3000"]).status == 0
        counts = sb.kernel.syscall_counts
        assert counts[UNKNOWN_SYSCALL] == 3000 and len(counts) < 40
    assert "ENOSYS 3000 of 3000" in capfd.readouterr().out


def test_the_sandboxs_last_message_never_outlives_a_full_stderr() -> None:
    """The guest fills a stderr pipe nobody reads and is killed at --timeout; the sandbox's
    own "killed: time limit" line then blocked in the host write for as long as nobody read."""
    proc = subprocess.Popen([*SANDBOX, "--timeout", "2", guest("escape-musl"), "flood", "2", "4096"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        status = proc.wait(timeout=120)  # nobody reads stderr until the sandbox has ended
    finally:
        proc.kill()
        proc.communicate()
    assert status == 137


def test_host_files_of_all_processes_share_one_budget(capfd) -> None:
    """--max-open-files bounds one process; 256 processes times 1024 descriptors was the
    host's whole descriptor table. Open host files are one sandbox-wide budget (ENFILE)."""
    from sandbox.api import Sandbox

    with Sandbox(host_files=50) as sb:
        assert sb.run(guest("escape-musl"), ["escape", "openmany", "3", "30"]).status == 0
        assert sb.kernel.budgets.host_files.peak == 50
        assert sb.kernel.budgets.host_files.used == 0, "every host file was given back"
    out = capfd.readouterr().out
    assert "child 0: 30 open, all" in out and "child 1: 20 open, Too many open files in system" in out


def test_proc_positions_stop_at_loff_t_as_natively() -> None:
    native = subprocess.run([guest("escape-glibc"), "procseek", "-"], capture_output=True, timeout=60)
    sandboxed = run_sandbox(["run", guest("escape-glibc"), "procseek", "-"])
    assert sandboxed.stdout == native.stdout and b"past it: -1 Invalid argument" in native.stdout

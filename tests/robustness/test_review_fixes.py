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

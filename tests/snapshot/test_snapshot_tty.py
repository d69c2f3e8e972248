"""Snapshots bring the terminal back: the modes (termios) the guest set on the host's
terminal and the window size it set, on a pty (as tests/jobctl drives one). The guest is
ttyguest.c, next to this file; the driver runs in a child whose stdin is the pty."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, require_tool

SOURCE = ROOT / "tests" / "snapshot" / "ttyguest.c"
#: The child: snapshot at checkpoint(), run on from it twice, restore, close; it reports what
#: the guest printed and what the host's terminal modes were at each step.
DRIVER = r"""
import sys, termios
from sandbox.api import Sandbox
from sandbox.mm.translate import elf_symbol
prog = sys.argv[1]
before = termios.tcgetattr(0)
with Sandbox(memory=64 << 20) as sb:
    address = elf_symbol(prog, "checkpoint")
    snaps = []
    sb.hook_code(address, address + 1, lambda _a, _s: snaps or snaps.append(sb.snapshot()))
    print(sb.run(prog, [prog], capture=True).stdout.decode(), end="")
    print("after the run, the host's modes:", termios.tcgetattr(0) == before)
    for _ in range(2):
        print(sb.run_from(snaps[0]).stdout.decode(), end="")
    print("after a run on, the host's modes:", termios.tcgetattr(0) == before)
    sb.restore(snaps[0])
    print("restored, raw:", not termios.tcgetattr(0)[3] & termios.ICANON)
print("closed, the host's modes:", termios.tcgetattr(0) == before)
"""


@pytest.fixture(scope="module")
def prog(tmp_path_factory: pytest.TempPathFactory) -> str:
    gcc = require_tool("gcc")
    out = tmp_path_factory.mktemp("ttyguest") / "ttyguest"
    subprocess.run([gcc, "-static", "-O2", "-w", "-o", str(out), str(SOURCE)], check=True)
    return str(out)


def test_restore_gives_the_terminal_its_modes_and_size(prog: str) -> None:
    """Each run from the snapshot finds the modes and size of the checkpoint (the run before
    ended with others, and its end gave the host its modes back); a restore between runs
    sets the guest's modes again, and closing the sandbox gives the host's back."""
    master, slave = os.openpty()
    try:
        run = subprocess.run([sys.executable, "-c", DRIVER, prog], stdin=slave, capture_output=True, cwd=ROOT,
                             timeout=120)
    finally:
        os.close(slave)
        os.close(master)
    assert run.returncode == 0, run.stderr.decode()
    assert run.stdout.decode().splitlines() == [
        "icanon 0 echo 0 rows 33 cols 77",
        "after the run, the host's modes: True",
        "icanon 0 echo 0 rows 33 cols 77",
        "icanon 0 echo 0 rows 33 cols 77",
        "after a run on, the host's modes: True",
        "restored, raw: True",
        "closed, the host's modes: True",
    ]

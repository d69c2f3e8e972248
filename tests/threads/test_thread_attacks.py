"""Attacks on threads from an adversarial review (tests/threads/attacks/*.c, built here),
each run natively and in the sandbox; every one failed before its fix:

- a CLONE_VM child outliving the first process freed its address space twice (exit 70);
- a CLONE_FILES child's exit closed its parent's descriptors, stdout included;
- CLONE_FS was not shared between processes;
- a signal made FUTEX_LOCK_PI fail, and glibc took that for success: two owners;
- CLONE_VFORK|CLONE_THREAD left the parent asleep until a false deadlock;
- a CLONE_*_SETTID address that faults made clone fail with the thread already running;
- FUTEX_WAKE with a count of 0 woke nobody (Linux wakes one);
- execve kept the robust-list head, which named the old image.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, require_tool, run_native, run_sandbox

SOURCES = ROOT / "tests" / "threads" / "attacks"
SAME = ["atk vmproc2", "atk vforkthread", "atk leaderexit", "atk cleartid_ro", "cf", "cf vm", "cfs", "pisig",
        "tatk execblocked", "tatk exitgroup", "tatk allblock", "tatk tgkill", "tatk threadwait",
        "tatk requeue_self"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = require_tool("gcc")
    out = tmp_path_factory.mktemp("attacks")
    for name in ("atk", "cf", "cfs", "pisig", "tatk", "execer"):
        subprocess.run([gcc, "-static", "-O2", "-pthread", "-w", "-o", str(out / name), str(SOURCES / f"{name}.c")],
                       check=True)
    subprocess.run([gcc, "-static", "-nostdlib", "-O2", "-w", "-o", str(out / "nolibc"), str(SOURCES / "nolibc.c")],
                   check=True)
    return out


def argv_of(built: Path, command: str) -> list[str]:
    name, *args = command.split()
    return [str(built / name), *[a.replace("@", str(built)) for a in args]]


def boxed_run(built: Path, command: str) -> subprocess.CompletedProcess:
    return run_sandbox(["run", "--timeout", "60", "--mount", f"{built}:{built}:ro", *argv_of(built, command)])


def both(built: Path, command: str) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    return run_native(argv_of(built, command)), boxed_run(built, command)


@pytest.mark.parametrize("command", SAME)
def test_as_natively(built: Path, command: str) -> None:
    native, boxed = both(built, command)
    assert (boxed.stdout, boxed.stderr, boxed.returncode) == (native.stdout, native.stderr, native.returncode)


def test_a_wake_of_none_wakes_one(built: Path) -> None:
    """Two threads print: the lines, not their order, are the same."""
    native, boxed = both(built, "tatk wake0")
    assert boxed.returncode == native.returncode == 0
    assert sorted(boxed.stdout.splitlines()) == sorted(native.stdout.splitlines())


def test_a_vm_sharing_child_outlives_the_first_process(built: Path) -> None:
    """The child's line comes after its parent has gone: same lines, same status."""
    native, boxed = both(built, "atk vmproc")
    assert boxed.returncode == native.returncode == 4, boxed.stderr.decode()
    assert sorted(boxed.stdout.splitlines()) == sorted(native.stdout.splitlines())


def test_settid_faults_are_ignored(built: Path) -> None:
    native, boxed = both(built, "atk ptid")
    lines = boxed.stdout.decode().splitlines()
    assert boxed.returncode == native.returncode == 0
    native_lines = native.stdout.decode().splitlines()
    assert [line.split(":")[0] for line in lines] == [line.split(":")[0] for line in native_lines]
    assert all("errno=0" in line for line in lines[:2]) and lines[2] == "threads: 3"


def test_execve_forgets_the_robust_list(built: Path) -> None:
    native, boxed = both(built, "execer @/nolibc")
    assert boxed.stdout == native.stdout == b"robust head after exec: 0x0000000000000000\n"


def test_two_threads_waiting_on_each_other_are_a_deadlock(built: Path) -> None:
    """Natively this hangs for ever; here it is said and ended."""
    boxed = boxed_run(built, "tatk deadlock2")
    assert boxed.returncode == 137 and "deadlock: futex wait" in boxed.stderr.decode()

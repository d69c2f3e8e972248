"""File locks, FIFOs and the calls that can block part-way (issue 15, parts A and B).

Each C program (sources beside this file, built here) prints what it sees; it is run
natively and in the sandbox and the two must agree. Regressions these catch, each failing
before its fix: sendfile into a full pipe lost the bytes it had read (the retry read on
from the advanced offset: `busybox cat FILE | (sleep 1; wc -c)` counted 65,536 of 168,894),
a blocking write larger than the pipe returned a short count, fcntl record locks were
granted to everyone and F_GETLK always said unlocked, flock and the other calls were ENOSYS,
and mknod refused FIFOs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, require_tool, run_native, run_sandbox

SOURCES = ROOT / "tests" / "files"
LOCKS = ["posix", "deadlock", "close", "split", "bad", "ofd", "flock", "closewait", "interrupt"]
FIFOS = ["between", "opens", "interrupt"]
DATALOSS = ["write", "writev", "sendfile", "sendfile_offset", "interrupt"]
CALLS = ["splice_slow", "splice", "copy", "vectors", "misc"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = require_tool("gcc")
    out = tmp_path_factory.mktemp("files")
    for name in ("locks", "fifo", "dataloss", "calls"):
        subprocess.run([gcc, "-static", "-O2", "-pthread", "-w", "-o", str(out / name), str(SOURCES / f"{name}.c")],
                       check=True)
    (out / "work").mkdir()
    return out


def boxed(built: Path, argv: list[str]) -> subprocess.CompletedProcess:
    return run_sandbox(["run", "--timeout", "60", "--mount", f"{built}:{built}", *argv])


def same(built: Path, argv: list[str], reset: str | None = None) -> None:
    """`argv` gives the same output and status natively and in the sandbox (`reset`: a file
    emptied before each run)."""
    if reset:
        Path(reset).write_bytes(b"")
    native = run_native(argv)
    if reset:
        Path(reset).write_bytes(b"")
    sandboxed = boxed(built, argv)
    assert (sandboxed.stdout.decode(), sandboxed.stderr.decode(), sandboxed.returncode) == \
        (native.stdout.decode(), native.stderr.decode(), native.returncode)


@pytest.mark.parametrize("case", LOCKS)
def test_locks_as_natively(built: Path, case: str) -> None:
    target = str(built / "work" / "lockfile")
    same(built, [str(built / "locks"), case, target], reset=target)


@pytest.mark.parametrize("case", FIFOS)
def test_fifos_as_natively(built: Path, case: str) -> None:
    same(built, [str(built / "fifo"), case, str(built / "work")])


@pytest.mark.parametrize("case", DATALOSS)
def test_nothing_lost_as_natively(built: Path, case: str) -> None:
    data = built / "data"
    if not data.exists():
        subprocess.run([str(built / "dataloss"), "makefile", str(data)], check=True)
    same(built, [str(built / "dataloss"), case, str(data)])


@pytest.mark.parametrize("case", CALLS)
def test_calls_as_natively(built: Path, case: str) -> None:
    same(built, [str(built / "calls"), case, str(built / "work")])


def test_mknod_kinds(built: Path) -> None:
    """Regular files and FIFOs are made; device nodes are EPERM, as for an unprivileged
    user (natively this test runs as root, so its output is fixed here)."""
    result = boxed(built, [str(built / "fifo"), "nodes", str(built / "work")])
    assert result.stdout.decode().splitlines() == [
        "mknod S_IFREG: ok", "regular 1 size 0 mode 640", "again: File exists",
        "mknod S_IFCHR: Operation not permitted", "mknod S_IFBLK: Operation not permitted",
        "mknod bad type: Invalid argument", "mknod 0 mode: ok", "regular 1",
        "mkfifo in a missing dir: No such file or directory"]


def test_millions_of_lock_ranges_are_bounded(built: Path) -> None:
    """Alternating one-byte locks cannot be merged: the sandbox stops them with ENOLCK at
    its bound (Linux only at memory's end), and the process goes on."""
    target = built / "work" / "many"
    target.write_bytes(b"")
    result = boxed(built, [str(built / "locks"), "many", str(target)])
    assert result.stdout.decode().splitlines() == [
        "stopped: No locks available", "unlock all: Success", "lock again: Success"]


def test_fifo_opened_by_one_side_ends(built: Path) -> None:
    """A FIFO nobody will ever write to: the open sleeps, and the sandbox ends the run (a
    deadlock, or --timeout) instead of blocking the host on the host FIFO."""
    work = built / "lonely"
    work.mkdir(exist_ok=True)
    result = run_sandbox(["run", "--timeout", "5", "--mount", f"{built}:{built}", str(built / "fifo"), "oneside",
                          str(work)])
    assert result.stdout == b"opening\n"
    assert result.returncode != 0


@pytest.fixture(scope="module")
def tree(built: Path) -> Path:
    """A file of 168,894 bytes and a tree of more than 200 KB."""
    root = built / "tree"
    (root / "sub").mkdir(parents=True, exist_ok=True)
    for i in range(6):
        (root / "sub" / f"f{i}").write_bytes(os.urandom(40_000))
    (root / "big").write_bytes(os.urandom(168_894))
    return root


def test_busybox_cat_into_a_slow_reader(built: Path, tree: Path) -> None:
    command = f"busybox cat {tree}/big | (sleep 1; busybox wc -c)"
    result = boxed(built, ["/bin/busybox", "sh", "-c", command])
    assert result.stdout.split() == [b"168894"]


def test_busybox_tar_through_a_pipe(built: Path, tree: Path) -> None:
    command = f"cd {tree} && busybox tar czf - sub big | (sleep 1; busybox tar tzf -) | busybox sort"
    native = run_native(["/bin/busybox", "sh", "-c", command])
    result = boxed(built, ["/bin/busybox", "sh", "-c", command])
    assert result.stdout == native.stdout and b"sub/f5" in result.stdout


def test_mkfifo_with_a_shell(built: Path) -> None:
    work = built / "shellfifo"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    command = f"cd {work} && busybox mkfifo p && (busybox seq 1 20000 > p &) && busybox wc -l < p && " \
              "busybox ls -l p | busybox cut -c1"
    native = run_native(["/bin/busybox", "sh", "-c", command])
    shutil.rmtree(work)
    work.mkdir()
    result = boxed(built, ["/bin/busybox", "sh", "-c", command])
    assert result.stdout == native.stdout == b"20000\np\n"


def test_flock_utility_with_dash(built: Path) -> None:
    """util-linux's flock(1) serialises two dash pipelines on one lock file."""
    flock = Path("/usr/bin/flock")
    dash = Path("/usr/bin/dash")
    if not flock.exists() or not dash.exists():
        pytest.skip("util-linux flock or dash not installed")
    lock = built / "work" / "flockfile"
    command = (f"for i in 1 2 3; do (flock {lock} dash -c 'echo start; sleep 0.2; echo end') & done; wait; "
               f"flock -n {lock} echo free; (flock {lock} sleep 1 &); sleep 0.3; flock -n {lock} echo taken "
               "|| echo busy")
    native = run_native([str(dash), "-c", command])
    result = boxed(built, [str(dash), "-c", command])
    assert result.stdout == native.stdout
    assert result.stdout.decode().split() == ["start", "end"] * 3 + ["free", "busy"]

"""Resource limits that hold, and the process calls the sandbox lacked (issue 15, parts A
and B), each compared with a native run of the same program.

The programs (rlim.c, calls.c, built here) set their own limits and print what they then
observe. Natively they run as an unprivileged user (setpriv to nobody when the tests run
as root): the guest has no privilege, so raising a hard limit, a lower nice value, a
real-time policy, chroot and mlock past RLIMIT_MEMLOCK must fail natively too.

Attacks kept here: RLIMIT_NOFILE 0 then open, RLIMIT_AS of a page then malloc, RLIMIT_CPU
of 1 s against a busy loop (it ends), process_vm_readv with 1024 iovecs of bad addresses,
signals and polls through the pidfd of a reaped process.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_tool, run_native, run_sandbox

SOURCES = Path(__file__).resolve().parent
NOBODY = 65534
RLIM_CASES = ["nofile", "rules", "nproc", "stack", "as", "data", "cpu", "core 0", "core 4095"]
CALL_CASES = ["usage", "prio", "misc", "locks", "sigwait", "pidfd", "clonefd", "vm"]
CORE_SIGNALS = {3, 4, 5, 6, 7, 8, 11, 24, 25, 31}


@pytest.fixture(scope="module")
def built() -> Iterator[Path]:
    """The programs, in a directory the unprivileged native runs can enter and write."""
    gcc = require_tool("gcc")
    out = Path(tempfile.mkdtemp(prefix="sandbox-limits-"))
    out.chmod(0o777)
    try:
        for name in ("rlim", "calls"):
            subprocess.run([gcc, "-static", "-O2", "-w", "-o", str(out / name), str(SOURCES / f"{name}.c")],
                           check=True)
        yield out
    finally:
        shutil.rmtree(out)


def unprivileged(argv: list[str]) -> list[str]:
    """`argv` as an unprivileged user: as nobody, without capabilities, if we are root."""
    if os.getuid() != 0:
        return argv
    setpriv = require_tool("setpriv")
    return [setpriv, "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups", *argv]


def native(built: Path, command: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    name, *args = command.split()
    return run_native(unprivileged([str(built / name), *args]), cwd=cwd)


def boxed(built: Path, command: str) -> subprocess.CompletedProcess:
    """The sandbox's side, as the same unprivileged user as the native side (a root guest
    has what root has in a user namespace: chroot would succeed)."""
    name, *args = command.split()
    ids = ["--uid", str(NOBODY), "--gid", str(NOBODY)] if os.getuid() == 0 else []
    return run_sandbox(["run", "--timeout", "120", *ids, "--mount", f"{built}:{built}:ro", str(built / name), *args])


def assert_same(built: Path, command: str, sandbox_command: str | None = None) -> str:
    """The program's stdout, stderr and status natively and in the sandbox are equal."""
    mine, theirs = boxed(built, sandbox_command or command), native(built, command)
    assert (mine.stdout.decode(), mine.stderr.decode(), mine.returncode) == \
        (theirs.stdout.decode(), theirs.stderr.decode(), theirs.returncode)
    return mine.stdout.decode()


@pytest.mark.parametrize("case", RLIM_CASES)
def test_limit_holds_as_natively(built: Path, case: str) -> None:
    assert_same(built, f"rlim {case}")


def test_file_size_limit(built: Path) -> None:
    """Partial writes up to RLIMIT_FSIZE, then SIGXFSZ and EFBIG (the file is the guest's
    /tmp in the sandbox, the build directory natively: the output names neither)."""
    out = assert_same(built, f"rlim fsize {built}/fsize.tmp", "rlim fsize /tmp/fsize.tmp")
    assert "write 60: 40" in out and "default action: signal 25 core 0" in out


def test_core_dump_bit(built: Path) -> None:
    """WCOREDUMP for the core signals when RLIMIT_CORE allows a dump (no file is written
    in the sandbox). Natively the host's core_pattern decides whether a core is written,
    and only a written core sets the bit: compared natively only with a plain "core"
    pattern, in a directory the unprivileged run may write."""
    out = boxed(built, "rlim core 1000000").stdout.decode()
    for sig in (3, 4, 5, 6, 7, 8, 11, 10, 15, 9, 24, 25, 31):
        assert f"signal {sig}: signal {sig} core {int(sig in CORE_SIGNALS)}" in out
    assert "not dumpable SIGABRT: signal 6 core 0" in out and "waitid code 3 status 11" in out
    if Path("/proc/sys/kernel/core_pattern").read_text().strip() != "core":
        return
    cores = built / "cores"
    cores.mkdir(mode=0o777, exist_ok=True)
    cores.chmod(0o777)
    assert native(built, "rlim core 1000000", cwd=cores).stdout.decode() == out


@pytest.mark.parametrize("case", CALL_CASES)
def test_call_as_natively(built: Path, case: str) -> None:
    assert_same(built, f"calls {case}")


def test_shell_ulimit(built: Path) -> None:
    """A shell's ulimit -f reaches the program it runs: busybox dd dies of SIGXFSZ."""
    script = "ulimit -f 1; busybox dd if=/dev/zero of={}/out bs=1024 count=4 2>/dev/null; echo $?"
    theirs = run_native(unprivileged(["/bin/busybox", "sh", "-c", script.format(built)]))
    mine = run_sandbox(["run", "--timeout", "60", "/bin/busybox", "sh", "-c", script.format("/tmp")])
    assert mine.stdout == theirs.stdout == b"153\n"

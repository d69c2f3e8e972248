"""System V IPC and futexes on shared memory between processes (tests/ipc/src/*.c, built
here), each run natively and in the sandbox with the same stdout, stderr and status.

The native runs use the host's IPC namespace: every program makes IPC_PRIVATE objects (or
keys derived from its pid) and removes each one, even on failure. The permission case runs
natively as uid 1000 (setpriv) and in the sandbox with --uid 1000; the limits case runs in
the sandbox only, since natively those sizes succeed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, require_tool, run_native, run_sandbox

SOURCES = ROOT / "tests" / "ipc" / "src"
PROGRAMS = ("shm", "sem", "msg", "futex", "perm", "limits")
SAME = ["shm basic", "shm persist", "shm rmid", "shm exec", "shm errors", "shm many", "shm maps",
        "sem pingpong", "sem undo", "sem undo-exec", "sem blocking", "sem killed", "sem nowait", "sem errors",
        "msg types", "msg blocking", "msg errors", "futex"]


@pytest.fixture(scope="module")
def built() -> Iterator[Path]:
    """The programs, in a directory uid 1000 may enter (for the native permission run)."""
    gcc = require_tool("gcc")
    out = Path(tempfile.mkdtemp(prefix="sandbox-ipc-"))
    try:
        out.chmod(0o755)
        for name in PROGRAMS:
            subprocess.run([gcc, "-static", "-O2", "-w", "-o", str(out / name), str(SOURCES / f"{name}.c")],
                           check=True)
        yield out
    finally:
        shutil.rmtree(out)


def boxed(built: Path, argv: list[str], *options: str) -> subprocess.CompletedProcess:
    return run_sandbox(["run", "--timeout", "60", *options, "--mount", f"{built}:{built}:ro", *argv])


def same(native: subprocess.CompletedProcess, box: subprocess.CompletedProcess) -> None:
    assert (box.stdout.decode(), box.stderr.decode(), box.returncode) == \
        (native.stdout.decode(), native.stderr.decode(), native.returncode)


@pytest.mark.parametrize("command", SAME)
def test_as_natively(built: Path, command: str) -> None:
    name, *args = command.split()
    argv = [str(built / name), *args]
    same(run_native(argv), boxed(built, argv))


def test_permissions_of_an_unprivileged_user(built: Path) -> None:
    setpriv = require_tool("setpriv")
    if os.geteuid() != 0:
        pytest.skip("the native run needs root to become uid 1000")
    argv = [str(built / "perm")]
    native = run_native([setpriv, "--reuid=1000", "--regid=1000", "--clear-groups", *argv])
    same(native, boxed(built, argv, "--uid", "1000", "--gid", "1000"))


def test_the_sandbox_bounds_ipc_by_its_own_limits(built: Path) -> None:
    box = boxed(built, [str(built / "limits")], "--memory", "64m")
    assert box.stdout.decode().splitlines() == [
        "shm larger than RAM: EINVAL",
        "shm 40 MiB: ok",
        "another 40 MiB (SHMALL): ENOSPC",
        "after removal: ok",
        "sets of 32000 semaphores: 131, then ENOSPC",
        "queued 24-32 MiB, then ENOMEM",
        "after removal: ok",
    ], box.stderr.decode()
    assert box.returncode == 0


def test_util_linux_tools_see_only_the_sandbox_namespace() -> None:
    """ipcmk, ipcs and ipcrm (Debian's, dynamic) in one sandbox: what they make is there,
    the host's objects are not, and ipcrm -a leaves nothing."""
    for tool in ("ipcmk", "ipcs", "ipcrm"):
        require_tool(tool)
    script = "ipcmk -Q; ipcmk -M 8192; ipcmk -S 3; ipcs; ipcrm -a; ipcs"
    box = run_sandbox(["run", "--timeout", "60", "/bin/sh", "-c", script])
    out = box.stdout.decode()
    assert box.returncode == 0, box.stderr.decode()
    assert out.splitlines()[:3] == ["Message queue id: 0", "Shared memory id: 0", "Semaphore id: 0"]
    listing, after = out.split("Semaphore id: 0\n")[1], out.split("------ Message Queues")[2]
    rows = [line.split() for line in listing.splitlines() if line.startswith("0x")]
    assert [(row[1], row[3]) for row in rows] == [("0", "644")] * 3 and rows[1][4] == "8192" and rows[2][4] == "3"
    assert not [line for line in after.splitlines() if line.startswith("0x")]

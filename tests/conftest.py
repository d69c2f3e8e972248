"""Shared fixtures: the built guests, native and sandboxed runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Every sandbox the tests start, in-process or through the CLI, checks all its invariants at
#: every context switch and at the end of every run (frames, tables, regions, refcounts).
os.environ["SANDBOX_CHECK_INVARIANTS"] = "1"
GUESTS = ROOT / "guests" / "build"
IN_CI = os.environ.get("CI") == "true"


def guest(name: str) -> str:
    """Path of a built guest; fails (never skips) when it was not built."""
    path = GUESTS / name
    if not path.exists():
        pytest.fail(f"guest {name} is not built: run `make guests`")
    return str(path)


def require_tool(name: str) -> str:
    """A host tool a test needs: missing in CI is a failure, elsewhere a skip."""
    path = shutil.which(name)
    if path is None:
        if IN_CI:
            pytest.fail(f"{name} is required in CI but not installed")
        pytest.skip(f"{name} not installed")
    return path


def run_sandbox(args: list[str], stdin: bytes = b"", env: dict | None = None,
                python_flags: tuple[str, ...] = (), cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`sandbox ARGS...` as a user would run it (from `cwd`); output captured as bytes."""
    if cwd is not None:  # the sandbox package is found from anywhere
        env = {**(env if env is not None else os.environ), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *python_flags, "-m", "sandbox", *args], input=stdin,
                          capture_output=True, env=env, cwd=cwd, timeout=600)


def run_native(argv: list[str], stdin: bytes = b"", env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    """The same program run directly on the host."""
    return subprocess.run(argv, input=stdin, capture_output=True, env=env, cwd=cwd, timeout=600)


def build_c(source: Path, out_dir: Path, *flags: str) -> Path:
    """A test's C program, built statically with gcc into `out_dir` (gcc is required)."""
    program = out_dir / source.stem
    subprocess.run([require_tool("gcc"), "-static", "-O2", "-w", *flags, "-o", str(program), str(source)], check=True)
    return program


def assert_as_natively(native: subprocess.CompletedProcess, boxed: subprocess.CompletedProcess) -> None:
    """The sandbox's run printed, wrote to stderr and exited as the native one did."""
    assert (boxed.stdout, boxed.stderr, boxed.returncode) == (native.stdout, native.stderr, native.returncode)


def descend(parent: Path, name: str, levels: int) -> int:
    """Make parent/name/name/... `levels` deep by descriptors (far past PATH_MAX if need
    be); an open descriptor of the bottom directory, for the caller to fill and close."""
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(levels):
        os.mkdir(name, dir_fd=fd)
        child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
    return fd


def python_as_natively(script: Path, source: str, mount: Path | None = None) -> None:
    """Write `source` to `script`, run it with Debian's python3 natively and in the sandbox
    (which sees `mount`, default the script itself, at the same path): the same stdout,
    stderr and status."""
    script.write_text(source)
    mount = mount or script
    native = run_native(["/usr/bin/python3", str(script)])
    boxed = run_sandbox(["run", "--mount", f"{mount}:{mount}", "/usr/bin/python3", str(script)])
    assert (boxed.stdout, boxed.stderr, boxed.returncode) == (native.stdout, native.stderr, native.returncode)

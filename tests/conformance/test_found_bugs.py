"""Sandbox bugs that libc-test (`make conformance`) found, kept as small differential tests
(sources next to this file), each run natively and in the sandbox:

- a robust PI mutex whose owner died while another thread slept in FUTEX_LOCK_PI woke the
  sleeper without making it the owner: glibc's unlock then failed with EPERM
  (functional/pthread_robust).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_tool, run_native, run_sandbox

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = require_tool("gcc")
    out = tmp_path_factory.mktemp("found")
    subprocess.run([gcc, "-static", "-O2", "-w", "-pthread", "-o", str(out / "robust_pi"), str(HERE / "robust_pi.c")],
                   check=True)
    return out


@pytest.mark.parametrize("args", [[], ["pshared"]])
def test_a_robust_pi_lock_passes_to_its_waiter_when_the_owner_dies(built: Path, args: list[str]) -> None:
    argv = [str(built / "robust_pi"), *args]
    native = run_native(argv)
    boxed = run_sandbox(["run", "--timeout", "60", "--mount", f"{built}:{built}:ro", *argv])
    assert native.stdout.startswith(b"lock while the owner dies: Owner died\n")
    assert (boxed.stdout, boxed.stderr, boxed.returncode) == (native.stdout, native.stderr, native.returncode)

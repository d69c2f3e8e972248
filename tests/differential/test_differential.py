"""Run every case of cases.toml natively and in the sandbox; compare what a user sees."""

from __future__ import annotations

import random
import tomllib
from pathlib import Path

import pytest

from sandbox.kernel.kernel import DEFAULT_ENV
from tests.conftest import guest, run_native, run_sandbox

CASES = tomllib.loads((Path(__file__).parent / "cases.toml").read_text())["case"]
#: The environment the sandbox gives a guest by default; the native run gets the same.
GUEST_ENV = dict(e.decode().split("=", 1) for e in DEFAULT_ENV)


def case_id(case: dict) -> str:
    return " ".join([case["prog"], *case.get("args", [])]) or case["prog"]


def case_stdin(case: dict) -> bytes:
    if "stdin_bytes" in case:
        rng = random.Random(case["stdin_bytes"])
        return bytes(rng.randrange(256) for _ in range(case["stdin_bytes"]))
    return case.get("stdin", "").encode()


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_same_as_native(case: dict) -> None:
    path = guest(case["prog"])
    argv = [path, *case.get("args", [])]
    stdin = case_stdin(case)
    native = run_native(argv, stdin, env=GUEST_ENV)
    boxed = run_sandbox(["run", *case.get("options", []), *argv], stdin)
    assert boxed.stdout == native.stdout
    if native.returncode < 0:
        signo = -native.returncode
        assert boxed.returncode == 128 + signo, boxed.stderr.decode()
        *guest_err, last = boxed.stderr.decode().splitlines(keepends=True) or [""]
        assert last.startswith(f"sandbox: {path}: killed by "), boxed.stderr
        assert "Traceback" not in boxed.stderr.decode()
        assert "".join(guest_err).encode() == native.stderr
    else:
        assert boxed.returncode == native.returncode, boxed.stderr.decode()
        assert boxed.stderr == native.stderr

"""sendmmsg and recvmmsg (man 2 recvmmsg): every message may sleep unless MSG_WAITFORONE,
a signal after the first ends the call with the count, sendmmsg sends each; natively and
in the sandbox, the same output."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import ROOT, require_tool, run_native, run_sandbox


def test_mmsg_as_natively(tmp_path: Path) -> None:
    program = tmp_path / "mmsg"
    subprocess.run([require_tool("gcc"), "-static", "-O2", "-w", "-o", str(program),
                    str(ROOT / "tests" / "net" / "mmsg.c")], check=True)
    native = run_native([str(program)])
    boxed = run_sandbox(["run", "--timeout", "60", "--mount", f"{tmp_path}:{tmp_path}:ro", str(program)])
    assert b"recvmmsg got 3: a b c" in native.stdout
    assert (boxed.stdout, boxed.stderr, boxed.returncode) == (native.stdout, native.stderr, native.returncode)

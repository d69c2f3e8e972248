"""madvise's fork advice (issue 15 B): MADV_DONTFORK leaves the mapping out of a fork's
child, MADV_WIPEONFORK gives the child zeros, DOFORK/KEEPONFORK undo them, and the errors
Linux gives (ENOMEM over a hole, EINVAL for WIPEONFORK on shared memory); natively and in
the sandbox, the same output."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import ROOT, require_tool, run_native, run_sandbox


def test_fork_advice_as_natively(tmp_path: Path) -> None:
    program = tmp_path / "forkadvice"
    subprocess.run([require_tool("gcc"), "-static", "-O2", "-w", "-o", str(program),
                    str(ROOT / "tests" / "memory" / "forkadvice.c")], check=True)
    native = run_native([str(program)])
    boxed = run_sandbox(["run", "--timeout", "60", "--mount", f"{tmp_path}:{tmp_path}:ro", str(program)])
    assert b"child: dontfork page -1, wiped page 0, dofork page 7" in native.stdout
    assert (boxed.stdout, boxed.stderr, boxed.returncode) == (native.stdout, native.stderr, native.returncode)

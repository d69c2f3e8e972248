"""madvise's fork advice (issue 15 B): MADV_DONTFORK leaves the mapping out of a fork's
child, MADV_WIPEONFORK gives the child zeros, DOFORK/KEEPONFORK undo them, and the errors
Linux gives (ENOMEM over a hole, EINVAL for WIPEONFORK on shared memory); natively and in
the sandbox, the same output."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ROOT, assert_as_natively, build_c, run_native, run_sandbox


def test_fork_advice_as_natively(tmp_path: Path) -> None:
    program = build_c(ROOT / "tests" / "memory" / "forkadvice.c", tmp_path)
    native = run_native([str(program)])
    assert b"child: dontfork page -1, wiped page 0, dofork page 7" in native.stdout
    assert_as_natively(native, run_sandbox(["run", "--timeout", "60", "--mount", f"{tmp_path}:{tmp_path}:ro",
                                            str(program)]))

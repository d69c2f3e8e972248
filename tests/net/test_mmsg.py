"""sendmmsg and recvmmsg (man 2 recvmmsg): every message may sleep unless MSG_WAITFORONE,
a signal after the first ends the call with the count, sendmmsg sends each; natively and
in the sandbox, the same output."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ROOT, assert_as_natively, build_c, run_native, run_sandbox


def test_mmsg_as_natively(tmp_path: Path) -> None:
    program = build_c(ROOT / "tests" / "net" / "mmsg.c", tmp_path)
    native = run_native([str(program)])
    assert b"recvmmsg got 3: a b c" in native.stdout
    assert_as_natively(native, run_sandbox(["run", "--timeout", "60", "--mount", f"{tmp_path}:{tmp_path}:ro",
                                            str(program)]))

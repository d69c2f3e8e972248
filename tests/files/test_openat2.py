"""openat2(2) (issue 15 B): its strict checks of flags, mode and struct size, and the
RESOLVE_* rules (beneath, in-root, no symlinks, no magic links, no mount crossing) on a
tree the program makes, natively and in the sandbox with the same output."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ROOT, assert_as_natively, build_c, run_native, run_sandbox


def test_openat2_as_natively(tmp_path: Path) -> None:
    program = build_c(ROOT / "tests" / "files" / "openat2.c", tmp_path)
    (tmp_path / "native").mkdir()
    (tmp_path / "boxed").mkdir()
    native = run_native([str(program), str(tmp_path / "native")])
    assert native.returncode == 0 and b"EXDEV" in native.stdout
    assert_as_natively(native, run_sandbox(["run", "--timeout", "60", "--mount", f"{tmp_path / 'boxed'}:/w",
                                            str(program), "/w"]))

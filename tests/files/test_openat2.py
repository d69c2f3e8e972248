"""openat2(2) (issue 15 B): its strict checks of flags, mode and struct size, and the
RESOLVE_* rules (beneath, in-root, no symlinks, no magic links, no mount crossing) on a
tree the program makes, natively and in the sandbox with the same output."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import ROOT, require_tool, run_native, run_sandbox


def test_openat2_as_natively(tmp_path: Path) -> None:
    gcc = require_tool("gcc")
    program = tmp_path / "openat2"
    subprocess.run([gcc, "-static", "-O2", "-w", "-o", str(program), str(ROOT / "tests" / "files" / "openat2.c")],
                   check=True)
    (tmp_path / "native").mkdir()
    (tmp_path / "boxed").mkdir()
    native = run_native([str(program), str(tmp_path / "native")])
    boxed = run_sandbox(["run", "--timeout", "60", "--mount", f"{tmp_path / 'boxed'}:/w", str(program), "/w"])
    assert native.returncode == 0 and b"EXDEV" in native.stdout
    assert (boxed.stdout.decode(), boxed.stderr.decode(), boxed.returncode) == (native.stdout.decode(), "", 0)

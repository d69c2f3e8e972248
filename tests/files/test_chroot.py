"""chroot(2) (issue 15 B): a root guest's new root holds for paths, `..`, absolute
symlinks, getcwd and its children, the cwd staying where it was, as natively (the host runs
the native side as root); a non-root guest gets EPERM."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import ROOT, require_tool, run_native, run_sandbox


def _build(tmp_path: Path) -> Path:
    program = tmp_path / "chroot"
    subprocess.run([require_tool("gcc"), "-static", "-O2", "-w", "-o", str(program),
                    str(ROOT / "tests" / "files" / "chroot.c")], check=True)
    for side in ("native", "boxed"):
        (tmp_path / side).mkdir()
    return program


def test_chroot_as_natively(tmp_path: Path) -> None:
    program = _build(tmp_path)
    native = run_native([str(program), str(tmp_path / "native")])
    boxed = run_sandbox(["run", "--timeout", "60", "--uid", "0", "--mount", f"{tmp_path / 'boxed'}:/w",
                         str(program), "/w"])
    assert b"/etc/motd                        inside" in native.stdout
    assert (boxed.stdout, boxed.stderr, boxed.returncode) == (native.stdout, native.stderr, native.returncode)


def test_chroot_needs_root(tmp_path: Path) -> None:
    program = _build(tmp_path)
    boxed = run_sandbox(["run", "--timeout", "60", "--uid", "1000", "--mount", f"{tmp_path / 'boxed'}:/w",
                         str(program), "/w"])
    assert b"chroot jail                      -1 EPERM" in boxed.stdout

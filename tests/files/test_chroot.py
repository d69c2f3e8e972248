"""chroot(2) (issue 15 B): a root guest's new root holds for paths, `..`, absolute
symlinks, getcwd and its children, the cwd staying where it was, as natively (the host runs
the native side as root); a non-root guest gets EPERM."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ROOT, assert_as_natively, build_c, run_native, run_sandbox


def _build(tmp_path: Path) -> Path:
    for side in ("native", "boxed"):
        (tmp_path / side).mkdir()
    return build_c(ROOT / "tests" / "files" / "chroot.c", tmp_path)


def _boxed(tmp_path: Path, program: Path, uid: int):
    return run_sandbox(["run", "--timeout", "60", "--uid", str(uid), "--mount", f"{tmp_path / 'boxed'}:/w",
                        str(program), "/w"])


def test_chroot_as_natively(tmp_path: Path) -> None:
    program = _build(tmp_path)
    native = run_native([str(program), str(tmp_path / "native")])
    assert b"/etc/motd                        inside" in native.stdout
    assert_as_natively(native, _boxed(tmp_path, program, 0))


def test_chroot_needs_root(tmp_path: Path) -> None:
    program = _build(tmp_path)
    assert b"chroot jail                      -1 EPERM" in _boxed(tmp_path, program, 1000).stdout

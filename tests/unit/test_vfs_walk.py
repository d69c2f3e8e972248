"""The path walk's cost: linear in the components walked, and bounded (issue 12: a lookup
through deep directories and `..`-heavy symlinks ran for minutes inside one system call)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from sandbox.errors import SyscallError
from sandbox.hostfs import remove_tree
from sandbox.kernel import vfs_walk
from sandbox.kernel.vfs import FileSystemView
from tests.conftest import descend

DEPTH, UP, LINKS = 600, 300, 4


@pytest.fixture
def deep_root(tmp_path: Path):
    """A root with a chain of DEPTH directories named c; at its bottom l0 -> ... -> target,
    each link climbing UP levels and coming back down."""
    root = tmp_path / "root"
    root.mkdir()
    fd = descend(root, "c", DEPTH)
    os.close(os.open("target", os.O_CREAT | os.O_WRONLY, dir_fd=fd))
    for i in range(LINKS):
        os.symlink("../" * UP + "c/" * UP + (f"l{i + 1}" if i + 1 < LINKS else "target"), f"l{i}", dir_fd=fd)
    os.close(fd)
    yield root
    parent = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        remove_tree(parent, "root")  # the tree is deeper than shutil.rmtree's recursion allows
    finally:
        os.close(parent)


def view(root: Path) -> FileSystemView:
    return FileSystemView(str(root), [])


def counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    steps = [0]
    count = vfs_walk.Walk._count

    def counted(walk) -> None:
        steps[0] += 1
        count(walk)

    monkeypatch.setattr(vfs_walk.Walk, "_count", counted)
    return steps


def test_dotdot_and_symlinks_walk_linearly(deep_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    steps = counting(monkeypatch)
    bottom = "/" + "/".join(["c"] * DEPTH)
    node = view(deep_root).resolve(b"l0", bottom)
    assert node.name == "target" and node.guest == bottom + "/target"
    # The cwd's DEPTH directories, then per link UP re-opened (past the descriptors kept)
    # and UP entered: linear. Re-walking from the root at every `..` took ~DEPTH * UP each.
    assert steps[0] <= DEPTH + LINKS * 2 * UP


def test_a_walk_has_a_bound(deep_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vfs_walk, "MAX_WALK_STEPS", 1000)
    with pytest.raises(SyscallError) as error:
        view(deep_root).resolve(b"l0", "/" + "/".join(["c"] * DEPTH))
    assert error.value.errno == errno.ELOOP


def test_a_path_too_deep_is_enametoolong(deep_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vfs_walk, "MAX_GUEST_PATH", 100)
    with pytest.raises(SyscallError) as error:
        view(deep_root).resolve(os.fsencode("/".join(["c"] * 60)), "/")
    assert error.value.errno == errno.ENAMETOOLONG

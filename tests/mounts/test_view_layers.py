"""The view's mount stack on plain directories (no CPU): a guest's mount hides what lay at
and below its point, and umount gives exactly that back, in any order the guest allows."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from sandbox.errors import SyscallError
from sandbox.kernel.vfs import FileSystemView
from sandbox.kernel.vfs_nodes import Mount, open_anchor


def tree(tmp_path: Path) -> FileSystemView:
    """A root with /a/b (a --mount of `user`), /a/c plain, and two spare directories."""
    for name in ("root/a/c", "user", "t1", "t2"):
        (tmp_path / name).mkdir(parents=True)
    (tmp_path / "user" / "mine").write_text("user's\n")
    (tmp_path / "t1" / "one").write_text("1\n")
    return FileSystemView(str(tmp_path / "root"), [Mount("/a/b", str(tmp_path / "user"), False)])


def snapshot(view: FileSystemView) -> tuple:
    return (sorted(view.mounts), sorted(view.anchors.items(), key=lambda item: item[0]), dict(view.placed))


def names(view: FileSystemView, guest: str) -> list[str]:
    node = view.lookup(guest)
    fd = view.open_node(node, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return sorted(os.listdir(fd))
    finally:
        os.close(fd)


def attach(view: FileSystemView, guest: str, host: Path) -> None:
    mount = Mount(guest, str(host), True, source="t")
    view.attach(mount, open_anchor(str(host), mount))


def test_a_mount_hides_and_gives_back(tmp_path: Path) -> None:
    view = tree(tmp_path)
    before = snapshot(view)
    attach(view, "/a", tmp_path / "t1")
    assert names(view, "/a") == ["one"]
    assert "/a/b" not in view.anchors  # hidden, as the tree under a mount point
    with pytest.raises(SyscallError) as caught:
        view.lstat(view.lookup("/a/b/mine"))
    assert caught.value.errno == errno.ENOENT
    view.detach(view.layer_at("/a"))
    assert snapshot(view) == before
    assert names(view, "/a/b") == ["mine"]


def test_children_go_with_their_parent_newest_first(tmp_path: Path) -> None:
    view = tree(tmp_path)
    before = snapshot(view)
    attach(view, "/a/c", tmp_path / "t1")
    attach(view, "/a", tmp_path / "t2")  # hides /a/c's mount
    os.mkdir(tmp_path / "t2" / "x")
    attach(view, "/a/x", tmp_path / "t1")
    top = view.layer_at("/a")
    assert [layer.mount.guest for layer in view.layers_below(top)] == ["/a/x"]
    assert [layer.mount.guest for layer in view.detach(top)] == ["/a", "/a/x"]
    assert names(view, "/a/c") == ["one"]  # the mount /a hid is back
    view.detach(view.layer_at("/a/c"))
    assert snapshot(view) == before and view.layers == []


def test_only_guest_mounts_come_off(tmp_path: Path) -> None:
    view = tree(tmp_path)
    for guest in ("/", "/a/b", "/a/c", "/nothing"):
        with pytest.raises(SyscallError) as caught:
            view.layer_at(guest)
        assert caught.value.errno == errno.EINVAL


def test_remount_reaches_new_walks(tmp_path: Path) -> None:
    view = tree(tmp_path)
    attach(view, "/a/c", tmp_path / "t1")
    assert view.lookup("/a/c/one").writable
    view.remount("/a/c", False, 0x8, "size=4k")
    node = view.lookup("/a/c/one")
    assert not node.writable and view.is_noexec(node) and node.mount.data == "size=4k"
    assert view.layers[0].mount is node.mount and node.mount in view.mounts
    view.detach(view.layer_at("/a/c"))
    assert view.layers == [] and all(m.guest != "/a/c" for m in view.mounts)

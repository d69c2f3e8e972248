"""The pieces the guest's file view is made of (sandbox/kernel/vfs.py): mounts and the
mounts guests make, host directories held by descriptor, the anchors of mounts, synthetic
nodes, and the resolved `Node` a path comes to."""

from __future__ import annotations

import errno
import os
from typing import NamedTuple, Protocol

from sandbox.errors import SandboxError, SyscallError

#: How the walk opens a directory: a handle only (no read permission needed), never a
#: symlink, and only a directory (open(2): O_PATH, O_NOFOLLOW, O_DIRECTORY).
DIR_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC


#: Per-mount flags of mount(2) the view keeps (include/uapi/linux/mount.h), shown in
#: /proc/self/mounts in this order (fs/proc_namespace.c, show_mnt_opts).
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MOUNT_FLAG_NAMES = ((MS_NOSUID, "nosuid"), (MS_NODEV, "nodev"), (MS_NOEXEC, "noexec"))


class Mount(NamedTuple):
    """A host file or directory grafted into the guest tree at `guest`. `host` is the host
    path the user named, kept for messages only: the view reaches it by descriptor. The
    rest is what a guest's mount(2) chose (sys_mount.py) and /proc/self/mounts shows."""

    guest: str
    host: str
    writable: bool
    flags: int = 0  # MS_NOSUID, MS_NODEV, MS_NOEXEC
    fstype: str = "tmpfs"
    source: str = "sandbox"
    data: str = ""  # the file system's own options as Linux shows them ("size=1024k")

    def options(self) -> str:
        """The per-mount options of /proc/self/mounts before "relatime": "rw,nosuid"."""
        names = [name for bit, name in MOUNT_FLAG_NAMES if self.flags & bit]
        return ",".join(["rw" if self.writable else "ro", *names])


class Layer(NamedTuple):
    """A mount a guest made (mount(2)), with what it hid when it was grafted: the mounts,
    anchors and placed nodes at or below its path, given back when it goes (umount2).
    `backing` is the sandbox's own state of the mount (sys_mount's tmpfs), opaque here."""

    mount: Mount
    anchor: Anchor
    hidden: tuple[list[Mount], dict[str, Anchor], dict[str, Synthetic]]
    backing: object = None


class Synthetic(NamedTuple):
    """A node the sandbox makes up: a device, a /proc file, a directory or a symlink, or
    (kind "fd", reached only by following /proc/<pid>/fd/N) an open file itself."""

    kind: str  # "dir", "file", "link", "device", "fd"
    name: str  # device name, /proc file's canonical path, link target, or "<pid>/<fd>"
    mode: int = 0o444


class MadeUpTree(Protocol):
    """What serves /proc and /sys (sandbox.kernel.procfs.ProcTree). `parts` are a path's
    components, the first "proc" or "sys"."""

    def node(self, parts: list[str]) -> Synthetic:
        """The node at that path; SyscallError(ENOENT) if there is none."""

    def listing(self, parts: list[str]) -> list[tuple[str, str]] | None:
        """(name, kind) entries of the directory there, or None if it is none."""

    def magic(self, guest: str, node: Synthetic) -> Synthetic | None:
        """For a symlink being followed: the node it leads to if it is a "magic" link
        (/proc/<pid>/fd/N of a pipe), else None (its target is resolved as a path)."""


class HostDir:
    """An open O_PATH descriptor of a host directory, with the mount it lies in. Walks own
    theirs (closed when the last reference goes); mount anchors are the view's."""

    __slots__ = ("fd", "mount", "owned")

    def __init__(self, fd: int, mount: Mount, owned: bool = True) -> None:
        self.fd = fd
        self.mount = mount
        self.owned = owned

    def __del__(self) -> None:
        self.close()

    def close(self) -> None:
        """Close the descriptor now, if this object owns it (once)."""
        if self.owned:
            self.owned = False
            os.close(self.fd)


class Anchor(NamedTuple):
    """A mount's host end, opened once: its parent directory and name (for the mount point
    itself), and the directory (`root`, None for a file mount) its children are found in."""

    parent: HostDir
    name: str
    root: HostDir | None


class Node:
    """Where a resolved guest path lives: synthetic, or the entry `name` in the open host
    directory `parent` (which lies in `mount`), or a made-up directory above a deep mount
    (`parent` None). The entry itself may not exist (a path to create)."""

    __slots__ = ("guest", "mount", "parent", "name", "synthetic")

    def __init__(self, guest: str, mount: Mount | None = None, parent: HostDir | None = None,
                 name: str = "", synthetic: Synthetic | None = None) -> None:
        self.guest = guest
        self.mount = mount
        self.parent = parent
        self.name = name
        self.synthetic = synthetic

    @property
    def writable(self) -> bool:
        return self.mount is not None and self.mount.writable and self.parent is not None

    @property
    def on_host(self) -> bool:
        """True if the node is (or would be) a host directory entry."""
        return self.parent is not None

    @property
    def dirfd(self) -> int:
        """The descriptor of the directory holding the entry, for `*at` calls."""
        return self.parent.fd

    def __repr__(self) -> str:
        return f"Node({self.guest!r})"


def host_error(error: OSError, guest: str) -> SyscallError:
    return SyscallError(error.errno or errno.EIO, guest)


def open_anchor(host: str, mount: Mount) -> Anchor:
    """Open a mount's host end (a trusted path the user gave, resolved once, now)."""
    real = os.path.realpath(host)
    head, name = os.path.split(real)
    try:
        parent = HostDir(os.open(head or "/", DIR_FLAGS), mount)
        if not name:  # the host's own root: its parent is itself
            return Anchor(parent, ".", HostDir(os.open("/", DIR_FLAGS), mount))
        root = None
        if os.path.isdir(real):
            root = HostDir(os.open(name, DIR_FLAGS, dir_fd=parent.fd), mount)
    except OSError as error:
        raise SandboxError(f"{host}: cannot be opened: {error.strerror}") from None
    return Anchor(parent, name, root)

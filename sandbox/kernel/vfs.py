"""The guest's view of the file system: a root directory, mounts, and synthetic nodes.

The guest sees one tree. `/` is a host directory the user chose (`--root`, default: a fresh
empty directory with a writable /tmp); `--mount HOST:GUEST[:ro|rw]` grafts host directories
or files in; the program file is visible, read-only, at its own path; `/dev` and `/proc` hold
a few synthetic nodes.

Containment rests on one rule: the sandbox resolves every path itself, component by
component, in guest terms, like a chroot with RESOLVE_IN_ROOT. `..` at the root stays at
the root; a symlink is read with readlink and its target resolved again inside the guest
tree (an absolute target starts over at the guest root); the host kernel is only ever handed
a host path whose every component was checked, opened with O_NOFOLLOW. No path, `..` or
symlink can name a host file outside what was exposed.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from typing import NamedTuple

from sandbox.errors import SandboxError, SyscallError

MAX_SYMLINKS = 40  # Linux's MAXSYMLINKS
PATH_MAX = 4096


class Mount(NamedTuple):
    """A host file or directory grafted into the guest tree at `guest`."""

    guest: str
    host: str
    writable: bool


class Synthetic(NamedTuple):
    """A node the sandbox makes up: a device, a /proc file, a directory or a symlink."""

    kind: str  # "dir", "file", "link", "device"
    name: str  # device name, /proc generator name, or link target
    mode: int = 0o444


class Node(NamedTuple):
    """Where a resolved guest path lives: on the host (with its mount) or synthetic."""

    guest: str
    host: str | None = None
    mount: Mount | None = None
    synthetic: Synthetic | None = None

    @property
    def writable(self) -> bool:
        return self.mount is not None and self.mount.writable


DEVICES = {"null": 0o666, "zero": 0o666, "full": 0o666, "urandom": 0o444, "random": 0o444, "tty": 0o666}


class FileSystemView:
    """The guest's tree. `current_pid()` is the process asking (for /proc/self);
    `proc_entries()` names the /proc/<pid> files the kernel serves for it."""

    def __init__(self, root: str, mounts: list[Mount], current_pid: Callable[[], int],
                 proc_entries: Callable[[], dict[str, Synthetic]]) -> None:
        if not os.path.isdir(root):
            raise SandboxError(f"--root {root}: not a directory")
        self.mounts = [Mount("/", os.path.realpath(root), True), *mounts]
        self.mounts.sort(key=lambda m: len(m.guest), reverse=True)
        self.proc_entries = proc_entries
        self.current_pid = current_pid

    # -- the mount table ------------------------------------------------------------------

    def _mount_for(self, guest: str) -> tuple[Mount, str]:
        """The innermost mount containing `guest`, and the host path it maps to."""
        for mount in self.mounts:
            if guest == mount.guest or guest.startswith(mount.guest.rstrip("/") + "/"):
                rest = guest[len(mount.guest):].lstrip("/")
                return mount, os.path.join(mount.host, rest) if rest else mount.host
        raise SyscallError(errno.ENOENT, guest)

    def is_mount_ancestor(self, guest: str) -> bool:
        """True if a mount point lies below `guest` (so `guest` exists as a directory)."""
        prefix = guest.rstrip("/") + "/"
        return any(m.guest.startswith(prefix) for m in self.mounts)

    def mount_points_under(self, guest: str) -> list[str]:
        """Names just inside directory `guest` that lead to mount points (shown in listings)."""
        prefix = guest.rstrip("/") + "/"
        return sorted({m.guest[len(prefix):].split("/")[0] for m in self.mounts
                       if m.guest.startswith(prefix) and len(m.guest) > len(prefix)})

    # -- synthetic nodes ------------------------------------------------------------------

    def _synthetic(self, guest: str) -> Synthetic | None:
        """The made-up node at `guest`, if any: /dev/*, /proc, /proc/self, /proc/<pid>/*."""
        parts = guest.strip("/").split("/")
        if parts[0] == "dev":
            if len(parts) == 1:
                return Synthetic("dir", "dev", 0o755)
            if len(parts) == 2 and parts[1] in DEVICES:
                return Synthetic("device", parts[1], DEVICES[parts[1]])
            return None
        if parts[0] != "proc":
            return None
        if len(parts) == 1:
            return Synthetic("dir", "proc", 0o555)
        if parts[1] == "self":
            parts[1] = str(self.current_pid())
            if len(parts) == 2:
                return Synthetic("link", parts[1], 0o777)
        if parts[1] != str(self.current_pid()):
            raise SyscallError(errno.ENOENT, guest)
        if len(parts) == 2:
            return Synthetic("dir", "pid", 0o555)
        entry = self.proc_entries().get(parts[2]) if len(parts) == 3 else None
        if entry is None:
            raise SyscallError(errno.ENOENT, guest)
        return entry

    def list_synthetic(self, guest: str) -> list[str] | None:
        """Entries of a synthetic directory, or None if `guest` is not one."""
        if guest == "/proc":
            return ["self", str(self.current_pid())]
        if guest == "/dev":
            return sorted(DEVICES)
        if guest in ("/proc/self", f"/proc/{self.current_pid()}"):
            return sorted(self.proc_entries())
        return None

    # -- resolution -----------------------------------------------------------------------

    def lookup(self, guest: str) -> Node:
        """The node at an already-resolved absolute guest path (no symlink following)."""
        synthetic = self._synthetic(guest)
        if synthetic is not None:
            return Node(guest, synthetic=synthetic)
        mount, host = self._mount_for(guest)
        return Node(guest, host, mount)

    def resolve(self, path: bytes, base: str, follow: bool = True, must_exist: bool = True) -> Node:
        """Resolve guest `path` relative to guest directory `base`, confined to the tree.

        `follow`: follow a symlink in the last component. Raises SyscallError: ENOENT,
        ENOTDIR, ELOOP, ENAMETOOLONG, as Linux would.
        """
        if not path:
            raise SyscallError(errno.ENOENT, "empty path")
        if len(path) >= PATH_MAX:
            raise SyscallError(errno.ENAMETOOLONG, "path too long")
        text = os.fsdecode(path)
        stack = [] if text.startswith("/") else [p for p in base.split("/") if p]
        pending = text.split("/")
        trailing_slash = text.endswith("/")
        links = 0
        while pending:
            name = pending.pop(0)
            if name in ("", "."):
                continue
            if name == "..":
                if stack:
                    stack.pop()
                continue
            if len(os.fsencode(name)) > 255:
                raise SyscallError(errno.ENAMETOOLONG, name)
            stack.append(name)
            last = not any(p not in ("", ".") for p in pending)
            node = self.lookup("/" + "/".join(stack))
            target = self._link_target(node)
            if target is not None and (not last or follow or trailing_slash):
                links += 1
                if links > MAX_SYMLINKS:
                    raise SyscallError(errno.ELOOP, node.guest)
                stack.pop()
                if target.startswith("/"):
                    stack.clear()
                pending[:0] = target.split("/")
                continue
            if not last or trailing_slash:
                self._require_dir(node, must_exist or not last)
        node = self.lookup("/" + "/".join(stack))
        if must_exist:
            self.kind_of(node)  # ENOENT if missing
        return node

    def _link_target(self, node: Node) -> str | None:
        """The target of a symlink node, or None if it is not a symlink."""
        if node.synthetic is not None:
            return node.synthetic.name if node.synthetic.kind == "link" else None
        try:
            if stat.S_ISLNK(os.lstat(node.host).st_mode):
                return os.readlink(node.host)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise SyscallError(error.errno or errno.EIO, node.guest) from None
        return None

    def _require_dir(self, node: Node, must_exist: bool) -> None:
        """ENOTDIR if the path goes through something that is not a directory."""
        try:
            kind = self.kind_of(node)
        except SyscallError:
            if must_exist:
                raise
            return
        if kind != "dir":
            raise SyscallError(errno.ENOTDIR, node.guest)

    def kind_of(self, node: Node) -> str:
        """'dir', 'file', 'link' or 'device'; ENOENT if nothing is there."""
        if node.synthetic is not None:
            return node.synthetic.kind
        try:
            mode = os.lstat(node.host).st_mode
        except FileNotFoundError:
            if self.is_mount_ancestor(node.guest):
                return "dir"
            raise SyscallError(errno.ENOENT, node.guest) from None
        except OSError as error:
            raise SyscallError(error.errno or errno.EIO, node.guest) from None
        if stat.S_ISDIR(mode):
            return "dir"
        return "link" if stat.S_ISLNK(mode) else "file"

    def parent_of(self, path: bytes, base: str) -> tuple[Node, str]:
        """For creating or removing: the resolved parent directory and the final name."""
        text = os.fsdecode(path).rstrip("/") or "/"
        head, _, name = text.rpartition("/")
        if name in ("", ".", ".."):
            raise SyscallError(errno.EEXIST if name == "" else errno.EINVAL, text)
        parent = self.resolve(os.fsencode(head or ("/" if text.startswith("/") else ".")), base)
        if self.kind_of(parent) != "dir":
            raise SyscallError(errno.ENOTDIR, parent.guest)
        child = "/".join([parent.guest.rstrip("/"), name]) if parent.guest != "/" else "/" + name
        return parent, child

    def writable_entry(self, path: bytes, base: str) -> Node:
        """The entry `path` names in its (resolved, existing) parent directory, for a call
        that creates, removes or renames it: EROFS unless it is on a writable mount. The
        entry itself is not resolved (it may not exist, or be a symlink to act on)."""
        _, child = self.parent_of(path, base)
        node = self.lookup(child)
        self.require_writable(node)
        return node

    def require_writable(self, node: Node) -> None:
        """EROFS for anything on a read-only mount or synthetic."""
        if not node.writable:
            raise SyscallError(errno.EROFS, node.guest)


def parse_mount(spec: str) -> Mount:
    """'HOST:GUEST[:ro|rw]' -> Mount; SandboxError with the bad part named."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1].startswith("/"):
        raise SandboxError(f"--mount {spec}: expected HOST:/GUEST[:ro|rw]")
    mode = parts[2] if len(parts) == 3 else "rw"
    if mode not in ("ro", "rw"):
        raise SandboxError(f"--mount {spec}: mode {mode!r} is not ro or rw")
    if not os.path.exists(parts[0]):
        raise SandboxError(f"--mount {spec}: {parts[0]} does not exist")
    guest = os.path.normpath(parts[1])
    return Mount(guest, os.path.realpath(parts[0]), mode == "rw")

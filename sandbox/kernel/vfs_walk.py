"""Walking a guest path: what one resolution keeps as it goes (`Walk`: the directories
reached, each an open descriptor, so `..` climbs back without walking again), the
components still to walk (`Components`), and the rules that restrict a walk (`ResolveRules`:
openat2's RESOLVE_* and chroot's root). `FileSystemView.resolve` (vfs.py) drives them.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, NamedTuple

from sandbox.errors import SyscallError

if TYPE_CHECKING:
    from sandbox.kernel.vfs import FileSystemView
    from sandbox.kernel.vfs_nodes import HostDir, Node

PATH_MAX = 4096


class ResolveRules(NamedTuple):
    """Restrictions on a walk: openat2's RESOLVE_* (man 2 openat2), relative to the
    directory the walk starts from (`base`), and chroot's root (`jail`)."""

    beneath: bool = False  # RESOLVE_BENEATH: never leave base (EXDEV)
    #: The directory that is "/" for absolute paths, absolute symlinks and `..` at the top
    #: (RESOLVE_IN_ROOT: base; chroot(2): the process's root); None: the view's own root.
    jail: str | None = None
    no_symlinks: bool = False  # RESOLVE_NO_SYMLINKS: no symlink is followed (ELOOP)
    no_magiclinks: bool = False  # RESOLVE_NO_MAGICLINKS: no /proc/PID/fd-style link (ELOOP)
    no_xdev: bool = False  # RESOLVE_NO_XDEV: no mount crossed (EXDEV)

    def start(self, text: str, base: str) -> list[str]:
        """The components to walk: from the root (the jail's, if any), or from `base`."""
        if text.startswith("/"):
            if self.beneath:
                raise SyscallError(errno.EXDEV, f"{text} is absolute (RESOLVE_BENEATH)")
            return (self.jail.split("/") if self.jail else []) + text.split("/")
        return base.split("/") + text.split("/")

    def at_top(self, names: list[str], base: str) -> bool:
        """A `..` where the walk stands (`names`): EXDEV at `base` beneath it, ignored at
        the jail's top (a chroot's cwd outside its root walks on, as Linux lets it)."""
        if self.beneath and len(names) <= len(_parts(base)):
            raise SyscallError(errno.EXDEV, f".. leaves {base} (RESOLVE_BENEATH)")
        return self.jail is not None and names == _parts(self.jail)

    def check_link(self, guest: str, magic: bool, target: str) -> None:
        if self.no_symlinks or (magic and self.no_magiclinks):
            raise SyscallError(errno.ELOOP, f"{guest} is a symlink (RESOLVE_NO_SYMLINKS/MAGICLINKS)")
        if self.beneath and target.startswith("/"):
            raise SyscallError(errno.EXDEV, f"{guest} points at {target} (RESOLVE_BENEATH)")

    def link_path(self, target: str) -> list[str]:
        """The components a symlink's target adds: an absolute one starts again from the
        root, the jail's if there is one."""
        if self.jail and target.startswith("/"):
            return self.jail.split("/") + target.split("/")
        return target.split("/")


def _parts(guest: str) -> list[str]:
    return [p for p in guest.split("/") if p]


NO_RULES = ResolveRules()
#: For the kernel's own lookups of full guest paths: the view's root, whoever asks.
VIEW_ROOT = ResolveRules(jail="/")


class Components:
    """The path components still to walk, taken from the front; symlink targets are pushed
    in front. `significant` counts those that are not empty or `.` (so "is this the last
    component" costs nothing, however long the path)."""

    def __init__(self, parts: list[str]) -> None:
        self._stack = parts[::-1]
        self.significant = sum(1 for p in parts if p not in ("", "."))

    def __bool__(self) -> bool:
        return bool(self._stack)

    def pop(self) -> str:
        name = self._stack.pop()
        if name not in ("", "."):
            self.significant -= 1
        return name

    def push(self, parts: list[str]) -> None:
        self._stack.extend(reversed(parts))
        self.significant += sum(1 for p in parts if p not in ("", "."))


#: Directory descriptors one walk keeps open for `..` to climb back to; older ones are
#: closed and re-opened from the root if `..` reaches them.
MAX_HELD_DIRS = 256
#: Directories one resolution may open: more than any real path needs (a PATH_MAX string
#: has at most 2048 components; a guest path, 8192), so no system call walks for long.
MAX_WALK_STEPS = 1 << 15
#: The longest guest path a walk may reach (through the cwd, `..` and symlinks): each step
#: handles the path as a string, so its length bounds a step's cost (ENAMETOOLONG beyond).
MAX_GUEST_PATH = 4 * PATH_MAX
_DROPPED = object()


class Walk:
    """Where one resolution stands: the guest names of the directory reached and, for each,
    its open directory (None: made up; `_DROPPED`: closed, to re-open if needed). `..` pops
    (lexical, as RESOLVE_IN_ROOT); a relative symlink target walks on from here and an
    absolute one from the root, so nothing is walked twice unless `..` climbs past the
    MAX_HELD_DIRS directories kept."""

    def __init__(self, view: FileSystemView) -> None:
        self.view = view
        self.root = view.anchors["/"].root
        self.names: list[str] = []
        self.dirs: list = []
        self.steps = 0
        self.length = 0  # of the guest path reached

    def here(self) -> HostDir | None:
        """The open directory reached (re-opened from the root if it was closed)."""
        if not self.dirs:
            return self.root
        if self.dirs[-1] is _DROPPED:
            self._reopen()
        return self.dirs[-1]

    def enter(self, name: str, directory: HostDir | None) -> None:
        self._count()
        self.length += len(name) + 1
        if self.length > MAX_GUEST_PATH:
            raise SyscallError(errno.ENAMETOOLONG, "path too deep")
        self.names.append(name)
        self.dirs.append(directory)
        if len(self.dirs) > MAX_HELD_DIRS:
            self.dirs[-MAX_HELD_DIRS - 1] = _DROPPED

    def up(self) -> None:
        if self.names:
            self.length -= len(self.names.pop()) + 1
            self.dirs.pop()

    def restart(self) -> None:
        self.names.clear()
        self.dirs.clear()
        self.length = 0

    def current_node(self) -> Node:
        """The node of the directory reached (its entry in its parent)."""
        if not self.names:
            return self.view._root_node()
        name = self.names.pop()
        directory = self.dirs.pop()
        parent = self.here()
        self.names.append(name)
        self.dirs.append(directory)
        return self.view._step(parent, self.names[:-1], name)

    def _reopen(self) -> None:
        """Open again, from the root and following nothing, the directories along `names`;
        a component that is no longer a directory fails the walk."""
        names, here = list(self.names), self.root
        self.restart()
        for name in names:
            here = self.view._enter(self.view._step(here, self.names, name))
            self.enter(name, here)

    def _count(self) -> None:
        self.steps += 1
        if self.steps > MAX_WALK_STEPS:
            raise SyscallError(errno.ELOOP, "path walk too long")

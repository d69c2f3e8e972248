"""The guest's view of the file system: a root directory, mounts, and synthetic nodes.

The guest sees one tree. `/` is a host directory the user chose (`--root`, default: a fresh
empty directory with a writable /tmp); `--mount HOST:GUEST[:ro|rw]` grafts host directories
or files in; the program file is visible, read-only, at its own path; `/dev` and `/proc` hold
a few synthetic nodes.

Containment rests on one rule: **host files are reached by descriptor, never by a path
string.** The view holds a directory descriptor for every mount, opened once when the
sandbox starts. A guest path is resolved by the sandbox itself, component by component, in
guest terms (like `openat2(2)` with RESOLVE_IN_ROOT): `..` is lexical and stays at the root;
a symlink is read with readlinkat and its target resolved again inside the guest tree (an
absolute target starts over at the guest root). Each directory on the way is opened with
`openat(parent_fd, name, O_PATH|O_NOFOLLOW|O_DIRECTORY)`, so it is a real directory below
the one before it or the walk fails: no concurrent swap of a directory for a symlink, by the
guest or any host process, can redirect it (runc's securejoin and gVisor's gofer do the
same). A resolved host `Node` is a (directory descriptor, single name) pair, and every host
call on it is an `*at` call with that pair and AT_SYMLINK_NOFOLLOW / O_NOFOLLOW: a symlink
that appears between resolution and use makes the call fail, never follow.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable

from sandbox.errors import SandboxError, SyscallError
from sandbox.kernel.devtty import PTS_DEVICE, pts_names
from sandbox.kernel.pty import PTMX, PtyTable
from sandbox.kernel.vfs_nodes import (
    DIR_FLAGS,
    MS_NOEXEC,
    Anchor,
    HostDir,
    Layer,
    MadeUpTree,
    Mount,
    Node,
    Synthetic,
    host_error,
    open_anchor,
)
from sandbox.kernel.vfs_walk import NO_RULES, PATH_MAX, VIEW_ROOT, Components, ResolveRules, Walk

SYNTHETIC_TOP = ("dev", "proc", "sys")  # the made-up directories at the root
MADE_UP_TREES = ("proc", "sys")  # those the kernel's MadeUpTree serves
DEVICES = {"null": 0o666, "zero": 0o666, "full": 0o666, "urandom": 0o444, "random": 0o444, "tty": 0o666,
           PTMX: 0o666}
#: /dev/pts: the terminal the sandbox was given, under its host name (devtty.py), and the
#: guest's own pseudo-terminals with /dev/ptmx and /dev/pts/ptmx (pty.py).
DEV_PTS = "pts"
#: The symlinks every Linux system has in /dev (made by udev or systemd: fd, stdin...).
DEV_LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
             "stderr": "/proc/self/fd/2"}
MAX_SYMLINKS = 40  # Linux's MAXSYMLINKS
NAME_MAX = 255


class FileSystemView:
    """The guest's tree. `made_up` serves /proc and /sys (without one they are empty)."""

    def __init__(self, root: str, mounts: list[Mount], made_up: MadeUpTree | None = None,
                 root_writable: bool = True, system: list[Mount | tuple[str, Synthetic]] = ()) -> None:
        if not os.path.isdir(root):
            raise SandboxError(f"--root {root}: not a directory")
        self.mounts: list[Mount] = []
        self.anchors: dict[str, Anchor] = {}
        #: The mounts guests made, oldest first (some may be hidden by later ones).
        self.layers: list[Layer] = []
        #: Nodes placed at fixed guest paths (the system view's symlinks and /etc files).
        self.placed: dict[str, Synthetic] = {}
        self.ptys = PtyTable()  # the guest's own pseudo-terminals: /dev/ptmx, /dev/pts/N (pty.py)
        self.add_mount(Mount("/", root, root_writable))
        for graft in system:
            if isinstance(graft, Mount):
                self.add_mount(graft)
            else:
                self.place(*graft)
        for mount in mounts:
            self.add_mount(mount)
        self.made_up = made_up
        #: The root directory of the process asking (chroot); the kernel sets it.
        self.current_root: Callable[[], str] = lambda: "/"

    def close(self) -> None:
        """Close every mount's host directories now (the sandbox is closing), rather than
        when the view is collected: a script making sandboxes one after another would hold
        a score of descriptors for each until then. The view serves no path after."""
        anchors = list(self.anchors.values())
        for layer in self.layers:
            anchors += [layer.anchor, *layer.hidden[1].values()]
        for anchor in anchors:
            anchor.parent.close()
            if anchor.root is not None:
                anchor.root.close()
        self.anchors, self.layers = {}, []

    # -- the mount table ------------------------------------------------------------------

    def add_mount(self, mount: Mount) -> None:
        """Graft `mount` in. It covers what was placed at or below its guest path before:
        an earlier mount at the same path, or placed nodes (the system view gives way to
        the user's mounts)."""
        mount = mount._replace(guest=self._through_placed_links(mount.guest))
        anchor = open_anchor(mount.host, mount)
        if mount.guest == "/" and anchor.root is None:
            raise SandboxError(f"{mount.host}: the root must be a directory")
        self._graft(mount, anchor)

    def _graft(self, mount: Mount, anchor: Anchor) -> tuple[list[Mount], dict[str, Anchor], dict[str, Synthetic]]:
        """Put `mount` (opened as `anchor`) in the table; what it hides, taken out."""
        covered = self._covered_by(mount.guest)
        hidden = ([m for m in self.mounts if covered(m.guest)],
                  {g: a for g, a in self.anchors.items() if covered(g)},
                  {g: n for g, n in self.placed.items() if covered(g)})
        self.mounts = [m for m in self.mounts if not covered(m.guest)] + [mount]
        self.mounts.sort(key=lambda m: len(m.guest), reverse=True)
        self.anchors = {g: a for g, a in self.anchors.items() if not covered(g)}
        self.anchors[mount.guest] = anchor
        self.placed = {g: n for g, n in self.placed.items() if not covered(g)}
        return hidden

    # -- the mounts guests make (sys_mount.py) --------------------------------------------

    def attach(self, mount: Mount, anchor: Anchor, backing: object = None) -> None:
        """A guest's mount(2): graft `mount`, opened as `anchor` (`anchor_at` or
        `open_anchor`), remembering what it hides for `detach`."""
        self.layers.append(Layer(mount, anchor, self._graft(mount, anchor), backing))

    def layer_at(self, guest: str) -> Layer:
        """The guest's mount seen at `guest`; EINVAL if that is no mount point, or one the
        sandbox made (locked, as the mounts a user namespace inherits: mount_namespaces(7))."""
        anchor = self.anchors.get(guest)
        for layer in reversed(self.layers):
            if anchor is not None and layer.anchor is anchor:
                return layer
        raise SyscallError(errno.EINVAL, f"{guest} is not a mount point the guest made")

    def layers_below(self, layer: Layer) -> list[Layer]:
        """The guest's mounts made after `layer` below its mount point (its children)."""
        inside = self._covered_by(layer.mount.guest)
        return [later for later in self.layers[self.layers.index(layer) + 1:] if inside(later.mount.guest)]

    def detach(self, layer: Layer) -> list[Layer]:
        """umount2: take `layer` and the mounts below it out, newest first, each giving
        back what it hid. Returns the layers removed (their backing is the caller's)."""
        gone = [layer, *self.layers_below(layer)]
        for each in reversed(gone):
            self.layers.remove(each)
            hidden_mounts, hidden_anchors, hidden_placed = each.hidden
            self.mounts = [m for m in self.mounts if m is not each.mount] + hidden_mounts
            self.mounts.sort(key=lambda m: len(m.guest), reverse=True)
            if self.anchors.get(each.mount.guest) is each.anchor:
                del self.anchors[each.mount.guest]
            self.anchors.update(hidden_anchors)
            self.placed.update(hidden_placed)
        return gone

    def remount(self, guest: str, writable: bool, flags: int, data: str | None = None) -> None:
        """MS_REMOUNT: the mount at mount point `guest` becomes read-only or writable, with
        new per-mount flags (and file system options, if `data`). Walks after this see it;
        descriptors already open keep what they were opened with."""
        anchor = self.anchors[guest]
        old = anchor.parent.mount if anchor.root is None else anchor.root.mount
        changes = {"writable": writable, "flags": flags} | ({"data": data} if data is not None else {})
        new = old._replace(**changes)
        self.mounts = [new if m is old else m for m in self.mounts]
        self.layers = [layer._replace(mount=new) if layer.mount is old else layer for layer in self.layers]
        for held in (anchor.parent, anchor.root):
            if held is not None:
                held.mount = new

    def anchor_at(self, node: Node, mount: Mount) -> Anchor:
        """An anchor for a bind mount of the existing host node `node` (by descriptor: the
        directory holding it, and the node itself if it is a directory)."""
        if node.parent is None:
            raise SyscallError(errno.EINVAL, f"{node.guest} is made up by the sandbox")
        try:
            parent = HostDir(os.dup(node.dirfd), mount)
            if node.name == ".":
                return Anchor(parent, ".", HostDir(os.dup(node.dirfd), mount))
            if self.kind_of(node) != "dir":
                return Anchor(parent, node.name, None)
            return Anchor(parent, node.name, HostDir(os.open(node.name, DIR_FLAGS, dir_fd=node.dirfd), mount))
        except OSError as error:
            raise host_error(error, node.guest) from None

    def holds_locked_mounts(self, guest: str) -> bool:
        """Whether mounts or nodes the sandbox placed (or its made-up trees, under /) lie
        below `guest`: a bind of it would show what they cover (has_locked_children)."""
        prefix = guest.rstrip("/") + "/"
        made_by_guest = {id(layer.anchor) for layer in self.layers}
        return (guest == "/" or any(g.startswith(prefix) for g in self.placed)
                or any(g.startswith(prefix) and id(a) not in made_by_guest for g, a in self.anchors.items()))

    def quota_of(self, node: Node | None, default: object) -> object:
        """What writes to `node` are charged to: the quota of the guest's tmpfs it lies in
        (its backing's, for a size=), else `default` (the sandbox's disk quota)."""
        for layer in self.layers:
            if node is not None and layer.mount is node.mount:
                return getattr(layer.backing, "quota", default)
        return default

    def is_noexec(self, node: Node) -> bool:
        """Whether `node` lies on a mount made with MS_NOEXEC (execve: EACCES)."""
        return node.mount is not None and bool(node.mount.flags & MS_NOEXEC)

    @staticmethod
    def _covered_by(guest: str) -> Callable[[str], bool]:
        """Whether a graft at a path is hidden by a new mount at `guest`: the same path, or
        below it (as a mount hides what lies below its mount point); the root covers none."""
        prefix = guest.rstrip("/") + "/"
        return lambda other: other == guest or (guest != "/" and other.startswith(prefix))

    def _through_placed_links(self, guest: str) -> str:
        """`guest` with the placed symlinks on the way to its last component followed, as
        mount(2) follows a mount point's path: a mount at /bin/x lands at /usr/bin/x when
        /bin is the merged-/usr link. SandboxError for a loop."""
        pending, done, hops = [p for p in guest.split("/") if p], [], 0
        while pending:
            name = pending.pop(0)
            if name == "..":
                done = done[:-1]
                continue
            link = self.placed.get("/" + "/".join([*done, name])) if pending else None
            if link is None or link.kind != "link":
                done += [] if name == "." else [name]
                continue
            hops += 1
            if hops > MAX_SYMLINKS:
                raise SandboxError(f"{guest}: too many levels of symbolic links on the way")
            done = [] if link.name.startswith("/") else done
            pending = [p for p in link.name.split("/") if p] + pending
        return "/" + "/".join(done)

    def place(self, guest: str, node: Synthetic) -> None:
        """Put a made-up node at absolute guest path `guest` (replacing a mount there)."""
        self.placed[guest] = node
        if guest in self.anchors:
            del self.anchors[guest]
            self.mounts = [m for m in self.mounts if m.guest != guest]

    def mount_of(self, guest: str) -> Mount:
        """The innermost mount containing `guest`."""
        for mount in self.mounts:
            if guest == mount.guest or guest.startswith(mount.guest.rstrip("/") + "/"):
                return mount
        raise SyscallError(errno.ENOENT, guest)

    def _grafts(self) -> dict[str, str]:
        """Every mount point and placed node, with its kind ('dir', 'file', 'link')."""
        grafts = {g: "dir" if a.root is not None else "file" for g, a in self.anchors.items()}
        grafts.update((g, n.kind) for g, n in self.placed.items())
        return grafts

    def is_mount_ancestor(self, guest: str) -> bool:
        """True if a mount point or placed node lies below `guest` (so `guest` exists as a
        directory)."""
        prefix = guest.rstrip("/") + "/"
        return any(g.startswith(prefix) for g in self.anchors) or any(g.startswith(prefix) for g in self.placed)

    def mount_points_under(self, guest: str) -> list[tuple[str, str]]:
        """(name, kind) just inside directory `guest` of what leads to mount points and
        placed nodes (shown in listings; kind 'dir' for a directory on the way)."""
        prefix = guest.rstrip("/") + "/"
        names = dict.fromkeys(SYNTHETIC_TOP, "dir") if guest == "/" else {}
        for graft, kind in self._grafts().items():
            if graft.startswith(prefix) and len(graft) > len(prefix):
                name, _, rest = graft[len(prefix):].partition("/")
                names[name] = "dir" if rest else kind
        return sorted(names.items())

    def is_mount_point(self, node: Node) -> bool:
        return node.guest in self.anchors

    # -- synthetic nodes ------------------------------------------------------------------

    def _synthetic(self, guest: str) -> Synthetic | None:
        """The made-up node at `guest`, if any: a placed one, /dev/*, or what the kernel's
        tree serves under /proc and /sys (ENOENT there for what it does not)."""
        placed = self.placed.get(guest)
        if placed is not None:
            return placed
        parts = guest.strip("/").split("/")
        if parts[0] == "dev":
            if len(parts) == 1:
                return Synthetic("dir", "dev", 0o755)
            if len(parts) == 2 and parts[1] in DEVICES:
                return Synthetic("device", parts[1], DEVICES[parts[1]])
            if len(parts) == 2 and parts[1] in DEV_LINKS:
                return Synthetic("link", DEV_LINKS[parts[1]], 0o777)
            if parts[1:] == [DEV_PTS] and guest not in self.anchors:
                return Synthetic("dir", DEV_PTS, 0o755)
            if len(parts) == 3 and parts[1] == DEV_PTS and parts[2] in [*pts_names(), *self.ptys.names(), PTMX] \
                    and "/dev/" + DEV_PTS not in self.anchors:
                return Synthetic("device", PTS_DEVICE + parts[2], 0o620)
            return None
        if parts[0] not in MADE_UP_TREES:
            return None
        if self.made_up is None:
            if len(parts) == 1:
                return Synthetic("dir", parts[0], 0o555)
            raise SyscallError(errno.ENOENT, guest)
        return self.made_up.node(parts)

    def list_synthetic(self, guest: str) -> list[tuple[str, str]] | None:
        """(name, kind) entries of a synthetic directory, or None if `guest` is not one."""
        if guest == "/dev":
            devices = [(name, "device") for name in DEVICES] + [(name, "link") for name in DEV_LINKS]
            return sorted(dict([*devices, (DEV_PTS, "dir"), *self.mount_points_under(guest)]).items())
        if guest == "/dev/" + DEV_PTS:
            return [(name, "device") for name in [*pts_names(), *self.ptys.names()]]  # (ptmx: opened, not listed)
        parts = guest.strip("/").split("/")
        if parts[0] not in MADE_UP_TREES:
            return None
        if self.made_up is None:
            return [] if len(parts) == 1 else None
        return self.made_up.listing(parts)

    def _magic(self, node: Node) -> Synthetic | None:
        """The node a made-up "magic" symlink leads to (see MadeUpTree.magic), or None."""
        if node.synthetic is None or self.made_up is None:
            return None
        return self.made_up.magic(node.guest, node.synthetic)

    # -- one step of a walk ---------------------------------------------------------------

    def _step(self, here: HostDir | None, names: list[str], name: str) -> Node:
        """The node for `name` inside the directory reached by `names` (opened as `here`,
        None if that directory is made up). Nothing is followed or required to exist."""
        guest = "/" + "/".join([*names, name])
        synthetic = self._synthetic(guest)
        if synthetic is not None:
            return Node(guest, synthetic=synthetic)
        anchor = self.anchors.get(guest)
        if anchor is not None:
            mount = anchor.parent.mount
            if anchor.root is not None:
                return Node(guest, mount, anchor.root, ".")
            return Node(guest, mount, anchor.parent, anchor.name)
        if here is None:
            return Node(guest, self.mount_of(guest))
        return Node(guest, here.mount, here, name)

    def _root_node(self) -> Node:
        anchor = self.anchors["/"]
        return Node("/", anchor.parent.mount, anchor.root, ".")

    def _enter(self, node: Node, must_exist: bool = True) -> HostDir | None:
        """Open directory `node` to walk on (None: a made-up directory, or a missing one when
        not `must_exist`). ENOTDIR if it is not a directory, ENOENT if missing."""
        if node.synthetic is not None:
            if node.synthetic.kind != "dir":
                raise SyscallError(errno.ENOTDIR, node.guest)
            return None
        if node.parent is None:
            if self.is_mount_ancestor(node.guest) or not must_exist:
                return None
            raise SyscallError(errno.ENOENT, node.guest)
        if node.name == ".":
            return node.parent
        try:
            return HostDir(os.open(node.name, DIR_FLAGS, dir_fd=node.dirfd), node.parent.mount)
        except FileNotFoundError:
            if self.is_mount_ancestor(node.guest) or not must_exist:
                return None
            raise SyscallError(errno.ENOENT, node.guest) from None
        except OSError as error:
            if error.errno == errno.ELOOP:  # a symlink here now: refused, never followed
                raise SyscallError(errno.ENOTDIR, node.guest) from None
            raise host_error(error, node.guest) from None

    def _link_target(self, node: Node) -> str | None:
        """The target of a symlink node, or None if it is not a symlink."""
        if node.synthetic is not None:
            return node.synthetic.name if node.synthetic.kind == "link" else None
        if node.parent is None or node.name == ".":
            return None
        try:
            return os.readlink(node.name, dir_fd=node.dirfd)
        except OSError as error:
            if error.errno in (errno.EINVAL, errno.ENOENT):
                return None
            raise host_error(error, node.guest) from None

    # -- resolution -----------------------------------------------------------------------

    def resolve(self, path: bytes, base: str, follow: bool = True, must_exist: bool = True,
                rules: ResolveRules | None = None) -> Node:
        """Resolve guest `path` relative to guest directory `base`, confined to the tree.

        `follow`: follow a symlink in the last component. `rules`: openat2's RESOLVE_*
        restrictions, relative to `base`. Raises SyscallError: ENOENT, ENOTDIR, ELOOP,
        ENAMETOOLONG, EXDEV, as Linux would. The work is linear in the components walked
        (`Walk`, vfs_walk.py), and bounded.
        """
        if not path:
            raise SyscallError(errno.ENOENT, "empty path")
        if len(path) >= PATH_MAX:
            raise SyscallError(errno.ENAMETOOLONG, "path too long")
        text = os.fsdecode(path)
        rules = rules or NO_RULES
        if rules.jail is None:  # a guest's path: inside its chroot, if it made one
            jail = self.current_root()
            rules = rules if jail == "/" else rules._replace(jail=jail)
        pending = Components(rules.start(text, base))
        walk = Walk(self)
        node: Node | None = None  # the node the last component named, if it was not . or ..
        links = 0
        xdev = self._filesystem_of(base) if rules.no_xdev else None
        while pending:
            name = pending.pop()
            if name in ("", "."):
                continue
            if name == "..":
                if rules.at_top(walk.names, base):
                    continue  # RESOLVE_IN_ROOT: .. of the root is the root
                walk.up()
                node = None
                continue
            if len(os.fsencode(name)) > NAME_MAX:
                raise SyscallError(errno.ENAMETOOLONG, name)
            last = not pending.significant
            # "name/" or "name/." at the end: it must be a directory, and a link is followed
            directory = last and bool(pending)
            node = self._step(walk.here(), walk.names, name)
            target = self._link_target(node)
            if target is not None and (not last or follow or directory):
                magic = self._magic(node)
                rules.check_link(node.guest, magic is not None, target)
                if magic is not None:  # the open file itself: nothing to walk into
                    if not last or directory:
                        raise SyscallError(errno.ENOTDIR, node.guest)
                    node = Node(node.guest, synthetic=magic)
                    continue
                links += 1
                if links > MAX_SYMLINKS:
                    raise SyscallError(errno.ELOOP, node.guest)
                if target.startswith("/"):
                    walk.restart()
                pending.push(rules.link_path(target))
                node = None
                continue
            if xdev is not None and self._filesystem_of(node.guest) != xdev:
                raise SyscallError(errno.EXDEV, f"{node.guest} is on another mount (RESOLVE_NO_XDEV)")
            if not last or directory:
                walk.enter(name, self._enter(node, must_exist or not last))
        if node is None:
            node = walk.current_node()
        if must_exist and node.on_host:
            if self.lstat(node) is None:  # ENOENT if missing
                return Node(node.guest, node.mount)  # made up above a mount: no host entry to act on
        elif must_exist:
            self.kind_of(node)
        return node

    def _filesystem_of(self, guest: str) -> str:
        """Which mount (or made-up tree) `guest` lies on, for RESOLVE_NO_XDEV."""
        top = guest.strip("/").split("/")[0]
        if top in SYNTHETIC_TOP or guest in self.placed:
            return f"made-up {top}" if top in SYNTHETIC_TOP else f"placed {guest}"
        try:
            return self.mount_of(guest).guest
        except SyscallError:
            return "made-up"

    def lookup(self, guest: str) -> Node:
        """The node at an absolute guest path, the last component not followed."""
        return self.resolve(os.fsencode(guest), "/", follow=False, must_exist=False, rules=VIEW_ROOT)

    def lstat(self, node: Node) -> os.stat_result | None:
        """The host's lstat of a host node (None for a made-up directory); ENOENT if missing."""
        if node.parent is None:
            if self.is_mount_ancestor(node.guest):
                return None
            raise SyscallError(errno.ENOENT, node.guest)
        try:
            return os.stat(node.name, dir_fd=node.dirfd, follow_symlinks=False)
        except FileNotFoundError:
            if self.is_mount_ancestor(node.guest):
                return None
            raise SyscallError(errno.ENOENT, node.guest) from None
        except OSError as error:
            raise host_error(error, node.guest) from None

    def exists(self, node: Node) -> bool:
        try:
            self.kind_of(node)
        except SyscallError as error:
            if error.errno == errno.ENOENT:
                return False
            raise
        return True

    def kind_of(self, node: Node) -> str:
        """'dir', 'file', 'link' or 'device'; ENOENT if nothing is there."""
        if node.synthetic is not None:
            return node.synthetic.kind
        st = self.lstat(node)
        if st is None or stat.S_ISDIR(st.st_mode):
            return "dir"
        return "link" if stat.S_ISLNK(st.st_mode) else "file"

    def parent_of(self, path: bytes, base: str, rules: ResolveRules | None = None) -> tuple[Node, Node]:
        """For creating or removing: the resolved parent directory and the (unresolved)
        entry the last component names in it."""
        text = os.fsdecode(path).rstrip("/") or "/"
        head, _, name = text.rpartition("/")
        if name in ("", ".", ".."):
            raise SyscallError(errno.EEXIST if name == "" else errno.EINVAL, text)
        if len(os.fsencode(name)) > NAME_MAX:
            raise SyscallError(errno.ENAMETOOLONG, name)
        parent = self.resolve(os.fsencode(head or ("/" if text.startswith("/") else ".")), base, rules=rules)
        here = self._enter(parent)
        names = [p for p in parent.guest.split("/") if p]
        return parent, self._step(here, names, name)

    def writable_entry(self, path: bytes, base: str, creating: bool = False,
                       rules: ResolveRules | None = None) -> Node:
        """The entry `path` names in its (resolved, existing) parent directory, for a call
        that creates, removes or renames it: EROFS unless it is on a writable mount; a
        mount point or a directory made up above one exists already (EEXIST when
        `creating`) and cannot go (EBUSY). The entry itself is not resolved (it may not
        exist, or be a symlink to act on)."""
        _, node = self.parent_of(path, base, rules)
        if self.is_mount_point(node) or self.is_mount_ancestor(node.guest) or node.synthetic is not None:
            if creating:
                raise SyscallError(errno.EEXIST, node.guest)
            self.require_writable(node)
            raise SyscallError(errno.EBUSY, node.guest)
        self.require_writable(node)
        return node

    #: The snapshots' file journal (sandbox.kernel.fsjournal.Journals), told before a
    #: writable entry changes; None while no snapshot lives.
    journal = None

    def require_writable(self, node: Node) -> None:
        """EROFS for anything on a read-only mount or synthetic."""
        if not node.writable:
            raise SyscallError(errno.EROFS, node.guest)
        if self.journal is not None:  # snapshots save what the entry holds first
            self.journal.changing_entry(node)

    def open_node(self, node: Node, flags: int, mode: int = 0o600) -> int:
        """open(2) of a host node by (directory descriptor, name), never following a
        symlink: a host descriptor, or SyscallError."""
        if node.parent is None:
            raise SyscallError(errno.ENOENT, node.guest)
        try:
            return os.open(node.name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=node.dirfd)
        except OSError as error:
            raise host_error(error, node.guest) from None


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
    if guest == "/" or guest.startswith("//"):
        raise SandboxError(f"--mount {spec}: a mount at / would hide the root; use --root {parts[0]}")
    return Mount(guest, os.path.realpath(parts[0]), mode == "rw")

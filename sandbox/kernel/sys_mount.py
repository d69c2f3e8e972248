"""mount(2) and umount2(2) inside the guest's view: tmpfs, bind mounts, remounts.

Who may mount: the guest is shown a root-owned system but holds no host privilege, so it
may do what an unprivileged process may in a user and mount namespace of its own (as under
`unshare --user --map-root-user --mount`, user_namespaces(7)): its root (guest uid 0) may
mount a tmpfs, bind a directory of the view elsewhere in it, remount its own mounts, and
unmount them; any other guest uid gets EPERM, as without CAP_SYS_ADMIN. The mounts the
sandbox made (the root, `--mount`s, the system view, /dev/shm) are the namespace's
inherited, locked mounts: they cannot be unmounted (EINVAL) nor made writable (EPERM).

A tmpfs is a fresh private host directory (`_backing_dir`: under the private root's made-up
/dev, which the guest never reaches by a path, else in a directory of its own), grafted into
the view (`FileSystemView.attach`); what the guest writes there is charged to the disk quota
as anywhere else, and within the mount's own `size=` (`SizedQuota`). Unmounting gives the
quota back and removes the directory; the kernel's cleanup removes what is left at exit.

Bind mounts: a directory or file of the view appears at another point with its mount's
flags (a bind of a tmpfs keeps the tmpfs alive); a tree holding the sandbox's own mounts
cannot be bound (EINVAL, as Linux's has_locked_children: that would uncover what they hide).

Not modelled: shared-subtree propagation (MS_SHARED... are accepted and change nothing),
MS_MOVE (EINVAL), MS_REC (mounts below a bound directory are not copied), a tmpfs's own
st_dev and statfs figures (its files show the host file system's virtual device and the
disk quota), size= for writes through shared mappings (charged to the disk quota only),
mmap(PROT_EXEC) of a file on a noexec mount (allowed; execve is refused), and
MS_NOSUID/MS_NODEV, which change nothing: the sandbox never honours set-id bits nor
opens host devices anyway. A process whose cwd lies in a lazily unmounted tmpfs goes on in
what its path names now. The sandbox's own mounts may become read-only but never writable
again (Linux would allow it unless they were read-only from the start).
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
import weakref
from typing import TYPE_CHECKING

from sandbox.errors import SyscallError
from sandbox.hostfs import identity_of, remove_path
from sandbox.kernel import procfs_pid
from sandbox.kernel.quota import ENTRY_COST, DiskQuota
from sandbox.kernel.sys_fs import read_path
from sandbox.kernel.syscalls import syscall, to_int32
from sandbox.kernel.vfs_nodes import MS_NODEV, MS_NOEXEC, MS_NOSUID, Layer, Mount, Node, open_anchor
from sandbox.mm.uaccess import copy_in, read_cstring

if TYPE_CHECKING:
    from sandbox.kernel.kernel import Kernel
    from sandbox.kernel.task import Task

# mount(2) flags (include/uapi/linux/mount.h).
MS_RDONLY = 0x1
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_NOUSER = 1 << 31
MS_MGC_MSK = 0xFFFF0000  # a magic number old programs put in the top half, dropped
MS_MGC_VAL = 0xC0ED0000
PROPAGATION = MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE
#: The per-mount flags the view keeps (others, like MS_NOATIME, are accepted and dropped).
PER_MOUNT = MS_NOSUID | MS_NODEV | MS_NOEXEC

# umount2(2) flags.
MNT_FORCE = 0x1
MNT_DETACH = 0x2
MNT_EXPIRE = 0x4
UMOUNT_NOFOLLOW = 0x8
UMOUNT_FLAGS = MNT_FORCE | MNT_DETACH | MNT_EXPIRE | UMOUNT_NOFOLLOW

#: copy_mount_options: at most a page of file system options.
OPTIONS_MAX = 4096
#: copy_mount_string (strndup_user with PATH_MAX) for the source and type.
STRING_MAX = 4096
#: Mounts the guest may hold at once (Linux's fs.mount-max is 100000: ENOSPC): each holds
#: host descriptors and, for a tmpfs, a host directory.
MAX_GUEST_MOUNTS = 256
#: Entries a size= check walks to measure a tmpfs; a bigger tree counts as full.
MAX_MEASURED = 1 << 16
TMPFS_MODE = 0o1777  # a new tmpfs's root (mm/shmem.c)
#: Types Linux knows but will not mount for an unprivileged user (EPERM); any other name
#: but "tmpfs" is unknown (ENODEV).
OTHER_FILESYSTEMS = frozenset({
    "proc", "sysfs", "devtmpfs", "devpts", "mqueue", "cgroup", "cgroup2", "ramfs", "overlay", "fuse",
    "ext2", "ext3", "ext4", "xfs", "btrfs", "vfat", "msdos", "iso9660", "squashfs", "nfs", "nfs4",
    "bpf", "tracefs", "debugfs", "securityfs", "hugetlbfs", "autofs", "configfs", "binfmt_misc",
})
#: Generic superblock options any file system takes in its data (vfs_parse_sb_flag).
SB_OPTIONS = frozenset({"ro", "rw", "sync", "async", "dirsync", "lazytime", "nolazytime", "mand", "nomand",
                        "silent", "loud"})
SIZE_SUFFIXES = {"k": 10, "m": 20, "g": 30, "t": 40, "p": 50, "e": 60}  # memparse
HUGE_VALUES = frozenset({"never", "always", "within_size", "advise", "deny", "force"})
PAGE = 4096


# -- the system calls ---------------------------------------------------------------------


@syscall("mount", "source target fstype flags data")
def sys_mount(proc: Task, source: int, target: int, fstype: int, flags: int, data: int) -> int:
    """mount(2), dispatched as fs/namespace.c path_mount: remount, bind, propagation
    change, move, or a new tmpfs. The strings are copied first (EFAULT), then the target
    resolved (ENOENT...), then the flags checked."""
    fstype_text = _optional_string(proc, fstype)
    source_text = _optional_string(proc, source)
    options = _options(proc, data)
    node = proc.kernel.fs.resolve(read_path(proc, target), proc.cwd)
    flags &= 0xFFFF_FFFF
    if flags & MS_MGC_MSK == MS_MGC_VAL:
        flags &= ~MS_MGC_MSK
    if flags & MS_NOUSER:
        raise SyscallError(errno.EINVAL, "MS_NOUSER")
    _require_privilege(proc)
    if flags & MS_REMOUNT:
        return _remount(proc, node, flags, options)
    if flags & MS_BIND:
        return _bind(proc, node, source_text, flags)
    if flags & PROPAGATION:
        return _change_type(proc, node, flags)
    if flags & MS_MOVE:
        raise SyscallError(errno.EINVAL, "MS_MOVE is not supported by the sandbox")
    return _new_tmpfs(proc, node, fstype_text, source_text, flags, options)


@syscall("umount2", "target flags")
def sys_umount2(proc: Task, target: int, flags: int) -> int:
    """umount2(2): take out a mount the guest made. EINVAL for bad flags or no such mount
    point (the sandbox's own mounts are locked); EBUSY while a process has its cwd or an
    open file inside, unless MNT_DETACH (lazy: the open files keep working); MNT_FORCE
    changes nothing for a tmpfs; MNT_EXPIRE answers EAGAIN first, as for an unused mount."""
    flags = to_int32(flags)
    if flags & ~UMOUNT_FLAGS or (flags & MNT_EXPIRE and flags & (MNT_FORCE | MNT_DETACH)):
        raise SyscallError(errno.EINVAL, f"umount2 flags {flags:#x}")
    node = proc.kernel.fs.resolve(read_path(proc, target), proc.cwd, follow=not flags & UMOUNT_NOFOLLOW)
    _require_privilege(proc)
    view = proc.kernel.fs
    layer = view.layer_at(node.guest)
    if flags & MNT_EXPIRE:
        if not _expiring(proc.kernel).pop(id(layer), False):
            _expiring(proc.kernel)[id(layer)] = True
            raise SyscallError(errno.EAGAIN, "marked to expire")
    if not flags & MNT_DETACH:
        _require_unused(proc.kernel, layer)
    for gone in view.detach(layer):
        _release(proc.kernel, gone)
    return 0


# -- arguments ----------------------------------------------------------------------------


def _optional_string(proc: Task, addr: int) -> str | None:
    """copy_mount_string: None for a NULL pointer, else the string (EFAULT if unreadable)."""
    if addr == 0:
        return None
    try:
        return os.fsdecode(read_cstring(proc.space, addr, STRING_MAX))
    except SyscallError as error:
        if error.errno == errno.ENAMETOOLONG:  # strndup_user: EINVAL past its bound
            raise SyscallError(errno.EINVAL, "mount string too long") from None
        raise


def _options(proc: Task, addr: int) -> str:
    """copy_mount_options: up to a page of options, a NUL-terminated string; a read that
    faults after the first byte stops there (EFAULT only if nothing can be read)."""
    if addr == 0:
        return ""
    out = bytearray()
    while len(out) < OPTIONS_MAX:
        room = min(OPTIONS_MAX - len(out), PAGE - (addr + len(out)) % PAGE)
        try:
            chunk = copy_in(proc.space, addr + len(out), room)
        except SyscallError:
            if not out:
                raise
            break
        end = chunk.find(b"\0")
        out += chunk if end < 0 else chunk[:end]
        if end >= 0:
            break
    return os.fsdecode(bytes(out))


def _require_privilege(proc: Task) -> None:
    """EPERM unless the guest is root in its (user) namespace: may_mount's CAP_SYS_ADMIN."""
    if proc.kernel.identity.uid != 0:
        raise SyscallError(errno.EPERM, "mount needs the guest's root (CAP_SYS_ADMIN)")


def _mount_target(proc: Task, node: Node) -> None:
    """A node a mount may cover: none the sandbox makes up (/dev/*, /proc, /sys)."""
    if node.synthetic is not None:
        raise SyscallError(errno.EPERM, f"{node.guest} is made up by the sandbox; nothing mounts there")
    if len(proc.kernel.fs.layers) >= MAX_GUEST_MOUNTS:
        raise SyscallError(errno.ENOSPC, f"{MAX_GUEST_MOUNTS} mounts are the sandbox's limit")


# -- tmpfs --------------------------------------------------------------------------------


class TmpfsOptions:
    """A tmpfs's options (mm/shmem.c shmem_parse_one): size in bytes (0: no size of its
    own), the root's mode and owners, and what /proc/self/mounts shows of them."""

    def __init__(self) -> None:
        self.size = 0
        self.mode = TMPFS_MODE
        self.uid: int | None = None
        self.gid: int | None = None
        self.shown: dict[str, str] = {}

    def parse(self, text: str, memory: int) -> TmpfsOptions:
        """Read comma-separated options; EINVAL for one tmpfs does not know or a bad value."""
        for option in filter(None, text.split(",")):
            key, has_value, value = option.partition("=")
            if key in SB_OPTIONS and not has_value:
                continue
            if not has_value:
                if key in ("noswap", "inode32", "inode64"):
                    continue
                raise SyscallError(errno.EINVAL, f"tmpfs: unknown parameter {key!r}")
            self._set(key, value, memory)
        return self

    def _set(self, key: str, value: str, memory: int) -> None:
        if key == "size":
            self.size = _size(value, memory)
            pages = -(-self.size // PAGE)
            self.shown["size"] = f"{pages * PAGE // 1024}k" if pages else ""
        elif key == "nr_inodes":
            self.shown["nr_inodes"] = str(_size(value, 0))
        elif key == "mode":
            self.mode = _number(value, 8) & 0o7777
        elif key in ("uid", "gid"):
            setattr(self, key, _number(value, 10))
        elif key == "huge" and value in HUGE_VALUES:
            self.shown["huge"] = value
        else:
            raise SyscallError(errno.EINVAL, f"tmpfs: bad parameter {key}={value!r}")

    def data(self) -> str:
        """The options shown after the per-mount ones, in shmem_show_options's order."""
        shown = [f"{k}={v}" for k, v in self.shown.items() if k in ("size", "nr_inodes") and v]
        if self.mode != TMPFS_MODE:
            shown.append(f"mode={self.mode:o}")
        shown += [f"{k}={getattr(self, k)}" for k in ("uid", "gid") if getattr(self, k)]
        shown += [f"huge={self.shown['huge']}"] if "huge" in self.shown else []
        return ",".join(shown)


def _number(text: str, base: int) -> int:
    """fs_param_is_u32: a whole number that fits 32 bits, else EINVAL."""
    try:
        value = int(text, base)
    except ValueError:
        raise SyscallError(errno.EINVAL, f"tmpfs: bad number {text!r}") from None
    if not 0 <= value < 1 << 32:
        raise SyscallError(errno.EINVAL, f"tmpfs: {text} is out of range")
    return value


def _size(text: str, memory: int) -> int:
    """memparse with tmpfs's "%" of RAM (the sandbox's own): bytes, or EINVAL."""
    if text.endswith("%") and memory:
        return _number(text[:-1], 10) * memory // 100
    digits = text.rstrip("kKmMgGtTpPeE")
    if len(text) - len(digits) > 1 or not digits:
        raise SyscallError(errno.EINVAL, f"tmpfs: bad size {text!r}")
    shift = SIZE_SUFFIXES.get(text[len(digits):].lower(), 0)
    try:
        value = int(digits, 0)
    except ValueError:
        raise SyscallError(errno.EINVAL, f"tmpfs: bad size {text!r}") from None
    if not 0 <= value << shift < 1 << 63:
        raise SyscallError(errno.EINVAL, f"tmpfs: size {text} is out of range")
    return value << shift


class Tmpfs:
    """The sandbox's side of a guest tmpfs: its host directory (path and identity, for
    removal) and the quota its files are charged to."""

    def __init__(self, path: str, quota: SizedQuota | DiskQuota) -> None:
        self.path = path
        self.identity = identity_of(os.stat(path))
        self.quota = quota


class SizedQuota:
    """The disk quota as a tmpfs with `size=` sees it: every charge goes to the sandbox's
    `parent` quota too, and no write passes `limit` bytes of blocks in the mount. Blocks
    freed by unlinking are counted back when the mount looks full (`_measure`)."""

    def __init__(self, parent: DiskQuota, limit: int, path: str) -> None:
        self.parent = parent
        self.limit = limit
        self.path = path
        self.used = 0

    @property
    def free(self) -> int:
        return min(self.parent.free, max(0, self.limit - self.used))

    def room(self, wanted: int) -> int:
        """How many of `wanted` new bytes fit in the mount and the quota; ENOSPC if none."""
        if wanted > 0 and self.used + wanted > self.limit:
            self.used = self._measure()
        if wanted > 0 and self.used >= self.limit:
            raise SyscallError(errno.ENOSPC, f"tmpfs size of {self.limit} bytes reached")
        return min(self.parent.room(wanted), self.limit - self.used)

    def _follow(self, change) -> None:
        """Run a change on the parent quota and count what it changed here too."""
        before = self.parent.used
        change()
        self.used = max(0, self.used + self.parent.used - before)

    def charge(self, nbytes: int) -> None:
        self._follow(lambda: self.parent.charge(nbytes))

    def charge_blocks(self, nblocks: int) -> None:
        self._follow(lambda: self.parent.charge_blocks(nblocks))

    def opened(self, st: os.stat_result) -> None:
        self.parent.opened(st)

    def closed(self, st: os.stat_result) -> None:
        self._follow(lambda: self.parent.closed(st))

    def removed(self, st: os.stat_result) -> None:
        self._follow(lambda: self.parent.removed(st))

    def _measure(self) -> int:
        """The bytes of blocks the mount's files use now (each inode once); a tree too big
        or too deep to measure counts as full."""
        seen, total, pending = set(), 0, [self.path]
        try:
            while pending:
                with os.scandir(pending.pop()) as listing:
                    for entry in listing:
                        st = entry.stat(follow_symlinks=False)
                        if len(seen) >= MAX_MEASURED:
                            return self.limit
                        if (st.st_dev, st.st_ino) not in seen:
                            seen.add((st.st_dev, st.st_ino))
                            total += st.st_blocks * 512 if stat.S_ISREG(st.st_mode) else 0
                        if stat.S_ISDIR(st.st_mode):
                            pending.append(entry.path)
        except OSError:
            return self.limit
        return total


def _new_tmpfs(proc: Task, node: Node, fstype: str | None, source: str | None, flags: int, data: str) -> int:
    """do_new_mount of a tmpfs at `node`: EINVAL without a type, ENODEV for a type
    unknown, EPERM for one the guest may not mount, EINVAL for bad options, ENOTDIR on
    anything but a directory."""
    if fstype is None:
        raise SyscallError(errno.EINVAL, "no file system type")
    if fstype != "tmpfs":
        known = fstype in OTHER_FILESYSTEMS
        raise SyscallError(errno.EPERM if known else errno.ENODEV, f"file system type {fstype!r}")
    kernel = proc.kernel
    options = TmpfsOptions().parse(data, kernel.options.memory)
    if kernel.fs.kind_of(node) != "dir":
        raise SyscallError(errno.ENOTDIR, f"{node.guest} is not a directory")
    _mount_target(proc, node)
    tmpfs = _make_tmpfs(kernel, options)
    mount = Mount(node.guest, tmpfs.path, not flags & MS_RDONLY, flags & PER_MOUNT, "tmpfs",
                  source if source is not None else "none", options.data())
    try:
        kernel.fs.attach(mount, open_anchor(tmpfs.path, mount), tmpfs)
    except BaseException:
        _remove(kernel, tmpfs)
        raise
    return 0


def _make_tmpfs(kernel: Kernel, options: TmpfsOptions) -> Tmpfs:
    """A fresh host directory for a tmpfs, charged to the quota as one entry (ENOSPC), its
    root shown with the options' mode and owners (the guest's own ids by default)."""
    kernel.quota.charge_entry()
    try:
        path = tempfile.mkdtemp(prefix="tmpfs-", dir=_backing_dir(kernel))
    except OSError as error:
        kernel.quota.charge(-ENTRY_COST)
        raise SyscallError(error.errno or errno.EIO, "cannot make a tmpfs") from None
    st = os.stat(path)
    kernel.quota.charge_blocks(st.st_blocks)
    quota = SizedQuota(kernel.quota, options.size, path) if options.size else kernel.quota
    tmpfs = Tmpfs(path, quota)
    uid = kernel.identity.uid if options.uid is None else options.uid
    gid = kernel.identity.gid if options.gid is None else options.gid
    try:
        kernel.identity.show_as(st, options.mode, uid, gid)  # ENOSPC past the owners it can keep
    except SyscallError:
        _remove(kernel, tmpfs)
        raise
    return tmpfs


#: Per kernel: the host directory of tmpfs backings when there is no private root (--root).
_BACKING_DIRS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: Per kernel: the mounts marked by a first MNT_EXPIRE (by id of their layer).
_EXPIRING: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _expiring(kernel: Kernel) -> dict[int, bool]:
    return _EXPIRING.setdefault(kernel, {})


def _backing_dir(kernel: Kernel) -> str:
    """Where tmpfs directories are made: the private root's own /dev (which the guest sees
    made up, never this directory), so removing the root removes them; with --root, a
    private directory the kernel made (removed at its close as well)."""
    if kernel.private_root is not None:
        return os.path.join(kernel.private_root, "dev")
    path = _BACKING_DIRS.get(kernel)
    if path is None:
        path = _BACKING_DIRS[kernel] = kernel._make_dir("sandbox-tmpfs-", "the guest's tmpfs mounts")
    return path


def _release(kernel: Kernel, layer: Layer) -> None:
    """A mount is gone from the view: a tmpfs's directory and its quota go too."""
    _expiring(kernel).pop(id(layer), None)
    still_mounted = any(other.backing is layer.backing for other in kernel.fs.layers)
    if isinstance(layer.backing, Tmpfs) and not still_mounted:
        _remove(kernel, layer.backing)


def _remove(kernel: Kernel, tmpfs: Tmpfs) -> None:
    """Give the quota back for every entry of the tmpfs (a file still open keeps its
    blocks until its last close, as an unlinked one) and remove its directory."""
    pending = [tmpfs.path]
    try:
        while pending:
            with os.scandir(pending.pop()) as listing:
                for entry in listing:
                    st = entry.stat(follow_symlinks=False)
                    kernel.quota.removed(st)
                    kernel.identity.forget(st)
                    if stat.S_ISDIR(st.st_mode):
                        pending.append(entry.path)
        kernel.quota.removed(os.stat(tmpfs.path))
    except OSError:
        pass  # a tree too deep to walk by path: what was not given back stays charged
    try:
        remove_path(tmpfs.path, tmpfs.identity)
    except OSError:
        pass  # left for the kernel's cleanup of its directories, which reports it


# -- binds, remounts, propagation -----------------------------------------------------------


def _bind(proc: Task, node: Node, source: str | None, flags: int) -> int:
    """do_loopback: the directory (or file) `source` of the view appears at `node` too,
    with its mount's flags. EINVAL without a source or for a tree holding mounts of the
    sandbox (locked children); ENOTDIR when a directory meets a file or the reverse."""
    if not source:
        raise SyscallError(errno.EINVAL, "bind mount without a source")
    view = proc.kernel.fs
    origin = view.resolve(os.fsencode(source), proc.cwd)
    _mount_target(proc, node)
    if origin.synthetic is not None or not origin.on_host:
        raise SyscallError(errno.EINVAL, f"{origin.guest} is made up by the sandbox")
    if view.holds_locked_mounts(origin.guest):
        raise SyscallError(errno.EINVAL, f"{origin.guest} holds the sandbox's mounts (locked)")
    if (view.kind_of(origin) == "dir") != (view.kind_of(node) == "dir"):
        raise SyscallError(errno.ENOTDIR, f"{origin.guest} and {node.guest} are not both directories")
    mount = origin.mount._replace(guest=node.guest)
    shared = next((layer.backing for layer in view.layers if layer.mount is origin.mount), None)
    view.attach(mount, view.anchor_at(origin, mount), shared)  # a tmpfs lives while one of its mounts does
    return 0


def _remount(proc: Task, node: Node, flags: int, data: str) -> int:
    """do_remount / do_reconfigure_mnt (with MS_BIND): new read-only state and per-mount
    flags for a mount the guest made; a tmpfs takes a new size (EINVAL below what it
    holds). The sandbox's own mounts: EPERM, except MS_BIND making one read-only."""
    view = proc.kernel.fs
    writable = not flags & MS_RDONLY
    if not view.is_mount_point(node):
        raise SyscallError(errno.EINVAL, f"{node.guest} is not a mount point")
    try:
        layer = view.layer_at(node.guest)
    except SyscallError:
        return _remount_locked(proc, node, flags)
    if not writable and layer.mount.writable:
        _require_no_writers(proc.kernel, layer)
    if flags & MS_BIND:
        view.remount(node.guest, writable, flags & PER_MOUNT)
        return 0
    options = TmpfsOptions().parse(data, proc.kernel.options.memory)
    tmpfs = layer.backing
    if not isinstance(tmpfs, Tmpfs):  # a bind of another mount: its superblock is not the guest's
        raise SyscallError(errno.EPERM, f"{node.guest}: remount of a bound mount needs MS_BIND")
    new_data = _resized(proc.kernel, tmpfs, layer.mount.data, options) if "size" in options.shown else None
    view.remount(node.guest, writable, flags & PER_MOUNT, new_data)
    return 0


def _resized(kernel: Kernel, tmpfs: Tmpfs, old_data: str, options: TmpfsOptions) -> str:
    """A tmpfs's new size (shmem_reconfigure: EINVAL below what it holds); its new options."""
    if options.size:
        quota = tmpfs.quota if isinstance(tmpfs.quota, SizedQuota) else SizedQuota(kernel.quota, 0, tmpfs.path)
        if quota._measure() > options.size:
            raise SyscallError(errno.EINVAL, f"tmpfs holds more than {options.size} bytes")
        quota.limit = options.size
        tmpfs.quota = quota
    else:
        tmpfs.quota = kernel.quota
    kept = [part for part in old_data.split(",") if part and not part.startswith("size=")]
    return ",".join(filter(None, [f"size={options.shown['size']}" if options.shown["size"] else "", *kept]))


def _remount_locked(proc: Task, node: Node, flags: int) -> int:
    """A mount the sandbox made may only become read-only, with MS_REMOUNT|MS_BIND (its
    superblock is not the guest's), and never writable again (its flags are locked, as
    those a user namespace inherits: EPERM)."""
    mount = proc.kernel.fs.mount_of(node.guest)
    writable = not flags & MS_RDONLY
    if not flags & MS_BIND or (writable and not mount.writable):
        raise SyscallError(errno.EPERM, f"{node.guest} is the sandbox's mount")
    proc.kernel.fs.remount(node.guest, writable and mount.writable, flags & PER_MOUNT | mount.flags)
    return 0


def _change_type(proc: Task, node: Node, flags: int) -> int:
    """do_change_type: MS_SHARED, MS_PRIVATE, MS_SLAVE or MS_UNBINDABLE (exactly one, maybe
    with MS_REC) of a mount point. Accepted; nothing propagates between the guest's mounts."""
    kind = flags & ~(MS_REC | MS_SILENT)
    if kind & (kind - 1) or kind & ~PROPAGATION:
        raise SyscallError(errno.EINVAL, f"propagation flags {flags:#x}")
    if not proc.kernel.fs.is_mount_point(node):
        raise SyscallError(errno.EINVAL, f"{node.guest} is not a mount point")
    return 0


# -- busy mounts ------------------------------------------------------------------------------


def _require_unused(kernel: Kernel, layer: Layer) -> None:
    """EBUSY if a mount below `layer` remains (its children), or a live process has its
    cwd or an open file at or below the mount point (do_umount's propagate_mount_busy)."""
    if kernel.fs.layers_below(layer):
        raise SyscallError(errno.EBUSY, f"{layer.mount.guest} has mounts inside")
    inside = _inside(layer.mount.guest)
    for group in _live_groups(kernel):
        if inside(group.cwd):
            raise SyscallError(errno.EBUSY, f"pid {group.pid} works in {layer.mount.guest}")
        if any(inside(procfs_pid.fd_target(entry.file)) for _, entry in procfs_pid.descriptors(group)):
            raise SyscallError(errno.EBUSY, f"pid {group.pid} has a file open in {layer.mount.guest}")


def _require_no_writers(kernel: Kernel, layer: Layer) -> None:
    """EBUSY if a file inside the mount is open for writing: it cannot become read-only
    under a writer (sb_prepare_remount_readonly, mnt_make_readonly)."""
    inside = _inside(layer.mount.guest)
    for group in _live_groups(kernel):
        for _, entry in procfs_pid.descriptors(group):
            if entry.file.writable and inside(procfs_pid.fd_target(entry.file)):
                raise SyscallError(errno.EBUSY, f"pid {group.pid} writes in {layer.mount.guest}")


def _inside(point: str):
    """Whether a guest path lies at or below mount point `point`."""
    prefix = point.rstrip("/") + "/"
    return lambda path: path == point or path.startswith(prefix)


def _live_groups(kernel: Kernel) -> list:
    return [group for group in list(kernel.processes.values()) if group.alive]

"""File attributes: stat, statfs, access, modes, owners and times (man 2 of each).

What the guest reads of a host file passes through its identity (identity.py): ids as a
user namespace shows them, virtual device and inode numbers, the modes and owners it set. What
it sets is recorded there and never done on the host beyond what `HOST_MODE_MASK` allows;
calls on a descriptor act on the host descriptor itself, never on a path.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from typing import NoReturn

from sandbox.errors import SyscallError
from sandbox.kernel import inotify, pty
from sandbox.kernel.devtty import device_stat
from sandbox.kernel.files import Stat, synthetic_ino
from sandbox.kernel.hostfiles import HostFile
from sandbox.kernel.quota import ENTRY_COST
from sandbox.kernel.structs import STATFS, TIMESPEC, pack_stat, pack_statx
from sandbox.kernel.sys_fs import (
    AT_EMPTY_PATH,
    AT_FDCWD,
    AT_SYMLINK_NOFOLLOW,
    host_call,
    host_lstat,
    read_path,
    require_permission,
    resolve_at,
    start_of,
)
from sandbox.kernel.syscalls import syscall, to_int32
from sandbox.kernel.task import Task
from sandbox.kernel.vfs import NAME_MAX
from sandbox.kernel.vfs_nodes import Node
from sandbox.mm.uaccess import copy_in, copy_out, read_cstring

PROC_SUPER_MAGIC = 0x9FA0
SYNTHETIC_DEV, MADE_UP_DEV = 4, 1  # st_dev of /proc, /dev and placed nodes; of directories above mounts
TMPFS_MAGIC = 0x01021994
ST_RDONLY, ST_NOSUID, ST_NODEV = 1, 2, 4  # statfs f_flags (man 2 statfs)
UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2


# -- stat ---------------------------------------------------------------------------------


def stat_node(proc: Task, node: Node) -> Stat:
    """stat(2) of a resolved node (lstat semantics: the node itself), as the guest sees it."""
    if node.synthetic is not None:
        synthetic = node.synthetic
        if synthetic.kind == "device" and pty.is_pty_device(proc, synthetic.name):
            return pty.device_stat(proc, synthetic.name)  # /dev/ptmx, the guest's /dev/pts/N
        if synthetic.kind == "device":
            return proc.kernel.identity.present(device_stat(synthetic.name))  # (/dev/pts/N: the host's)
        if synthetic.kind == "fd":  # /proc/<pid>/fd/N of a pipe, socket... followed (procfs)
            return proc.kernel.identity.present(proc.kernel.proc_tree.open_fd(synthetic.name).stat())
        if synthetic.kind == "link":
            return _made_up(proc, node, SYNTHETIC_DEV, stat.S_IFLNK | 0o777, size=len(synthetic.name))
        if synthetic.kind == "dir":
            return _made_up(proc, node, SYNTHETIC_DEV, stat.S_IFDIR | 0o555, nlink=2)
        return _made_up(proc, node, SYNTHETIC_DEV, stat.S_IFREG | synthetic.mode)
    st = proc.kernel.fs.lstat(node)
    if st is None:  # a made-up directory above a deep mount
        return _made_up(proc, node, MADE_UP_DEV, stat.S_IFDIR | 0o755, nlink=2)
    return proc.kernel.identity.present(Stat.from_host(st))


def _made_up(proc: Task, node: Node, dev: int, mode: int, **fields: int) -> Stat:
    """A node the sandbox makes up: an identity of its own (a distinct, stable inode number
    per path, so tools that walk `..` or count hard links tell them apart), times of the
    sandbox's start."""
    born = proc.kernel.boot_wall_ns
    return Stat(dev=dev, ino=synthetic_ino(node.guest), mode=mode, atime_ns=born, mtime_ns=born,
                ctime_ns=born, **fields)


def fd_stat(proc: Task, fd: int) -> Stat:
    """fstat(2) of a descriptor, as the guest sees it."""
    return proc.kernel.identity.present(proc.files.get(to_int32(fd)).stat())


def stat_at(proc: Task, dirfd: int, path: int, flags: int) -> Stat:
    """The common part of newfstatat/statx: AT_EMPTY_PATH and AT_SYMLINK_NOFOLLOW."""
    raw = read_path(proc, path)
    if not raw and flags & AT_EMPTY_PATH:
        if to_int32(dirfd) == AT_FDCWD:
            return stat_node(proc, proc.kernel.fs.resolve(b".", proc.cwd))
        return fd_stat(proc, dirfd)
    base, raw = start_of(proc, dirfd, raw)
    node = proc.kernel.fs.resolve(raw, base, follow=not flags & AT_SYMLINK_NOFOLLOW)
    return stat_node(proc, node)


@syscall("fstat", "fd statbuf")
def sys_fstat(proc: Task, fd: int, statbuf: int) -> int:
    copy_out(proc.space, statbuf, pack_stat(fd_stat(proc, fd)))
    return 0


@syscall("newfstatat", "dirfd path statbuf flags")
def sys_newfstatat(proc: Task, dirfd: int, path: int, statbuf: int, flags: int) -> int:
    copy_out(proc.space, statbuf, pack_stat(stat_at(proc, dirfd, path, to_int32(flags))))
    return 0


@syscall("stat", "path statbuf")
def sys_stat(proc: Task, path: int, statbuf: int) -> int:
    return sys_newfstatat(proc, AT_FDCWD, path, statbuf, 0)


@syscall("lstat", "path statbuf")
def sys_lstat(proc: Task, path: int, statbuf: int) -> int:
    return sys_newfstatat(proc, AT_FDCWD, path, statbuf, AT_SYMLINK_NOFOLLOW)


@syscall("statx", "dirfd path flags mask statxbuf")
def sys_statx(proc: Task, dirfd: int, path: int, flags: int, mask: int, statxbuf: int) -> int:
    copy_out(proc.space, statxbuf, pack_statx(stat_at(proc, dirfd, path, to_int32(flags))))
    return 0


def _statfs_bytes(proc: Task, on_host: bool, writable: bool) -> bytes:
    """struct statfs: /proc's for synthetic nodes; for host files, a virtual file system
    whose size is the disk quota (no host figure reaches the guest)."""
    if not on_host:
        return STATFS.pack(PROC_SUPER_MAGIC, 4096, 0, 0, 0, 0, 0, 0, 0, NAME_MAX, 4096, 0)
    quota = proc.kernel.quota
    blocks, free = quota.limit // 4096, quota.free // 4096
    files, free_files = quota.limit // ENTRY_COST, quota.free // ENTRY_COST
    flags = ST_NOSUID | ST_NODEV | (0 if writable else ST_RDONLY)
    return STATFS.pack(TMPFS_MAGIC, 4096, blocks, free, free, files, free_files, 0, 0, NAME_MAX, 4096, flags)


@syscall("statfs", "path buf")
def sys_statfs(proc: Task, path: int, buf: int) -> int:
    node = resolve_at(proc, AT_FDCWD, path)
    copy_out(proc.space, buf, _statfs_bytes(proc, node.synthetic is None, node.writable))
    return 0


@syscall("fstatfs", "fd buf")
def sys_fstatfs(proc: Task, fd: int, buf: int) -> int:
    file = proc.files.get(to_int32(fd))
    on_host = isinstance(file, HostFile)
    copy_out(proc.space, buf, _statfs_bytes(proc, on_host, on_host and file.on_writable_mount))
    return 0


# -- access, modes, owners, times --------------------------------------------------------


@syscall("faccessat2", "dirfd path mode flags")
def sys_faccessat2(proc: Task, dirfd: int, path: int, mode: int, flags: int) -> int:
    flags, mode = to_int32(flags), to_int32(mode)
    node = resolve_at(proc, dirfd, path, follow=not flags & AT_SYMLINK_NOFOLLOW)
    if node.synthetic is not None:
        allowed = node.synthetic.mode
        if mode & os.W_OK and not allowed & 0o222 or mode & os.X_OK and not allowed & 0o111:
            raise SyscallError(errno.EACCES, node.guest)
        return 0
    if mode & os.W_OK and not node.writable:
        raise SyscallError(errno.EROFS, node.guest)
    if not node.on_host:
        return 0
    st = proc.kernel.fs.lstat(node)
    if st is not None:
        require_permission(proc, st, mode & 0o7, node)
    if not host_call(os.access, node.name, mode, dir_fd=node.dirfd, follow_symlinks=False):
        raise SyscallError(errno.EACCES, node.guest)
    return 0


@syscall("faccessat", "dirfd path mode")
def sys_faccessat(proc: Task, dirfd: int, path: int, mode: int) -> int:
    return sys_faccessat2(proc, dirfd, path, mode, 0)


@syscall("access", "path mode")
def sys_access(proc: Task, path: int, mode: int) -> int:
    return sys_faccessat2(proc, AT_FDCWD, path, mode, 0)


@syscall("fchmodat", "dirfd path mode")
def sys_fchmodat(proc: Task, dirfd: int, path: int, mode: int) -> int:
    node = resolve_at(proc, dirfd, path)
    proc.kernel.fs.require_writable(node)
    host_mode = proc.kernel.identity.chmod(host_lstat(proc, node), mode)
    host_call(os.chmod, node.name, host_mode, dir_fd=node.dirfd, follow_symlinks=False)
    inotify.node_changed(proc.kernel, node, inotify.IN_ATTRIB)
    return 0


@syscall("chmod", "path mode")
def sys_chmod(proc: Task, path: int, mode: int) -> int:
    return sys_fchmodat(proc, AT_FDCWD, path, mode)


def _host_file_of(proc: Task, fd: int) -> HostFile:
    """The host file behind `fd` (EPERM for anything else: pipes, devices, /proc)."""
    file = proc.files.get(to_int32(fd))
    if not isinstance(file, HostFile):
        raise SyscallError(errno.EPERM, file.name)
    if not file.on_writable_mount:
        raise SyscallError(errno.EROFS, file.name)
    return file


@syscall("fchmod", "fd mode")
def sys_fchmod(proc: Task, fd: int, mode: int) -> int:
    file = _host_file_of(proc, fd)
    host_mode = proc.kernel.identity.chmod(file.host(os.fstat), mode)
    file.host(os.chmod, host_mode)
    inotify.file_changed(file, inotify.IN_ATTRIB)
    return 0


def _owner_ids(owner: int, group: int) -> tuple[int, int]:
    """chown's ids as u32; -1 keeps one (man 2 chown)."""
    return tuple(-1 if v & 0xFFFF_FFFF == 0xFFFF_FFFF else v & 0xFFFF_FFFF for v in (owner, group))


def _chown(proc: Task, node: Node, owner: int, group: int) -> int:
    """chown within writable mounts: recorded by the sandbox, never done on the host."""
    proc.kernel.fs.require_writable(node)
    proc.kernel.identity.chown(host_lstat(proc, node), *_owner_ids(owner, group))
    inotify.node_changed(proc.kernel, node, inotify.IN_ATTRIB)
    return 0


@syscall("fchownat", "dirfd path owner group flags")
def sys_fchownat(proc: Task, dirfd: int, path: int, owner: int, group: int, flags: int) -> int:
    flags = to_int32(flags)
    if flags & AT_EMPTY_PATH and not read_path(proc, path):
        return sys_fchown(proc, dirfd, owner, group)
    return _chown(proc, resolve_at(proc, dirfd, path, follow=not flags & AT_SYMLINK_NOFOLLOW), owner, group)


@syscall("chown", "path owner group")
def sys_chown(proc: Task, path: int, owner: int, group: int) -> int:
    return _chown(proc, resolve_at(proc, AT_FDCWD, path), owner, group)


@syscall("lchown", "path owner group")
def sys_lchown(proc: Task, path: int, owner: int, group: int) -> int:
    return _chown(proc, resolve_at(proc, AT_FDCWD, path, follow=False), owner, group)


@syscall("fchown", "fd owner group")
def sys_fchown(proc: Task, fd: int, owner: int, group: int) -> int:
    """On the descriptor's own file (fstat), never on a path."""
    file = _host_file_of(proc, fd)
    proc.kernel.identity.chown(file.host(os.fstat), *_owner_ids(owner, group))
    inotify.file_changed(file, inotify.IN_ATTRIB)
    return 0


def _times_ns(proc: Task, times: int, current: os.stat_result) -> tuple[int, int]:
    """utimensat's two timespecs (UTIME_NOW, UTIME_OMIT) as nanoseconds; EINVAL if bad."""
    now = time.time_ns()
    stamps = [(None, UTIME_NOW), (None, UTIME_NOW)] if times == 0 else \
        list(TIMESPEC.iter_unpack(copy_in(proc.space, times, 2 * TIMESPEC.size)))
    ns = []
    for (sec, nsec), old in zip(stamps, (current.st_atime_ns, current.st_mtime_ns), strict=True):
        if nsec == UTIME_NOW:
            ns.append(now)
        elif nsec == UTIME_OMIT:
            ns.append(old)
        elif not 0 <= nsec < 10**9:
            raise SyscallError(errno.EINVAL, f"tv_nsec {nsec}")
        else:
            ns.append(sec * 10**9 + nsec)
    return ns[0], ns[1]


@syscall("utimensat", "dirfd path times flags")
def sys_utimensat(proc: Task, dirfd: int, path: int, times: int, flags: int) -> int:
    """Set access and modification times (UTIME_NOW, UTIME_OMIT); a NULL path means the
    descriptor itself (futimens), acted on by descriptor."""
    flags = to_int32(flags)
    if path == 0:
        file = _host_file_of(proc, dirfd)
        ns = _times_ns(proc, times, file.host(os.fstat))
        file.host(lambda fd: os.utime(fd, ns=ns))
        inotify.file_changed(file, inotify.IN_ATTRIB)
        return 0
    node = resolve_at(proc, dirfd, path, follow=not flags & AT_SYMLINK_NOFOLLOW)
    proc.kernel.fs.require_writable(node)
    ns = _times_ns(proc, times, host_lstat(proc, node))
    host_call(os.utime, node.name, ns=ns, dir_fd=node.dirfd, follow_symlinks=False)
    inotify.node_changed(proc.kernel, node, inotify.IN_ATTRIB)
    return 0


# -- extended attributes ------------------------------------------------------------------
# The view is a file system without extended attributes (no xattr handlers): Linux then
# answers getxattr/setxattr/removexattr with EOPNOTSUPP and listxattr with an empty list
# (fs/xattr.c: vfs_getxattr, vfs_listxattr). Host attributes (security labels, ACLs of the
# host's users) are never shown. The path or descriptor is checked first, as Linux does.


XATTR_CREATE, XATTR_REPLACE = 1, 2  # setxattr flags (include/uapi/linux/xattr.h)
XATTR_NAME_MAX = 255


def _check_xattr_call(proc: Task, name: int, flags: int = 0) -> NoReturn:
    """Linux's checks before the file system is asked (fs/xattr.c): flags, then the name
    (empty or longer than XATTR_NAME_MAX: ERANGE); then EOPNOTSUPP."""
    if flags & ~(XATTR_CREATE | XATTR_REPLACE):
        raise SyscallError(errno.EINVAL, f"xattr flags {flags:#x}")
    try:
        text = read_cstring(proc.space, name, XATTR_NAME_MAX)
    except SyscallError as error:
        if error.errno != errno.ENAMETOOLONG:
            raise
        text = b""
    if not text:
        raise SyscallError(errno.ERANGE, "xattr name length")
    raise SyscallError(errno.EOPNOTSUPP, "no extended attributes in the sandbox's file systems")


@syscall("getxattr", "path name value size")
def sys_getxattr(proc: Task, path: int, name: int, value: int, size: int) -> int:
    resolve_at(proc, AT_FDCWD, path)
    _check_xattr_call(proc, name)


@syscall("lgetxattr", "path name value size")
def sys_lgetxattr(proc: Task, path: int, name: int, value: int, size: int) -> int:
    resolve_at(proc, AT_FDCWD, path, follow=False)
    _check_xattr_call(proc, name)


@syscall("setxattr", "path name value size flags")
def sys_setxattr(proc: Task, path: int, name: int, value: int, size: int, flags: int) -> int:
    resolve_at(proc, AT_FDCWD, path)
    _check_xattr_call(proc, name, to_int32(flags))


@syscall("lsetxattr", "path name value size flags")
def sys_lsetxattr(proc: Task, path: int, name: int, value: int, size: int, flags: int) -> int:
    resolve_at(proc, AT_FDCWD, path, follow=False)
    _check_xattr_call(proc, name, to_int32(flags))


@syscall("removexattr", "path name")
def sys_removexattr(proc: Task, path: int, name: int) -> int:
    resolve_at(proc, AT_FDCWD, path)
    _check_xattr_call(proc, name)


@syscall("lremovexattr", "path name")
def sys_lremovexattr(proc: Task, path: int, name: int) -> int:
    resolve_at(proc, AT_FDCWD, path, follow=False)
    _check_xattr_call(proc, name)


@syscall("fgetxattr", "fd name value size")
def sys_fgetxattr(proc: Task, fd: int, name: int, value: int, size: int) -> int:
    proc.files.get(to_int32(fd))
    _check_xattr_call(proc, name)


@syscall("fsetxattr", "fd name value size flags")
def sys_fsetxattr(proc: Task, fd: int, name: int, value: int, size: int, flags: int) -> int:
    proc.files.get(to_int32(fd))
    _check_xattr_call(proc, name, to_int32(flags))


@syscall("fremovexattr", "fd name")
def sys_fremovexattr(proc: Task, fd: int, name: int) -> int:
    proc.files.get(to_int32(fd))
    _check_xattr_call(proc, name)


@syscall("listxattr", "path list size")
def sys_listxattr(proc: Task, path: int, names: int, size: int) -> int:
    resolve_at(proc, AT_FDCWD, path)
    return 0


@syscall("llistxattr", "path list size")
def sys_llistxattr(proc: Task, path: int, names: int, size: int) -> int:
    resolve_at(proc, AT_FDCWD, path, follow=False)
    return 0


@syscall("flistxattr", "fd list size")
def sys_flistxattr(proc: Task, fd: int, names: int, size: int) -> int:
    proc.files.get(to_int32(fd))
    return 0

"""Path system calls: open, stat, directories, links, permissions, renames (man 2 of each).

Every path goes through the guest's `FileSystemView` (vfs.py): resolved inside the tree,
checked against read-only mounts (EROFS), then handed to the host as a checked host path.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import time

from sandbox.errors import SyscallError
from sandbox.kernel.files import (
    O_ACCMODE,
    O_RDONLY,
    DeviceFile,
    File,
    HostFile,
    ProcFile,
    Stat,
    SyntheticDir,
)
from sandbox.kernel.process import Process
from sandbox.kernel.structs import STATFS, TIMESPEC, pack_dirent, pack_stat, pack_statx
from sandbox.kernel.syscalls import syscall, to_int32
from sandbox.kernel.vfs import Node
from sandbox.mm.uaccess import copy_in, copy_out, read_cstring

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_REMOVEDIR = 0x200
AT_EACCESS = 0x200
AT_SYMLINK_FOLLOW = 0x400
AT_EMPTY_PATH = 0x1000
O_CREAT, O_EXCL, O_NOCTTY, O_TRUNC = 0o100, 0o200, 0o400, 0o1000
O_APPEND, O_NONBLOCK, O_DIRECTORY, O_NOFOLLOW = 0o2000, 0o4000, 0o200000, 0o400000
O_CLOEXEC, O_PATH, O_TMPFILE = 0o2000000, 0o10000000, 0o20000000
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2
#: Flags passed to the host's open(2) as they are; the rest are the sandbox's business.
_HOST_OPEN_FLAGS = O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC | O_APPEND | O_DIRECTORY | O_NOFOLLOW | O_PATH
PROC_SUPER_MAGIC = 0x9FA0


def _path(proc: Process, addr: int) -> bytes:
    return read_cstring(proc.space, addr, 4096)


def base_dir(proc: Process, dirfd: int) -> str:
    """The guest directory a relative path starts from: the cwd or `dirfd`'s directory."""
    dirfd = to_int32(dirfd)
    if dirfd == AT_FDCWD:
        return proc.cwd
    file = proc.files.get(dirfd)
    guest = getattr(file, "guest", None)
    if guest is None or not stat.S_ISDIR(file.stat().mode):
        raise SyscallError(errno.ENOTDIR, f"fd {dirfd} is not a directory")
    return guest


def _writable_entry(proc: Process, dirfd: int, addr: int) -> Node:
    """The directory entry a call creates, removes or renames (see vfs.writable_entry)."""
    return proc.kernel.fs.writable_entry(_path(proc, addr), base_dir(proc, dirfd))


def resolve_at(proc: Process, dirfd: int, addr: int, flags: int = 0, follow: bool = True) -> Node:
    return proc.kernel.fs.resolve(_path(proc, addr), base_dir(proc, dirfd), follow=follow)


def _host_call(fn, *args, **kwargs):
    """Call the host; its error becomes the guest's errno. A value the host API cannot even
    take (Python's OverflowError/ValueError, e.g. a NUL in a path) is EINVAL."""
    try:
        return fn(*args, **kwargs)
    except OSError as error:
        raise SyscallError(error.errno or errno.EIO, str(error)) from None
    except (OverflowError, ValueError) as error:
        raise SyscallError(errno.EINVAL, str(error)) from None


# -- open ---------------------------------------------------------------------------------


@syscall("openat", "dirfd path flags mode")
def sys_openat(proc: Process, dirfd: int, path: int, flags: int, mode: int) -> int:
    flags = to_int32(flags)
    if flags & O_TMPFILE == O_TMPFILE:
        raise SyscallError(errno.EOPNOTSUPP, "O_TMPFILE")
    file = open_file(proc, _path(proc, path), base_dir(proc, dirfd), flags, mode & 0o7777)
    return proc.files.install(file, cloexec=bool(flags & O_CLOEXEC))


@syscall("open", "path flags mode")
def sys_open(proc: Process, path: int, flags: int, mode: int) -> int:
    return sys_openat(proc, AT_FDCWD, path, flags, mode)


@syscall("creat", "path mode")
def sys_creat(proc: Process, path: int, mode: int) -> int:
    return sys_openat(proc, AT_FDCWD, path, O_CREAT | 0o1 | O_TRUNC, mode)


def open_file(proc: Process, path: bytes, base: str, flags: int, mode: int) -> File:
    """Resolve and open `path` like open(2); creating it (O_CREAT) in a writable directory."""
    fs = proc.kernel.fs
    try:
        node = fs.resolve(path, base, follow=not flags & O_NOFOLLOW)
    except SyscallError as error:
        if error.errno != errno.ENOENT or not flags & O_CREAT:
            raise
        node = fs.writable_entry(path, base)
        if node.host is None:
            raise
    else:
        if flags & O_CREAT and flags & O_EXCL:
            raise SyscallError(errno.EEXIST, node.guest)
    if node.synthetic is not None:
        return open_synthetic(proc, node, flags)
    if flags & (O_ACCMODE | O_TRUNC) != O_RDONLY or (flags & O_CREAT and not os.path.lexists(node.host)):
        fs.require_writable(node)
    if not os.path.lexists(node.host) and fs.is_mount_ancestor(node.guest):
        return SyntheticDir(node.guest, fs.mount_points_under(node.guest))
    host_flags = (flags & _HOST_OPEN_FLAGS) | os.O_CLOEXEC | os.O_NOFOLLOW
    fd = _host_call(os.open, node.host, host_flags, mode & ~proc.umask)
    file = HostFile(fd, node.guest, flags & ~O_CLOEXEC, lambda: fs.mount_points_under(node.guest))
    file.cache = proc.kernel.page_cache
    return file


def open_synthetic(proc: Process, node: Node, flags: int) -> File:
    """Devices, /proc files and synthetic directories."""
    synthetic = node.synthetic
    if synthetic.kind == "device":
        if synthetic.name == "tty":
            raise SyscallError(errno.ENXIO, "no controlling terminal")
        return DeviceFile(synthetic.name, flags, proc.kernel.random_bytes)
    if flags & O_ACCMODE != O_RDONLY:
        raise SyscallError(errno.EACCES, node.guest)
    if synthetic.kind == "dir":
        return SyntheticDir(node.guest, proc.kernel.fs.list_synthetic(node.guest) or [])
    return ProcFile(node.guest, proc.kernel.proc_file(proc, synthetic.name))


# -- stat ---------------------------------------------------------------------------------


def stat_node(proc: Process, node: Node) -> Stat:
    """stat(2) of a resolved node (lstat semantics: the node itself)."""
    fs = proc.kernel.fs
    if node.synthetic is not None:
        kind = node.synthetic.kind
        if kind == "device":
            return DeviceFile(node.synthetic.name, 0, bytes).stat()
        if kind == "link":
            return Stat(dev=4, ino=2, mode=stat.S_IFLNK | 0o777, size=len(node.synthetic.name))
        if kind == "dir":
            return Stat(dev=4, ino=1, mode=stat.S_IFDIR | 0o555, nlink=2)
        return Stat(dev=4, ino=3, mode=stat.S_IFREG | 0o444)
    try:
        return Stat.from_host(os.lstat(node.host))
    except FileNotFoundError:
        if fs.is_mount_ancestor(node.guest):
            return Stat(dev=1, ino=1, mode=stat.S_IFDIR | 0o755, nlink=2)
        raise SyscallError(errno.ENOENT, node.guest) from None
    except OSError as error:
        raise SyscallError(error.errno or errno.EIO, node.guest) from None


def stat_at(proc: Process, dirfd: int, path: int, flags: int) -> Stat:
    """The common part of newfstatat/statx: AT_EMPTY_PATH and AT_SYMLINK_NOFOLLOW."""
    raw = _path(proc, path)
    if not raw and flags & AT_EMPTY_PATH:
        if to_int32(dirfd) == AT_FDCWD:
            return stat_node(proc, proc.kernel.fs.resolve(b".", proc.cwd))
        return proc.files.get(to_int32(dirfd)).stat()
    node = proc.kernel.fs.resolve(raw, base_dir(proc, dirfd), follow=not flags & AT_SYMLINK_NOFOLLOW)
    return stat_node(proc, node)


@syscall("fstat", "fd statbuf")
def sys_fstat(proc: Process, fd: int, statbuf: int) -> int:
    copy_out(proc.space, statbuf, pack_stat(proc.files.get(to_int32(fd)).stat()))
    return 0


@syscall("newfstatat", "dirfd path statbuf flags")
def sys_newfstatat(proc: Process, dirfd: int, path: int, statbuf: int, flags: int) -> int:
    copy_out(proc.space, statbuf, pack_stat(stat_at(proc, dirfd, path, to_int32(flags))))
    return 0


@syscall("stat", "path statbuf")
def sys_stat(proc: Process, path: int, statbuf: int) -> int:
    return sys_newfstatat(proc, AT_FDCWD, path, statbuf, 0)


@syscall("lstat", "path statbuf")
def sys_lstat(proc: Process, path: int, statbuf: int) -> int:
    return sys_newfstatat(proc, AT_FDCWD, path, statbuf, AT_SYMLINK_NOFOLLOW)


@syscall("statx", "dirfd path flags mask statxbuf")
def sys_statx(proc: Process, dirfd: int, path: int, flags: int, mask: int, statxbuf: int) -> int:
    copy_out(proc.space, statxbuf, pack_statx(stat_at(proc, dirfd, path, to_int32(flags))))
    return 0


def _statfs_bytes(host: str | int | None) -> bytes:
    """struct statfs of a host path or fd, through libc; /proc's for synthetic nodes."""
    if host is None:
        return STATFS.pack(PROC_SUPER_MAGIC, 4096, 0, 0, 0, 0, 0, 0, 0, 255, 4096, 0)
    buf = ctypes.create_string_buffer(STATFS.size)
    libc = ctypes.CDLL(None, use_errno=True)
    result = libc.fstatfs(host, buf) if isinstance(host, int) else libc.statfs(os.fsencode(host), buf)
    if result != 0:
        raise SyscallError(ctypes.get_errno() or errno.EIO, "statfs")
    return buf.raw


@syscall("statfs", "path buf")
def sys_statfs(proc: Process, path: int, buf: int) -> int:
    node = resolve_at(proc, AT_FDCWD, path)
    copy_out(proc.space, buf, _statfs_bytes(node.host if node.synthetic is None else None))
    return 0


@syscall("fstatfs", "fd buf")
def sys_fstatfs(proc: Process, fd: int, buf: int) -> int:
    file = proc.files.get(to_int32(fd))
    copy_out(proc.space, buf, _statfs_bytes(file.fd if isinstance(file, HostFile) else None))
    return 0


# -- directories --------------------------------------------------------------------------


@syscall("getdents64", "fd dirp count")
def sys_getdents64(proc: Process, fd: int, dirp: int, count: int) -> int:
    """Fill `dirp` with as many whole records as fit, from the directory's position."""
    file = proc.files.get(to_int32(fd))
    entries = file.entries()
    out = bytearray()
    position = file.dir_position
    while position < len(entries):
        record = pack_dirent(entries[position], position + 1)
        if len(out) + len(record) > count:
            if not out:
                raise SyscallError(errno.EINVAL, "buffer too small for one entry")
            break
        out += record
        position += 1
    copy_out(proc.space, dirp, bytes(out))
    file.dir_position = position
    return len(out)


@syscall("mkdirat", "dirfd path mode")
def sys_mkdirat(proc: Process, dirfd: int, path: int, mode: int) -> int:
    node = _writable_entry(proc, dirfd, path)
    _host_call(os.mkdir, node.host, mode & 0o7777 & ~proc.umask)
    return 0


@syscall("mkdir", "path mode")
def sys_mkdir(proc: Process, path: int, mode: int) -> int:
    return sys_mkdirat(proc, AT_FDCWD, path, mode)


@syscall("unlinkat", "dirfd path flags")
def sys_unlinkat(proc: Process, dirfd: int, path: int, flags: int) -> int:
    node = _writable_entry(proc, dirfd, path)
    _host_call(os.rmdir if to_int32(flags) & AT_REMOVEDIR else os.unlink, node.host)
    return 0


@syscall("unlink", "path")
def sys_unlink(proc: Process, path: int) -> int:
    return sys_unlinkat(proc, AT_FDCWD, path, 0)


@syscall("rmdir", "path")
def sys_rmdir(proc: Process, path: int) -> int:
    return sys_unlinkat(proc, AT_FDCWD, path, AT_REMOVEDIR)


@syscall("getcwd", "buf size")
def sys_getcwd(proc: Process, buf: int, size: int) -> int:
    data = os.fsencode(proc.cwd) + b"\0"
    if size < len(data):
        raise SyscallError(errno.ERANGE, "buffer too small")
    copy_out(proc.space, buf, data)
    return len(data)


def _enter(proc: Process, node: Node) -> int:
    if proc.kernel.fs.kind_of(node) != "dir":
        raise SyscallError(errno.ENOTDIR, node.guest)
    proc.cwd = node.guest
    return 0


@syscall("chdir", "path")
def sys_chdir(proc: Process, path: int) -> int:
    return _enter(proc, resolve_at(proc, AT_FDCWD, path))


@syscall("fchdir", "fd")
def sys_fchdir(proc: Process, fd: int) -> int:
    return _enter(proc, proc.kernel.fs.lookup(base_dir(proc, fd)))


# -- links, permissions, times ------------------------------------------------------------


@syscall("readlinkat", "dirfd path buf size")
def sys_readlinkat(proc: Process, dirfd: int, path: int, buf: int, size: int) -> int:
    if to_int32(size) <= 0:
        raise SyscallError(errno.EINVAL, "size")
    node = resolve_at(proc, dirfd, path, follow=False)
    if node.synthetic is not None:
        if node.synthetic.kind != "link":
            raise SyscallError(errno.EINVAL, f"{node.guest} is not a symlink")
        target = os.fsencode(node.synthetic.name)
    else:
        target = os.fsencode(_host_call(os.readlink, node.host))
    copy_out(proc.space, buf, target[:size])
    return min(len(target), size)


@syscall("readlink", "path buf size")
def sys_readlink(proc: Process, path: int, buf: int, size: int) -> int:
    return sys_readlinkat(proc, AT_FDCWD, path, buf, size)


@syscall("symlinkat", "target newdirfd linkpath")
def sys_symlinkat(proc: Process, target: int, newdirfd: int, linkpath: int) -> int:
    """The target is stored as given; it is resolved inside the guest tree when followed."""
    text = _path(proc, target)
    node = _writable_entry(proc, newdirfd, linkpath)
    _host_call(os.symlink, text, node.host)
    return 0


@syscall("symlink", "target linkpath")
def sys_symlink(proc: Process, target: int, linkpath: int) -> int:
    return sys_symlinkat(proc, target, AT_FDCWD, linkpath)


@syscall("linkat", "olddirfd oldpath newdirfd newpath flags")
def sys_linkat(proc: Process, olddirfd: int, oldpath: int, newdirfd: int, newpath: int, flags: int) -> int:
    old = resolve_at(proc, olddirfd, oldpath, follow=bool(to_int32(flags) & AT_SYMLINK_FOLLOW))
    new = _writable_entry(proc, newdirfd, newpath)
    if old.synthetic is not None or old.mount != new.mount:
        raise SyscallError(errno.EXDEV, "link across mounts")
    _host_call(os.link, old.host, new.host, follow_symlinks=False)
    return 0


@syscall("faccessat2", "dirfd path mode flags")
def sys_faccessat2(proc: Process, dirfd: int, path: int, mode: int, flags: int) -> int:
    flags, mode = to_int32(flags), to_int32(mode)
    node = resolve_at(proc, dirfd, path, follow=not flags & AT_SYMLINK_NOFOLLOW)
    if node.synthetic is not None:
        allowed = node.synthetic.mode
        if mode & os.W_OK and not allowed & 0o222 or mode & os.X_OK and not allowed & 0o111:
            raise SyscallError(errno.EACCES, node.guest)
        return 0
    if mode & os.W_OK and not node.writable:
        raise SyscallError(errno.EROFS, node.guest)
    if not os.path.lexists(node.host) and proc.kernel.fs.is_mount_ancestor(node.guest):
        return 0
    if not _host_call(os.access, node.host, mode, follow_symlinks=False):
        raise SyscallError(errno.EACCES, node.guest)
    return 0


@syscall("faccessat", "dirfd path mode")
def sys_faccessat(proc: Process, dirfd: int, path: int, mode: int) -> int:
    return sys_faccessat2(proc, dirfd, path, mode, 0)


@syscall("access", "path mode")
def sys_access(proc: Process, path: int, mode: int) -> int:
    return sys_faccessat2(proc, AT_FDCWD, path, mode, 0)


@syscall("renameat2", "olddirfd oldpath newdirfd newpath flags")
def sys_renameat2(proc: Process, olddirfd: int, oldpath: int, newdirfd: int, newpath: int, flags: int) -> int:
    flags = to_int32(flags)
    if flags & ~RENAME_NOREPLACE:
        raise SyscallError(errno.EINVAL, f"rename flags {flags:#x}")
    old, new = _writable_entry(proc, olddirfd, oldpath), _writable_entry(proc, newdirfd, newpath)
    if old.mount != new.mount:
        raise SyscallError(errno.EXDEV, "rename across mounts")
    if flags & RENAME_NOREPLACE and os.path.lexists(new.host):
        raise SyscallError(errno.EEXIST, new.guest)
    _host_call(os.rename, old.host, new.host)
    return 0


@syscall("renameat", "olddirfd oldpath newdirfd newpath")
def sys_renameat(proc: Process, olddirfd: int, oldpath: int, newdirfd: int, newpath: int) -> int:
    return sys_renameat2(proc, olddirfd, oldpath, newdirfd, newpath, 0)


@syscall("rename", "oldpath newpath")
def sys_rename(proc: Process, oldpath: int, newpath: int) -> int:
    return sys_renameat2(proc, AT_FDCWD, oldpath, AT_FDCWD, newpath, 0)


@syscall("fchmodat", "dirfd path mode")
def sys_fchmodat(proc: Process, dirfd: int, path: int, mode: int) -> int:
    node = resolve_at(proc, dirfd, path)
    proc.kernel.fs.require_writable(node)
    _host_call(os.chmod, node.host, mode & 0o7777)
    return 0


@syscall("chmod", "path mode")
def sys_chmod(proc: Process, path: int, mode: int) -> int:
    return sys_fchmodat(proc, AT_FDCWD, path, mode)


@syscall("fchmod", "fd mode")
def sys_fchmod(proc: Process, fd: int, mode: int) -> int:
    file = proc.files.get(to_int32(fd))
    if not isinstance(file, HostFile):
        raise SyscallError(errno.EPERM, file.name)
    proc.kernel.fs.require_writable(proc.kernel.fs.lookup(file.guest))
    _host_call(os.chmod, file.fd, mode & 0o7777)
    return 0


def _chown(proc: Process, node: Node, owner: int, group: int, follow: bool) -> int:
    """chown within writable mounts; -1 (as u32) keeps the id (man 2 chown)."""
    proc.kernel.fs.require_writable(node)
    uid, gid = (-1 if v & 0xFFFF_FFFF == 0xFFFF_FFFF else v & 0xFFFF_FFFF for v in (owner, group))
    _host_call(os.chown, node.host, uid, gid, follow_symlinks=follow)
    return 0


@syscall("fchownat", "dirfd path owner group flags")
def sys_fchownat(proc: Process, dirfd: int, path: int, owner: int, group: int, flags: int) -> int:
    flags = to_int32(flags)
    if flags & AT_EMPTY_PATH and not _path(proc, path):
        return sys_fchown(proc, dirfd, owner, group)
    follow = not flags & AT_SYMLINK_NOFOLLOW
    return _chown(proc, resolve_at(proc, dirfd, path, follow=follow), owner, group, follow)


@syscall("chown", "path owner group")
def sys_chown(proc: Process, path: int, owner: int, group: int) -> int:
    return _chown(proc, resolve_at(proc, AT_FDCWD, path), owner, group, True)


@syscall("lchown", "path owner group")
def sys_lchown(proc: Process, path: int, owner: int, group: int) -> int:
    return _chown(proc, resolve_at(proc, AT_FDCWD, path, follow=False), owner, group, False)


@syscall("fchown", "fd owner group")
def sys_fchown(proc: Process, fd: int, owner: int, group: int) -> int:
    file = proc.files.get(to_int32(fd))
    if not isinstance(file, HostFile):
        raise SyscallError(errno.EPERM, file.name)
    return _chown(proc, proc.kernel.fs.lookup(file.guest), owner, group, True)


MFD_CLOEXEC, MFD_ALLOW_SEALING = 1, 2


@syscall("memfd_create", "name flags")
def sys_memfd_create(proc: Process, name: int, flags: int) -> int:
    """An anonymous file: a host file in the kernel's scratch space, unlinked at once, so only
    descriptors (and mappings) reach it. Shared mappings of it share page-cache frames."""
    flags = to_int32(flags)
    if flags & ~(MFD_CLOEXEC | MFD_ALLOW_SEALING):
        raise SyscallError(errno.EINVAL, f"memfd flags {flags:#x}")
    label = read_cstring(proc.space, name, 249).decode(errors="replace")
    fd = proc.kernel.scratch_file()
    file = HostFile(fd, f"/memfd:{label} (deleted)", os.O_RDWR)
    file.cache = proc.kernel.page_cache
    return proc.files.install(file, cloexec=bool(flags & MFD_CLOEXEC))


@syscall("umask", "mask")
def sys_umask(proc: Process, mask: int) -> int:
    old, proc.umask = proc.umask, mask & 0o777
    return old


@syscall("utimensat", "dirfd path times flags")
def sys_utimensat(proc: Process, dirfd: int, path: int, times: int, flags: int) -> int:
    """Set access and modification times (UTIME_NOW, UTIME_OMIT); a NULL path means dirfd."""
    flags = to_int32(flags)
    if path == 0:
        file = proc.files.get(to_int32(dirfd))
        if not isinstance(file, HostFile):
            raise SyscallError(errno.EPERM, file.name)
        node = proc.kernel.fs.lookup(file.guest)
    else:
        node = resolve_at(proc, dirfd, path, follow=not flags & AT_SYMLINK_NOFOLLOW)
    proc.kernel.fs.require_writable(node)
    current = _host_call(os.lstat, node.host)
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
    _host_call(lambda: os.utime(node.host, ns=tuple(ns), follow_symlinks=False))
    return 0


@syscall("truncate", "path length")
def sys_truncate(proc: Process, path: int, length: int) -> int:
    node = resolve_at(proc, AT_FDCWD, path)
    proc.kernel.fs.require_writable(node)
    _host_call(os.truncate, node.host, length)
    return 0

"""The namespace calls: make, link, unlink and rename directory entries (mkdir(2), mknod(2),
unlink(2), rmdir(2), symlink(2), link(2), rename(2)), as Linux keeps them in fs/namei.c.

Each resolves its entry through the view (sys_fs.writable_entry: inside the tree, EROFS on
read-only mounts) and acts with an `*at` call on the (directory descriptor, name) pair,
never following a symlink. What an entry costs is charged to the disk quota and given back
when it goes; owners and special modes are recorded by identity.py, never set on the host.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from typing import TYPE_CHECKING

from sandbox.errors import SyscallError
from sandbox.kernel import inotify
from sandbox.kernel.hostfiles import HostFile
from sandbox.kernel.identity import HOST_MODE_MASK
from sandbox.kernel.sys_fs import (
    AT_FDCWD,
    AT_REMOVEDIR,
    AT_SYMLINK_FOLLOW,
    HOST_OPEN_ALWAYS,
    UMODE_MASK,
    create_entry,
    host_call,
    host_lstat,
    read_path,
    resolve_at,
    writable_entry,
)
from sandbox.kernel.syscalls import syscall, to_int32
from sandbox.kernel.task import Task

if TYPE_CHECKING:
    from sandbox.kernel.files import File
    from sandbox.kernel.kernel import Kernel
    from sandbox.kernel.process import FsContext
    from sandbox.kernel.vfs_nodes import Node

RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2  # include/uapi/linux/fs.h
_libc = ctypes.CDLL(None, use_errno=True)


@syscall("mkdirat", "dirfd path mode")
def sys_mkdirat(proc: Task, dirfd: int, path: int, mode: int) -> int:
    node = writable_entry(proc, dirfd, path, creating=True)
    mode = mode & 0o7777 & ~proc.umask
    create_entry(proc, node, lambda name, fd: os.mkdir(name, mode & HOST_MODE_MASK, dir_fd=fd))
    st = host_lstat(proc, node)
    proc.kernel.quota.charge_blocks(st.st_blocks)  # the new directory's own block(s)
    proc.kernel.identity.created(st, mode)
    return 0


@syscall("mknodat", "dirfd path mode dev")
def sys_mknodat(proc: Task, dirfd: int, path: int, mode: int, dev: int) -> int:
    """mknod(2): a regular file is made as open(O_CREAT|O_EXCL) would, a FIFO as a host
    FIFO that only the sandbox's own pipes serve (see open_fifo); device nodes and sockets
    never are (EPERM, as for an unprivileged user: the view is `nodev`, and host sockets
    lead out of the sandbox)."""
    mode &= UMODE_MASK
    kind = stat.S_IFMT(mode) or stat.S_IFREG
    if kind not in (stat.S_IFREG, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK):
        raise SyscallError(errno.EINVAL, f"mknod type {kind:#o}")
    if kind not in (stat.S_IFREG, stat.S_IFIFO):
        raise SyscallError(errno.EPERM, "the sandbox makes no device nodes or sockets")
    node = writable_entry(proc, dirfd, path, creating=True)
    mode = mode & 0o7777 & ~proc.umask
    if kind == stat.S_IFIFO:
        create_entry(proc, node, lambda name, fd: os.mkfifo(name, mode & HOST_MODE_MASK, dir_fd=fd))
        proc.kernel.identity.created(host_lstat(proc, node), mode)
        return 0
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | HOST_OPEN_ALWAYS
    os.close(create_entry(proc, node, lambda _name, _fd: proc.kernel.fs.open_node(node, flags, mode & HOST_MODE_MASK)))
    proc.kernel.identity.created(host_lstat(proc, node), mode)
    return 0


@syscall("mknod", "path mode dev")
def sys_mknod(proc: Task, path: int, mode: int, dev: int) -> int:
    return sys_mknodat(proc, AT_FDCWD, path, mode, dev)


@syscall("mkdir", "path mode")
def sys_mkdir(proc: Task, path: int, mode: int) -> int:
    return sys_mkdirat(proc, AT_FDCWD, path, mode)


@syscall("unlinkat", "dirfd path flags")
def sys_unlinkat(proc: Task, dirfd: int, path: int, flags: int) -> int:
    node = writable_entry(proc, dirfd, path)
    st = host_lstat(proc, node)
    remove = os.rmdir if to_int32(flags) & AT_REMOVEDIR else os.unlink
    host_call(remove, node.name, dir_fd=node.dirfd)
    inotify.unlinked(proc.kernel, node, st)
    _forget(proc, st)
    if remove is os.rmdir:
        for context in _fs_contexts(proc.kernel):
            context.cwd_removed |= context.cwd == node.guest
    return 0


def _forget(proc: Task, st: os.stat_result) -> None:
    """An entry is gone: its quota and its recorded owner and mode."""
    proc.kernel.quota.removed(st)
    proc.kernel.identity.forget(st)


@syscall("unlink", "path")
def sys_unlink(proc: Task, path: int) -> int:
    return sys_unlinkat(proc, AT_FDCWD, path, 0)


@syscall("rmdir", "path")
def sys_rmdir(proc: Task, path: int) -> int:
    return sys_unlinkat(proc, AT_FDCWD, path, AT_REMOVEDIR)


@syscall("symlinkat", "target newdirfd linkpath")
def sys_symlinkat(proc: Task, target: int, newdirfd: int, linkpath: int) -> int:
    """The target is stored as given: it means something only inside the view, where the
    sandbox resolves it; the host is never asked to follow it."""
    text = read_path(proc, target)
    node = writable_entry(proc, newdirfd, linkpath, creating=True)
    create_entry(proc, node, lambda name, fd: os.symlink(text, name, dir_fd=fd))
    return 0


@syscall("symlink", "target linkpath")
def sys_symlink(proc: Task, target: int, linkpath: int) -> int:
    return sys_symlinkat(proc, target, AT_FDCWD, linkpath)


@syscall("linkat", "olddirfd oldpath newdirfd newpath flags")
def sys_linkat(proc: Task, olddirfd: int, oldpath: int, newdirfd: int, newpath: int, flags: int) -> int:
    old = resolve_at(proc, olddirfd, oldpath, follow=bool(to_int32(flags) & AT_SYMLINK_FOLLOW))
    new = writable_entry(proc, newdirfd, newpath, creating=True)
    if old.synthetic is not None and old.synthetic.kind == "fd":  # /proc/PID/fd/N, followed
        return _link_open_file(proc, proc.kernel.proc_tree.open_fd(old.synthetic.name), new)
    if not old.on_host or old.mount != new.mount:
        raise SyscallError(errno.EXDEV, "link across mounts")
    create_entry(proc, new, lambda name, fd: os.link(old.name, name, src_dir_fd=old.dirfd, dst_dir_fd=fd,
                                                      follow_symlinks=False))
    return 0


def _link_open_file(proc: Task, file: File, new: Node) -> int:
    """linkat of /proc/PID/fd/N with AT_SYMLINK_FOLLOW: the way an O_TMPFILE file gets its
    name (man 2 open). The host links the sandbox's own descriptor through its own
    /proc/self/fd (never a path the guest chose), and refuses a file unlinked the usual way
    (ENOENT, as Linux: only O_TMPFILE files without O_EXCL are linkable at nlink 0)."""
    mount = getattr(file, "tmpfile_mount", None)
    if mount is None:  # a file unlinked after its open (nlink 0); a pipe or socket (another fs)
        raise SyscallError(errno.ENOENT if isinstance(file, HostFile) else errno.EXDEV, "not a linkable file")
    if mount != new.mount:
        raise SyscallError(errno.EXDEV, "link across mounts")
    create_entry(proc, new, lambda name, fd: os.link(f"/proc/self/fd/{file.fd}", name, dst_dir_fd=fd,
                                                     follow_symlinks=True))
    return 0


@syscall("link", "oldpath newpath")
def sys_link(proc: Task, oldpath: int, newpath: int) -> int:
    return sys_linkat(proc, AT_FDCWD, oldpath, AT_FDCWD, newpath, 0)


@syscall("renameat2", "olddirfd oldpath newdirfd newpath flags")
def sys_renameat2(proc: Task, olddirfd: int, oldpath: int, newdirfd: int, newpath: int, flags: int) -> int:
    """rename(2) by descriptors, through the host's renameat2 (so RENAME_NOREPLACE and
    RENAME_EXCHANGE are atomic); an entry it replaces is given back to the quota."""
    flags = to_int32(flags)
    if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE) or flags == RENAME_NOREPLACE | RENAME_EXCHANGE:
        raise SyscallError(errno.EINVAL, f"rename flags {flags:#x}")
    old, new = writable_entry(proc, olddirfd, oldpath), writable_entry(proc, newdirfd, newpath)
    if old.mount != new.mount:
        raise SyscallError(errno.EXDEV, "rename across mounts")
    host_lstat(proc, old)
    replaced = proc.kernel.fs.lstat(new) if proc.kernel.fs.exists(new) else None
    result = _libc.renameat2(old.dirfd, os.fsencode(old.name), new.dirfd, os.fsencode(new.name), flags)
    if result != 0:
        raise SyscallError(ctypes.get_errno() or errno.EIO, "rename")
    inotify.renamed(proc.kernel, old, new, replaced, bool(flags & RENAME_EXCHANGE))
    if replaced is not None and not flags & RENAME_EXCHANGE:
        _forget(proc, replaced)
    _carry_along(proc.kernel, old.guest, new.guest, bool(flags & RENAME_EXCHANGE))
    return 0


def _carry_along(kernel: Kernel, old: str, new: str, exchange: bool) -> None:
    """Linux holds a working directory, a root and an open file by their dentries, so a
    rename carries them along (d_move): a relative path goes on working in a renamed cwd,
    and getcwd and /proc/PID/fd name the new place. The sandbox holds guest paths, so those
    under the renamed entry (both, for RENAME_EXCHANGE) are rewritten."""
    moves = ((old, new), (new, old)) if exchange else ((old, new),)

    def moved(path: str) -> str:
        for before, after in moves:
            if path == before or path.startswith(before + "/"):
                return after + path[len(before):]
        return path

    for context in _fs_contexts(kernel):
        context.cwd, context.root = moved(context.cwd), moved(context.root)
    seen: set[int] = set()
    for group in kernel.processes.values():
        for file in group.files.open_files() if group.files is not None else ():
            guest = getattr(file, "guest", None)
            if isinstance(guest, str) and id(file) not in seen:
                seen.add(id(file))
                file.guest = moved(guest)
                if file.name == guest:
                    file.name = file.guest


def _fs_contexts(kernel: Kernel) -> list[FsContext]:
    """Every process's working-directory context, once each (CLONE_FS shares them)."""
    return list({id(group.fs): group.fs for group in kernel.processes.values()}.values())


@syscall("renameat", "olddirfd oldpath newdirfd newpath")
def sys_renameat(proc: Task, olddirfd: int, oldpath: int, newdirfd: int, newpath: int) -> int:
    return sys_renameat2(proc, olddirfd, oldpath, newdirfd, newpath, 0)


@syscall("rename", "oldpath newpath")
def sys_rename(proc: Task, oldpath: int, newpath: int) -> int:
    return sys_renameat2(proc, AT_FDCWD, oldpath, AT_FDCWD, newpath, 0)

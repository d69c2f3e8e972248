"""inotify system calls: inotify_init, inotify_init1, inotify_add_watch, inotify_rm_watch
(man 2 of each; Linux fs/notify/inotify/inotify_user.c). The instances, watches and events
are in inotify.py."""

from __future__ import annotations

import errno

from sandbox.errors import SyscallError
from sandbox.kernel.files import O_NONBLOCK
from sandbox.kernel.inotify import (
    ALL_INOTIFY_BITS,
    IN_DONT_FOLLOW,
    IN_MASK_ADD,
    IN_MASK_CREATE,
    IN_ONLYDIR,
    InotifyFile,
    notifier_of,
)
from sandbox.kernel.sys_attr import stat_node
from sandbox.kernel.sys_fs import AT_FDCWD, O_CLOEXEC, require_permission, resolve_at
from sandbox.kernel.syscalls import syscall, to_int32
from sandbox.kernel.task import Task
from sandbox.kernel.vfs_nodes import Node

IN_CLOEXEC, IN_NONBLOCK = O_CLOEXEC, O_NONBLOCK
MAY_READ = 4


@syscall("inotify_init1", "flags")
def sys_inotify_init1(proc: Task, flags: int) -> int:
    """A new instance; EINVAL for flags besides IN_CLOEXEC and IN_NONBLOCK, EMFILE past the
    sandbox's instances (fs.inotify.max_user_instances)."""
    flags = to_int32(flags)
    if flags & ~(IN_CLOEXEC | IN_NONBLOCK):
        raise SyscallError(errno.EINVAL, f"inotify_init1 flags {flags:#x}")
    notifier = notifier_of(proc.kernel)
    notifier.instances.charge(1)
    try:
        return proc.files.install(InotifyFile(notifier, flags), cloexec=bool(flags & IN_CLOEXEC))
    except SyscallError:
        notifier.instances.release(1)
        raise


@syscall("inotify_init")
def sys_inotify_init(proc: Task) -> int:
    return sys_inotify_init1(proc, 0)


def _instance(proc: Task, fd: int) -> InotifyFile:
    """The instance behind `fd`: EBADF if none is open, EINVAL if it is not inotify's."""
    return proc.files.get_as(to_int32(fd), InotifyFile, errno.EINVAL, "an inotify instance")


@syscall("inotify_add_watch", "fd path mask")
def sys_inotify_add_watch(proc: Task, fd: int, path: int, mask: int) -> int:
    """Watch the node at `path` (resolved in the guest's view, following a final symlink
    unless IN_DONT_FOLLOW; ENOTDIR under IN_ONLYDIR if not a directory; EACCES without read
    permission): the watch's wd, the same for the same inode."""
    mask &= 0xFFFF_FFFF
    if mask & IN_MASK_ADD and mask & IN_MASK_CREATE:
        raise SyscallError(errno.EINVAL, "IN_MASK_ADD with IN_MASK_CREATE")
    if not mask & ALL_INOTIFY_BITS:
        raise SyscallError(errno.EINVAL, f"inotify mask {mask:#x}")
    instance = _instance(proc, fd)
    node = resolve_at(proc, AT_FDCWD, path, follow=not mask & IN_DONT_FOLLOW)
    if mask & IN_ONLYDIR and proc.kernel.fs.kind_of(node) != "dir":  # LOOKUP_DIRECTORY
        raise SyscallError(errno.ENOTDIR, node.guest)
    return instance.add_watch(_watch_key(proc, node), mask)


def _watch_key(proc: Task, node: Node) -> tuple:
    """What a watch on `node` is keyed by: its host inode, or a made-up node's identity."""
    st = proc.kernel.fs.lstat(node) if node.synthetic is None and node.on_host else None
    if st is not None:
        require_permission(proc, st, MAY_READ, node)
        return st.st_dev, st.st_ino
    made_up = stat_node(proc, node)
    return "made-up", made_up.dev, made_up.ino


@syscall("inotify_rm_watch", "fd wd")
def sys_inotify_rm_watch(proc: Task, fd: int, wd: int) -> int:
    """Remove watch `wd` (IN_IGNORED is queued); EINVAL if the instance has none."""
    _instance(proc, fd).remove_watch(to_int32(wd))
    return 0

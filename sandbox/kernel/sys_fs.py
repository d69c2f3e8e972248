"""Path system calls: open, directory listings, the working directory, readlink, memfds,
truncate (man 2 of each); making, linking, unlinking and renaming entries are in
sys_namei.py; stat, access, modes, owners and times in sys_attr.py.

Every path goes through the guest's `FileSystemView` (vfs.py): resolved inside the tree by
descriptors, checked against read-only mounts (EROFS), then acted on with an `*at` call on
the (directory descriptor, name) pair it resolved to, never following a symlink. Opens are
checked against the guest's own identity (identity.py); growth is charged to the disk quota
(quota.py).
"""

from __future__ import annotations

import errno
import os
import stat
import struct
import weakref

from sandbox.errors import SyscallError, WouldBlock
from sandbox.kernel import inotify, limits, pty
from sandbox.kernel.devtty import is_terminal, open_tty
from sandbox.kernel.files import O_ACCMODE, O_PATH, O_RDONLY, DeviceFile, File, Stat, SyntheticDir
from sandbox.kernel.hostfiles import HostFile
from sandbox.kernel.identity import HOST_MODE_MASK
from sandbox.kernel.pipe import Pipe, PipeEnd
from sandbox.kernel.quota import ENTRY_COST
from sandbox.kernel.structs import pack_dirent, pack_old_dirent
from sandbox.kernel.syscalls import syscall, to_int32
from sandbox.kernel.task import Task
from sandbox.kernel.vfs import PATH_MAX, ResolveRules
from sandbox.kernel.vfs_nodes import Node
from sandbox.mm import PAGE_SIZE
from sandbox.mm.uaccess import copy_in, copy_out, read_cstring

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_REMOVEDIR = 0x200
AT_EACCESS = 0x200
AT_SYMLINK_FOLLOW = 0x400
AT_EMPTY_PATH = 0x1000
O_CREAT, O_EXCL, O_NOCTTY, O_TRUNC = 0o100, 0o200, 0o400, 0o1000
O_APPEND, O_NONBLOCK, O_DIRECTORY, O_NOFOLLOW = 0o2000, 0o4000, 0o200000, 0o400000
O_CLOEXEC, O_TMPFILE = 0o2000000, 0o20000000
UMODE_MASK = 0xFFFF  # a mode argument is a umode_t (include/linux/types.h): 16 bits
#: Flags passed to the host's open(2) as they are; the rest are the sandbox's business.
_HOST_OPEN_FLAGS = O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC | O_APPEND | O_DIRECTORY | O_NOFOLLOW | O_PATH
#: Always added: opening never blocks the sandbox (a FIFO) nor gives it a controlling tty.
HOST_OPEN_ALWAYS = os.O_NONBLOCK | os.O_NOCTTY


def read_path(proc: Task, addr: int) -> bytes:
    return read_cstring(proc.space, addr, PATH_MAX - 1)  # getname: PATH_MAX bytes with the NUL


def start_of(proc: Task, dirfd: int, path: bytes) -> tuple[str, bytes]:
    """(the guest directory `path` starts from, the path from there): `base_dir`'s, except
    in a removed cwd, where a relative path finds nothing (ENOENT) but one through `..`
    reaches the parent (Linux's walk takes `..` without a lookup in the dead directory)."""
    if to_int32(dirfd) != AT_FDCWD or not proc.group.fs.cwd_removed or path.startswith(b"/"):
        return base_dir(proc, dirfd), path
    if path == b".." or path.startswith(b"../"):
        return os.path.dirname(proc.cwd), path[3:] or b"."
    raise SyscallError(errno.ENOENT, f"the working directory {proc.cwd} was removed")


def base_dir(proc: Task, dirfd: int) -> str:
    """The guest directory a relative path starts from: the cwd or `dirfd`'s directory."""
    dirfd = to_int32(dirfd)
    if dirfd == AT_FDCWD:
        return proc.cwd
    file = proc.files.get(dirfd)
    guest = getattr(file, "guest", None)
    if guest is None or not stat.S_ISDIR(file.stat().mode):
        raise SyscallError(errno.ENOTDIR, f"fd {dirfd} is not a directory")
    return guest


def writable_entry(proc: Task, dirfd: int, addr: int, creating: bool = False) -> Node:
    """The directory entry a call creates, removes or renames (see vfs.writable_entry)."""
    base, path = start_of(proc, dirfd, read_path(proc, addr))
    return proc.kernel.fs.writable_entry(path, base, creating)


def resolve_at(proc: Task, dirfd: int, addr: int, flags: int = 0, follow: bool = True) -> Node:
    base, path = start_of(proc, dirfd, read_path(proc, addr))
    return proc.kernel.fs.resolve(path, base, follow=follow)


def host_call(fn, *args, **kwargs):
    """Call the host; its error becomes the guest's errno. A value the host API cannot even
    take (Python's OverflowError/ValueError, e.g. a NUL in a path) is EINVAL."""
    try:
        return fn(*args, **kwargs)
    except OSError as error:
        raise SyscallError(error.errno or errno.EIO, str(error)) from None
    except (OverflowError, ValueError) as error:
        raise SyscallError(errno.EINVAL, str(error)) from None


def host_lstat(proc: Task, node: Node) -> os.stat_result:
    """The host's lstat of a host entry; EROFS-free, ENOENT if missing, EPERM if made up."""
    st = proc.kernel.fs.lstat(node)
    if st is None:
        raise SyscallError(errno.EPERM, f"{node.guest} is made up by the sandbox")
    return st


def create_entry(proc: Task, node: Node, make):
    """Make a new entry with `make(name, dirfd)` and return what it returns, charged to the
    disk quota: one entry, and the blocks its directory grew by (a directory keeps them
    when entries go; they come back when it is removed). Refunded if the host refuses."""
    quota = proc.kernel.quota
    quota.charge_entry()
    before = os.fstat(node.dirfd).st_blocks
    try:
        made = host_call(make, node.name, node.dirfd)
    except SyscallError:
        quota.charge(-ENTRY_COST)
        raise
    quota.charge_blocks(os.fstat(node.dirfd).st_blocks - before)
    inotify.created(proc.kernel, node)
    return made


def host_file(proc: Task, fd: int, guest: str, flags: int, node: Node | None = None,
              st: os.stat_result | None = None) -> HostFile:
    """A `HostFile` for host descriptor `fd` (whose fstat is `st`, if known), tied to the
    page cache, the disk quota and the identity table; `node` (if any) lists the mount
    points inside a directory. ENFILE (and `fd` closed) past the sandbox's host-file budget."""
    fs, budgets = proc.kernel.fs, proc.kernel.budgets
    try:
        budgets.host_files.charge(1)
    except SyscallError:
        os.close(fd)
        raise
    extra = (lambda: fs.mount_points_under(guest)) if node is not None else None
    file = HostFile(fd, guest, flags, extra)
    file.host_files = budgets.host_files
    file.cache = proc.kernel.page_cache
    file.on_writable_mount = node is None or node.writable
    file.listings = budgets.dir_listings
    file.sorted_listing = proc.kernel.options.deterministic
    file.hold(fs.quota_of(node, proc.kernel.quota), proc.kernel.identity, st)  # a tmpfs's size= (sys_mount)
    file.write_room = lambda position, n: limits.file_room(proc.kernel, position, n)  # RLIMIT_FSIZE
    return file


# -- open ---------------------------------------------------------------------------------


@syscall("openat", "dirfd path flags mode")
def sys_openat(proc: Task, dirfd: int, path: int, flags: int, mode: int) -> int:
    return _open_at(proc, dirfd, path, to_int32(flags), mode & 0o7777)


def _open_at(proc: Task, dirfd: int, path: int, flags: int, mode: int, rules: ResolveRules | None = None) -> int:
    base, name = start_of(proc, dirfd, read_path(proc, path))
    if flags & O_TMPFILE & ~O_DIRECTORY:
        file = open_tmpfile(proc, name, base, flags, mode, rules)
    else:
        file = open_file(proc, name, base, flags, mode, rules)
    fd = proc.files.install(file, cloexec=bool(flags & O_CLOEXEC))
    inotify.opened(proc.kernel, file, flags)
    if isinstance(file, PipeEnd):
        return await_fifo_partner(proc, fd, file)
    return fd


#: struct open_how {u64 flags; u64 mode; u64 resolve;} (include/uapi/linux/openat2.h).
OPEN_HOW = struct.Struct("<QQQ")
RESOLVE_NO_XDEV, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS = 0x01, 0x02, 0x04
RESOLVE_BENEATH, RESOLVE_IN_ROOT, RESOLVE_CACHED = 0x08, 0x10, 0x20
#: Every flag open accepts (VALID_OPEN_FLAGS): O_DSYNC, FASYNC, O_DIRECT, O_LARGEFILE,
#: O_NOATIME and __O_SYNC besides the ones named here; openat2 refuses anything else.
VALID_OPEN_FLAGS = (O_ACCMODE | O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_APPEND | O_NONBLOCK | O_DIRECTORY
                    | O_NOFOLLOW | O_CLOEXEC | O_PATH | O_TMPFILE | 0o10000 | 0o20000 | 0o40000 | 0o100000
                    | 0o1000000 | 0o4000000)
O_PATH_FLAGS = O_DIRECTORY | O_NOFOLLOW | O_PATH | O_CLOEXEC  # all O_PATH combines with


@syscall("openat2", "dirfd path how size")
def sys_openat2(proc: Task, dirfd: int, path: int, how: int, size: int) -> int:
    """open with strict flag checks and RESOLVE_* rules for the walk (man 2 openat2)."""
    if size < OPEN_HOW.size:
        raise SyscallError(errno.EINVAL, f"open_how size {size}")
    if size > PAGE_SIZE:
        raise SyscallError(errno.E2BIG, f"open_how size {size}")
    raw = copy_in(proc.space, how, size)
    if any(raw[OPEN_HOW.size:]):  # a newer struct's fields this kernel does not know
        raise SyscallError(errno.E2BIG, "open_how has unknown nonzero fields")
    flags, mode, resolve = OPEN_HOW.unpack(raw[: OPEN_HOW.size])
    _check_open_how(flags, mode, resolve)
    jail = base_dir(proc, dirfd) if resolve & RESOLVE_IN_ROOT else None
    rules = ResolveRules(beneath=bool(resolve & RESOLVE_BENEATH), jail=jail,
                         no_symlinks=bool(resolve & RESOLVE_NO_SYMLINKS),
                         no_magiclinks=bool(resolve & (RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH | RESOLVE_IN_ROOT)),
                         no_xdev=bool(resolve & RESOLVE_NO_XDEV))
    return _open_at(proc, dirfd, path, flags, mode, rules)


def _check_open_how(flags: int, mode: int, resolve: int) -> None:
    """build_open_how's checks: EINVAL for unknown bits or combinations, EAGAIN for what
    RESOLVE_CACHED cannot promise."""
    if flags & ~VALID_OPEN_FLAGS or flags & O_ACCMODE == O_ACCMODE:
        raise SyscallError(errno.EINVAL, f"openat2 flags {flags:#o}")
    if flags & O_PATH and flags & ~O_PATH_FLAGS:
        raise SyscallError(errno.EINVAL, "O_PATH with other flags")
    if mode & ~0o7777 or (mode and not flags & (O_CREAT | O_TMPFILE)):
        raise SyscallError(errno.EINVAL, f"openat2 mode {mode:#o}")
    if resolve & ~(RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH
                   | RESOLVE_IN_ROOT | RESOLVE_CACHED):
        raise SyscallError(errno.EINVAL, f"openat2 resolve {resolve:#x}")
    if resolve & RESOLVE_BENEATH and resolve & RESOLVE_IN_ROOT:
        raise SyscallError(errno.EINVAL, "RESOLVE_BENEATH with RESOLVE_IN_ROOT")
    if resolve & RESOLVE_CACHED and flags & (O_TRUNC | O_CREAT | O_TMPFILE):
        raise SyscallError(errno.EAGAIN, "RESOLVE_CACHED cannot create or truncate")


@syscall("open", "path flags mode")
def sys_open(proc: Task, path: int, flags: int, mode: int) -> int:
    return sys_openat(proc, AT_FDCWD, path, flags, mode)


@syscall("creat", "path mode")
def sys_creat(proc: Task, path: int, mode: int) -> int:
    return sys_openat(proc, AT_FDCWD, path, O_CREAT | 0o1 | O_TRUNC, mode)


def open_file(proc: Task, path: bytes, base: str, flags: int, mode: int, rules: ResolveRules | None = None) -> File:
    """Resolve and open `path` like open(2); creating it (O_CREAT) in a writable directory.
    `rules`: openat2's restrictions on the walk."""
    fs = proc.kernel.fs
    creating = False
    try:
        node = fs.resolve(path, base, follow=not flags & O_NOFOLLOW, rules=rules)
    except SyscallError as error:
        if error.errno != errno.ENOENT or not flags & O_CREAT:
            raise
        node, creating = fs.writable_entry(path, base, creating=True, rules=rules), True
    else:
        if flags & O_CREAT and flags & O_EXCL:
            raise SyscallError(errno.EEXIST, node.guest)
    if node.synthetic is not None:
        return open_synthetic(proc, node, flags)
    if not node.on_host:  # a directory made up above a mount or placed node: listing only
        if flags & O_ACCMODE != O_RDONLY:
            raise SyscallError(errno.EISDIR, node.guest)
        return SyntheticDir(node.guest, lambda: fs.mount_points_under(node.guest))
    if not creating:  # a FIFO is served inside the sandbox, also on a read-only mount
        st = host_lstat(proc, node)
        if stat.S_ISFIFO(st.st_mode) and not flags & O_PATH:
            return open_fifo(proc, node, st, flags)
    if flags & (O_ACCMODE | O_TRUNC) != O_RDONLY or creating:
        fs.require_writable(node)
    mode &= ~proc.umask
    host_flags = (flags & _HOST_OPEN_FLAGS) | HOST_OPEN_ALWAYS
    if creating:
        fd = create_entry(proc, node, lambda _name, _dirfd: fs.open_node(node, host_flags, mode & HOST_MODE_MASK))
        return _checked_open(proc, fd, node, flags, mode)
    _require_plain(st, flags, node)  # before opening: opening a device can act
    require_permission(proc, st, _access_wanted(flags), node)
    blocks = st.st_blocks if flags & O_TRUNC else None
    return _checked_open(proc, fs.open_node(node, host_flags, mode & HOST_MODE_MASK), node, flags, None, blocks)


def open_tmpfile(proc: Task, path: bytes, base: str, flags: int, mode: int, rules: ResolveRules | None = None) -> File:
    """O_TMPFILE (open(2)): an unnamed regular file in the directory `path`, made there by
    the host (so that linkat through /proc/self/fd can name it later, on that file system)
    and reached only by its descriptor; its blocks count against the quota as it grows.
    EINVAL unless open for writing and without O_CREAT (build_open_flags's O_TMPFILE_MASK)."""
    if flags & (O_TMPFILE | O_CREAT) != O_TMPFILE or flags & O_ACCMODE == O_RDONLY:
        raise SyscallError(errno.EINVAL, f"O_TMPFILE with flags {flags:#o}")
    fs = proc.kernel.fs
    node = fs.resolve(path, base, rules=rules)
    if node.synthetic is not None or not node.on_host:
        raise SyscallError(errno.EOPNOTSUPP, f"{node.guest} cannot hold a temporary file")
    st = host_lstat(proc, node)
    if not stat.S_ISDIR(st.st_mode):
        raise SyscallError(errno.ENOTDIR, node.guest)
    fs.require_writable(node)
    require_permission(proc, st, os.W_OK | os.X_OK, node)
    mode = mode & 0o7777 & ~proc.umask
    host_flags = (flags & (O_ACCMODE | O_APPEND)) | os.O_TMPFILE | HOST_OPEN_ALWAYS
    fd = fs.open_node(node, host_flags, mode & HOST_MODE_MASK)
    made = os.fstat(fd)
    proc.kernel.identity.created(made, mode)
    ino = proc.kernel.identity.present(Stat.from_host(made)).ino
    file = host_file(proc, fd, f"{node.guest.rstrip('/')}/#{ino} (deleted)", flags & ~(O_CLOEXEC | O_TMPFILE),
                      node, made)
    file.tmpfile_mount = node.mount  # linkat may name it on this mount only
    return file


def _require_plain(st: os.stat_result, flags: int, node: Node) -> None:
    """EACCES for host devices, FIFOs and sockets (the view is `nodev`: they lead out of
    the sandbox, and a FIFO would block it); O_PATH handles of anything are fine."""
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode) or flags & O_PATH):
        raise SyscallError(errno.EACCES, f"{node.guest} is a host device, FIFO or socket")


# -- FIFOs --------------------------------------------------------------------------------
#
# A FIFO in the view is never opened on the host (that would block the sandbox, or reach a
# process outside it): every open of one node is served by one in-sandbox Pipe, keyed by the
# node's host identity, as Linux keeps one pipe_inode_info per FIFO inode (fs/pipe.c
# fifo_open). The pipe leaves the table when its last end closes, so the table holds no
# more than the open descriptors do.

_FIFOS: weakref.WeakKeyDictionary[object, dict[tuple[int, int], Pipe]] = weakref.WeakKeyDictionary()


def open_fifo(proc: Task, node: Node, st: os.stat_result, flags: int) -> PipeEnd:
    """An end of the FIFO at `node` (whose lstat is `st`): read, write or both, as the
    access mode says. ENXIO for a non-blocking write-only open with no reader; the caller
    installs the end, then waits for the other side (`await_fifo_partner`)."""
    if flags & O_DIRECTORY:
        raise SyscallError(errno.ENOTDIR, node.guest)
    accmode = flags & O_ACCMODE
    if accmode == O_ACCMODE:
        raise SyscallError(errno.EINVAL, f"access mode 3 on the FIFO {node.guest}")
    require_permission(proc, st, _access_wanted(flags & ~O_TRUNC), node)
    fifos = _FIFOS.setdefault(proc.kernel, {})
    key = (st.st_dev, st.st_ino)
    pipe = fifos.get(key)
    if accmode == os.O_WRONLY and flags & O_NONBLOCK and (pipe is None or not pipe.readers):
        raise SyscallError(errno.ENXIO, f"no process has the FIFO {node.guest} open for reading")
    if pipe is None:
        pipe = fifos[key] = Pipe(proc.kernel.budgets.pipe_pages)
        pipe.on_empty = lambda: fifos.pop(key, None) if fifos.get(key) is pipe else None
    end = PipeEnd(pipe, accmode == O_RDONLY, flags, both=accmode == os.O_RDWR)
    end.name = node.guest
    end.node_stat = Stat.from_host(st)
    return end


def await_fifo_partner(proc: Task, fd: int, end: PipeEnd) -> int:
    """A FIFO opened for reading only sleeps until a writer opens it, and one opened for
    writing only until a reader does (O_NONBLOCK and O_RDWR opens never wait): `fd` then.
    A signal closes `fd` again (EINTR, or the open restarts), as Linux's wait_for_partner
    does before the descriptor is installed."""
    pipe = end.pipe
    if end.flags & O_NONBLOCK or (end.reading and end.writing) or end.node_stat is None:
        return fd
    partners = (lambda: pipe.write_opens) if end.reading else (lambda: pipe.read_opens)
    if pipe.writers if end.reading else pipe.readers:
        return fd
    seen = partners()

    def give_up() -> None:
        if fd in proc.files and proc.files.get(fd) is end:
            proc.files.close(fd)

    def attempt() -> int:
        if partners() != seen:
            return fd
        raise WouldBlock(f"opening the FIFO {end.name}: waiting for a {'writer' if end.reading else 'reader'}",
                         retry=attempt, on_interrupt=give_up)
    return attempt()


def _access_wanted(flags: int) -> int:
    """What open(2) with `flags` asks of the file's permission bits (4 read, 2 write)."""
    if flags & O_PATH:
        return 0
    accmode = flags & O_ACCMODE
    return (4 if accmode in (O_RDONLY, os.O_RDWR) else 0) | (2 if accmode != O_RDONLY or flags & O_TRUNC else 0)


def require_permission(proc: Task, st: os.stat_result, want: int, node: Node) -> None:
    """EACCES unless the guest's own identity may `want` (4 read, 2 write, 1 execute) the
    file: its uid and the modes it sees decide, never the sandbox's host powers."""
    if want and not proc.kernel.identity.permits(proc.kernel.identity.present(Stat.from_host(st)), want):
        raise SyscallError(errno.EACCES, node.guest)


def _checked_open(proc: Task, fd: int, node: Node, flags: int, created_mode: int | None,
                  blocks_before: int | None = None) -> File:
    """Check again, on the descriptor, what was opened (a device swapped in since the check
    is refused all the same); record the mode of a file the guest created, and give the
    quota back what O_TRUNC freed (`blocks_before`: st_blocks before the open)."""
    st = os.fstat(fd)
    if stat.S_ISLNK(st.st_mode) and not flags & O_PATH:
        st = None  # only an O_PATH open can yield a symlink's own descriptor
    try:
        if st is None:
            raise SyscallError(errno.ELOOP, node.guest)
        _require_plain(st, flags, node)
    except SyscallError:
        os.close(fd)
        raise
    if created_mode is not None:
        proc.kernel.identity.created(st, created_mode)
    if blocks_before is not None:
        proc.kernel.quota.charge_blocks(st.st_blocks - blocks_before)
    return host_file(proc, fd, node.guest, flags & ~O_CLOEXEC, node, st)


def open_synthetic(proc: Task, node: Node, flags: int) -> File:
    """Devices, /proc files and synthetic directories."""
    synthetic = node.synthetic
    if synthetic.kind == "device":
        if pty.is_pty_device(proc, synthetic.name):  # /dev/ptmx, the guest's /dev/pts/N
            return pty.open_device(proc, flags, synthetic.name)
        if is_terminal(synthetic.name):  # /dev/tty, /dev/pts/N
            return open_tty(proc, flags, synthetic.name)
        return DeviceFile(synthetic.name, flags, proc.kernel.random_bytes)
    if synthetic.kind == "link":  # reached only with O_NOFOLLOW: open(2) says ELOOP
        raise SyscallError(errno.ELOOP, f"{node.guest} is a symbolic link")
    if flags & O_DIRECTORY and synthetic.kind != "dir":
        raise SyscallError(errno.ENOTDIR, node.guest)
    if synthetic.kind == "fd":  # /proc/<pid>/fd/N of a pipe, socket...: that open file (procfs)
        return proc.kernel.proc_tree.open_fd(synthetic.name)
    if flags & O_ACCMODE != O_RDONLY and (synthetic.kind != "file" or not synthetic.mode & 0o200):
        raise SyscallError(errno.EISDIR if synthetic.kind == "dir" else errno.EACCES, node.guest)
    if synthetic.kind == "dir":
        fs = proc.kernel.fs
        return SyntheticDir(node.guest, lambda: fs.list_synthetic(node.guest) or [])
    return proc.kernel.open_proc_file(proc, synthetic.name, flags)


# -- directories --------------------------------------------------------------------------


@syscall("getdents64", "fd dirp count")
def sys_getdents64(proc: Task, fd: int, dirp: int, count: int) -> int:
    """Fill `dirp` with as many whole linux_dirent64 records as fit, from the directory's position."""
    return _getdents(proc, fd, dirp, count, pack_dirent)


@syscall("getdents", "fd dirp count")
def sys_getdents(proc: Task, fd: int, dirp: int, count: int) -> int:
    """The old getdents(2), struct linux_dirent records (ASan's leak checker lists
    /proc/PID/task with it)."""
    return _getdents(proc, fd, dirp, count, pack_old_dirent)


def _getdents(proc: Task, fd: int, dirp: int, count: int, pack) -> int:
    file = proc.files.get(to_int32(fd))
    entries = file.entries()
    out = bytearray()
    position = file.dir_position
    while position < len(entries):
        record = pack(entries[position], position + 1)
        if len(out) + len(record) > count:
            if not out:
                raise SyscallError(errno.EINVAL, "buffer too small for one entry")
            break
        out += record
        position += 1
    copy_out(proc.space, dirp, bytes(out))
    file.dir_position = position
    inotify.file_changed(file, inotify.IN_ACCESS)
    return len(out)


@syscall("getcwd", "buf size")
def sys_getcwd(proc: Task, buf: int, size: int) -> int:
    """The cwd as the caller's root sees it; one outside a chroot is "(unreachable)"
    followed by its path (d_path's answer for a path not under the root)."""
    cwd, root = proc.cwd, proc.group.fs.root
    if proc.group.fs.cwd_removed:
        raise SyscallError(errno.ENOENT, f"the working directory {cwd} was removed")
    if root != "/":
        inside = cwd == root or cwd.startswith(root.rstrip("/") + "/")
        cwd = (cwd[len(root):] or "/") if inside else "(unreachable)" + cwd
    data = os.fsencode(cwd) + b"\0"
    if size < len(data):
        raise SyscallError(errno.ERANGE, "buffer too small")
    copy_out(proc.space, buf, data)
    return len(data)


def _enter(proc: Task, node: Node) -> int:
    if proc.kernel.fs.kind_of(node) != "dir":
        raise SyscallError(errno.ENOTDIR, node.guest)
    proc.cwd = node.guest
    proc.group.fs.cwd_removed = False
    return 0


@syscall("chdir", "path")
def sys_chdir(proc: Task, path: int) -> int:
    return _enter(proc, resolve_at(proc, AT_FDCWD, path))


@syscall("fchdir", "fd")
def sys_fchdir(proc: Task, fd: int) -> int:
    return _enter(proc, proc.kernel.fs.lookup(base_dir(proc, fd)))


# -- links ------------------------------------------------------------------------------


@syscall("readlinkat", "dirfd path buf size")
def sys_readlinkat(proc: Task, dirfd: int, path: int, buf: int, size: int) -> int:
    if to_int32(size) <= 0:
        raise SyscallError(errno.EINVAL, "size")
    node = resolve_at(proc, dirfd, path, follow=False)
    if node.synthetic is not None:
        if node.synthetic.kind != "link":
            raise SyscallError(errno.EINVAL, f"{node.guest} is not a symlink")
        target = os.fsencode(node.synthetic.name)
    elif not node.on_host or node.name == ".":
        raise SyscallError(errno.EINVAL, f"{node.guest} is not a symlink")
    else:
        target = os.fsencode(host_call(os.readlink, node.name, dir_fd=node.dirfd))
    copy_out(proc.space, buf, target[:size])
    return min(len(target), size)


@syscall("readlink", "path buf size")
def sys_readlink(proc: Task, path: int, buf: int, size: int) -> int:
    return sys_readlinkat(proc, AT_FDCWD, path, buf, size)


MFD_CLOEXEC, MFD_ALLOW_SEALING = 1, 2


@syscall("memfd_create", "name flags")
def sys_memfd_create(proc: Task, name: int, flags: int) -> int:
    """An anonymous file: a host file in the kernel's scratch space, unlinked at once, so only
    descriptors (and mappings) reach it. Shared mappings of it share page-cache frames; its
    blocks count against the disk quota."""
    flags = to_int32(flags)
    if flags & ~(MFD_CLOEXEC | MFD_ALLOW_SEALING):
        raise SyscallError(errno.EINVAL, f"memfd flags {flags:#x}")
    label = read_cstring(proc.space, name, 249).decode(errors="replace")
    if len(proc.files) >= proc.files.limit:
        raise SyscallError(errno.EMFILE, "too many open files")
    fd = host_call(proc.kernel.scratch_file)
    file = host_file(proc, fd, f"/memfd:{label} (deleted)", os.O_RDWR)
    return proc.files.install(file, cloexec=bool(flags & MFD_CLOEXEC))


@syscall("umask", "mask")
def sys_umask(proc: Task, mask: int) -> int:
    old, proc.umask = proc.umask, mask & 0o777
    return old


@syscall("truncate", "path length")
def sys_truncate(proc: Task, path: int, length: int) -> int:
    """truncate(2): the file is opened by descriptor (O_NOFOLLOW) and truncated through it."""
    node = resolve_at(proc, AT_FDCWD, path)
    proc.kernel.fs.require_writable(node)
    _require_plain(host_lstat(proc, node), os.O_WRONLY, node)
    file = _checked_open(proc, proc.kernel.fs.open_node(node, os.O_WRONLY | HOST_OPEN_ALWAYS), node, os.O_WRONLY, None)
    file.attach()
    try:
        file.truncate(length)
    finally:
        file.detach()
    inotify.node_changed(proc.kernel, node, inotify.IN_MODIFY)
    return 0

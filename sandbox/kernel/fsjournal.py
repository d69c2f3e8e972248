"""Copy-on-first-write of the guest's host files, for snapshots (sandbox/snapshot.py).

A snapshot records nothing of the file system when it is taken. From then on the kernel's
file-changing paths tell the `Journals` before they act -- the view before an entry is
created, removed, renamed, truncated or opened for writing (`FileSystemView.require_writable`),
a host file before a write, pwrite or ftruncate through its descriptor (`HostFile._charged`),
the page cache before a shared mapping's pages are stored (`CachedFile.writeback`) -- and each
live snapshot's `FileJournal` saves, the first time only:

- for a path, what the path held: nothing, a directory (its identity and mode), a symlink
  (its text), a FIFO, or a regular file (its identity, and its contents saved as below);
- for a regular file (an inode, by descriptor or by path), a copy of its contents (holes
  kept: data segments only) with its size, mode and times, in the journal's private host
  directory, charged to the snapshots' budget (EDQUOT for the guest's call past it, and the
  call does nothing).

Each saved file and recorded directory or FIFO is held by an O_PATH descriptor (counted in
the sandbox's host-file budget: ENFILE past it), so restore finds it wherever it went, and
its inode number is never reused by something made since (which would pass for it).

Restore (`FileJournal.restore`) first gives every file changed since (or since the last
restore) its saved contents, in place, so
descriptors open on it see them; then walks the recorded paths newest first and makes each
hold what it held: what is there instead is moved aside ("parked", by rename in its own
directory) and what belongs there is moved back from where it was parked, or made again
(mkdir, symlink, a file with the saved contents); what was parked and not claimed is removed
at the end. The caller refreshes the page cache's pages of the files written. Paths are
guest paths, resolved through the view at restore time (a renamed directory is moved back
before the paths below it are visited, as they were recorded after it went).

Not kept: a file unlinked since comes back as a new file with the saved contents (descriptors
open on the old one see the old inode, its contents restored too); sockets' entries;
ownership; times and modes of directories; changes made by fchmod/futimens alone.
"""

from __future__ import annotations

import errno
import os
import stat
import weakref
from typing import TYPE_CHECKING, NamedTuple

from sandbox.errors import SandboxError, SyscallError
from sandbox.hostfs import make_private_dir, remove_path, remove_tree
from sandbox.kernel.vfs_walk import VIEW_ROOT

if TYPE_CHECKING:
    from sandbox.kernel.accounting import Budget
    from sandbox.kernel.hostfiles import HostFile
    from sandbox.kernel.vfs import FileSystemView
    from sandbox.kernel.vfs_nodes import Node

#: Host memory one recorded path is charged besides its text (the record, the dict slot).
ENTRY_COST = 256
#: The name a restore moves an entry aside under, in its own directory, until it is claimed.
PARK_PREFIX = ".sandbox-restore-"
#: How a copy or a held file is opened: never followed, never inherited, never blocking.
_OPEN = os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
Identity = tuple[int, int]


class JournalError(SandboxError):
    """Some paths could not be put back (the message lists them); the rest were."""


class Saved:
    """A regular file's contents and attributes when first changed since the snapshot: the
    copy `copy` (a name in the journal's directory), and `fd`, an O_PATH descriptor of the
    file that finds it again wherever it is."""

    __slots__ = ("ident", "copy", "size", "mode", "times", "fd", "dirty", "cost")

    def __init__(self, ident: Identity, copy: str, st: os.stat_result, fd: int, cost: int) -> None:
        self.ident = ident
        self.copy = copy
        self.size = st.st_size
        self.mode = stat.S_IMODE(st.st_mode)
        self.times = (st.st_atime_ns, st.st_mtime_ns)
        self.fd = fd
        self.dirty = True  # changed since recorded or last restored: restore writes it back
        self.cost = cost


class Entry(NamedTuple):
    """What a path held at the snapshot: `kind` "absent", "dir", "file", "link" or "fifo"."""

    path: str
    kind: str
    ident: Identity | None = None
    mode: int = 0
    target: str | None = None  # a symlink's text
    saved: Saved | None = None  # a regular file's contents
    fd: int | None = None  # a directory's or FIFO's O_PATH descriptor, held


class FileJournal:
    """One snapshot's record of the files changed since it was taken (see the module
    docstring). Invariant: `entries` is in the order first recorded; every Saved in
    `saved` has its copy in `dir_fd`, charged to `budget` (with each entry's cost), and
    holds a descriptor charged to `fds`."""

    def __init__(self, budget: Budget, fds: Budget) -> None:
        self.budget = budget
        self.fds = fds
        self.dir = make_private_dir("sandbox-snapshot-")
        self.dir_fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.entries: dict[str, Entry] = {}
        self.saved: dict[Identity, Saved] = {}
        self.by_file: weakref.WeakKeyDictionary[HostFile, Saved] = weakref.WeakKeyDictionary()
        self.charged = 0
        self.copies = 0
        self.broken: str | None = None  # why a change could not be recorded (restore refuses)

    # -- recording --------------------------------------------------------------------------

    def record_entry(self, node: Node) -> None:
        """Before the entry `node` (a host directory entry) is created, removed, renamed or
        opened for writing: what it holds now, the first time. EDQUOT past the budget."""
        entry = self.entries.get(node.guest)
        st = _lstat(node.parent.fd, node.name)
        if entry is not None:
            if st is not None and stat.S_ISREG(st.st_mode) and _ident(st) in self.saved:
                self.saved[_ident(st)].dirty = True
            return
        self._charge(ENTRY_COST + len(node.guest))
        try:
            entry = self._entry_of(node, st)
            if entry.kind in ("dir", "fifo"):
                entry = entry._replace(fd=self._hold(node.parent.fd, node.name))
        except BaseException:
            self._refund(ENTRY_COST + len(node.guest))
            raise
        self.entries[node.guest] = entry

    def _hold(self, dirfd: int, name: str) -> int:
        """An O_PATH descriptor of the entry, charged to the host-file budget."""
        self.fds.charge(1)
        try:
            return os.open(name, os.O_PATH | _OPEN, dir_fd=dirfd)
        except OSError as error:
            self.fds.release(1)
            raise SyscallError(error.errno or errno.EIO, f"snapshot journal: {error.strerror}") from None

    def _entry_of(self, node: Node, st: os.stat_result | None) -> Entry:
        path = node.guest
        if st is None:
            return Entry(path, "absent")
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            return Entry(path, "dir", _ident(st), mode)
        if stat.S_ISLNK(st.st_mode):
            return Entry(path, "link", _ident(st), target=os.readlink(node.name, dir_fd=node.parent.fd))
        if stat.S_ISFIFO(st.st_mode):
            return Entry(path, "fifo", _ident(st), mode)
        if not stat.S_ISREG(st.st_mode):
            return Entry(path, "absent")  # a socket: not kept (see the module docstring)
        saved = self.saved.get(_ident(st))
        if saved is None:
            fd = os.open(node.name, os.O_PATH | _OPEN, dir_fd=node.parent.fd)
            try:
                if _ident(os.fstat(fd)) != _ident(st):  # swapped since the lstat: nothing to trust
                    raise SyscallError(errno.EAGAIN, f"{path} changed while it was being saved")
                saved = self._save(fd, st)
            finally:
                os.close(fd)
        saved.dirty = True
        return Entry(path, "file", saved.ident, saved.mode, saved=saved)

    def record_file(self, file: HostFile) -> None:
        """Before a write or truncation through `file`'s descriptor: its contents, the first
        time (a file not regular is not kept). EDQUOT past the budget."""
        saved = self.by_file.get(file)
        if saved is None:
            saved = self.record_fd(file.fd)
            if saved is None:
                return
            self.by_file[file] = saved
        saved.dirty = True

    def record_fd(self, fd: int) -> Saved | None:
        """Before the regular file open as `fd` changes: its contents, the first time. None
        if it is not a regular file."""
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        saved = self.saved.get(_ident(st)) or self._save(fd, st)
        saved.dirty = True
        return saved

    def _save(self, fd: int, st: os.stat_result) -> Saved:
        """Copy the regular file `fd` (any open mode, even O_PATH) into the journal, and
        hold it. EDQUOT past the budget, ENFILE past the host-file budget."""
        cost = st.st_blocks * 512 + ENTRY_COST
        self._charge(cost)
        try:
            self.fds.charge(1)
        except SyscallError:
            self._refund(cost)
            raise
        name = str(self.copies)
        self.copies += 1
        try:
            held = os.open(f"/proc/self/fd/{fd}", os.O_PATH | os.O_CLOEXEC)
            try:
                self._copy_in(fd, name, st.st_size)
            except OSError:
                os.close(held)
                raise
        except OSError as error:
            self._refund(cost)
            self.fds.release(1)
            raise SyscallError(error.errno or errno.EIO, f"snapshot journal: {error.strerror}") from None
        saved = self.saved[_ident(st)] = Saved(_ident(st), name, st, held, cost)
        return saved

    def _copy_in(self, fd: int, name: str, size: int) -> None:
        source = _reopen(fd, os.O_RDONLY)
        try:
            copy = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _OPEN, 0o600, dir_fd=self.dir_fd)
            try:
                copy_sparse(source, copy, size)
            finally:
                os.close(copy)
        finally:
            os.close(source)

    def _charge(self, cost: int) -> None:
        try:
            self.budget.charge(cost)
        except SyscallError as error:
            raise SyscallError(errno.EDQUOT, f"snapshot file journal: {error}") from None
        self.charged += cost

    def _refund(self, cost: int) -> None:
        self.budget.release(cost)
        self.charged -= cost

    # -- restoring ----------------------------------------------------------------------------

    def restore(self, fs: FileSystemView, others: list[FileJournal]) -> set[Identity]:
        """Put every recorded path and file back (see the module docstring); `others` (the
        other snapshots' journals) record what this changes first. Returns the identities
        of the files whose contents were written. JournalError lists what could not be."""
        parked: dict[Identity, tuple[int, str]] = {}
        problems: list[str] = []
        written: set[Identity] = set()
        for saved in list(self.saved.values()):
            if saved.dirty:
                try:
                    self._put_contents(saved, others)
                    written.add(saved.ident)
                except (OSError, SyscallError) as error:
                    problems.append(f"file {saved.ident}: {error}")
        for entry in reversed(list(self.entries.values())):
            try:
                self._put_entry(fs, entry, parked, others, written)
            except (OSError, SyscallError) as error:
                problems.append(f"{entry.path}: {error}")
        for dirfd, name in parked.values():
            try:
                remove_tree(dirfd, name)
            except OSError as error:
                problems.append(f"{name}: {error}")
            finally:
                os.close(dirfd)
        if problems:
            raise JournalError("files not restored: " + "; ".join(problems[:5]))
        return written

    def _put_entry(self, fs: FileSystemView, entry: Entry, parked: dict[Identity, tuple[int, str]],
                   others: list[FileJournal], written: set[Identity]) -> None:
        """Make `entry.path` hold what it held at the snapshot. A path whose directory is
        not there holds nothing, rightly: it was recorded below a directory made or moved
        there since, which is gone again."""
        try:
            _, node = fs.parent_of(os.fsencode(entry.path), "/", VIEW_ROOT)  # (a chroot's or not)
        except SyscallError as error:
            if error.errno in (errno.ENOENT, errno.ENOTDIR):
                return
            raise
        if node.parent is None:
            return
        dirfd, name = node.parent.fd, node.name
        st = _lstat(dirfd, name)
        if _holds(st, entry, dirfd, name):
            return
        for other in others:
            other.record_entry(node)
        if st is not None:
            _park(dirfd, name, st, parked)
        place = parked.pop(entry.ident, None) if entry.kind in ("dir", "file", "fifo") else None
        if place is not None:
            os.rename(place[1], name, src_dir_fd=place[0], dst_dir_fd=dirfd)
            os.close(place[0])
            return
        self._make(entry, dirfd, name, written)

    def _make(self, entry: Entry, dirfd: int, name: str, written: set[Identity]) -> None:
        """Make the entry anew (what was there went, or moved beyond reach)."""
        if entry.kind == "dir":
            os.mkdir(name, 0o700, dir_fd=dirfd)
            os.chmod(name, entry.mode, dir_fd=dirfd, follow_symlinks=False)
            self._renamed(entry, _ident(os.lstat(name, dir_fd=dirfd)), dirfd, name)
        elif entry.kind == "link":
            os.symlink(entry.target, name, dir_fd=dirfd)
        elif entry.kind == "fifo":
            os.mkfifo(name, entry.mode, dir_fd=dirfd)
            self._renamed(entry, _ident(os.lstat(name, dir_fd=dirfd)), dirfd, name)
        elif entry.kind == "file":
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _OPEN, 0o600, dir_fd=dirfd)
            try:
                saved = entry.saved
                self._write_back(saved, fd)
                held = os.open(f"/proc/self/fd/{fd}", os.O_PATH | os.O_CLOEXEC)
            finally:
                os.close(fd)
            os.close(saved.fd)  # the file the path held is gone: the new one is it now
            del self.saved[saved.ident]
            saved.ident, saved.fd = _ident(os.fstat(held)), held
            self.saved[saved.ident] = saved
            written.add(saved.ident)
            self._renamed(entry, saved.ident, dirfd, name)

    def _renamed(self, entry: Entry, ident: Identity, dirfd: int, name: str) -> None:
        """The path's thing was made again: the next restore finds it by its new identity
        (a directory or FIFO: held anew)."""
        fd = entry.fd
        if fd is not None:
            os.close(fd)
            fd = os.open(name, os.O_PATH | _OPEN, dir_fd=dirfd)
        self.entries[entry.path] = entry._replace(ident=ident, fd=fd)

    def _put_contents(self, saved: Saved, others: list[FileJournal]) -> None:
        """Give the file its saved contents in place (wherever it is now)."""
        for other in others:
            other.record_fd(saved.fd)
        out = _reopen(saved.fd, os.O_WRONLY)
        try:
            self._write_back(saved, out)
        finally:
            os.close(out)

    def _write_back(self, saved: Saved, out: int) -> None:
        """`out` (open for writing) gets the saved contents, holes, size, mode and times."""
        copy = os.open(saved.copy, os.O_RDONLY | _OPEN, dir_fd=self.dir_fd)
        try:
            os.ftruncate(out, 0)
            copy_sparse(copy, out, saved.size)
        finally:
            os.close(copy)
        os.chmod(out, saved.mode)
        os.utime(out, ns=saved.times)
        saved.dirty = False

    def release(self) -> None:
        """Give back the copies, the held descriptors and the budget (idempotent)."""
        if self.dir_fd < 0:
            return
        held = [s.fd for s in self.saved.values()] + [e.fd for e in self.entries.values() if e.fd is not None]
        for fd in held:
            os.close(fd)
        self.fds.release(len(held))
        self.saved.clear()
        self.entries.clear()
        self.budget.release(self.charged)
        self.charged = 0
        os.close(self.dir_fd)
        self.dir_fd = -1
        remove_path(self.dir)

    def held_files(self) -> int:
        """Host files the journal holds: its copies and the descriptors of recorded files."""
        return 2 * len(self.saved) + sum(e.fd is not None for e in self.entries.values())


class Journals:
    """The live snapshots' journals of one sandbox: what the kernel's hooks call."""

    def __init__(self) -> None:
        self.live: list[FileJournal] = []

    def changing_entry(self, node: Node) -> None:
        """The view is about to change (or open for writing) the entry `node`."""
        for journal in self.live:
            journal.record_entry(node)

    def changing_file(self, file: HostFile) -> None:
        """`file` is about to be written or truncated through its descriptor."""
        for journal in self.live:
            journal.record_file(file)

    def changing_fd(self, fd: int) -> None:
        """The page cache is about to store pages into the file `fd` (munmap, msync, exit,
        a read): it cannot refuse, so a journal past its budget is marked broken instead."""
        for journal in self.live:
            try:
                journal.record_fd(fd)
            except SyscallError as error:
                journal.broken = journal.broken or str(error)


# -- host helpers -------------------------------------------------------------------------------


def _ident(st: os.stat_result) -> Identity:
    return st.st_dev, st.st_ino


def _lstat(dirfd: int, name: str) -> os.stat_result | None:
    try:
        return os.lstat(name, dir_fd=dirfd)
    except FileNotFoundError:
        return None


def _holds(st: os.stat_result | None, entry: Entry, dirfd: int, name: str) -> bool:
    """Whether the entry `name` (lstat `st`) is what `entry` recorded."""
    if st is None:
        return entry.kind == "absent"
    if entry.kind == "link":
        return stat.S_ISLNK(st.st_mode) and os.readlink(name, dir_fd=dirfd) == entry.target
    return entry.kind != "absent" and _ident(st) == entry.ident


def _park(dirfd: int, name: str, st: os.stat_result, parked: dict[Identity, tuple[int, str]]) -> None:
    """Move the entry aside in its own directory, under a name nothing else uses."""
    for number in range(len(parked), len(parked) + 1000):
        aside = f"{PARK_PREFIX}{os.getpid()}-{number}"
        if _lstat(dirfd, aside) is None:
            break
    os.rename(name, aside, src_dir_fd=dirfd, dst_dir_fd=dirfd)
    parked[_ident(st)] = (os.dup(dirfd), aside)


def _reopen(fd: int, flags: int) -> int:
    """A new descriptor of the file behind `fd`, opened with `flags` through the process's
    own descriptor link (the very file, whatever its name now); a mode that refuses its
    owner is widened for the moment of the open."""
    link = f"/proc/self/fd/{fd}"
    try:
        return os.open(link, flags | os.O_CLOEXEC | os.O_NONBLOCK)
    except PermissionError:
        mode = stat.S_IMODE(os.stat(link).st_mode)
        os.chmod(link, mode | stat.S_IRUSR | stat.S_IWUSR)
        try:
            return os.open(link, flags | os.O_CLOEXEC | os.O_NONBLOCK)
        finally:
            os.chmod(link, mode)


def copy_sparse(source: int, target: int, size: int) -> None:
    """Copy [0, size) of `source` into `target` (at the same offsets), data segments only
    (lseek(2) SEEK_DATA / SEEK_HOLE), so holes stay holes; then `target` is `size` long."""
    offset = 0
    while offset < size:
        try:
            start = os.lseek(source, offset, os.SEEK_DATA)
        except OSError as error:
            if error.errno == errno.ENXIO:  # only a hole is left
                break
            raise
        end = min(os.lseek(source, start, os.SEEK_HOLE), size)
        while start < end:
            data = os.pread(source, min(end - start, 1 << 20), start)
            if not data:
                break
            start += os.pwrite(target, data, start)
        offset = max(end, offset + 1)
    os.ftruncate(target, size)

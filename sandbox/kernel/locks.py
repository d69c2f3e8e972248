"""Advisory file locks: POSIX record locks, open-file-description (OFD) locks and flock(2).

One `LockTable` per kernel holds every lock, by inode (`lock_key`: the host's (st_dev,
st_ino) for a host file). What Linux's fs/locks.c keeps, kept the same way:

- A record lock covers the byte range [start, end] (inclusive, as Linux's fl_start/fl_end;
  OFFSET_MAX means "to the end of the file, however far it grows") and is read (shared) or
  write (exclusive). Its owner is the process's descriptor table for a POSIX lock (Linux's
  fl_owner = current->files: released on ANY close of the file by that process and at exit,
  not inherited across fork), or the open file description for an OFD lock (released when
  its last reference goes). Both kinds conflict with each other; one owner's own locks never
  conflict with themselves, they are split, trimmed and merged (posix_lock_inode).
- A flock(2) lock is held by an open file description, shared or exclusive, and is
  independent of record locks (man 2 flock).

Invariants: an owner's record locks on one inode are disjoint, sorted by start, and no two
of the same type touch (they would have been merged). Every lock record and every flock is
charged to one sandbox-wide `Budget` (ENOLCK past it), so no guest can make the table grow
without bound.
"""

from __future__ import annotations

import errno
import weakref
from bisect import bisect_left
from typing import TYPE_CHECKING, NamedTuple

from sandbox.abi import MAX_LFS_FILESIZE
from sandbox.errors import SyscallError
from sandbox.kernel.accounting import Budget

if TYPE_CHECKING:
    from sandbox.kernel.files import File
    from sandbox.kernel.kernel import Kernel
    from sandbox.kernel.task import Task

OFFSET_MAX = MAX_LFS_FILESIZE  # include/linux/fs.h: the last byte a lock can cover
F_RDLCK, F_WRLCK, F_UNLCK = 0, 1, 2  # include/uapi/asm-generic/fcntl.h
LOCK_SH, LOCK_EX, LOCK_NB, LOCK_UN = 1, 2, 4, 8  # man 2 flock
#: Lock records (and flocks) the whole sandbox may hold: Linux bounds them only by memory.
MAX_LOCKS = 10_000
#: How far the deadlock check follows "waits for" edges (Linux's MAX_DEADLK_ITERATIONS).
MAX_DEADLOCK_STEPS = 10

Owner = object  # an FdTable (POSIX locks) or a File (OFD locks, flocks)
Key = tuple


class Lock(NamedTuple):
    """One record lock: bytes [start, end] of `type` (F_RDLCK or F_WRLCK); `pid` is what
    F_GETLK reports (the placing process, -1 for an OFD lock)."""

    start: int
    end: int
    type: int
    pid: int

    def overlaps(self, start: int, end: int) -> bool:
        return self.start <= end and start <= self.end


class Waiter:
    """A POSIX F_SETLKW request asleep in `task`, for the deadlock check."""

    __slots__ = ("task", "key", "start", "end", "type")

    def __init__(self, task: Task, key: Key, start: int, end: int, type: int) -> None:
        self.task = task
        self.key = key
        self.start = start
        self.end = end
        self.type = type


def lock_key(file: File) -> Key:
    """The inode a lock on `file` is held on: the host's (st_dev, st_ino) for a host file,
    the sandbox's own numbers for a pipe or a synthetic file."""
    st = file.stat()
    return (st.host, st.dev, st.ino)


def conflicts(held: int, wanted: int) -> bool:
    """A write lock conflicts with anything; two read locks never do."""
    return held == F_WRLCK or wanted == F_WRLCK


class InodeLocks:
    """Every lock on one inode: record locks by owner, flocks by open file description."""

    def __init__(self) -> None:
        self.records: dict[Owner, list[Lock]] = {}
        self.flocks: dict[File, int] = {}

    def empty(self) -> bool:
        return not self.records and not self.flocks

    def blocker(self, owner: Owner, start: int, end: int, type: int) -> tuple[Owner, Lock] | None:
        """The first lock of another owner that `type` over [start, end] conflicts with."""
        for other, locks in self.records.items():
            if other is owner:
                continue
            i, j = _window(locks, start, end)
            for lock in locks[i:j]:
                if lock.overlaps(start, end) and conflicts(lock.type, type):
                    return other, lock
        return None


def _window(locks: list[Lock], start: int, end: int) -> tuple[int, int]:
    """The slice [i, j) of a sorted, disjoint list whose locks may touch or overlap
    [start, end]: the one before the first starting at `start` or later, up to the first
    starting past end + 1."""
    i = max(0, bisect_left(locks, start, key=_start) - 1)
    return i, bisect_left(locks, end + 2, lo=i, key=_start)


def _start(lock: Lock) -> int:
    return lock.start


def replace_range(locks: list[Lock], start: int, end: int, type: int, pid: int) -> list[Lock]:
    """One owner's locks after it sets [start, end] to `type` (F_UNLCK removes): locks of
    another type are trimmed or split around the range, locks of the same type that overlap
    or touch it are merged into it (fs/locks.c posix_lock_inode)."""
    i, j = _window(locks, start, end)
    kept: list[Lock] = []
    for lock in locks[i:j]:
        same = lock.type == type
        touching = lock.start <= end + 1 and start <= lock.end + 1
        if same and touching:
            start, end = min(start, lock.start), max(end, lock.end)
            continue
        if not lock.overlaps(start, end):
            kept.append(lock)
            continue
        if lock.start < start:
            kept.append(lock._replace(end=start - 1))
        if lock.end > end:
            kept.append(lock._replace(start=end + 1))
    if type != F_UNLCK:
        kept.append(Lock(start, end, type, pid))
    kept.sort(key=lambda lock: lock.start)
    return locks[:i] + kept + locks[j:]


class LockTable:
    """All the advisory locks of one sandbox."""

    def __init__(self, limit: int = MAX_LOCKS) -> None:
        self.inodes: dict[Key, InodeLocks] = {}
        self.held: dict[Owner, set[Key]] = {}  # owner -> inodes it holds locks on
        self.waiting: dict[Owner, Waiter] = {}
        self.budget = Budget("file locks", limit, errno.ENOLCK)

    # -- record locks ------------------------------------------------------------------------

    def test(self, key: Key, owner: Owner, start: int, end: int, type: int) -> Lock | None:
        """F_GETLK: the lock that would block `type` over [start, end], if any."""
        inode = self.inodes.get(key)
        found = inode.blocker(owner, start, end, type) if inode is not None else None
        return found[1] if found is not None else None

    def set(self, key: Key, owner: Owner, start: int, end: int, type: int, pid: int) -> Owner | None:
        """F_SETLK: set [start, end] to `type` for `owner`; the owner whose lock conflicts
        instead (nothing changes then). ENOLCK past the budget, nothing changed either."""
        inode = self.inodes.setdefault(key, InodeLocks())
        if type != F_UNLCK:
            found = inode.blocker(owner, start, end, type)
            if found is not None:
                self._drop_if_empty(key, inode)
                return found[0]
        old = inode.records.get(owner, [])
        new = replace_range(old, start, end, type, pid)
        try:
            self.budget.charge(len(new) - len(old))
        except SyscallError:
            self._drop_if_empty(key, inode)
            raise
        self._store(key, inode, owner, new)
        return None

    def _store(self, key: Key, inode: InodeLocks, owner: Owner, locks: list[Lock]) -> None:
        if locks:
            inode.records[owner] = locks
            self.held.setdefault(owner, set()).add(key)
            _OWNERS[owner] = self
        else:
            inode.records.pop(owner, None)
            self._forget_key(owner, key, inode)
        self._drop_if_empty(key, inode)

    def _forget_key(self, owner: Owner, key: Key, inode: InodeLocks) -> None:
        """`owner` holds nothing more on `key` (of either kind)."""
        if owner in inode.records or owner in inode.flocks:
            return
        keys = self.held.get(owner)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self.held[owner]

    def _drop_if_empty(self, key: Key, inode: InodeLocks) -> None:
        if inode.empty():
            self.inodes.pop(key, None)

    def release(self, owner: Owner, key: Key) -> None:
        """Every record lock and flock `owner` holds on `key` goes."""
        inode = self.inodes.get(key)
        if inode is None:
            return
        locks = inode.records.pop(owner, [])
        self.budget.release(len(locks) + (inode.flocks.pop(owner, None) is not None))
        self._forget_key(owner, key, inode)
        self._drop_if_empty(key, inode)

    def release_all(self, owner: Owner) -> None:
        """Every lock `owner` holds, on every inode (an open file description's last close)."""
        for key in list(self.held.get(owner, ())):
            self.release(owner, key)
        self.waiting.pop(owner, None)

    # -- deadlock detection ------------------------------------------------------------------

    def deadlocks(self, owner: Owner, blocker: Owner) -> bool:
        """Would `owner` waiting for `blocker` close a cycle of POSIX lock waits?
        (fs/locks.c posix_locks_deadlock: follow what each blocker itself waits for.)"""
        for _ in range(MAX_DEADLOCK_STEPS):
            if blocker is owner:
                return True
            waiter = self.waiting.get(blocker)
            if waiter is None or not waiter.task.alive or waiter.task.blocked is None:
                return False
            inode = self.inodes.get(waiter.key)
            found = inode.blocker(blocker, waiter.start, waiter.end, waiter.type) if inode else None
            if found is None:
                return False
            blocker = found[0]
        return False

    # -- flock -------------------------------------------------------------------------------

    def flock(self, key: Key, file: File, type: int) -> bool:
        """flock(2) LOCK_SH/LOCK_EX (`type`) or LOCK_UN for `file`. A conversion drops the
        old lock first, as Linux's flock_lock_inode (it is not atomic). False if another
        description's lock conflicts (nothing held then)."""
        inode = self.inodes.setdefault(key, InodeLocks())
        current = inode.flocks.get(file)
        if current == type:
            return True
        if current is not None:
            del inode.flocks[file]
            self.budget.release(1)
            self._forget_key(file, key, inode)
        if type == LOCK_UN:
            self._drop_if_empty(key, inode)
            return True
        if any(other is not file and (held == LOCK_EX or type == LOCK_EX) for other, held in inode.flocks.items()):
            self._drop_if_empty(key, inode)
            return False
        try:
            self.budget.charge(1)
        except SyscallError:
            self._drop_if_empty(key, inode)
            raise
        inode.flocks[file] = type
        self.held.setdefault(file, set()).add(key)
        _OWNERS[file] = self
        return True

    def check_invariants(self) -> None:
        """Each owner's locks are sorted, disjoint and merged; the budget counts them all."""
        count = 0
        for inode in self.inodes.values():
            count += len(inode.flocks)
            for locks in inode.records.values():
                count += len(locks)
                for a, b in zip(locks, locks[1:], strict=False):
                    assert a.end < b.start and not (a.type == b.type and a.end + 1 == b.start), (a, b)
                assert all(0 <= lock.start <= lock.end <= OFFSET_MAX for lock in locks)
        assert count == self.budget.used, (count, self.budget.used)


#: Each kernel's table, and the table each lock-holding owner's locks are in (looked up when
#: a descriptor closes: nothing to do for one whose process never locked).
_TABLES: weakref.WeakKeyDictionary[Kernel, LockTable] = weakref.WeakKeyDictionary()
_OWNERS: weakref.WeakKeyDictionary[Owner, LockTable] = weakref.WeakKeyDictionary()


def locks_of(kernel: Kernel) -> LockTable:
    """The lock table of `kernel` (made on first use)."""
    table = _TABLES.get(kernel)
    if table is None:
        table = _TABLES[kernel] = LockTable()
    return table


def release_on_close(files: Owner, file: File) -> None:
    """A descriptor of `file` in descriptor table `files` is about to close: the process's
    POSIX locks on the file's inode go (whichever descriptor set them), and with the
    description's last reference its OFD locks and flocks (fs/locks.c locks_remove_posix,
    locks_remove_file). Called before the description's host descriptor is closed."""
    table = _OWNERS.get(files)
    if table is not None and files in table.held:
        table.release(files, lock_key(file))
    if file.refs <= 1:
        table = _OWNERS.get(file)
        if table is not None:
            table.release_all(file)

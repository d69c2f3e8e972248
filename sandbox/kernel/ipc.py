"""System V IPC: what shared memory, semaphores and message queues have in common (man 7
sysvipc; Linux ipc/util.c, ipc/namespace.c).

Owns: the sandbox's IPC namespace (`IpcNamespace`, one per kernel, made at first use), and
in it one `IpcIds` registry per kind; the permission record every object carries
(`IpcPerm`, Linux's kern_ipc_perm) and its checks (`ipcperms`, `may_change`); the
`ipcget` ladder shared by shmget, semget and msgget; and the sleep every blocking call
of the three uses (`wait_for`).

The namespace is the sandbox's own: no host IPC object is ever touched or seen, as a
container with its own IPC namespace (CLONE_NEWIPC) sees only its own.

Invariants (`IpcIds.check_invariants`): an object is registered under index `id % IPCMNI`,
its id's sequence number matches its `seq`, and a key other than IPC_PRIVATE names at most
one live object, which is the one `by_key` holds.
"""

from __future__ import annotations

import errno
import heapq
import struct
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Generic, TypeVar

from sandbox.errors import InvariantError, SyscallError, WouldBlock
from sandbox.kernel.sys_proc import clock_source

if TYPE_CHECKING:
    from sandbox.kernel.kernel import Kernel
    from sandbox.kernel.process import ThreadGroup
    from sandbox.kernel.task import Task

# include/uapi/linux/ipc.h
IPC_PRIVATE = 0
IPC_CREAT, IPC_EXCL, IPC_NOWAIT = 0o1000, 0o2000, 0o4000
IPC_RMID, IPC_SET, IPC_STAT, IPC_INFO = 0, 1, 2, 3
S_IRWXUGO, S_IRUGO, S_IWUGO = 0o777, 0o444, 0o222
#: Ids are `seq * IPCMNI + index` (ipc/util.h: ipcmni_seq_shift() is 15 by default).
IPCMNI = 32768
IPCID_SEQ_MAX = (2**31 - 1) // IPCMNI  # INT_MAX >> 15: the sequence number wraps past it
INVALID_ID = 0xFFFF_FFFF  # (uid_t)-1: not a valid uid or gid (uid_valid)
CLOCK_REALTIME = 0

#: struct ipc64_perm (include/uapi/asm-generic/ipcbuf.h): key, uid, gid, cuid, cgid, mode,
#: seq, then padding and two unused longs: 48 bytes.
IPC64_PERM = struct.Struct("<iIIIIIHH4xQQ")


class IpcPerm:
    """Who owns an IPC object and who may use it (Linux's kern_ipc_perm)."""

    __slots__ = ("key", "uid", "gid", "cuid", "cgid", "mode", "seq", "id", "deleted")

    def __init__(self, key: int, uid: int, gid: int, mode: int) -> None:
        self.key, self.uid, self.gid, self.cuid, self.cgid = key, uid, gid, uid, gid
        self.mode = mode & S_IRWXUGO
        self.seq = self.id = 0
        self.deleted = False

    def pack(self, mode_flags: int = 0) -> bytes:
        """The struct ipc64_perm IPC_STAT copies out; `mode_flags` adds state bits
        (SHM_DEST, SHM_LOCKED) as Linux keeps them in the mode."""
        return IPC64_PERM.pack(self.key, self.uid, self.gid, self.cuid, self.cgid, self.mode | mode_flags,
                               self.seq, 0, 0, 0)


class IpcObject:
    """What every shm segment, semaphore set and message queue has: its permission record
    and the time of its last change (IPC_SET, creation, SETVAL...)."""

    __slots__ = ("perm", "ctime")

    def __init__(self, perm: IpcPerm, now: int) -> None:
        self.perm = perm
        self.ctime = now

    @property
    def id(self) -> int:
        return self.perm.id


Obj = TypeVar("Obj", bound=IpcObject)


class IpcIds(Generic[Obj]):
    """The objects of one kind (Linux's struct ipc_ids): by index, and by key.

    A new object takes the lowest free index (idr_alloc) and the next sequence number, so
    an id removed and made again differs (ipc_idr_alloc). `limit` is the kind's MNI
    (SHMMNI, SEMMNI, MSGMNI): ENOSPC past it (ipc_addid).
    """

    def __init__(self, what: str, limit: int) -> None:
        self.what = what
        self.limit = limit
        self.by_index: dict[int, Obj] = {}
        self.by_key: dict[int, Obj] = {}
        self._seq = 0
        self._freed: list[int] = []  # a heap of indices below `_fresh` that are free again
        self._fresh = 0  # every index from here up is free

    def __iter__(self) -> Iterator[Obj]:
        return iter(list(self.by_index.values()))

    def __len__(self) -> int:
        return len(self.by_index)

    def check_room(self) -> None:
        """ENOSPC if no object more may be made (checked before anything is built)."""
        if len(self.by_index) >= self.limit:
            raise SyscallError(errno.ENOSPC, f"{self.limit} {self.what} exist already")

    def add(self, obj: Obj) -> int:
        """Register `obj` under a new id; return the id (ENOSPC past the limit)."""
        self.check_room()
        index = heapq.heappop(self._freed) if self._freed else self._fresh
        self._fresh = max(self._fresh, index + 1)
        obj.perm.seq = self._seq
        obj.perm.id = self._seq * IPCMNI + index
        self._seq = 0 if self._seq >= IPCID_SEQ_MAX else self._seq + 1
        self.by_index[index] = obj
        if obj.perm.key != IPC_PRIVATE:
            self.by_key[obj.perm.key] = obj
        return obj.perm.id

    def lookup(self, ident: int) -> Obj | None:
        """The object with id `ident`, or None (a negative id, a free index, a stale
        sequence number)."""
        obj = self.by_index.get(ident % IPCMNI) if ident >= 0 else None
        return obj if obj is not None and obj.perm.id == ident else None

    def get(self, ident: int) -> Obj:
        """The object with id `ident`; EINVAL if there is none (ipc_obtain_object_check)."""
        obj = self.lookup(ident)
        if obj is None:
            raise SyscallError(errno.EINVAL, f"no {self.what[:-1]} with id {ident}")
        return obj

    def at_index(self, index: int) -> Obj:
        """The object at `index` (the *_STAT commands take an index); EINVAL if none."""
        obj = self.by_index.get(index) if 0 <= index < IPCMNI else None
        if obj is None:
            raise SyscallError(errno.EINVAL, f"no {self.what[:-1]} at index {index}")
        return obj

    def find_key(self, key: int) -> Obj | None:
        return self.by_key.get(key) if key != IPC_PRIVATE else None

    def make_private(self, obj: Obj) -> None:
        """Forget `obj`'s key: a segment removed while attached lives on, unreachable by
        key (ipc_set_key_private)."""
        if self.by_key.get(obj.perm.key) is obj:
            del self.by_key[obj.perm.key]
        obj.perm.key = IPC_PRIVATE

    def remove(self, obj: Obj) -> None:
        """Unregister `obj` (ipc_rmid); it is `deleted` from now on, for its sleepers."""
        self.make_private(obj)
        index = obj.perm.id % IPCMNI
        del self.by_index[index]
        heapq.heappush(self._freed, index)
        obj.perm.deleted = True

    def max_index(self) -> int:
        """The highest index in use, 0 if none: what the *_INFO commands return."""
        return max(self.by_index, default=0)

    def check_invariants(self) -> None:
        for index, obj in self.by_index.items():
            if obj.perm.id % IPCMNI != index or obj.perm.id // IPCMNI != obj.perm.seq or obj.perm.deleted:
                raise InvariantError(f"{self.what}: index {index} holds id {obj.perm.id}")
        for key, obj in self.by_key.items():
            if key == IPC_PRIVATE or obj.perm.key != key or self.by_index.get(obj.perm.id % IPCMNI) is not obj:
                raise InvariantError(f"{self.what}: key {key:#x} names a stale object")
        if len(set(self._freed)) != len(self._freed) or set(self._freed) & set(self.by_index):
            raise InvariantError(f"{self.what}: free indices overlap used ones")


# -- permissions --------------------------------------------------------------------------


def ipcperms(task: Task, perm: IpcPerm, flag: int) -> bool:
    """May the caller have the access `flag` asks for (its low nine bits: S_IRUGO to read,
    S_IWUGO to write)? The owner's or creator's bits, the group's, or others'; root (who
    has CAP_IPC_OWNER) always may (ipc/util.c ipcperms)."""
    identity = task.kernel.identity
    requested = (flag >> 6) | (flag >> 3) | flag
    granted = perm.mode
    if identity.uid in (perm.cuid, perm.uid):
        granted >>= 6
    elif identity.gid in (perm.cgid, perm.gid):
        granted >>= 3
    return not (requested & ~granted & 0o7) or identity.uid == 0


def require_access(task: Task, perm: IpcPerm, flag: int) -> None:
    """EACCES unless `ipcperms` allows `flag`."""
    if not ipcperms(task, perm, flag):
        raise SyscallError(errno.EACCES, f"IPC object {perm.id} (mode {perm.mode:o}) denies access {flag:o}")


def may_change(task: Task, perm: IpcPerm) -> None:
    """IPC_SET and IPC_RMID: only the owner, the creator or root (CAP_SYS_ADMIN); EPERM
    for anyone else (ipcctl_obtain_check)."""
    uid = task.kernel.identity.uid
    if uid not in (perm.uid, perm.cuid) and uid != 0:
        raise SyscallError(errno.EPERM, f"uid {uid} does not own IPC object {perm.id}")


def update_perm(perm: IpcPerm, raw: bytes) -> None:
    """IPC_SET: the owner and permission bits from a struct ipc64_perm (ipc_update_perm);
    EINVAL for an invalid uid or gid, with nothing changed."""
    _, uid, gid, _, _, mode, *_ = IPC64_PERM.unpack(raw[: IPC64_PERM.size])
    if INVALID_ID in (uid, gid):
        raise SyscallError(errno.EINVAL, "IPC_SET with uid or gid -1")
    perm.uid, perm.gid = uid, gid
    perm.mode = (perm.mode & ~S_IRWXUGO) | (mode & S_IRWXUGO)


def new_perm(task: Task, key: int, flag: int) -> IpcPerm:
    """The permission record of an object `task` creates: its ids, `flag`'s mode bits."""
    identity = task.kernel.identity
    return IpcPerm(key, identity.uid, identity.gid, flag)


def ipcget(task: Task, ids: IpcIds, key: int, flag: int, create: Callable[[], int],
           more_checks: Callable[[Obj], None]) -> int:
    """shmget, semget and msgget's common ladder (ipc/util.c ipcget): IPC_PRIVATE always
    creates (`create()` registers the object and returns its id); a key nobody has is
    ENOENT without IPC_CREAT; a key in use is EEXIST with IPC_CREAT|IPC_EXCL, else the
    kind's own checks (`more_checks`: size, nsems), then EACCES unless `flag`'s mode bits
    are granted, else the existing object's id."""
    if key == IPC_PRIVATE:
        return create()
    obj = ids.find_key(key)
    if obj is None:
        if not flag & IPC_CREAT:
            raise SyscallError(errno.ENOENT, f"no {ids.what[:-1]} has key {key:#x}")
        return create()
    if flag & IPC_CREAT and flag & IPC_EXCL:
        raise SyscallError(errno.EEXIST, f"key {key:#x} is taken")
    more_checks(obj)
    require_access(task, obj.perm, flag)
    return obj.id


def now_seconds(proc: Task | ThreadGroup) -> int:
    """CLOCK_REALTIME in seconds, for the *_time fields (the sandbox's clock)."""
    return clock_source(proc, CLOCK_REALTIME)() // 1_000_000_000


def user_struct(raw: bytes, size: int) -> bytes:
    """`raw` padded to `size` bytes (a struct a command copies out)."""
    return raw.ljust(size, b"\0")


# -- sleeping ------------------------------------------------------------------------------


class NotYet(Exception):
    """An IPC operation cannot happen now: the caller sleeps and tries again."""


def wait_for(task: Task, why: str, attempt: Callable[[], int], deadline: float | None = None,
             stop: Callable[[], int | None] = lambda: None) -> int:
    """Sleep until `attempt()` stops raising NotYet, and return what it returns (or raise
    what it raises). It is tried on every scheduler pass: another process's semop,
    msgsnd or msgrcv, an IPC_SET or an IPC_RMID may each let it finish.

    `deadline` (on the sandbox's clock, Kernel.monotonic) ends the wait with EAGAIN (as
    semtimedop times out); a signal ends it with EINTR and is never restarted, whatever
    SA_RESTART says (man 7 signal: the System V IPC calls). `stop` runs whenever the wait
    ends without success (timeout, signal), to undo what the caller registered; if it
    returns an int, a signal ends the call with that result instead of EINTR (the
    operation was done for the sleeper before the signal came)."""
    kernel = task.kernel
    deterministic = kernel.options.deterministic
    host_deadline = None
    if deadline is not None and not deterministic:
        host_deadline = time.monotonic() + (deadline - kernel.monotonic())

    def retry() -> int:
        try:
            return attempt()
        except NotYet:
            pass
        if deadline is not None and kernel.monotonic() >= deadline:
            stop()
            raise SyscallError(errno.EAGAIN, f"{why}: timed out")
        raise WouldBlock(why, retry=retry, deadline=host_deadline, every_pass=True, on_interrupt=stop,
                         restart=False, clock_deadline=deadline if deterministic else None)

    return retry()


# -- the namespace ------------------------------------------------------------------------


def namespace(kernel: Kernel) -> IpcNamespace:
    """The sandbox's IPC namespace, made at first use: a run that never uses System V IPC
    pays nothing for it."""
    ns = kernel.__dict__.get("ipc")
    if ns is None:
        ns = kernel.ipc = IpcNamespace(kernel)
    return ns


class IpcNamespace:
    """Every System V IPC object of one sandbox (Linux's struct ipc_namespace). The kinds'
    own state is kept by their modules (ipc_shm, ipc_sem, ipc_msg), each in its `state`."""

    def __init__(self, kernel: Kernel) -> None:
        from sandbox.kernel import ipc_msg, ipc_sem, ipc_shm  # they import this module

        self.kernel = kernel
        self.shm = ipc_shm.ShmState(kernel)
        self.sem = ipc_sem.SemState()
        self.msg = ipc_msg.MsgState()

    def check_invariants(self) -> None:
        for state in (self.shm, self.sem, self.msg):
            state.check_invariants()

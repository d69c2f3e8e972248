"""System V semaphore sets (man 2 semget, semop, semctl; Linux ipc/sem.c).

A set holds `nsems` counters (0..SEMVMX) and the pid of each one's last operator. semop
applies an array of operations all or none: they are applied in order to the set's values,
and if one would block (a decrement below zero, a wait for zero that is not zero) or fails
(ERANGE), those before it are undone (perform_atomic_semop_slow). A blocked caller sleeps
and retries the whole array whenever it runs again (ipc.wait_for); it is counted in
GETNCNT or GETZCNT on the semaphore of the operation that blocked it, as Linux does.

SEM_UNDO: each process keeps, per set it used so, an adjustment per semaphore (semadj),
applied at its exit (exit_sem: clamped to 0..SEMVMX). They are not inherited by fork and
survive execve (man 2 semop). SETVAL and SETALL clear the adjustments of what they set.

Limits: Linux's SEMMSL, SEMOPM, SEMMNI, SEMVMX; SEMMNS (semaphores in all sets) is smaller
than Linux's default, as each semaphore is host memory; undo slots (semaphores x processes)
(one list per process and set it used with SEM_UNDO) are a host-memory Budget (ENOMEM
past it, as find_alloc_undo's allocation failing).
"""

from __future__ import annotations

import errno
import struct
from array import array
from typing import TYPE_CHECKING

from sandbox.errors import InvariantError, SyscallError
from sandbox.kernel.accounting import Budget
from sandbox.kernel.ipc import IPC_NOWAIT, IpcIds, IpcObject, IpcPerm, namespace, now_seconds
from sandbox.kernel.process import State

if TYPE_CHECKING:
    from sandbox.kernel.kernel import Kernel
    from sandbox.kernel.process import ThreadGroup
    from sandbox.kernel.task import Task

# include/uapi/linux/sem.h
SEM_UNDO = 0x1000
GETPID, GETVAL, GETALL, GETNCNT, GETZCNT, SETVAL, SETALL = 11, 12, 13, 14, 15, 16, 17
SEM_STAT, SEM_INFO, SEM_STAT_ANY = 18, 19, 20
SEMMSL, SEMOPM, SEMMNI, SEMVMX = 32000, 500, 32000, 32767
SEMAEM = SEMVMX  # the largest adjustment SEM_UNDO keeps
SEMMNS = 1 << 22  # semaphores in all sets (Linux: SEMMNI * SEMMSL; each costs host memory)
SEMUSZ = 20  # what IPC_INFO reports as sizeof(struct sem_undo)
#: Host bytes of SEM_UNDO lists, all processes together: 2 per semaphore, and what a list
#: costs besides (Python's array and dict entry).
UNDO_BYTES = 16 << 20
UNDO_LIST_COST = 128

#: struct sembuf: sem_num (unsigned short), sem_op (short), sem_flg (short).
SEMBUF = struct.Struct("<Hhh")
#: struct semid64_ds after its ipc64_perm: otime, unused, ctime, unused, nsems, two unused.
SEMID_DS_TAIL = struct.Struct("<qQqQQQQ")
SEMID_DS_SIZE = 104
#: struct seminfo: semmap, semmni, semmns, semmnu, semmsl, semopm, semume, semusz, semvmx, semaem.
SEMINFO = struct.Struct("<10i")


class SemWaiter:
    """A task asleep in semop: its operations, its undo list, the operation that blocks
    it (sem_num, sem_op), and once another process's change let them apply (Linux's
    update_queue does them for the sleeper), the outcome: 0 or an errno."""

    __slots__ = ("task", "sops", "undo", "blocking", "outcome")

    def __init__(self, task: Task, sops: list, undo: array | None, blocking: tuple[int, int]) -> None:
        self.task, self.sops, self.undo, self.blocking = task, sops, undo, blocking
        self.outcome: int | None = None


class SemSet(IpcObject):
    """One set: values and last pids, the time of the last semop, and its sleepers."""

    __slots__ = ("values", "pids", "otime", "waiters")

    def __init__(self, perm: IpcPerm, now: int, nsems: int) -> None:
        super().__init__(perm, now)
        self.values = array("H", bytes(2 * nsems))
        self.pids = array("i", bytes(4 * nsems))
        self.otime = 0
        self.waiters: list[SemWaiter] = []

    @property
    def nsems(self) -> int:
        return len(self.values)

    def sleepers(self) -> list[SemWaiter]:
        """The waiters still asleep, in arrival order (a task killed in its sleep is
        dropped here: nothing else would tell the set)."""
        self.waiters = [w for w in self.waiters if w.task.alive and w.task.state is State.BLOCKED]
        return self.waiters

    def count_waiters(self, semnum: int, for_zero: bool) -> int:
        """GETZCNT (`for_zero`) or GETNCNT: sleepers blocked on semaphore `semnum` by a
        wait for zero, or by a decrement (check_qop)."""
        return sum(1 for w in self.sleepers() if w.blocking[0] == semnum and (w.blocking[1] == 0) == for_zero)


class SemState:
    """The namespace's sets, their semaphores in all, and every process's semadj values:
    {pid: {semid: array of adjustments}}."""

    def __init__(self) -> None:
        self.ids: IpcIds[SemSet] = IpcIds("semaphore sets", SEMMNI)
        self.used_sems = 0
        self.undo: dict[int, dict[int, array]] = {}
        self.undo_bytes = Budget("semaphore undo lists", UNDO_BYTES, errno.ENOMEM)

    def check_invariants(self) -> None:
        self.ids.check_invariants()
        held = sum(undo_cost(adj) for lists in self.undo.values() for adj in lists.values())
        if sum(s.nsems for s in self.ids) != self.used_sems or held != self.undo_bytes.used:
            raise InvariantError("sem: semaphore or undo totals disagree with the sets")

    def undo_for(self, pid: int, sset: SemSet) -> array:
        """The caller's adjustments for `sset`, made (zero) at first use (find_alloc_undo)."""
        lists = self.undo.setdefault(pid, {})
        adj = lists.get(sset.id)
        if adj is None:
            adj = array("h", bytes(2 * sset.nsems))
            self.undo_bytes.charge(undo_cost(adj))
            lists[sset.id] = adj
        return adj

    def clear_undo(self, sset: SemSet, semnum: int | None) -> None:
        """SETVAL (one semaphore) or SETALL (`semnum` None): every process's adjustment of
        what was set is zero now."""
        for lists in self.undo.values():
            adj = lists.get(sset.id)
            if adj is not None:
                for i in range(sset.nsems) if semnum is None else (semnum,):
                    adj[i] = 0

    def forget_set(self, sset: SemSet) -> None:
        """IPC_RMID: the set's semaphores and every undo list of it go (freeary)."""
        self.ids.remove(sset)
        self.used_sems -= sset.nsems
        for lists in self.undo.values():
            adj = lists.pop(sset.id, None)
            if adj is not None:
                self.undo_bytes.release(undo_cost(adj))


def undo_cost(adj: array) -> int:
    """What one undo list is charged: its values and its overhead (UNDO_BYTES)."""
    return UNDO_LIST_COST + adj.itemsize * len(adj)


def state(kernel: Kernel) -> SemState:
    return namespace(kernel).sem


def new_set(sem: SemState, perm: IpcPerm, now: int, nsems: int) -> int:
    """newary: EINVAL for an empty set, ENOSPC past SEMMNS semaphores or SEMMNI sets."""
    if nsems == 0:
        raise SyscallError(errno.EINVAL, "a new semaphore set needs nsems > 0")
    if sem.used_sems + nsems > SEMMNS:
        raise SyscallError(errno.ENOSPC, f"{nsems} semaphores more pass SEMMNS ({SEMMNS})")
    ident = sem.ids.add(SemSet(perm, now, nsems))
    sem.used_sems += nsems
    return ident


# -- semop ---------------------------------------------------------------------------------


def apply_ops(sset: SemSet, sops: list[tuple[int, int, int]], undo: array | None, pid: int) -> tuple | None:
    """Apply `sops` (sem_num, sem_op, sem_flg) to `sset` all or none. None when done (the
    last-operator pids set); else the operation that must wait, with nothing changed.
    ERANGE, nothing changed, for a value past SEMVMX or an adjustment past SEMAEM."""
    values = sset.values
    done: list[tuple[int, int, int]] = []  # (semnum, old value, old adjustment)
    try:
        for num, op, flg in sops:
            value = values[num]
            if (op == 0 and value) or value + op < 0:
                return num, op, flg
            if value + op > SEMVMX:
                raise SyscallError(errno.ERANGE, f"semaphore {num} would pass {SEMVMX}")
            adjusted = None
            if flg & SEM_UNDO:
                adjusted = undo[num] - op
                if not -SEMAEM - 1 <= adjusted <= SEMAEM:
                    raise SyscallError(errno.ERANGE, f"semaphore {num}'s adjustment would pass {SEMAEM}")
            done.append((num, value, undo[num] if adjusted is not None else None))
            values[num] = value + op
            if adjusted is not None:
                undo[num] = adjusted
        for num, _, _ in done:
            sset.pids[num] = pid
        done = []
        return None
    finally:
        for num, value, adj in reversed(done):  # a wait or a failure: undo what was done
            values[num] = value
            if adj is not None:
                undo[num] = adj


def try_ops(sset: SemSet, sops: list, undo: array | None, pid: int, now: int) -> tuple[int, int] | None:
    """`sops` applied (None, sem_otime updated) or the (sem_num, sem_op) that must wait;
    EAGAIN if that operation carries IPC_NOWAIT, ERANGE (see apply_ops)."""
    blocking = apply_ops(sset, sops, undo, pid)
    if blocking is None:
        sset.otime = now
        return None
    if blocking[2] & IPC_NOWAIT:
        raise SyscallError(errno.EAGAIN, f"semaphore {blocking[0]} would block (IPC_NOWAIT)")
    return blocking[:2]


def update_queue(sset: SemSet, now: int) -> None:
    """The set changed: do the sleepers' operations that can be done now, in arrival
    order, starting over after each that changed a value (Linux's update_queue). A
    sleeper whose operations fail (ERANGE, EAGAIN) wakes with that error."""
    again = True
    while again:
        again = False
        for waiter in list(sset.sleepers()):
            try:
                blocking = try_ops(sset, waiter.sops, waiter.undo, waiter.task.pid, now)
            except SyscallError as error:
                _wake(sset, waiter, error.errno)
                continue
            if blocking is not None:
                waiter.blocking = blocking
                continue
            _wake(sset, waiter, 0)
            if any(op for _, op, _ in waiter.sops):
                again = True
                break


def _wake(sset: SemSet, waiter: SemWaiter, outcome: int) -> None:
    waiter.outcome = outcome
    sset.waiters.remove(waiter)


# -- exit ----------------------------------------------------------------------------------


def exit_undo(kernel: Kernel, group: ThreadGroup) -> None:
    """exit_sem: apply the process's adjustments to every set it has left, each value
    clamped to 0..SEMVMX, that semaphore's last pid the process's."""
    sem = kernel.__dict__.get("ipc")
    if sem is None:
        return
    sem = sem.sem
    pid = group.pid
    lists = sem.undo.pop(pid, {})
    for semid, adj in lists.items():
        sem.undo_bytes.release(undo_cost(adj))
        sset = sem.ids.lookup(semid)
        if sset is None:
            continue
        for num, delta in enumerate(adj):
            if delta:
                sset.values[num] = min(max(sset.values[num] + delta, 0), SEMVMX)
                sset.pids[num] = pid
        if any(adj):
            update_queue(sset, now_seconds(group))

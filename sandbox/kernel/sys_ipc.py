"""System V IPC system calls: shmget, shmat, shmdt, shmctl, semget, semop, semtimedop,
semctl, msgget, msgsnd, msgrcv, msgctl (man 2 of each, man 7 sysvipc).

Thin handlers: decode the registers as Linux's prototypes type them, check the arguments in
the order Linux does (so the same mistake gets the same errno), then call the objects
(ipc_shm, ipc_sem, ipc_msg). Two hooks serve the kernel: `process_exit` applies a dying
process's SEM_UNDO adjustments, `pinned_files` keeps live segments' pages in the page cache.
"""

from __future__ import annotations

import errno
import struct
from array import array
from collections.abc import Callable
from typing import TYPE_CHECKING

from sandbox.errors import SyscallError
from sandbox.kernel import ipc_msg, ipc_sem, ipc_shm
from sandbox.kernel.checked import NSEC_PER_SEC, time_ns
from sandbox.kernel.ipc import (
    IPC_INFO,
    IPC_NOWAIT,
    IPC_RMID,
    IPC_SET,
    IPC_STAT,
    S_IRUGO,
    S_IWUGO,
    IpcIds,
    IpcObject,
    NotYet,
    ipcget,
    may_change,
    new_perm,
    now_seconds,
    require_access,
    update_perm,
    wait_for,
)
from sandbox.kernel.structs import TIMESPEC
from sandbox.kernel.syscalls import syscall, to_int32, to_signed
from sandbox.kernel.task import Task
from sandbox.mm.uaccess import copy_in, copy_out

if TYPE_CHECKING:
    from sandbox.kernel.kernel import Kernel
    from sandbox.kernel.process import ThreadGroup
    from sandbox.mm.aspace import AddressSpace

LONG = struct.Struct("<q")
SEM_IO = "H"  # GETALL and SETALL's array: unsigned short per semaphore


# -- kernel hooks ---------------------------------------------------------------------------


def process_exit(kernel: Kernel, group: ThreadGroup) -> None:
    """A process ends: its SEM_UNDO adjustments are applied (exit_sem), its attaches count
    as detaches (exit_shm)."""
    ipc_sem.exit_undo(kernel, group)
    ipc_shm.note_detaches(kernel, group, group.space)


def space_replaced(kernel: Kernel, group: ThreadGroup, old: AddressSpace | None) -> None:
    """execve replaced `group`'s memory: the attaches in `old` count as detaches."""
    ipc_shm.note_detaches(kernel, group, old)


def pinned_files(kernel: Kernel, mapped: set[int]) -> set[int]:
    """Page-cache files the trim must keep although no region maps them (see ipc_shm)."""
    return ipc_shm.pinned_files(kernel, mapped)


def check_invariants(kernel: Kernel) -> None:
    """The IPC namespace's invariants (ipc.IpcNamespace.check_invariants), if it exists."""
    ns = kernel.__dict__.get("ipc")
    if ns is not None:
        ns.check_invariants()


# -- common control commands -----------------------------------------------------------------


def _stat(proc: Task, ids: IpcIds, ident: int, cmd: int, by_index: tuple[int, int], buf: int,
          pack: Callable[[IpcObject], bytes]) -> int:
    """IPC_STAT (by id: returns 0) or the kind's *_STAT and *_STAT_ANY (by index: return
    the id); all but *_STAT_ANY need read permission (EACCES)."""
    obj = ids.at_index(ident) if cmd in by_index else ids.get(ident)
    if cmd != by_index[1]:
        require_access(proc, obj.perm, S_IRUGO)
    copy_out(proc.space, buf, pack(obj))
    return obj.id if cmd in by_index else 0


def _changeable(proc: Task, ids: IpcIds, ident: int) -> IpcObject:
    """The object IPC_SET or IPC_RMID acts on: EINVAL if none, EPERM if not the caller's."""
    obj = ids.get(ident)
    may_change(proc, obj.perm)
    return obj


def _info(proc: Task, ids: IpcIds, buf: int, data: bytes) -> int:
    copy_out(proc.space, buf, data)
    return ids.max_index()


# -- shared memory ---------------------------------------------------------------------------


@syscall("shmget", "key size shmflg")
def sys_shmget(proc: Task, key: int, size: int, flag: int) -> int:
    return ipc_shm.shm_get(proc, to_int32(key), size, to_int32(flag))


@syscall("shmat", "shmid shmaddr shmflg")
def sys_shmat(proc: Task, shmid: int, addr: int, flag: int) -> int:
    return ipc_shm.shm_attach(proc, to_int32(shmid), addr, to_int32(flag))


@syscall("shmdt", "shmaddr")
def sys_shmdt(proc: Task, addr: int) -> int:
    return ipc_shm.shm_detach(proc, addr)


@syscall("shmctl", "shmid cmd buf")
def sys_shmctl(proc: Task, shmid: int, cmd: int, buf: int) -> int:
    shmid, cmd = to_int32(shmid), to_int32(cmd)
    if cmd < 0 or shmid < 0:
        raise SyscallError(errno.EINVAL, f"shmctl({shmid}, {cmd})")
    kernel = proc.kernel
    ids = ipc_shm.state(kernel).ids
    if cmd in (IPC_INFO, ipc_shm.SHM_INFO):
        return _info(proc, ids, buf, ipc_shm.info_bytes(kernel, cmd))
    if cmd in (IPC_STAT, ipc_shm.SHM_STAT, ipc_shm.SHM_STAT_ANY):
        pack = lambda seg: ipc_shm.stat_bytes(kernel, seg)  # noqa: E731
        return _stat(proc, ids, shmid, cmd, (ipc_shm.SHM_STAT, ipc_shm.SHM_STAT_ANY), buf, pack)
    if cmd == IPC_SET:
        raw = copy_in(proc.space, buf, ipc_shm.SHMID_DS_SIZE)
        seg = _changeable(proc, ids, shmid)
        update_perm(seg.perm, raw)
        seg.ctime = now_seconds(proc)
        return 0
    if cmd == IPC_RMID:
        ipc_shm.remove(proc, _changeable(proc, ids, shmid))
        return 0
    if cmd in (ipc_shm.SHM_LOCK, ipc_shm.SHM_UNLOCK):
        ipc_shm.set_locked(proc, ids.get(shmid), cmd == ipc_shm.SHM_LOCK)
        return 0
    raise SyscallError(errno.EINVAL, f"unknown shmctl command {cmd}")


# -- semaphores ------------------------------------------------------------------------------


@syscall("semget", "key nsems semflg")
def sys_semget(proc: Task, key: int, nsems: int, flag: int) -> int:
    key, nsems, flag = to_int32(key), to_int32(nsems), to_int32(flag)
    if not 0 <= nsems <= ipc_sem.SEMMSL:
        raise SyscallError(errno.EINVAL, f"nsems {nsems} is outside [0, {ipc_sem.SEMMSL}]")
    sem = ipc_sem.state(proc.kernel)

    def too_few(sset: ipc_sem.SemSet) -> None:
        if nsems > sset.nsems:  # sem_more_checks
            raise SyscallError(errno.EINVAL, f"set {sset.id} has {sset.nsems} semaphores, not {nsems}")

    create = lambda: ipc_sem.new_set(sem, new_perm(proc, key, flag), now_seconds(proc), nsems)  # noqa: E731
    return ipcget(proc, sem.ids, key, flag, create, too_few)


@syscall("semop", "semid sops nsops")
def sys_semop(proc: Task, semid: int, sops: int, nsops: int) -> int:
    return _semtimedop(proc, to_int32(semid), sops, nsops & 0xFFFF_FFFF, 0)


@syscall("semtimedop", "semid sops nsops timeout")
def sys_semtimedop(proc: Task, semid: int, sops: int, nsops: int, timeout: int) -> int:
    return _semtimedop(proc, to_int32(semid), sops, nsops & 0xFFFF_FFFF, timeout)


def _semtimedop(proc: Task, semid: int, sops_addr: int, nsops: int, timeout: int) -> int:
    """As Linux's do_semtimedop: the timeout is read first (EFAULT), then E2BIG past SEMOPM,
    EINVAL for none, the operations (EFAULT), EINVAL for a bad id or timeout, EFBIG for a
    semaphore past the set, EACCES; then the operations are applied or the caller sleeps."""
    raw_timeout = copy_in(proc.space, timeout, TIMESPEC.size) if timeout else None
    if nsops > ipc_sem.SEMOPM:
        raise SyscallError(errno.E2BIG, f"{nsops} operations is more than SEMOPM ({ipc_sem.SEMOPM})")
    if nsops < 1:
        raise SyscallError(errno.EINVAL, "no semaphore operations")
    raw = copy_in(proc.space, sops_addr, nsops * ipc_sem.SEMBUF.size)
    if semid < 0:
        raise SyscallError(errno.EINVAL, f"semaphore set id {semid}")
    deadline = None
    if raw_timeout is not None:
        ns = time_ns(*TIMESPEC.unpack(raw_timeout), NSEC_PER_SEC, "semtimedop timeout")
        deadline = proc.kernel.monotonic() + ns / NSEC_PER_SEC
    sops = list(ipc_sem.SEMBUF.iter_unpack(raw))
    sem = ipc_sem.state(proc.kernel)
    sset = sem.ids.get(semid)
    if max(num for num, _, _ in sops) >= sset.nsems:
        raise SyscallError(errno.EFBIG, f"a semaphore number past the set's {sset.nsems}")
    require_access(proc, sset.perm, S_IWUGO if any(op for _, op, _ in sops) else S_IRUGO)
    undo = sem.undo_for(proc.pid, sset) if any(flg & ipc_sem.SEM_UNDO for _, _, flg in sops) else None
    return _semop_or_sleep(proc, sset, sops, undo, deadline)


def _semop_or_sleep(proc: Task, sset: ipc_sem.SemSet, sops: list, undo, deadline: float | None) -> int:
    """Apply `sops` now (then do what sleepers can do after them), or sleep among the
    set's waiters until a change by someone else lets update_queue apply them."""
    now = now_seconds(proc)
    blocking = ipc_sem.try_ops(sset, sops, undo, proc.pid, now)
    if blocking is None:
        if any(op for _, op, _ in sops):
            ipc_sem.update_queue(sset, now)
        return 0
    waiter = ipc_sem.SemWaiter(proc, sops, undo, blocking)
    sset.waiters.append(waiter)

    def woken() -> int:
        if waiter.outcome:
            raise SyscallError(waiter.outcome, f"semop on set {sset.id}")
        if waiter.outcome == 0:
            return 0
        if sset.perm.deleted:
            raise SyscallError(errno.EIDRM, f"semaphore set {sset.id} was removed")
        raise NotYet

    def stop() -> int | None:
        """A signal or the timeout: the sleep ends, unless the operations were done."""
        if waiter in sset.waiters:
            sset.waiters.remove(waiter)
        return None if waiter.outcome is None else -waiter.outcome

    return wait_for(proc, f"semop on set {sset.id}", woken, deadline, stop)


@syscall("semctl", "semid semnum cmd arg")
def sys_semctl(proc: Task, semid: int, semnum: int, cmd: int, arg: int) -> int:
    semid, semnum, cmd = to_int32(semid), to_int32(semnum), to_int32(cmd)
    if semid < 0:
        raise SyscallError(errno.EINVAL, f"semaphore set id {semid}")
    sem = ipc_sem.state(proc.kernel)
    if cmd in (IPC_INFO, ipc_sem.SEM_INFO):
        return _info(proc, sem.ids, arg, _seminfo(sem, cmd))
    if cmd in (IPC_STAT, ipc_sem.SEM_STAT, ipc_sem.SEM_STAT_ANY):
        pack = lambda s: s.perm.pack() + ipc_sem.SEMID_DS_TAIL.pack(s.otime, 0, s.ctime, 0, s.nsems, 0, 0)  # noqa: E731
        return _stat(proc, sem.ids, semid, cmd, (ipc_sem.SEM_STAT, ipc_sem.SEM_STAT_ANY), arg, pack)
    if cmd in (ipc_sem.GETALL, ipc_sem.SETALL):
        return _semctl_all(proc, sem, semid, cmd, arg)
    if cmd in (ipc_sem.GETVAL, ipc_sem.GETPID, ipc_sem.GETNCNT, ipc_sem.GETZCNT):
        return _semctl_get(proc, sem, semid, semnum, cmd)
    if cmd == ipc_sem.SETVAL:
        return _semctl_setval(proc, sem, semid, semnum, to_int32(arg))
    if cmd == IPC_SET:
        raw = copy_in(proc.space, arg, ipc_sem.SEMID_DS_SIZE)
        sset = _changeable(proc, sem.ids, semid)
        update_perm(sset.perm, raw)
        sset.ctime = now_seconds(proc)
        return 0
    if cmd == IPC_RMID:
        sem.forget_set(_changeable(proc, sem.ids, semid))  # its sleepers wake with EIDRM
        return 0
    raise SyscallError(errno.EINVAL, f"unknown semctl command {cmd}")


def _seminfo(sem: ipc_sem.SemState, cmd: int) -> bytes:
    """IPC_INFO's limits; SEM_INFO puts the sets and semaphores in use in semusz, semaem."""
    usz, aem = (len(sem.ids), sem.used_sems) if cmd == ipc_sem.SEM_INFO else (ipc_sem.SEMUSZ, ipc_sem.SEMAEM)
    return ipc_sem.SEMINFO.pack(ipc_sem.SEMMNS, ipc_sem.SEMMNI, ipc_sem.SEMMNS, ipc_sem.SEMMNS, ipc_sem.SEMMSL,
                                ipc_sem.SEMOPM, ipc_sem.SEMOPM, usz, ipc_sem.SEMVMX, aem)


def _semctl_all(proc: Task, sem: ipc_sem.SemState, semid: int, cmd: int, arg: int) -> int:
    """GETALL copies every value out; SETALL sets every value (ERANGE past SEMVMX, nothing
    changed), clears their adjustments and names the caller their last pid."""
    sset = sem.ids.get(semid)
    require_access(proc, sset.perm, S_IWUGO if cmd == ipc_sem.SETALL else S_IRUGO)
    if cmd == ipc_sem.GETALL:
        copy_out(proc.space, arg, sset.values.tobytes())
        return 0
    values = array(SEM_IO, copy_in(proc.space, arg, 2 * sset.nsems))
    if any(v > ipc_sem.SEMVMX for v in values):
        raise SyscallError(errno.ERANGE, f"a SETALL value is past {ipc_sem.SEMVMX}")
    sset.values[:] = values
    for num in range(sset.nsems):
        sset.pids[num] = proc.pid
    sem.clear_undo(sset, None)
    sset.ctime = now_seconds(proc)
    ipc_sem.update_queue(sset, sset.ctime)
    return 0


def _semctl_get(proc: Task, sem: ipc_sem.SemState, semid: int, semnum: int, cmd: int) -> int:
    """GETVAL, GETPID, GETNCNT, GETZCNT of one semaphore (EINVAL past the set)."""
    sset = sem.ids.get(semid)
    require_access(proc, sset.perm, S_IRUGO)
    if not 0 <= semnum < sset.nsems:
        raise SyscallError(errno.EINVAL, f"semaphore {semnum} of a set of {sset.nsems}")
    if cmd == ipc_sem.GETVAL:
        return sset.values[semnum]
    if cmd == ipc_sem.GETPID:
        return sset.pids[semnum]
    return sset.count_waiters(semnum, cmd == ipc_sem.GETZCNT)


def _semctl_setval(proc: Task, sem: ipc_sem.SemState, semid: int, semnum: int, value: int) -> int:
    """SETVAL: ERANGE outside 0..SEMVMX first, then EINVAL, EACCES (semctl_setval)."""
    if not 0 <= value <= ipc_sem.SEMVMX:
        raise SyscallError(errno.ERANGE, f"SETVAL {value} is outside [0, {ipc_sem.SEMVMX}]")
    sset = sem.ids.get(semid)
    if not 0 <= semnum < sset.nsems:
        raise SyscallError(errno.EINVAL, f"semaphore {semnum} of a set of {sset.nsems}")
    require_access(proc, sset.perm, S_IWUGO)
    sem.clear_undo(sset, semnum)
    sset.values[semnum], sset.pids[semnum] = value, proc.pid
    sset.ctime = now_seconds(proc)
    ipc_sem.update_queue(sset, sset.ctime)
    return 0


# -- message queues --------------------------------------------------------------------------


@syscall("msgget", "key msgflg")
def sys_msgget(proc: Task, key: int, flag: int) -> int:
    key, flag = to_int32(key), to_int32(flag)
    msg = ipc_msg.state(proc.kernel)

    def create() -> int:
        msg.ids.check_room()
        return msg.ids.add(ipc_msg.MsgQueue(new_perm(proc, key, flag), now_seconds(proc)))

    return ipcget(proc, msg.ids, key, flag, create, lambda queue: None)


@syscall("msgsnd", "msqid msgp msgsz msgflg")
def sys_msgsnd(proc: Task, msqid: int, msgp: int, msgsz: int, flag: int) -> int:
    """As do_msgsnd: the type is read first (EFAULT), then EINVAL for a size past MSGMAX,
    a bad id or a type below 1; the text is copied in once (EFAULT, ENOMEM); then the
    caller waits for room, unless IPC_NOWAIT (EAGAIN)."""
    msqid, flag = to_int32(msqid), to_int32(flag)
    mtype = LONG.unpack(copy_in(proc.space, msgp, LONG.size))[0]
    if msgsz > ipc_msg.MSGMAX or msqid < 0:
        raise SyscallError(errno.EINVAL, f"message of {msgsz} bytes (MSGMAX {ipc_msg.MSGMAX}) or id {msqid}")
    if mtype < 1:
        raise SyscallError(errno.EINVAL, f"message type {mtype}")
    text = copy_in(proc.space, msgp + LONG.size, msgsz)
    msg = ipc_msg.state(proc.kernel)
    msg.bytes.check(msgsz + ipc_msg.MSG_HEADER)
    queue = msg.ids.get(msqid)

    def attempt() -> int:
        require_access(proc, queue.perm, S_IWUGO)
        if queue.perm.deleted:
            raise SyscallError(errno.EIDRM, f"message queue {queue.id} was removed")
        if queue.fits(msgsz):
            msg.enqueue(queue, mtype, text, proc.pid, now_seconds(proc))
            return 0
        if flag & IPC_NOWAIT:
            raise SyscallError(errno.EAGAIN, f"message queue {queue.id} is full")
        raise NotYet

    return wait_for(proc, f"msgsnd to queue {queue.id}", attempt)


@syscall("msgrcv", "msqid msgp msgsz msgtyp msgflg")
def sys_msgrcv(proc: Task, msqid: int, msgp: int, msgsz: int, msgtyp: int, flag: int) -> int:
    """As do_msgrcv: EINVAL for a bad id or size, and for MSG_COPY with MSG_EXCEPT or
    without IPC_NOWAIT; then the message is found (or waited for: ENOMSG with
    IPC_NOWAIT), E2BIG if longer than `msgsz` without MSG_NOERROR, taken off the queue
    (MSG_COPY leaves it), and copied out: a fault there loses it, as on Linux."""
    msqid, flag, msgtyp = to_int32(msqid), to_int32(flag), to_signed(msgtyp)
    if msqid < 0 or msgsz >> 63:
        raise SyscallError(errno.EINVAL, f"msgrcv on id {msqid} of {msgsz} bytes")
    copying = bool(flag & ipc_msg.MSG_COPY)
    if copying and (flag & ipc_msg.MSG_EXCEPT or not flag & IPC_NOWAIT):
        raise SyscallError(errno.EINVAL, "MSG_COPY needs IPC_NOWAIT and no MSG_EXCEPT")
    mode, wanted = ipc_msg.search_mode(msgtyp, flag)
    msg = ipc_msg.state(proc.kernel)
    queue = msg.ids.get(msqid)

    def attempt() -> int:
        require_access(proc, queue.perm, S_IRUGO)
        if queue.perm.deleted:
            raise SyscallError(errno.EIDRM, f"message queue {queue.id} was removed")
        index = ipc_msg.find_message(queue, mode, wanted)
        if index is None:
            if flag & IPC_NOWAIT:
                raise SyscallError(errno.ENOMSG, f"no message of type {msgtyp} in queue {queue.id}")
            raise NotYet
        mtype, text = queue.messages[index]
        if msgsz < len(text) and not flag & ipc_msg.MSG_NOERROR:
            raise SyscallError(errno.E2BIG, f"a message of {len(text)} bytes for a buffer of {msgsz}")
        if copying and len(text) > min(msgsz, ipc_msg.MSGMAX):
            raise SyscallError(errno.EINVAL, "MSG_COPY into a smaller buffer")
        if not copying:
            msg.take(queue, index, proc.pid, now_seconds(proc))
        text = text[:msgsz]
        copy_out(proc.space, msgp, LONG.pack(mtype))
        copy_out(proc.space, msgp + LONG.size, text)
        return len(text)

    return wait_for(proc, f"msgrcv from queue {queue.id}", attempt)


@syscall("msgctl", "msqid cmd buf")
def sys_msgctl(proc: Task, msqid: int, cmd: int, buf: int) -> int:
    msqid, cmd = to_int32(msqid), to_int32(cmd)
    if msqid < 0 or cmd < 0:
        raise SyscallError(errno.EINVAL, f"msgctl({msqid}, {cmd})")
    msg = ipc_msg.state(proc.kernel)
    if cmd in (IPC_INFO, ipc_msg.MSG_INFO):
        return _info(proc, msg.ids, buf, ipc_msg.info_bytes(proc.kernel, cmd))
    if cmd in (IPC_STAT, ipc_msg.MSG_STAT, ipc_msg.MSG_STAT_ANY):
        pack = lambda q: q.perm.pack() + q.stat_tail()  # noqa: E731
        return _stat(proc, msg.ids, msqid, cmd, (ipc_msg.MSG_STAT, ipc_msg.MSG_STAT_ANY), buf, pack)
    if cmd == IPC_SET:
        raw = copy_in(proc.space, buf, ipc_msg.MSQID_DS_SIZE)
        queue = _changeable(proc, msg.ids, msqid)
        qbytes = struct.unpack_from("<Q", raw, ipc_msg.QBYTES_OFFSET)[0]
        if qbytes > ipc_msg.MSGMNB and proc.kernel.identity.uid != 0:
            raise SyscallError(errno.EPERM, f"msg_qbytes {qbytes} past MSGMNB needs CAP_SYS_RESOURCE")
        update_perm(queue.perm, raw)
        queue.qbytes, queue.ctime = qbytes, now_seconds(proc)
        return 0
    if cmd == IPC_RMID:
        msg.forget_queue(_changeable(proc, msg.ids, msqid))  # its sleepers wake with EIDRM
        return 0
    raise SyscallError(errno.EINVAL, f"unknown msgctl command {cmd}")

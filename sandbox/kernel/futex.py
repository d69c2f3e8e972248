"""Fast user-space mutexes (man 2 futex; Linux kernel/futex/*): the threads' one way to sleep
on a word of memory, and the robust-list and clear_child_tid duties at a thread's end.

A waiter sleeps on a *key*: for a private futex (FUTEX_PRIVATE_FLAG) or a word in private
memory, the address space and the address; for a word in a shared mapping, the physical
frame and offset, so that processes mapping the same page meet on it (Linux's
get_futex_key: mm + address, or inode + page offset). Waiters queue in arrival order; a
wake takes them from the front, as Linux's plist does for equal priorities.

A waiting task sleeps through the scheduler (`WouldBlock`, retried on every pass): it
returns 0 once woken, ETIMEDOUT at its deadline, EAGAIN at once if the word no longer held
the expected value; a signal interrupts it as any sleep. Waits no other task can ever end
are the scheduler's deadlock.
"""

from __future__ import annotations

import errno
import struct
import time
from typing import TYPE_CHECKING

from sandbox.errors import SyscallError, WouldBlock
from sandbox.kernel.checked import read_timespec
from sandbox.kernel.sys_proc import clock_source
from sandbox.kernel.syscalls import syscall, to_int32
from sandbox.mm import USER_END
from sandbox.mm.uaccess import copy_in, copy_out

if TYPE_CHECKING:
    from sandbox.kernel.kernel import Kernel
    from sandbox.kernel.task import Task

# Operations and flags (include/uapi/linux/futex.h).
FUTEX_WAIT, FUTEX_WAKE, FUTEX_REQUEUE, FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP = 0, 1, 3, 4, 5
FUTEX_LOCK_PI, FUTEX_UNLOCK_PI, FUTEX_TRYLOCK_PI = 6, 7, 8
FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET, FUTEX_LOCK_PI2 = 9, 10, 13
FUTEX_PRIVATE_FLAG, FUTEX_CLOCK_REALTIME = 128, 256
FUTEX_CMD_MASK = ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME)
FUTEX_BITSET_MATCH_ANY = 0xFFFF_FFFF
# The futex word of a PI or robust lock: owner tid, and two flags.
FUTEX_WAITERS, FUTEX_OWNER_DIED, FUTEX_TID_MASK = 0x8000_0000, 0x4000_0000, 0x3FFF_FFFF
# FUTEX_WAKE_OP's operations and comparisons.
FUTEX_OP_OPARG_SHIFT = 8
WAKE_OPS = {0: lambda old, arg: arg, 1: lambda old, arg: old + arg, 2: lambda old, arg: old | arg,
            3: lambda old, arg: old & ~arg, 4: lambda old, arg: old ^ arg}
WAKE_CMPS = {0: lambda a, b: a == b, 1: lambda a, b: a != b, 2: lambda a, b: a < b,
             3: lambda a, b: a <= b, 4: lambda a, b: a > b, 5: lambda a, b: a >= b}
# struct robust_list_head: list.next, futex_offset, list_op_pending (24 bytes).
ROBUST_LIST_HEAD = struct.Struct("<QqQ")
ROBUST_LIST_LIMIT = 2048  # entries walked at most (Linux's ROBUST_LIST_LIMIT)
CLOCK_REALTIME, CLOCK_MONOTONIC = 0, 1
NS_PER_S = 1_000_000_000


class Waiter:
    """One task asleep on a futex key."""

    __slots__ = ("task", "key", "bitset", "woken", "pi")

    def __init__(self, task: Task, key: tuple, bitset: int, pi: bool = False) -> None:
        self.task, self.key, self.bitset, self.pi = task, key, bitset, pi
        self.woken = False


class Futexes:
    """The kernel's futex hash: waiters by key, in arrival order."""

    def __init__(self) -> None:
        self.queues: dict[tuple, list[Waiter]] = {}

    def enqueue(self, waiter: Waiter) -> None:
        self.queues.setdefault(waiter.key, []).append(waiter)

    def remove(self, waiter: Waiter) -> None:
        queue = self.queues.get(waiter.key, [])
        if waiter in queue:
            queue.remove(waiter)
            if not queue:
                del self.queues[waiter.key]

    def wake(self, key: tuple, count: int, bitset: int = FUTEX_BITSET_MATCH_ANY) -> int:
        """Wake up to `count` waiters on `key` whose bitset meets `bitset`; how many."""
        woken = 0
        for waiter in list(self.queues.get(key, [])):
            if woken >= count:
                break
            if waiter.bitset & bitset:
                self.remove(waiter)
                waiter.woken = True
                woken += 1
        return woken

    def requeue(self, key: tuple, to: tuple, count: int) -> int:
        """Move up to `count` waiters from `key` to `to`; how many."""
        moved = self.queues.get(key, [])[:count]
        for waiter in moved:
            self.remove(waiter)
            waiter.key = to
            self.enqueue(waiter)
        return len(moved)

    def forget(self, task: Task) -> None:
        """A task that ends waits no more."""
        for queue in list(self.queues.values()):
            for waiter in [w for w in queue if w.task is task]:
                self.remove(waiter)

    def waiting(self, key: tuple) -> list[Waiter]:
        return list(self.queues.get(key, []))


# -- keys and words -----------------------------------------------------------------------


def futex_key(task: Task, uaddr: int, private: bool) -> tuple:
    """Where waiters on `uaddr` meet (EINVAL if misaligned; for a shared futex, EFAULT if
    unmapped: a private key never touches memory, as Linux's get_futex_key)."""
    if uaddr % 4:
        raise SyscallError(errno.EINVAL, f"futex address {uaddr:#x} is not 4-byte aligned")
    space = task.space
    if uaddr >= USER_END:  # access_ok comes first, even for a private key
        raise SyscallError(errno.EFAULT, f"futex address {uaddr:#x} is not a user address")
    if private:
        return ("mm", id(space), uaddr)
    region = space.find_region(uaddr)
    if region is None:
        raise SyscallError(errno.EFAULT, f"futex address {uaddr:#x} is not mapped")
    if not region.shared:
        return ("mm", id(space), uaddr)
    read_word(task, uaddr)  # the page present, so it has a frame
    return ("frame", space.translate(uaddr))


def read_word(task: Task, uaddr: int) -> int:
    return struct.unpack("<I", copy_in(task.space, uaddr, 4))[0]


def write_word(task: Task, uaddr: int, value: int) -> None:
    copy_out(task.space, uaddr, struct.pack("<I", value & 0xFFFF_FFFF))


# -- waiting ------------------------------------------------------------------------------


def _deadline(task: Task, timeout: int, absolute: bool, realtime: bool) -> float | None:
    """When a wait ends on the sandbox's clock (Kernel.monotonic; None: never), from the
    guest's timespec: a duration (FUTEX_WAIT), or a time on CLOCK_MONOTONIC or
    CLOCK_REALTIME (the bitset and PI waits)."""
    if not timeout:
        return None
    ns = read_timespec(task.space, timeout)
    if absolute:
        now = clock_source(task, CLOCK_REALTIME if realtime else CLOCK_MONOTONIC)()
        ns = max(0, ns - now)
    return task.kernel.monotonic() + ns / NS_PER_S


def _sleep(task: Task, waiter: Waiter, deadline: float | None, why: str, restart: bool | None) -> int:
    """Block until `waiter` is woken (0) or the deadline passes (ETIMEDOUT). The scheduler
    waits for the host clock, or under --deterministic moves the sandbox's clock there when
    nothing else can run."""
    kernel = task.kernel
    futexes = kernel.futexes
    futexes.enqueue(waiter)
    deterministic = kernel.options.deterministic
    host_deadline = None
    if deadline is not None and not deterministic:
        host_deadline = time.monotonic() + (deadline - kernel.monotonic())

    def retry() -> int:
        if waiter.woken:
            return 0
        if deadline is not None and kernel.monotonic() >= deadline:
            futexes.remove(waiter)
            raise SyscallError(errno.ETIMEDOUT, "futex wait timed out")
        raise WouldBlock(why, retry=retry, deadline=host_deadline, every_pass=True,
                         on_interrupt=lambda: futexes.remove(waiter), restart=restart,
                         clock_deadline=deadline if deterministic else None)

    return retry()


def futex_wait(task: Task, uaddr: int, val: int, deadline: float | None, bitset: int, private: bool) -> int:
    if not bitset:
        raise SyscallError(errno.EINVAL, "an empty bitset")
    key = futex_key(task, uaddr, private)
    if read_word(task, uaddr) != val & 0xFFFF_FFFF:
        raise SyscallError(errno.EAGAIN, "the futex word changed")
    # a timed wait cut short by a handler is EINTR (its restart block is not kept here)
    restart = False if deadline is not None else None
    return _sleep(task, Waiter(task, key, bitset), deadline, f"futex wait at {uaddr:#x}", restart)


def futex_wake_op(task: Task, uaddr: int, count: int, count2: int, uaddr2: int, encoded: int,
                  private: bool) -> int:
    """FUTEX_WAKE_OP: change the word at `uaddr2` by the encoded operation, wake `count` on
    `uaddr`, and `count2` on `uaddr2` if the old value passed the encoded comparison
    (futex_atomic_op_inuser: an unknown operation is ENOSYS before any change, an unknown
    comparison after it; a shift past 31 is taken modulo 32)."""
    op, cmp = (encoded >> 28) & 0xF, (encoded >> 24) & 0xF
    oparg, cmparg = _sign12((encoded >> 12) & 0xFFF), _sign12(encoded & 0xFFF)
    if op & FUTEX_OP_OPARG_SHIFT:
        op &= ~FUTEX_OP_OPARG_SHIFT
        oparg = 1 << (oparg & 31)
    if op not in WAKE_OPS:
        raise SyscallError(errno.ENOSYS, f"FUTEX_WAKE_OP operation {op}")
    key, key2 = futex_key(task, uaddr, private), futex_key(task, uaddr2, private)
    old = read_word(task, uaddr2)
    write_word(task, uaddr2, WAKE_OPS[op](old, oparg))
    if cmp not in WAKE_CMPS:
        raise SyscallError(errno.ENOSYS, f"FUTEX_WAKE_OP comparison {cmp}")
    woken = task.kernel.futexes.wake(key, count)
    signed_old = old - (1 << 32) if old & 0x8000_0000 else old
    if WAKE_CMPS[cmp](signed_old, cmparg):
        woken += task.kernel.futexes.wake(key2, count2)
    return woken


def _sign12(value: int) -> int:
    return value - 0x1000 if value & 0x800 else value


# -- priority-inheritance locks (as glibc's PTHREAD_PRIO_INHERIT mutexes use them) ----------


def lock_pi(task: Task, uaddr: int, deadline: float | None, private: bool, trying: bool) -> int:
    """Take the lock word at `uaddr` for `task`: 0 if it was free, else sleep until an unlock
    hands it over. EDEADLK for one's own lock, EAGAIN when only trying, ESRCH when the word
    names no thread (attach_to_pi_owner). A signal never makes it fail: it restarts
    (ERESTARTNOINTR), for glibc takes any other error for success."""
    key = futex_key(task, uaddr, private)
    word = read_word(task, uaddr)
    owner = word & FUTEX_TID_MASK
    if owner == task.tid:
        raise SyscallError(errno.EDEADLK, "the caller owns this lock")
    if owner == 0:
        write_word(task, uaddr, task.tid | (word & (FUTEX_WAITERS | FUTEX_OWNER_DIED)))
        return 0
    if task.kernel.tasks.get(owner) is None:
        write_word(task, uaddr, word | FUTEX_WAITERS)
        raise SyscallError(errno.ESRCH, f"the lock's owner {owner} is no thread")
    if trying:
        raise SyscallError(errno.EAGAIN, "the lock is taken")
    write_word(task, uaddr, word | FUTEX_WAITERS)
    return _sleep(task, Waiter(task, key, FUTEX_BITSET_MATCH_ANY, pi=True), deadline, f"futex lock_pi at {uaddr:#x}",
                  True)


def unlock_pi(task: Task, uaddr: int, private: bool) -> int:
    """Release the lock word at `uaddr`: to the first waiter (its tid in the word), or free."""
    key = futex_key(task, uaddr, private)
    word = read_word(task, uaddr)
    if word & FUTEX_TID_MASK != task.tid:
        raise SyscallError(errno.EPERM, "the caller does not own this lock")
    if not _hand_over(task, uaddr, key, 0):
        write_word(task, uaddr, 0)
    return 0


def _hand_over(task: Task, uaddr: int, key: tuple, mark: int) -> bool:
    """Give the PI lock word at `uaddr` to its first waiter (its tid, FUTEX_WAITERS if more
    wait, and `mark`) and wake it; False when no lock_pi waiter sleeps there."""
    waiters = [w for w in task.kernel.futexes.waiting(key) if w.pi]
    if not waiters:
        return False
    heir = waiters[0]
    write_word(task, uaddr, heir.task.tid | mark | (FUTEX_WAITERS if len(waiters) > 1 else 0))
    task.kernel.futexes.remove(heir)
    heir.woken = True
    return True


# -- a thread's end -----------------------------------------------------------------------


def clear_child_tid(kernel: Kernel, task: Task) -> None:
    """CLONE_CHILD_CLEARTID / set_tid_address: zero the word and wake one waiter on it
    (pthread_join sleeps there). A bad address is ignored, as Linux does."""
    if not task.clear_child_tid:
        return
    try:
        write_word(task, task.clear_child_tid, 0)
        kernel.futexes.wake(futex_key(task, task.clear_child_tid, False), 1)
    except SyscallError:
        pass


def release_robust_list(kernel: Kernel, task: Task) -> None:
    """Walk the dying task's robust list (set_robust_list): every lock it still holds gets
    FUTEX_OWNER_DIED, and one waiter is woken (man 2 get_robust_list; exit_robust_list)."""
    if not task.robust_list:
        return
    try:
        first, offset, pending = ROBUST_LIST_HEAD.unpack(copy_in(task.space, task.robust_list, ROBUST_LIST_HEAD.size))
        entry, walked = first, 0
        while entry & ~1 != task.robust_list and entry and walked < ROBUST_LIST_LIMIT:
            _owner_died(kernel, task, (entry & ~1) + offset)
            entry = struct.unpack("<Q", copy_in(task.space, entry & ~1, 8))[0]
            walked += 1
        if pending:
            _owner_died(kernel, task, (pending & ~1) + offset)
    except SyscallError:
        pass  # a list the thread broke: stop there, as Linux does


def _owner_died(kernel: Kernel, task: Task, uaddr: int) -> None:
    """Mark a lock the dying `task` holds. A PI lock passes straight to its first lock_pi
    waiter, marked FUTEX_OWNER_DIED, as Linux's exit_pi_state_list and the waiter's
    fixup_owner leave it (woken without its tid in the word, glibc's unlock says EPERM);
    for any other one waiter wakes to find the word free and take it."""
    word = read_word(task, uaddr)
    if word & FUTEX_TID_MASK != task.tid:
        return
    key = futex_key(task, uaddr, False)
    if _hand_over(task, uaddr, key, FUTEX_OWNER_DIED):
        return
    write_word(task, uaddr, (word & FUTEX_WAITERS) | FUTEX_OWNER_DIED)
    if word & FUTEX_WAITERS:
        kernel.futexes.wake(key, 1)


# -- the system calls ---------------------------------------------------------------------


@syscall("futex", "uaddr op val timeout uaddr2 val3")
def sys_futex(proc: Task, uaddr: int, op: int, val: int, timeout: int, uaddr2: int, val3: int) -> int:
    op = to_int32(op)
    cmd, private, realtime = op & FUTEX_CMD_MASK, bool(op & FUTEX_PRIVATE_FLAG), bool(op & FUTEX_CLOCK_REALTIME)
    val, val3 = val & 0xFFFF_FFFF, val3 & 0xFFFF_FFFF
    if realtime and cmd not in (FUTEX_WAIT_BITSET, FUTEX_LOCK_PI2):
        raise SyscallError(errno.ENOSYS, "FUTEX_CLOCK_REALTIME with this operation")
    futexes = proc.kernel.futexes
    count = to_int32(val)
    woken_at_least = max(count, 1)  # futex_wake wakes one even when asked for none (++ret >= nr)
    if cmd == FUTEX_WAIT:
        return futex_wait(proc, uaddr, val, _deadline(proc, timeout, realtime, realtime), FUTEX_BITSET_MATCH_ANY,
                          private)
    if cmd == FUTEX_WAIT_BITSET:
        return futex_wait(proc, uaddr, val, _deadline(proc, timeout, True, realtime), val3, private)
    if cmd in (FUTEX_WAKE, FUTEX_WAKE_BITSET):
        bitset = val3 if cmd == FUTEX_WAKE_BITSET else FUTEX_BITSET_MATCH_ANY
        if not bitset:
            raise SyscallError(errno.EINVAL, "an empty bitset")
        return futexes.wake(futex_key(proc, uaddr, private), woken_at_least, bitset)
    if cmd in (FUTEX_REQUEUE, FUTEX_CMP_REQUEUE):
        key, key2 = futex_key(proc, uaddr, private), futex_key(proc, uaddr2, private)
        if cmd == FUTEX_CMP_REQUEUE and read_word(proc, uaddr) != val3:
            raise SyscallError(errno.EAGAIN, "the futex word changed")
        requeue = to_int32(timeout & 0xFFFF_FFFF)  # the timeout argument carries val2
        if count < 0 or requeue < 0:
            raise SyscallError(errno.EINVAL, "negative counts")
        woken = futexes.wake(key, count)
        return woken + futexes.requeue(key, key2, requeue)
    if cmd == FUTEX_WAKE_OP:
        return futex_wake_op(proc, uaddr, woken_at_least, max(to_int32(timeout & 0xFFFF_FFFF), 1), uaddr2, val3,
                             private)
    if cmd in (FUTEX_LOCK_PI, FUTEX_LOCK_PI2):
        return lock_pi(proc, uaddr, _deadline(proc, timeout, True, cmd == FUTEX_LOCK_PI or realtime), private, False)
    if cmd == FUTEX_TRYLOCK_PI:
        return lock_pi(proc, uaddr, None, private, True)
    if cmd == FUTEX_UNLOCK_PI:
        return unlock_pi(proc, uaddr, private)
    raise SyscallError(errno.ENOSYS, f"futex operation {cmd}")


@syscall("set_robust_list", "head len")
def sys_set_robust_list(proc: Task, head: int, length: int) -> int:
    if length != ROBUST_LIST_HEAD.size:
        raise SyscallError(errno.EINVAL, "robust list head size")
    proc.robust_list = head
    return 0


@syscall("get_robust_list", "pid head_ptr len_ptr")
def sys_get_robust_list(proc: Task, pid: int, head_ptr: int, len_ptr: int) -> int:
    """The robust list head of thread `pid` (0: the caller) in this sandbox."""
    tid = to_int32(pid)
    target = proc if tid == 0 else proc.kernel.tasks.get(tid)
    if target is None:
        raise SyscallError(errno.ESRCH, f"no thread {tid}")
    copy_out(proc.space, head_ptr, struct.pack("<Q", target.robust_list))
    copy_out(proc.space, len_ptr, struct.pack("<Q", ROBUST_LIST_HEAD.size))
    return 0

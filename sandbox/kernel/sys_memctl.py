"""Memory calls beyond mapping: mlock, mlock2, munlock, mlockall, munlockall, membarrier,
process_vm_readv and process_vm_writev (man 2 of each).

Nothing here is ever paged out, so a lock only populates its pages and is counted: the
locked ranges are kept per process (limits.ProcessAttrs.locked, for the address space
they were made in) and `locked_bytes` is VmLck, bounded by RLIMIT_MEMLOCK as for a
process without CAP_IPC_LOCK. One CPU runs every task, so every membarrier is a barrier
already; the commands and their registrations are checked as Linux checks them.

process_vm_* copy between two guest processes through each one's page tables, a page at a
time: a bad remote or local address ends the transfer there (a partial count, or EFAULT
if nothing moved), as Linux's process_vm_rw_core.
"""

from __future__ import annotations

import errno
import struct

from sandbox.errors import SyscallError
from sandbox.kernel import limits
from sandbox.kernel.process import ThreadGroup
from sandbox.kernel.syscalls import syscall, to_int32
from sandbox.kernel.task import Task
from sandbox.mm import PAGE_SIZE, USER_END, page_down, page_up
from sandbox.mm.uaccess import copy_in, copy_out

MLOCK_ONFAULT = 1
MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT = 1, 2, 4
IOV_MAX = 1024  # UIO_MAXIOV
MAX_RW_COUNT = 0x7FFF_F000  # INT_MAX rounded down to a page: the most one call moves
IOVEC = struct.Struct("<QQ")


# -- memory locks ---------------------------------------------------------------------------------

def _ranges(proc: Task) -> list[tuple[int, int]]:
    """The caller's locked ranges in its present address space (none after an execve)."""
    attrs = proc.group.attrs
    space, ranges = attrs.locked
    if space is not proc.space:
        attrs.locked = (proc.space, [])
        attrs.lock_future = False
        return []
    return ranges


def _mapped(proc: Task, start: int, end: int) -> list[tuple[int, int]]:
    """The parts of [start, end) that regions cover."""
    return [(max(r.start, start), min(r.end, end)) for r in proc.space.regions.overlapping(start, end)]


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _without(ranges: list[tuple[int, int]], start: int, end: int) -> list[tuple[int, int]]:
    """`ranges` less [start, end)."""
    out = []
    for lo, hi in ranges:
        out += [(lo, hi)] if hi <= start or lo >= end else [r for r in ((lo, start), (end, hi)) if r[0] < r[1]]
    return out


def locked_bytes(group: ThreadGroup) -> int:
    """The bytes of `group`'s memory locked now (VmLck): its locked ranges that are still
    mapped."""
    space, ranges = group.attrs.locked
    if space is not group.space or space is None:
        return 0
    return sum(min(r.end, hi) - max(r.start, lo) for lo, hi in ranges for r in space.regions.overlapping(lo, hi))


def _lock_range(proc: Task, addr: int, length: int, populate: bool) -> int:
    """mlock's work (mm/mlock.c do_mlock): EPERM with RLIMIT_MEMLOCK 0, ENOMEM past it or
    when part of the range is unmapped, EINVAL when it wraps."""
    if limits.soft(proc, limits.RLIMIT_MEMLOCK) == 0:
        raise SyscallError(errno.EPERM, "RLIMIT_MEMLOCK is 0 and there is no CAP_IPC_LOCK")
    start, end = page_down(addr), page_up(addr + length)
    if end < start or end > 1 << 64:
        raise SyscallError(errno.EINVAL, "the range wraps")
    held = _merge(_clip(proc, _ranges(proc)))
    after = _total(_merge(held + [(start, end)]))
    if after > _total(held) and after > limits.soft(proc, limits.RLIMIT_MEMLOCK):
        raise SyscallError(errno.ENOMEM, f"locking {after} bytes passes RLIMIT_MEMLOCK")
    if end == start:
        return 0
    _require_mapped(proc, start, end)
    proc.group.attrs.locked = (proc.space, _merge(held + [(start, end)]))
    if populate:
        proc.space.populate(start, end)
    return 0


def _total(ranges: list[tuple[int, int]]) -> int:
    return sum(hi - lo for lo, hi in ranges)


def _clip(proc: Task, ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of `ranges` still mapped."""
    return [part for lo, hi in ranges for part in _mapped(proc, lo, hi)]


def _require_mapped(proc: Task, start: int, end: int) -> None:
    """ENOMEM unless regions cover all of [start, end) (apply_vma_lock_flags)."""
    if end > USER_END or _total(_mapped(proc, start, end)) != end - start:
        raise SyscallError(errno.ENOMEM, f"{start:#x}-{end:#x} is not all mapped")


@syscall("mlock", "addr len")
def sys_mlock(proc: Task, addr: int, length: int) -> int:
    return _lock_range(proc, addr, length, True)


@syscall("mlock2", "addr len flags")
def sys_mlock2(proc: Task, addr: int, length: int, flags: int) -> int:
    """mlock; with MLOCK_ONFAULT the pages are locked as they are touched (not populated)."""
    flags = to_int32(flags)
    if flags & ~MLOCK_ONFAULT:
        raise SyscallError(errno.EINVAL, f"flags {flags:#x}")
    return _lock_range(proc, addr, length, not flags & MLOCK_ONFAULT)


@syscall("munlock", "addr len")
def sys_munlock(proc: Task, addr: int, length: int) -> int:
    start, end = page_down(addr), page_up(addr + length)
    if end < start:
        raise SyscallError(errno.EINVAL, "the range wraps")
    if end == start:
        return 0
    _require_mapped(proc, start, end)
    proc.group.attrs.locked = (proc.space, _without(_ranges(proc), start, end))
    return 0


@syscall("mlockall", "flags")
def sys_mlockall(proc: Task, flags: int) -> int:
    """Lock every mapping (MCL_CURRENT) and mark later ones (MCL_FUTURE: kept and reported,
    not applied to later mappings here); ENOMEM if the whole space passes RLIMIT_MEMLOCK."""
    flags = to_int32(flags)
    if not flags or flags & ~(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) or flags == MCL_ONFAULT:
        raise SyscallError(errno.EINVAL, f"flags {flags:#x}")
    limit = limits.soft(proc, limits.RLIMIT_MEMLOCK)
    if limit == 0:
        raise SyscallError(errno.EPERM, "RLIMIT_MEMLOCK is 0 and there is no CAP_IPC_LOCK")
    ranges = _ranges(proc)
    if flags & MCL_CURRENT:
        everything = [(r.start, r.end) for r in proc.space.regions]
        if sum(hi - lo for lo, hi in everything) > limit:
            raise SyscallError(errno.ENOMEM, "the whole address space passes RLIMIT_MEMLOCK")
        ranges = _merge(everything)
    proc.group.attrs.locked = (proc.space, ranges)
    proc.group.attrs.lock_future = bool(flags & MCL_FUTURE)
    return 0


@syscall("munlockall")
def sys_munlockall(proc: Task) -> int:
    proc.group.attrs.locked = (proc.space, [])
    proc.group.attrs.lock_future = False
    return 0


# -- membarrier -----------------------------------------------------------------------------------

MEMBARRIER_CMD_QUERY = 0
MEMBARRIER_CMD_GLOBAL = 1 << 0
MEMBARRIER_CMD_GLOBAL_EXPEDITED = 1 << 1
MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED = 1 << 2
MEMBARRIER_CMD_PRIVATE_EXPEDITED = 1 << 3
MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED = 1 << 4
MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE = 1 << 5
MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE = 1 << 6
MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ = 1 << 7
MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ = 1 << 8
MEMBARRIER_CMD_FLAG_CPU = 1
#: What QUERY answers: every command Linux 6.1 has (MEMBARRIER_CMD_BITMASK).
MEMBARRIER_COMMANDS = (1 << 9) - 1
#: The private commands and the registration each needs (EPERM without it).
MEMBARRIER_NEEDS = {
    MEMBARRIER_CMD_PRIVATE_EXPEDITED: MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED,
    MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE: MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE,
    MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ: MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ,
}
MEMBARRIER_REGISTRATIONS = (MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, *MEMBARRIER_NEEDS.values())


@syscall("membarrier", "cmd flags cpu_id")
def sys_membarrier(proc: Task, cmd: int, flags: int, cpu_id: int) -> int:
    """kernel/sched/membarrier.c: flags are 0 (MEMBARRIER_CMD_FLAG_CPU only with the rseq
    command), a private command needs its registration first (EPERM)."""
    cmd, flags = to_int32(cmd), to_int32(flags)
    allowed = MEMBARRIER_CMD_FLAG_CPU if cmd == MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ else 0
    if flags & ~allowed:
        raise SyscallError(errno.EINVAL, f"flags {flags:#x}")
    attrs = proc.group.attrs
    if cmd == MEMBARRIER_CMD_QUERY:
        return MEMBARRIER_COMMANDS
    if cmd in (MEMBARRIER_CMD_GLOBAL, MEMBARRIER_CMD_GLOBAL_EXPEDITED):
        return 0
    if cmd in MEMBARRIER_REGISTRATIONS:
        attrs.membarrier |= cmd
        return 0
    if cmd in MEMBARRIER_NEEDS:
        if not attrs.membarrier & MEMBARRIER_NEEDS[cmd]:
            raise SyscallError(errno.EPERM, "the process has not registered for this membarrier")
        return 0
    raise SyscallError(errno.EINVAL, f"membarrier command {cmd}")


# -- process_vm_readv / process_vm_writev ---------------------------------------------------------

def _iovecs(proc: Task, addr: int, count: int) -> list[tuple[int, int]]:
    """An iovec array of the caller's: EINVAL past IOV_MAX or for a total past ssize_t,
    EFAULT for a bad array (lib/iov_iter.c iovec_from_user)."""
    if count > IOV_MAX:
        raise SyscallError(errno.EINVAL, f"{count} iovecs")
    if count == 0:
        return []
    vecs = list(IOVEC.iter_unpack(copy_in(proc.space, addr, IOVEC.size * count)))
    if any(length >> 63 for _, length in vecs):
        raise SyscallError(errno.EINVAL, "an iovec length is negative")
    return vecs


def _target(proc: Task, pid: int) -> ThreadGroup:
    """The process of thread `pid` with memory (ESRCH otherwise). Every guest process is
    the guest user's, so the ptrace access check (PTRACE_MODE_ATTACH_REALCREDS) passes."""
    task = proc.kernel.tasks.get(to_int32(pid)) if to_int32(pid) > 0 else None
    if task is None or not task.alive or task.space is None:
        raise SyscallError(errno.ESRCH, f"no process {to_int32(pid)}")
    return task.group


def _pieces(vecs: list[tuple[int, int]]):
    """(address, length) pieces of `vecs` that never cross a page boundary."""
    for base, length in vecs:
        while length:
            take = min(length, PAGE_SIZE - base % PAGE_SIZE)
            yield base, take
            base, length = base + take, length - take


def _transfer(proc: Task, pid: int, local: int, nlocal: int, remote: int, nremote: int, flags: int,
              writing: bool) -> int:
    """Move bytes between the caller's `local` iovecs and the `remote` ones of process
    `pid`, in order, a page at a time, until either list ends or an address faults."""
    if flags:
        raise SyscallError(errno.EINVAL, f"flags {flags:#x}")
    local_vecs, remote_vecs = _iovecs(proc, local, nlocal), _iovecs(proc, remote, nremote)
    if any(base + n > USER_END for base, n in local_vecs):  # access_ok of the caller's own
        raise SyscallError(errno.EFAULT, "a local iovec is outside user space")
    if not any(n for _, n in remote_vecs):
        return 0  # (before the target is looked up, as Linux)
    target = _target(proc, pid)
    room = min(sum(n for _, n in local_vecs), sum(n for _, n in remote_vecs), MAX_RW_COUNT)
    if room == 0:
        return 0
    sources = _pieces(local_vecs) if writing else _pieces(remote_vecs)
    sinks = _pieces(remote_vecs) if writing else _pieces(local_vecs)
    source_space, sink_space = (proc.space, target.space) if writing else (target.space, proc.space)
    done = _copy_pieces(source_space, sources, sink_space, sinks, room)
    if done == 0:
        raise SyscallError(errno.EFAULT, "no byte could be moved")
    return done


def _copy_pieces(source_space, sources, sink_space, sinks, room: int) -> int:
    """Copy from the `sources` pieces of one space into the `sinks` pieces of the other,
    up to `room` bytes; stop at the first piece that faults. Returns the bytes copied."""
    done, sink, sink_left = 0, 0, 0
    for src, n in sources:
        try:
            data = copy_in(source_space, src, min(n, room - done))
        except SyscallError:
            return done
        while data:
            if not sink_left:
                sink, sink_left = next(sinks)
            take = min(sink_left, len(data))
            try:
                copy_out(sink_space, sink, data[:take])
            except SyscallError:
                return done
            data, done = data[take:], done + take
            sink, sink_left = sink + take, sink_left - take
        if done == room:
            break
    return done


@syscall("process_vm_readv", "pid local_iov liovcnt remote_iov riovcnt flags")
def sys_process_vm_readv(proc: Task, pid: int, local_iov: int, liovcnt: int, remote_iov: int, riovcnt: int,
                         flags: int) -> int:
    return _transfer(proc, pid, local_iov, liovcnt, remote_iov, riovcnt, flags, False)


@syscall("process_vm_writev", "pid local_iov liovcnt remote_iov riovcnt flags")
def sys_process_vm_writev(proc: Task, pid: int, local_iov: int, liovcnt: int, remote_iov: int, riovcnt: int,
                          flags: int) -> int:
    return _transfer(proc, pid, local_iov, liovcnt, remote_iov, riovcnt, flags, True)

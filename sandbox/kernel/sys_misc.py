"""Identity, limits, scheduling, time, futex and prctl (man 2 of each)."""

from __future__ import annotations

import errno
import os
import struct
import time

from sandbox.errors import SyscallError, WouldBlock
from sandbox.kernel import limits
from sandbox.kernel.checked import read_timespec, seconds_ns, timespec_bytes
from sandbox.kernel.process import State, ThreadGroup
from sandbox.kernel.sched import sleep
from sandbox.kernel.structs import RLIMIT, SYSINFO, TIMESPEC, TIMEVAL
from sandbox.kernel.sys_proc import clock_source
from sandbox.kernel.syscalls import syscall, to_int32
from sandbox.kernel.task import Task
from sandbox.kernel.vfs import PATH_MAX
from sandbox.mm.uaccess import copy_in, copy_out, read_cstring

TIMER_ABSTIME = 1


# -- identity -----------------------------------------------------------------------------

NGROUPS_MAX = 65536  # include/uapi/linux/limits.h

@syscall("getuid")
def sys_getuid(proc: Task) -> int:
    """The guest's own uid (identity.py): never the host's."""
    return proc.kernel.identity.uid


@syscall("geteuid")
def sys_geteuid(proc: Task) -> int:
    return proc.kernel.identity.uid


@syscall("getgid")
def sys_getgid(proc: Task) -> int:
    return proc.kernel.identity.gid


@syscall("getegid")
def sys_getegid(proc: Task) -> int:
    return proc.kernel.identity.gid


@syscall("getgroups", "size list")
def sys_getgroups(proc: Task, size: int, list_addr: int) -> int:
    groups = [proc.kernel.identity.gid]  # the guest's one group, not the host's list
    size = to_int32(size)
    if size == 0:
        return len(groups)
    if size < len(groups):
        raise SyscallError(errno.EINVAL, "list too small")
    copy_out(proc.space, list_addr, struct.pack(f"<{len(groups)}I", *groups))
    return len(groups)


# The guest's identity is fixed for the run (--uid/--gid): a set*id call that keeps it
# succeeds (GNU make's children call setresuid(-1, euid, -1)), one that would change it
# answers EPERM, as for a process without CAP_SETUID/CAP_SETGID (man 2 setresuid). -1 in
# an argument means "unchanged" (ID_UNCHANGED).
ID_UNCHANGED = 0xFFFF_FFFF


def _keep_identity(own: int, *wanted: int) -> int:
    """0 if every wanted id (as a 32-bit id_t) is -1 or `own`; EPERM otherwise."""
    for value in wanted:
        value &= ID_UNCHANGED
        if value not in (ID_UNCHANGED, own):
            raise SyscallError(errno.EPERM, f"the guest's ids are fixed; {value} is not {own}")
    return 0


@syscall("setuid", "uid")
def sys_setuid(proc: Task, uid: int) -> int:
    return _keep_identity(proc.kernel.identity.uid, uid)


@syscall("setgid", "gid")
def sys_setgid(proc: Task, gid: int) -> int:
    return _keep_identity(proc.kernel.identity.gid, gid)


@syscall("setreuid", "ruid euid")
def sys_setreuid(proc: Task, ruid: int, euid: int) -> int:
    return _keep_identity(proc.kernel.identity.uid, ruid, euid)


@syscall("setregid", "rgid egid")
def sys_setregid(proc: Task, rgid: int, egid: int) -> int:
    return _keep_identity(proc.kernel.identity.gid, rgid, egid)


@syscall("setresuid", "ruid euid suid")
def sys_setresuid(proc: Task, ruid: int, euid: int, suid: int) -> int:
    return _keep_identity(proc.kernel.identity.uid, ruid, euid, suid)


@syscall("setresgid", "rgid egid sgid")
def sys_setresgid(proc: Task, rgid: int, egid: int, sgid: int) -> int:
    return _keep_identity(proc.kernel.identity.gid, rgid, egid, sgid)


@syscall("setfsuid", "fsuid")
def sys_setfsuid(proc: Task, fsuid: int) -> int:
    """Returns the previous fsuid whatever happens (man 2 setfsuid); it never changes."""
    return proc.kernel.identity.uid


@syscall("setfsgid", "fsgid")
def sys_setfsgid(proc: Task, fsgid: int) -> int:
    return proc.kernel.identity.gid


def _three_ids(proc: Task, value: int, addrs: tuple[int, int, int]) -> int:
    """getresuid/getresgid: the real, effective and saved ids are all the one id."""
    for addr in addrs:
        copy_out(proc.space, addr, struct.pack("<I", value))
    return 0


@syscall("getresuid", "ruid euid suid")
def sys_getresuid(proc: Task, ruid: int, euid: int, suid: int) -> int:
    return _three_ids(proc, proc.kernel.identity.uid, (ruid, euid, suid))


@syscall("getresgid", "rgid egid sgid")
def sys_getresgid(proc: Task, rgid: int, egid: int, sgid: int) -> int:
    return _three_ids(proc, proc.kernel.identity.gid, (rgid, egid, sgid))


@syscall("setgroups", "size list")
def sys_setgroups(proc: Task, size: int, list_addr: int) -> int:
    """Only the guest's one group may be set (what it has already)."""
    size = to_int32(size)
    if not 0 <= size <= NGROUPS_MAX:
        raise SyscallError(errno.EINVAL, f"{size} groups")
    groups = struct.unpack(f"<{size}I", copy_in(proc.space, list_addr, 4 * size)) if size else ()
    if set(groups) != {proc.kernel.identity.gid}:
        raise SyscallError(errno.EPERM, "the guest's groups are fixed")
    return 0


# -- limits and the machine ---------------------------------------------------------------


@syscall("getcpu", "cpu node cache")
def sys_getcpu(proc: Task, cpu: int, node: int, cache: int) -> int:
    """The one CPU and NUMA node the guest runs on: 0 and 0 (man 2 getcpu)."""
    for addr in (cpu, node):
        if addr:
            copy_out(proc.space, addr, struct.pack("<I", 0))
    return 0


def _limit_target(proc: Task, pid: int) -> ThreadGroup:
    """The process prlimit64 names: 0 the caller, else any guest thread's process (every
    guest process has the caller's uid: check_prlimit_permission allows it); ESRCH if none."""
    pid = to_int32(pid)
    if pid == 0:
        return proc.group
    task = proc.kernel.tasks.get(pid)
    group = task.group if task is not None else proc.kernel.processes.get(pid)
    if pid < 0 or group is None or group.state is State.REAPED:
        raise SyscallError(errno.ESRCH, f"no process {pid}")
    return group


@syscall("prlimit64", "pid resource new_limit old_limit")
def sys_prlimit64(proc: Task, pid: int, resource: int, new_limit: int, old_limit: int) -> int:
    """Read and set a process's limits (man 2 prlimit), in Linux's order: the new ones are
    read (EFAULT), the process found (ESRCH), the resource checked (EINVAL), the old ones
    written after the change (kernel/sys.c prlimit64)."""
    new = RLIMIT.unpack(copy_in(proc.space, new_limit, RLIMIT.size)) if new_limit else None
    group = _limit_target(proc, pid)
    old = limits.get_limit(group, to_int32(resource) & 0xFFFF_FFFF)
    if new is not None:
        limits.set_limit(group, to_int32(resource), new)
    if old_limit:
        copy_out(proc.space, old_limit, RLIMIT.pack(*old))
    return 0


@syscall("getrlimit", "resource rlim")
def sys_getrlimit(proc: Task, resource: int, rlim: int) -> int:
    return sys_prlimit64(proc, 0, resource, 0, rlim)


@syscall("setrlimit", "resource rlim")
def sys_setrlimit(proc: Task, resource: int, rlim: int) -> int:
    """As prlimit64 on the caller; a NULL rlim is EFAULT (it is not optional here)."""
    if not rlim:
        raise SyscallError(errno.EFAULT, "rlim is NULL")
    return sys_prlimit64(proc, 0, resource, rlim, 0)


PERSONALITY_QUERY = 0xFFFF_FFFF


@syscall("personality", "persona")
def sys_personality(proc: Task, persona: int) -> int:
    """Return the execution domain and flags, and set new ones unless `persona` is
    0xffffffff (kernel/exec_domain.c). Every domain runs as PER_LINUX here; flags such as
    ADDR_NO_RANDOMIZE are kept and reported back (the sandbox's layout is fixed anyway)."""
    old = proc.group.attrs.personality
    persona &= 0xFFFF_FFFF
    if persona != PERSONALITY_QUERY:
        proc.group.attrs.personality = persona
    return old


@syscall("chroot", "path")
def sys_chroot(proc: Task, path: int) -> int:
    """The directory becomes the process's "/" for every path it resolves (and its
    children's; the cwd stays where it is, as Linux leaves it). The path is looked up and
    must be a directory (ENOENT, ENOTDIR...); then EPERM unless the guest is root, which in
    the sandbox has what root has in a user namespace of its own (CAP_SYS_CHROOT), as for
    mount (fs/open.c ksys_chroot's order)."""
    node = proc.kernel.fs.resolve(read_cstring(proc.space, path, PATH_MAX - 1), proc.cwd)
    if proc.kernel.fs.kind_of(node) != "dir":
        raise SyscallError(errno.ENOTDIR, node.guest)
    if proc.kernel.identity.uid != 0:
        raise SyscallError(errno.EPERM, "chroot needs CAP_SYS_CHROOT")
    proc.group.fs.root = node.guest
    return 0


@syscall("sysinfo", "info")
def sys_sysinfo(proc: Task, info: int) -> int:
    frames = proc.kernel.machine.frames.stats()
    uptime = int(time.monotonic() - proc.kernel.boot_time)
    copy_out(proc.space, info, SYSINFO.pack(uptime, 0, 0, 0, frames.total * 4096, frames.free * 4096,
                                            0, 0, 0, 0, len(proc.kernel.tasks), 0, 0, 1))
    return 0


def _affinity_target(proc: Task, pid: int) -> Task:
    """The thread a sched_*affinity call names: 0 the caller, else a tid (ESRCH)."""
    tid = to_int32(pid)
    target = proc if tid == 0 else proc.kernel.tasks.get(tid)
    if target is None:
        raise SyscallError(errno.ESRCH, f"no thread {tid}")
    return target


@syscall("sched_getaffinity", "pid cpusetsize mask")
def sys_sched_getaffinity(proc: Task, pid: int, cpusetsize: int, mask: int) -> int:
    """The CPUs the guest is told it has (--cpus; default the host's count, so that a guest
    counts them as natively), less what sched_setaffinity took away from the thread."""
    target = _affinity_target(proc, pid)
    size = max(8, (proc.kernel.options.cpus - 1) // 64 * 8 + 8)
    if cpusetsize < size or cpusetsize % 8:
        raise SyscallError(errno.EINVAL, "cpusetsize")
    copy_out(proc.space, mask, target.affinity.to_bytes(size, "little"))
    return size


@syscall("sched_setaffinity", "pid cpusetsize mask")
def sys_sched_setaffinity(proc: Task, pid: int, cpusetsize: int, mask: int) -> int:
    """Keep the CPUs of the mask the guest has; EINVAL if none is left (man 2
    sched_setaffinity). Every thread runs on the sandbox's one CPU whatever it says."""
    target = _affinity_target(proc, pid)
    size = min(to_int32(cpusetsize), 1024)
    if size <= 0:
        raise SyscallError(errno.EINVAL, "cpusetsize")
    wanted = int.from_bytes(copy_in(proc.space, mask, size), "little") & ((1 << proc.kernel.options.cpus) - 1)
    if not wanted:
        raise SyscallError(errno.EINVAL, "no CPU of the sandbox in the mask")
    target.affinity = wanted
    return 0


@syscall("sched_yield")
def sys_sched_yield(proc: Task) -> int:
    """Let every other runnable task go first (round-robin); alone, return at once."""
    others = [t for t in proc.kernel.tasks.values() if t is not proc and t.alive]
    if others:
        raise WouldBlock("sched_yield", retry=lambda: 0)
    return 0


# -- time ---------------------------------------------------------------------------------

def _store_time_left(proc: Task, rem: int):
    """What an interrupted nanosleep does: the time left into *rem, unless rem is NULL."""
    def store(seconds: float) -> None:
        try:
            copy_out(proc.space, rem, timespec_bytes(seconds_ns(seconds)))
        except SyscallError:  # a wild rem: the call still ends with EINTR
            pass
    return store if rem else None


def _done() -> int:
    return 0


@syscall("nanosleep", "req rem")
def sys_nanosleep(proc: Task, req: int, rem: int) -> int:
    return sleep(proc, read_timespec(proc.space, req), "nanosleep", _done, _store_time_left(proc, rem))


@syscall("clock_nanosleep", "clockid flags req rem")
def sys_clock_nanosleep(proc: Task, clockid: int, flags: int, req: int, rem: int) -> int:
    clock = clock_source(proc, to_int32(clockid))
    ns = read_timespec(proc.space, req)
    if to_int32(flags) & TIMER_ABSTIME:
        return sleep(proc, max(0, ns - clock()), "clock_nanosleep", _done)
    return sleep(proc, ns, "clock_nanosleep", _done, _store_time_left(proc, rem))


@syscall("gettimeofday", "tv tz")
def sys_gettimeofday(proc: Task, tv: int, tz: int) -> int:
    ns = clock_source(proc, 0)()
    if tv:
        copy_out(proc.space, tv, TIMEVAL.pack(ns // 10**9, ns % 10**9 // 1000))
    if tz:
        copy_out(proc.space, tz, bytes(8))
    return 0


@syscall("time", "tloc")
def sys_time(proc: Task, tloc: int) -> int:
    now = clock_source(proc, 0)() // 10**9
    if tloc:
        copy_out(proc.space, tloc, struct.pack("<q", now))
    return now


@syscall("clock_getres", "clockid res")
def sys_clock_getres(proc: Task, clockid: int, res: int) -> int:
    clock_source(proc, to_int32(clockid))
    if res:
        copy_out(proc.space, res, TIMESPEC.pack(0, 1))
    return 0




# -- prctl ----------------------------------------------------------------------------------

PR_SET_PDEATHSIG, PR_GET_PDEATHSIG, PR_GET_DUMPABLE, PR_SET_DUMPABLE = 1, 2, 3, 4
PR_SET_NAME, PR_GET_NAME = 15, 16
PR_SET_NO_NEW_PRIVS, PR_GET_NO_NEW_PRIVS = 38, 39
TASK_COMM_LEN = 16


@syscall("prctl", "option arg2 arg3 arg4 arg5")
def sys_prctl(proc: Task, option: int, arg2: int, arg3: int, arg4: int, arg5: int) -> int:
    """The process attributes a single process has: its name, dumpability, parent-death
    signal and no_new_privs (man 2 prctl); other options are EINVAL."""
    option = to_int32(option)
    if option == PR_SET_NAME:
        proc.comm = os.fsdecode(read_cstring(proc.space, arg2, 4096)[: TASK_COMM_LEN - 1])
        return 0
    if option == PR_GET_NAME:
        copy_out(proc.space, arg2, os.fsencode(proc.comm)[: TASK_COMM_LEN - 1].ljust(TASK_COMM_LEN, b"\0"))
        return 0
    if option == PR_SET_DUMPABLE:
        if arg2 not in (0, 1):
            raise SyscallError(errno.EINVAL, "dumpable")
        proc.prctl[option] = arg2
        return 0
    if option == PR_SET_PDEATHSIG:
        if not 0 <= arg2 <= 64:
            raise SyscallError(errno.EINVAL, "signal")
        proc.prctl[option] = arg2
        return 0
    if option == PR_GET_PDEATHSIG:
        copy_out(proc.space, arg2, struct.pack("<i", proc.prctl.get(PR_SET_PDEATHSIG, 0)))
        return 0
    if option == PR_GET_DUMPABLE:
        return proc.prctl.get(PR_SET_DUMPABLE, 1)
    if option == PR_SET_NO_NEW_PRIVS:
        if arg2 != 1 or arg3 or arg4 or arg5:
            raise SyscallError(errno.EINVAL, "no_new_privs")
        proc.prctl[option] = 1
        return 0
    if option == PR_GET_NO_NEW_PRIVS:
        return proc.prctl.get(PR_SET_NO_NEW_PRIVS, 0)
    raise SyscallError(errno.EINVAL, f"prctl option {option}")

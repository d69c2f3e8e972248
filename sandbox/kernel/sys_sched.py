"""Priorities, scheduling policies, I/O priorities and resource usage: getpriority,
setpriority, sched_{get,set}{scheduler,param}, sched_get_priority_{max,min},
sched_rr_get_interval, ioprio_{get,set}, getrusage, times (man 2 of each).

The sandbox runs its tasks round-robin on one CPU whatever these say: the values are kept
and reported, with Linux's checks for an unprivileged process (no CAP_SYS_NICE): a lower
nice value than RLIMIT_NICE allows is EACCES, a real-time policy beyond RLIMIT_RTPRIO and
the real-time I/O class EPERM. The attributes are the process's (limits.ProcessAttrs).
"""

from __future__ import annotations

import errno
import struct

from sandbox.errors import SyscallError
from sandbox.kernel import limits
from sandbox.kernel.limits import FAIR_POLICIES, SCHED_IDLE
from sandbox.kernel.process import ThreadGroup
from sandbox.kernel.syscalls import syscall, to_int32
from sandbox.kernel.task import Task
from sandbox.mm.uaccess import copy_in, copy_out

PRIO_PROCESS, PRIO_PGRP, PRIO_USER = 0, 1, 2
MIN_NICE, MAX_NICE = -20, 19
SCHED_FIFO, SCHED_RR, SCHED_DEADLINE = 1, 2, 6
SCHED_RESET_ON_FORK = 0x4000_0000
RT_POLICIES = (SCHED_FIFO, SCHED_RR)
MAX_RT_PRIO = 100
RR_TIMESLICE_NS = 100_000_000  # RR_TIMESLICE: 100 ms
SCHED_PARAM = struct.Struct("<i")
TIMESPEC = struct.Struct("<qq")
IOPRIO_WHO_PROCESS, IOPRIO_WHO_PGRP, IOPRIO_WHO_USER = 1, 2, 3
IOPRIO_CLASS_NONE, IOPRIO_CLASS_RT, IOPRIO_CLASS_BE, IOPRIO_CLASS_IDLE = 0, 1, 2, 3
IOPRIO_CLASS_SHIFT, IOPRIO_NR_LEVELS = 13, 8
RUSAGE_SELF, RUSAGE_CHILDREN, RUSAGE_THREAD = 0, -1, 1
USER_HZ = 100  # clock ticks of times(2) (sysconf(_SC_CLK_TCK))
TMS = struct.Struct("<4q")  # struct tms: utime, stime, cutime, cstime


# -- whom a call names -----------------------------------------------------------------------

def _live(proc: Task) -> list[ThreadGroup]:
    return [g for g in proc.kernel.processes.values() if g.alive]


def _by_id(proc: Task, pid: int) -> ThreadGroup:
    """The process of thread `pid` (0: the caller's); ESRCH if there is none alive."""
    if pid == 0:
        return proc.group
    task = proc.kernel.tasks.get(pid) if pid > 0 else None
    if task is None or not task.alive:
        raise SyscallError(errno.ESRCH, f"no process {pid}")
    return task.group


def _named(proc: Task, which: int, who: int, kinds: tuple[int, int, int]) -> list[ThreadGroup]:
    """The processes of a (which, who) pair: one process, a process group or a user's
    processes (every guest process is the guest user's); EINVAL for another `which`."""
    process, pgrp, user = kinds
    if which == process:
        try:
            return [_by_id(proc, who)]
        except SyscallError:
            return []
    if which == pgrp:
        return [g for g in _live(proc) if g.pgid == (who or proc.pgid)]
    if which == user:
        return _live(proc) if who in (0, proc.kernel.identity.uid) else []
    raise SyscallError(errno.EINVAL, f"which {which}")


# -- nice values -------------------------------------------------------------------------------

def _may_nice(group: ThreadGroup, nice: int) -> bool:
    """can_nice: a nice value whose rlimit form (20 - nice) is within RLIMIT_NICE."""
    return 20 - nice <= limits.soft(group, limits.RLIMIT_NICE)


@syscall("getpriority", "which who")
def sys_getpriority(proc: Task, which: int, who: int) -> int:
    """The highest priority (lowest nice) of the processes named, as the kernel returns
    it: 20 - nice, from 1 to 40 (glibc turns it back into a nice value)."""
    targets = _named(proc, to_int32(which), to_int32(who), (PRIO_PROCESS, PRIO_PGRP, PRIO_USER))
    if not targets:
        raise SyscallError(errno.ESRCH, "no process matches")
    return max(20 - g.attrs.nice for g in targets)


@syscall("setpriority", "which who prio")
def sys_setpriority(proc: Task, which: int, who: int, prio: int) -> int:
    """Set the nice value (clamped to -20..19) of the processes named; lowering one below
    what RLIMIT_NICE allows is EACCES (kernel/sys.c set_one_prio)."""
    targets = _named(proc, to_int32(which), to_int32(who), (PRIO_PROCESS, PRIO_PGRP, PRIO_USER))
    if not targets:
        raise SyscallError(errno.ESRCH, "no process matches")
    nice = min(max(to_int32(prio), MIN_NICE), MAX_NICE)
    error = 0
    for group in targets:
        if nice < group.attrs.nice and not _may_nice(group, nice):
            error = errno.EACCES
            continue
        group.attrs.nice = nice
    if error:
        raise SyscallError(error, f"nice {nice} needs CAP_SYS_NICE")
    return 0


# -- scheduling policies ------------------------------------------------------------------------

def _sched_target(proc: Task, pid: int) -> ThreadGroup:
    pid = to_int32(pid)
    if pid < 0:
        raise SyscallError(errno.EINVAL, f"pid {pid}")
    return _by_id(proc, pid)


def _check_policy(group: ThreadGroup, policy: int, priority: int, reset_on_fork: bool) -> None:
    """__sched_setscheduler's checks, for a caller without CAP_SYS_NICE: EINVAL for a bad
    policy or priority, EPERM for what only privilege may do."""
    if policy not in FAIR_POLICIES + RT_POLICIES + (SCHED_DEADLINE,):
        raise SyscallError(errno.EINVAL, f"policy {policy}")
    if not 0 <= priority < MAX_RT_PRIO or (policy in RT_POLICIES) != (priority != 0) or policy == SCHED_DEADLINE:
        raise SyscallError(errno.EINVAL, f"priority {priority} for policy {policy}")
    attrs, rtprio = group.attrs, limits.soft(group, limits.RLIMIT_RTPRIO)
    if policy in RT_POLICIES and (policy != attrs.policy and not rtprio
                                  or priority > attrs.rt_priority and priority > rtprio):
        raise SyscallError(errno.EPERM, "a real-time policy needs CAP_SYS_NICE or RLIMIT_RTPRIO")
    if attrs.policy == SCHED_IDLE and policy != SCHED_IDLE and not _may_nice(group, attrs.nice):
        raise SyscallError(errno.EPERM, "leaving SCHED_IDLE needs RLIMIT_NICE")
    if attrs.reset_on_fork and not reset_on_fork:
        raise SyscallError(errno.EPERM, "SCHED_RESET_ON_FORK cannot be cleared")


def _read_param(proc: Task, pid: int, param: int) -> tuple[ThreadGroup, int]:
    """The target and the priority of a set call, checked in Linux's order: a NULL param or
    negative pid (EINVAL), the param's memory (EFAULT), then the target (ESRCH)."""
    if not param or to_int32(pid) < 0:
        raise SyscallError(errno.EINVAL, "param is NULL or pid negative")
    priority = SCHED_PARAM.unpack(copy_in(proc.space, param, SCHED_PARAM.size))[0]
    return _sched_target(proc, pid), priority


@syscall("sched_setscheduler", "pid policy param")
def sys_sched_setscheduler(proc: Task, pid: int, policy: int, param: int) -> int:
    policy = to_int32(policy)
    if policy < 0:
        raise SyscallError(errno.EINVAL, f"policy {policy}")
    group, priority = _read_param(proc, pid, param)
    reset = bool(policy & SCHED_RESET_ON_FORK)
    policy &= ~SCHED_RESET_ON_FORK
    _check_policy(group, policy, priority, reset)
    group.attrs.policy, group.attrs.rt_priority, group.attrs.reset_on_fork = policy, priority, reset
    return 0


@syscall("sched_setparam", "pid param")
def sys_sched_setparam(proc: Task, pid: int, param: int) -> int:
    """sched_setscheduler keeping the policy (and its reset-on-fork flag)."""
    group, priority = _read_param(proc, pid, param)
    _check_policy(group, group.attrs.policy, priority, group.attrs.reset_on_fork)
    group.attrs.rt_priority = priority
    return 0


@syscall("sched_getscheduler", "pid")
def sys_sched_getscheduler(proc: Task, pid: int) -> int:
    attrs = _sched_target(proc, pid).attrs
    return attrs.policy | (SCHED_RESET_ON_FORK if attrs.reset_on_fork else 0)


@syscall("sched_getparam", "pid param")
def sys_sched_getparam(proc: Task, pid: int, param: int) -> int:
    if not param or to_int32(pid) < 0:
        raise SyscallError(errno.EINVAL, "param is NULL or pid negative")
    copy_out(proc.space, param, SCHED_PARAM.pack(_sched_target(proc, pid).attrs.rt_priority))
    return 0


def _priority_range(policy: int) -> tuple[int, int]:
    policy = to_int32(policy)
    if policy in RT_POLICIES:
        return 1, MAX_RT_PRIO - 1
    if policy in FAIR_POLICIES + (SCHED_DEADLINE,):
        return 0, 0
    raise SyscallError(errno.EINVAL, f"policy {policy}")


@syscall("sched_get_priority_max", "policy")
def sys_sched_get_priority_max(proc: Task, policy: int) -> int:
    return _priority_range(policy)[1]


@syscall("sched_get_priority_min", "policy")
def sys_sched_get_priority_min(proc: Task, policy: int) -> int:
    return _priority_range(policy)[0]


@syscall("sched_rr_get_interval", "pid interval")
def sys_sched_rr_get_interval(proc: Task, pid: int, interval: int) -> int:
    """The round-robin time slice: 100 ms under SCHED_RR, 0 for the other policies (the
    sandbox's own slice is its watchdog's, which no policy changes)."""
    policy = _sched_target(proc, pid).attrs.policy
    ns = RR_TIMESLICE_NS if policy == SCHED_RR else 0
    copy_out(proc.space, interval, TIMESPEC.pack(ns // 10**9, ns % 10**9))
    return 0


# -- I/O priorities -----------------------------------------------------------------------------

def _check_ioprio(ioprio: int) -> None:
    """block/ioprio.c ioprio_check_cap for a caller without CAP_SYS_ADMIN or CAP_SYS_NICE."""
    klass, data = ioprio >> IOPRIO_CLASS_SHIFT & 0x7, ioprio & ((1 << IOPRIO_CLASS_SHIFT) - 1)
    if ioprio < 0 or ioprio >> 16:
        raise SyscallError(errno.EINVAL, f"ioprio {ioprio:#x}")
    if klass == IOPRIO_CLASS_RT:
        raise SyscallError(errno.EPERM, "the real-time I/O class needs CAP_SYS_ADMIN")
    if klass == IOPRIO_CLASS_BE and data >= IOPRIO_NR_LEVELS or klass == IOPRIO_CLASS_NONE and data \
            or klass > IOPRIO_CLASS_IDLE:
        raise SyscallError(errno.EINVAL, f"ioprio {ioprio:#x}")


@syscall("ioprio_set", "which who ioprio")
def sys_ioprio_set(proc: Task, which: int, who: int, ioprio: int) -> int:
    ioprio = to_int32(ioprio)
    _check_ioprio(ioprio)
    targets = _named(proc, to_int32(which), to_int32(who), (IOPRIO_WHO_PROCESS, IOPRIO_WHO_PGRP, IOPRIO_WHO_USER))
    if not targets:
        raise SyscallError(errno.ESRCH, "no process matches")
    for group in targets:
        group.attrs.ioprio = ioprio
    return 0


@syscall("ioprio_get", "which who")
def sys_ioprio_get(proc: Task, which: int, who: int) -> int:
    """The I/O priority of the process named; of several, the best (ioprio_best: the lower
    class number first, IOPRIO_CLASS_NONE counting as best-effort)."""
    targets = _named(proc, to_int32(which), to_int32(who), (IOPRIO_WHO_PROCESS, IOPRIO_WHO_PGRP, IOPRIO_WHO_USER))
    if not targets:
        raise SyscallError(errno.ESRCH, "no process matches")
    return min((g.attrs.ioprio for g in targets), key=_ioprio_rank)


def _ioprio_rank(ioprio: int) -> tuple[int, int]:
    klass = ioprio >> IOPRIO_CLASS_SHIFT or IOPRIO_CLASS_BE
    return klass, ioprio & ((1 << IOPRIO_CLASS_SHIFT) - 1)


# -- usage --------------------------------------------------------------------------------------

@syscall("getrusage", "who usage")
def sys_getrusage(proc: Task, who: int, usage: int) -> int:
    """The caller's process, its reaped children (and theirs), or the calling thread: CPU
    time as the sandbox measures it, the peak of frames held, page faults (limits.py)."""
    who = to_int32(who)
    group = proc.group
    if who not in (RUSAGE_SELF, RUSAGE_CHILDREN, RUSAGE_THREAD):
        raise SyscallError(errno.EINVAL, f"who {who}")
    limits.note_memory(group, always=True)
    limits.settle_cpu(proc)
    if who == RUSAGE_SELF:
        figures = [group.usage]
    elif who == RUSAGE_CHILDREN:
        figures = [group.children_usage]
    else:
        thread = limits.Usage()
        thread.cpu_ns, thread.maxrss_pages = proc.usage.cpu_ns, group.usage.maxrss_pages
        figures = [thread]
    copy_out(proc.space, usage, limits.pack_rusage(*figures))
    return 0


def _ticks(ns: int) -> int:
    return ns * USER_HZ // 10**9


@syscall("times", "buf")
def sys_times(proc: Task, buf: int) -> int:
    """The process's and its reaped children's CPU time in clock ticks (user time; system
    time 0, as getrusage), and the ticks since the sandbox started (man 2 times)."""
    if buf:
        group = proc.group
        limits.settle_cpu(proc)
        copy_out(proc.space, buf, TMS.pack(_ticks(group.usage.cpu_ns), 0, _ticks(group.children_usage.cpu_ns), 0))
    kernel = proc.kernel
    uptime = kernel.monotonic() - (0 if kernel.options.deterministic else kernel.boot_time)
    return _ticks(int(uptime * 1e9)) + 1  # counted from 1: never 0, nor (clock_t) -1


"""Resource limits and resource usage (man 2 getrlimit, man 2 getrusage).

Owns: the table of a process's limits, `ThreadGroup.rlimits` (resource -> (soft, hard),
every resource present from the first process on: /proc/PID/limits prints it as is), the
rules for changing them (prlimit64's EINVAL and EPERM), and the checks that make the ones
the sandbox controls hold:

- RLIMIT_NOFILE: the descriptor table's `limit` is the soft limit (files.py: EMFILE, and
  dup2/F_DUPFD past it EBADF/EINVAL);
- RLIMIT_NPROC: clone's room (sys_process.process_limit, under --max-processes);
- RLIMIT_FSIZE: `file_room`, the host-file write path's hook (SIGXFSZ and EFBIG);
- RLIMIT_STACK: stack growth reads the soft limit through the space's `stack_limit`
  (fault.py grow_stack; the kernel's watch_faults sets it);
- RLIMIT_AS and RLIMIT_DATA: `check_growth`, before mmap, brk and mremap add memory;
- RLIMIT_CPU: `charge_cpu`, after each stretch on the CPU (SIGXCPU, then SIGKILL);
- RLIMIT_CORE: whether a fatal signal "dumps core" (the WCOREDUMP bit; no file is written);
- RLIMIT_MEMLOCK: mlock's bound (sys_memctl.py).

Usage: each task and process keeps a `Usage` (CPU time as the sandbox measures it, the
most frames it held); wait4 adds a reaped child's into its parent's `children_usage`.

CPU time is the host thread's CPU time while the task held the CPU (its instructions and
the system calls the kernel ran for it); under --deterministic, 10 ns per instruction,
counted once a process sets a CPU limit (or with --max-instructions), else nothing, so
that runs stay identical.
"""

from __future__ import annotations

import errno
import signal
import struct
import time
from typing import TYPE_CHECKING

from sandbox.abi import SI_KERNEL, SI_USER
from sandbox.errors import SyscallError
from sandbox.kernel.sigframe import pack_siginfo
from sandbox.mm.fault import faults_taken

if TYPE_CHECKING:
    from sandbox.kernel.kernel import Kernel
    from sandbox.kernel.options import Options
    from sandbox.kernel.process import ThreadGroup
    from sandbox.kernel.task import Task
    from sandbox.mm.aspace import AddressSpace

# Resources (include/uapi/asm-generic/resource.h).
RLIMIT_CPU, RLIMIT_FSIZE, RLIMIT_DATA, RLIMIT_STACK, RLIMIT_CORE = 0, 1, 2, 3, 4
RLIMIT_RSS, RLIMIT_NPROC, RLIMIT_NOFILE, RLIMIT_MEMLOCK, RLIMIT_AS = 5, 6, 7, 8, 9
RLIMIT_LOCKS, RLIMIT_SIGPENDING, RLIMIT_MSGQUEUE, RLIMIT_NICE = 10, 11, 12, 13
RLIMIT_RTPRIO, RLIMIT_RTTIME = 14, 15
RLIM_NLIMITS = 16
RLIM_INFINITY = (1 << 64) - 1

STACK_DEFAULT = 8 << 20  # _STK_LIM
MLOCK_DEFAULT = 8 << 20  # MLOCK_LIMIT (Linux 5.16 on)
MQ_BYTES_MAX = 819200  # MQ_BYTES_MAX
SIGPENDING_DEFAULT = 63_434  # what a 8 GiB machine's max_threads / 2 gives
NR_OPEN = 1 << 20  # fs/file.c sysctl_nr_open: no RLIMIT_NOFILE above it
NS_PER_SEC = 10**9
#: Under --deterministic, the CPU time one instruction counts for (the scheduler takes its
#: quantum of a million instructions for about 10 ms).
DETERMINISTIC_NS_PER_INSTRUCTION = 10

#: Signals whose default action is "core" (man 7 signal): the wait status says so
#: (WCOREDUMP) when RLIMIT_CORE's soft limit allows a dump and the process is dumpable.
CORE_SIGNALS = frozenset({signal.SIGQUIT, signal.SIGILL, signal.SIGABRT, signal.SIGFPE, signal.SIGSEGV,
                          signal.SIGBUS, signal.SIGSYS, signal.SIGTRAP, signal.SIGXCPU, signal.SIGXFSZ})
WCOREFLAG = 0x80
MIN_COREDUMP = 4096  # ELF_EXEC_PAGESIZE: a smaller RLIMIT_CORE dumps nothing
PR_SET_DUMPABLE = 4  # prctl's key for dumpability in ThreadGroup.prctl
SAMPLE_FAULTS_MIN = 64  # faults between two measures of a process's resident size


def default_rlimits(options: Options) -> dict[int, tuple[int, int]]:
    """The first process's limits: Linux's defaults (INIT_RLIMITS), with the descriptor and
    process caps of the sandbox as the hard limits it cannot raise."""
    inf = (RLIM_INFINITY, RLIM_INFINITY)
    nproc = options.max_processes if options.max_processes is not None else RLIM_INFINITY
    files = min(options.max_open_files, NR_OPEN)
    limits = dict.fromkeys(range(RLIM_NLIMITS), inf)
    limits.update({
        RLIMIT_STACK: (STACK_DEFAULT, RLIM_INFINITY),
        RLIMIT_CORE: (0, RLIM_INFINITY),
        RLIMIT_NPROC: (nproc, nproc),
        RLIMIT_NOFILE: (files, files),
        RLIMIT_MEMLOCK: (MLOCK_DEFAULT, MLOCK_DEFAULT),
        RLIMIT_SIGPENDING: (SIGPENDING_DEFAULT, SIGPENDING_DEFAULT),
        RLIMIT_MSGQUEUE: (MQ_BYTES_MAX, MQ_BYTES_MAX),
        RLIMIT_NICE: (0, 0),
        RLIMIT_RTPRIO: (0, 0),
    })
    return limits


def soft(group: ThreadGroup | Task, resource: int) -> int:
    """The soft limit of `resource` (RLIM_INFINITY if none)."""
    return group.rlimits.get(resource, (RLIM_INFINITY, RLIM_INFINITY))[0]


def get_limit(group: ThreadGroup, resource: int) -> tuple[int, int]:
    """(soft, hard) of `resource`; EINVAL for a resource Linux does not have."""
    if not 0 <= resource < RLIM_NLIMITS:
        raise SyscallError(errno.EINVAL, f"resource {resource}")
    return group.rlimits.get(resource, (RLIM_INFINITY, RLIM_INFINITY))


def set_limit(group: ThreadGroup, resource: int, new: tuple[int, int]) -> None:
    """Change a limit as an unprivileged process may (kernel/sys.c do_prlimit): soft above
    hard is EINVAL, a higher hard limit EPERM; then make the sandbox hold it."""
    old_hard = get_limit(group, resource)[1]
    cur, high = new
    if cur > high:
        raise SyscallError(errno.EINVAL, f"soft limit {cur} above hard limit {high}")
    if high > old_hard:
        raise SyscallError(errno.EPERM, f"raising the hard limit to {high} needs CAP_SYS_RESOURCE")
    if resource == RLIMIT_NOFILE and high > NR_OPEN:
        raise SyscallError(errno.EPERM, f"{high} descriptors is above nr_open")
    group.rlimits[resource] = (cur, high)
    if resource == RLIMIT_CPU and cur != RLIM_INFINITY and group.kernel.options.deterministic:
        count_instructions(group.kernel)
    if resource == RLIMIT_NOFILE:
        group.files.limit = min(cur, NR_OPEN)


# -- scheduling and other per-process attributes ---------------------------------------------

SCHED_OTHER, SCHED_BATCH, SCHED_IDLE = 0, 3, 5
FAIR_POLICIES = (SCHED_OTHER, SCHED_BATCH, SCHED_IDLE)


class ProcessAttrs:
    """What getpriority, sched_*, ioprio_*, personality, membarrier and mlock keep about a
    process (Linux keeps most per thread; here the process's threads share them). A fork
    child gets a copy (`for_child`): memory locks and membarrier registrations are of the
    parent's memory and stay with it (man 2 fork)."""

    __slots__ = ("nice", "policy", "rt_priority", "reset_on_fork", "ioprio", "personality", "membarrier",
                 "locked", "lock_future")

    def __init__(self) -> None:
        self.nice = 0
        self.policy = SCHED_OTHER
        self.rt_priority = 0
        self.reset_on_fork = False
        self.ioprio = 0  # IOPRIO_CLASS_NONE: follows the nice value
        self.personality = 0  # PER_LINUX
        self.membarrier = 0  # the MEMBARRIER_CMD_REGISTER_* commands done
        #: mlock'ed ranges [start, end), sorted and disjoint, and the space they belong
        #: to (an execve's new memory holds none); mlockall(MCL_FUTURE).
        self.locked: tuple[object, list[tuple[int, int]]] = (None, [])
        self.lock_future = False

    def for_child(self) -> ProcessAttrs:
        """The attributes a fork child starts with. SCHED_RESET_ON_FORK (not inherited
        itself) turns a real-time policy into SCHED_OTHER and a negative nice value into
        0 (kernel/sched/core.c sched_fork)."""
        child = ProcessAttrs()
        child.nice, child.ioprio, child.personality = self.nice, self.ioprio, self.personality
        child.policy, child.rt_priority = self.policy, self.rt_priority
        if self.reset_on_fork:
            if self.policy not in FAIR_POLICIES:
                child.policy, child.rt_priority = SCHED_OTHER, 0
            child.nice = max(child.nice, 0)
        return child


# -- usage ----------------------------------------------------------------------------------

class Usage:
    """What a task or process used: CPU time, the most frames it held at once and its
    page faults; `since` is when the task got the CPU (host thread CPU ns, instructions)."""

    __slots__ = ("cpu_ns", "maxrss_pages", "minflt", "majflt", "since")

    def __init__(self) -> None:
        self.cpu_ns = 0
        self.maxrss_pages = 0
        self.minflt = 0
        self.majflt = 0  # no fault waits for a disk here: always 0
        self.since: tuple[int, int] | None = None

    def add(self, other: Usage) -> None:
        """A reaped child's figures into its parent's children's (maxrss: the largest)."""
        self.cpu_ns += other.cpu_ns
        self.minflt += other.minflt
        self.majflt += other.majflt
        self.maxrss_pages = max(self.maxrss_pages, other.maxrss_pages)


def resident_pages(space: AddressSpace | None) -> int:
    """The 4 KiB pages `space` maps now (a 2 MiB leaf counts 512)."""
    if space is None:
        return 0
    return space.pagetable.resident_pages()


def note_memory(group: ThreadGroup, always: bool = False) -> None:
    """Bring the process's fault count and peak resident size (ru_maxrss) up to date. Only
    a fault makes a process hold more frames, and measuring walks its page tables: after a
    stretch on the CPU it is measured again only once enough faults were taken since (a
    sixteenth of its size); getrusage and exit measure `always`."""
    space, usage = group.space, group.usage
    if space is None:
        return
    faults = faults_taken(space.fault_counts)
    if always or faults - usage.minflt >= max(SAMPLE_FAULTS_MIN, usage.maxrss_pages // 16):
        usage.minflt = faults
        usage.maxrss_pages = max(usage.maxrss_pages, resident_pages(space))


def start_cpu(task: Task) -> None:
    """The task gets the CPU: remember the host thread's CPU clock and the instruction
    count now. The scheduler calls this on every switch to a task."""
    task.usage.since = (time.thread_time_ns(), task.kernel.instructions)


def charge_cpu(kernel: Kernel, task: Task) -> None:
    """The task leaves the CPU: add the time it ran to it and its process, and act on
    RLIMIT_CPU. The scheduler calls this after every stretch a task ran."""
    since, task.usage.since = task.usage.since, None
    if since is None:
        return
    if kernel.options.deterministic:
        spent = (kernel.instructions - since[1]) * DETERMINISTIC_NS_PER_INSTRUCTION
    else:
        spent = time.thread_time_ns() - since[0]
    task.usage.cpu_ns += spent
    group = task.group
    group.usage.cpu_ns += spent
    note_memory(group)
    if group.alive and soft(group, RLIMIT_CPU) != RLIM_INFINITY:
        enforce_cpu_limit(kernel, group)


def count_instructions(kernel: Kernel) -> None:
    """--deterministic: CPU time is instructions, so count them from now on (once; with
    --max-instructions they are counted already), and stop the CPU at the block where the
    running process reaches its CPU limit, so that its signal comes at the same
    instruction on every run."""
    if kernel.options.max_instructions is not None or getattr(kernel, "cpu_counter", None) is not None:
        return

    def report(executed: int) -> None:
        kernel.instructions += executed
        task = kernel.current
        if task is not None and task.usage.since is not None and _past_cpu_limit(task):
            kernel.machine.stop()

    kernel.cpu_counter = report  # (an attribute of this module's: the counter installed)
    kernel.machine.count_instructions(report)
    kernel.machine.code_changed()  # code translated before now has no call to the counter


def _past_cpu_limit(task: Task) -> bool:
    """Whether the running task's process has reached its RLIMIT_CPU soft limit."""
    cur = soft(task.group, RLIMIT_CPU)
    ran = (task.kernel.instructions - task.usage.since[1]) * DETERMINISTIC_NS_PER_INSTRUCTION
    return cur != RLIM_INFINITY and task.group.usage.cpu_ns + ran >= cur * NS_PER_SEC


def settle_cpu(task: Task) -> None:
    """Charge the running task's time so far (getrusage, times read it up to now)."""
    charge_cpu(task.kernel, task)
    start_cpu(task)


def enforce_cpu_limit(kernel: Kernel, group: ThreadGroup) -> None:
    """SIGKILL at the hard limit; SIGXCPU at the soft limit, which then moves up a second
    (while below the hard one), so that the signal comes again each second (Linux's
    check_process_timers; man 2 getrlimit, RLIMIT_CPU)."""
    cur, high = group.rlimits[RLIMIT_CPU]
    used = group.usage.cpu_ns
    if high != RLIM_INFINITY and used >= high * NS_PER_SEC:
        kernel.kill(group, signal.SIGKILL, f"killed by SIGKILL: CPU time limit of {high} s reached (RLIMIT_CPU)")
    elif used >= cur * NS_PER_SEC:
        if cur < high:
            group.rlimits[RLIMIT_CPU] = (cur + 1, high)
        from sandbox.kernel import signal_delivery  # (it imports process.py, which imports this)

        signal_delivery.send(kernel, group, signal.SIGXCPU, pack_siginfo(signal.SIGXCPU, SI_KERNEL))


def reap_child(parent: ThreadGroup, child: ThreadGroup) -> None:
    """wait4 collected `child`: its usage and its own children's count as the parent's
    children's (man 2 getrusage, RUSAGE_CHILDREN)."""
    parent.children_usage.add(child.usage)
    parent.children_usage.add(child.children_usage)


# -- the limits the sandbox holds -------------------------------------------------------------

def file_room(kernel: Kernel, position: int, n: int) -> int:
    """How many of `n` bytes written at `position` RLIMIT_FSIZE allows the current process
    (fs/read_write.c generic_write_check_limits): all, those below the limit, or none:
    then SIGXFSZ goes to the writer and the write fails with EFBIG."""
    task = kernel.current
    if task is None:
        return n
    limit = soft(task, RLIMIT_FSIZE)
    if limit == RLIM_INFINITY:
        return n
    if position >= limit:
        if n or position > limit:
            _send_xfsz(kernel, task)
            raise SyscallError(errno.EFBIG, f"offset {position} is at RLIMIT_FSIZE ({limit} bytes)")
        return 0
    return min(n, limit - position)


def _send_xfsz(kernel: Kernel, task: Task) -> None:
    """SIGXFSZ to the writing thread, as from itself (send_sig(SIGXFSZ, current, 0))."""
    from sandbox.kernel import signal_delivery  # (it imports process.py, which imports this)

    info = pack_siginfo(signal.SIGXFSZ, SI_USER, pid=task.pid, uid=kernel.identity.uid)
    signal_delivery.send_to_task(kernel, task, signal.SIGXFSZ, info)


def is_data(prot: int, shared: bool, stack: bool) -> bool:
    """Memory RLIMIT_DATA counts: private and writable, not a stack (mm/internal.h
    is_data_mapping)."""
    return bool(prot & 2) and not shared and not stack


def mapped_bytes(space: AddressSpace) -> tuple[int, int]:
    """The bytes `space` maps in all (total_vm) and those RLIMIT_DATA counts (data_vm)."""
    total = data = 0
    for region in space.regions:
        total += region.size
        if is_data(region.prot, region.shared, bool(region.flags & 2)):
            data += region.size
    return total, data


def check_growth(proc: Task, grow: int, data: bool, freed: int = 0, freed_data: int = 0) -> None:
    """ENOMEM if adding `grow` bytes (less `freed` that the same call unmaps) would pass
    RLIMIT_AS, or RLIMIT_DATA for `data` memory (mm/mmap.c may_expand_vm)."""
    as_limit, data_limit = soft(proc, RLIMIT_AS), soft(proc, RLIMIT_DATA)
    if as_limit == RLIM_INFINITY and (data_limit == RLIM_INFINITY or not data):
        return
    total, data_vm = mapped_bytes(proc.space)
    if total - freed + grow > as_limit:
        raise SyscallError(errno.ENOMEM, f"{grow} more bytes would pass RLIMIT_AS ({as_limit})")
    if data and data_vm - freed_data + grow > data_limit:
        raise SyscallError(errno.ENOMEM, f"{grow} more bytes would pass RLIMIT_DATA ({data_limit})")


def dumps_core(group: ThreadGroup, signo: int) -> bool:
    """Whether death by `signo` dumps core: a core signal, RLIMIT_CORE of at least a page
    (binfmt_elf's min_coredump) and a dumpable process (fs/coredump.c do_coredump). The
    sandbox writes no file."""
    return signo in CORE_SIGNALS and soft(group, RLIMIT_CORE) >= MIN_COREDUMP \
        and group.prctl.get(PR_SET_DUMPABLE, 1) != 0


# -- struct rusage ------------------------------------------------------------------------------

#: struct rusage: ru_utime and ru_stime (timevals), then 14 longs from ru_maxrss on.
RUSAGE = struct.Struct("<4q14q")
PAGE_KIB = 4


def pack_rusage(*usages: Usage) -> bytes:
    """The struct rusage of `usages` together: CPU time as user time (the sandbox does not
    split user from system time), ru_maxrss in KiB, the page faults as minor faults."""
    cpu_ns = sum(u.cpu_ns for u in usages)
    maxrss = max((u.maxrss_pages for u in usages), default=0) * PAGE_KIB
    minflt, majflt = sum(u.minflt for u in usages), sum(u.majflt for u in usages)
    micros = cpu_ns // 1000
    return RUSAGE.pack(micros // 10**6, micros % 10**6, 0, 0, maxrss, 0, 0, 0, minflt, majflt, *(0,) * 8)

"""The text of the /proc/<pid>/ files, generated from one process's state.

Formats follow Linux's fs/proc (man 5 proc): maps as show_map_vma prints it, stat as
do_task_stat, status as proc_pid_status, limits as proc_pid_limits, fdinfo as seq_show,
mountinfo as show_mountinfo. A process that has ended (a zombie) has no memory and no
descriptors any more: its memory files are empty, as on Linux.
"""

from __future__ import annotations

import errno
import os
import re
import stat as st
from typing import TYPE_CHECKING

from sandbox.errors import SyscallError
from sandbox.kernel import procfs_mem
from sandbox.kernel.devtty import terminal_path
from sandbox.kernel.process import State
from sandbox.mm.fault import faults_taken
from sandbox.mm.vma import PROT_EXEC, PROT_WRITE, RegionFlag
from sandbox.trace import prot_string

if TYPE_CHECKING:
    from sandbox.kernel.files import FdEntry, File
    from sandbox.kernel.kernel import Kernel
    from sandbox.kernel.process import ThreadGroup
    from sandbox.kernel.task import Task

#: /proc/PID/maps pads the path to this column (fs/proc/task_mmu.c, show_vma_header_prefix).
MAPS_PATH_COLUMN = 73
MAPS_LINE_MIN = len("00400000-00401000 r--p 00000000 00:00 0\n")  # the shortest maps line
SMAPS_BLOCK_MIN = 600  # bytes of one region's smaps block, at the least
RLIM_INFINITY = (1 << 64) - 1
O_LARGEFILE = 0o100000  # open(2) on 64-bit sets it on every file it opens
O_CLOEXEC = 0o2000000
OOM_SCORE_ADJ_MIN, OOM_SCORE_ADJ_MAX = -1000, 1000
#: What a host stream on a character device shows, by major number (devices.txt).
HOST_DEVICES = {136: "/dev/pts/0", 4: "/dev/tty1", 5: "/dev/tty", 1: "/dev/null"}

# -- maps and smaps -------------------------------------------------------------------------


def maps_header(region) -> str:
    """One maps line: range, permissions, offset, device, inode, and the name at column 73."""
    perms = prot_string(region.prot) + ("s" if region.shared else "p")
    offset = region.offset if region.file is not None else 0
    head = f"{region.start:08x}-{region.end:08x} {perms} {offset:08x} 00:00 0"
    return (f"{head:<{MAPS_PATH_COLUMN - 1}} {region.name}" if region.name else head) + "\n"


def rollup_header(start: int, end: int) -> str:
    """smaps_rollup's one line spanning every region (show_smaps_rollup)."""
    return f"{f'{start:08x}-{end:08x} ---p 00000000 00:00 0':<{MAPS_PATH_COLUMN - 1}} [rollup]\n"


def maps(group: ThreadGroup) -> str:
    """The address space in /proc/PID/maps format (empty once the process has ended)."""
    if group.space is None:
        return ""
    return "".join(maps_header(r) for r in group.space.regions)


# -- stat and status ------------------------------------------------------------------------


def comm(task: Task) -> str:
    return task.comm or os.path.basename(task.exe)[:15]


def state_of(task: Task) -> tuple[str, str]:
    """The state letter and word (fs/proc/array.c task_state_array)."""
    if not task.group.alive or task.state is State.ZOMBIE:
        return "Z", "zombie"
    if task.group.stop_signal:  # job control: every thread of a stopped process
        return "T", "stopped"
    if task.blocked is not None:
        return "S", "sleeping"
    return "R", "running"


def _threads(group: ThreadGroup) -> int:
    return sum(1 for t in group.tasks if t.alive)


def _resident_pages(group: ThreadGroup) -> int:
    if group.space is None:
        return 0
    return group.space.pagetable.resident_pages()


def _vsize(group: ThreadGroup) -> int:
    return sum(r.size for r in group.space.regions) if group.space is not None else 0


def stat(task: Task, pid: int, start_ticks: int) -> str:
    """/proc/PID/stat (of the process, `pid` its own) or /proc/PID/task/TID/stat (of one
    thread): 52 fields; the ones the sandbox knows are real, the rest 0."""
    group = task.group
    faults = faults_taken(group.space.fault_counts) if group.space is not None else 0
    fields = [pid, f"({comm(task)})", state_of(task)[0], group.ppid, group.pgid, group.sid, 0, -1, 0x400000,
              faults, 0, 0, 0, 0, 0, 0, 0, 20, 0, _threads(group), 0, start_ticks, _vsize(group),
              _resident_pages(group), RLIM_INFINITY, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0, 0, 0,
              0, 0, 0, 0, 0, 0]
    return " ".join(str(f) for f in fields) + "\n"


def _signal_set(signals) -> str:
    """A set of signal numbers as status prints it: 64 bits in hex."""
    return f"{sum(1 << (s - 1) for s in signals if 0 < s <= 64):016x}"


def _handled(group: ThreadGroup, handler: int | None) -> list[int]:
    """Signals whose action is `handler` (1 = SIG_IGN), or, with None, a function."""
    found = []
    for signo, action in group.sig_actions.items():
        address = int.from_bytes(action[:8], "little") if len(action) >= 8 else 0
        if (handler is None and address > 1) or address == handler:
            found.append(signo)
    return found


def _memory_status(group: ThreadGroup, kernel: Kernel) -> list[str]:
    """The Vm* and Rss* lines of status (task_mem)."""
    space = group.space
    if space is None:
        return []
    regions = list(space.regions)
    kinds = procfs_mem.frame_kinds(kernel)
    anon = file = shmem = 0
    for _, mapping in space.pagetable.iter_leaves():
        pfn = mapping.pa >> 12
        if pfn in kinds.shmem:
            shmem += mapping.size
        elif pfn in kinds.cached:
            file += mapping.size
        else:
            anon += mapping.size
    size = sum(r.size for r in regions)
    stack = sum(r.size for r in regions if r.flags & RegionFlag.GROWSDOWN or r.name == "[stack]")
    data = sum(r.size for r in regions if r.prot & PROT_WRITE and not r.shared) - stack
    exe = sum(r.size for r in regions if r.prot & PROT_EXEC and r.file is not None and r.name == group.exe_guest)
    libs = sum(r.size for r in regions if r.prot & PROT_EXEC and r.file is not None) - exe
    rows = [("VmPeak", size), ("VmSize", size), ("VmLck", 0), ("VmPin", 0), ("VmHWM", anon + file + shmem),
            ("VmRSS", anon + file + shmem), ("RssAnon", anon), ("RssFile", file), ("RssShmem", shmem),
            ("VmData", data), ("VmStk", stack), ("VmExe", exe), ("VmLib", libs),
            ("VmPTE", space.pagetable.table_pages * 4096), ("VmSwap", 0)]
    return [f"{name}:\t{value >> 10:8d} kB" for name, value in rows]


def status(task: Task, pid: int) -> str:
    """/proc/PID/status, or a thread's: `pid` is the process's id or the thread's."""
    group, kernel = task.group, task.kernel
    uid, gid = kernel.identity.uid, kernel.identity.gid
    letter, word = state_of(task)
    lines = [f"Name:\t{comm(task)}", f"Umask:\t{group.umask:04o}", f"State:\t{letter} ({word})",
             f"Tgid:\t{group.pid}", "Ngid:\t0", f"Pid:\t{pid}", f"PPid:\t{group.ppid}", "TracerPid:\t0",
             f"Uid:\t{uid}\t{uid}\t{uid}\t{uid}", f"Gid:\t{gid}\t{gid}\t{gid}\t{gid}",
             f"FDSize:\t{group.files.limit}", f"Groups:\t{gid} ", f"NStgid:\t{group.pid}", f"NSpid:\t{pid}",
             f"NSpgid:\t{group.pgid}", f"NSsid:\t{group.sid}", *_memory_status(group, kernel),
             f"Threads:\t{_threads(group)}", f"SigQ:\t{len(group.pending)}/{procfs_limits(task)[RLIMIT_SIGPENDING][0]}",
             f"SigPnd:\t{_signal_set(task.pending)}", f"ShdPnd:\t{_signal_set(group.pending)}",
             f"SigBlk:\t{task.sig_mask:016x}", f"SigIgn:\t{_signal_set(_handled(group, 1))}",
             f"SigCgt:\t{_signal_set(_handled(group, None))}", "CapInh:\t0000000000000000",
             "CapPrm:\t0000000000000000", "CapEff:\t0000000000000000", "CapBnd:\t000001ffffffffff",
             "CapAmb:\t0000000000000000", "NoNewPrivs:\t0", "Seccomp:\t0", "Seccomp_filters:\t0",
             f"Cpus_allowed:\t{task.affinity:x}", f"Cpus_allowed_list:\t{_cpu_list(task.affinity)}",
             "Mems_allowed:\t1", "Mems_allowed_list:\t0", "voluntary_ctxt_switches:\t0",
             "nonvoluntary_ctxt_switches:\t0"]
    return "\n".join(lines) + "\n"


def _cpu_list(mask: int) -> str:
    """A CPU mask as a list of ranges ("0-3,5")."""
    cpus = [n for n in range(mask.bit_length()) if mask >> n & 1]
    ranges: list[list[int]] = []
    for n in cpus:
        if ranges and ranges[-1][1] == n - 1:
            ranges[-1][1] = n
        else:
            ranges.append([n, n])
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in ranges)


# -- limits -------------------------------------------------------------------------------

#: proc_pid_limits' rows, by resource number (include/uapi/asm-generic/resource.h).
LIMIT_NAMES = (("Max cpu time", "seconds"), ("Max file size", "bytes"), ("Max data size", "bytes"),
               ("Max stack size", "bytes"), ("Max core file size", "bytes"), ("Max resident set", "bytes"),
               ("Max processes", "processes"), ("Max open files", "files"), ("Max locked memory", "bytes"),
               ("Max address space", "bytes"), ("Max file locks", "locks"), ("Max pending signals", "signals"),
               ("Max msgqueue size", "bytes"), ("Max nice priority", ""), ("Max realtime priority", ""),
               ("Max realtime timeout", "us"))
RLIMIT_STACK, RLIMIT_CORE, RLIMIT_NPROC, RLIMIT_NOFILE, RLIMIT_MEMLOCK, RLIMIT_SIGPENDING, RLIMIT_MSGQUEUE = (
    3, 4, 6, 7, 8, 11, 12)
SIGPENDING_DEFAULT = 15669  # what Linux derives for a small machine (max_threads / 2)


def default_limits(task: Task) -> dict[int, tuple[int, int]]:
    """The limits a process has until it changes them: Linux's defaults (INIT_RLIMITS) with
    the sandbox's own caps (descriptors, processes)."""
    inf = (RLIM_INFINITY, RLIM_INFINITY)
    nproc = task.kernel.options.max_processes
    limits = dict.fromkeys(range(len(LIMIT_NAMES)), inf)
    limits.update({RLIMIT_STACK: (8 << 20, RLIM_INFINITY), RLIMIT_CORE: (0, RLIM_INFINITY),
                   RLIMIT_NOFILE: (task.files.limit, task.files.limit), RLIMIT_MEMLOCK: (8 << 20, 8 << 20),
                   RLIMIT_SIGPENDING: (SIGPENDING_DEFAULT, SIGPENDING_DEFAULT),
                   RLIMIT_MSGQUEUE: (819200, 819200), 13: (0, 0), 14: (0, 0)})
    if nproc is not None:
        limits[RLIMIT_NPROC] = (nproc, nproc)
    return limits


def procfs_limits(task: Task) -> dict[int, tuple[int, int]]:
    """The process's limits: `rlimits` (resource -> (soft, hard)) over the defaults."""
    return {**default_limits(task), **task.rlimits}


def limits(task: Task) -> str:
    """/proc/PID/limits (fs/proc/base.c proc_pid_limits)."""
    lines = [f"{'Limit':<25} {'Soft Limit':<20} {'Hard Limit':<20} {'Units':<10}\n"]
    for resource, (soft, hard) in sorted(procfs_limits(task).items()):
        if resource >= len(LIMIT_NAMES):
            continue
        name, unit = LIMIT_NAMES[resource]
        values = ["unlimited" if v == RLIM_INFINITY else str(v) for v in (soft, hard)]
        lines.append(f"{name:<25} {values[0]:<20} {values[1]:<20} " + (f"{unit:<10}" if unit else "") + "\n")
    return "".join(lines)


# -- descriptors ----------------------------------------------------------------------------


def descriptors(group: ThreadGroup) -> list[tuple[int, FdEntry]]:
    """The open descriptors of a process, by number (none once it has ended)."""
    if not group.alive:
        return []
    return sorted(group.files._fds.items())  # the table's own map: read here, never changed


def fd_target(file: File) -> str:
    """What /proc/PID/fd/N links to: a path for a file of the view, else the kind of object
    and its inode ("pipe:[N]", "socket:[N]"), or "anon_inode:[name]" (fs/d_path.c)."""
    own = getattr(file, "proc_link", None)
    if own is not None:
        return own
    name = getattr(file, "guest", None) or file.name
    if name.startswith(("/", "anon_inode:")):  # a path, or an event file's own name
        return name
    try:
        info = file.stat()
    except SyscallError:
        info = None
    pipe = getattr(file, "pipe", None)
    if pipe is not None:
        return f"pipe:[{pipe.ino}]"
    if info is not None and st.S_ISFIFO(info.mode):
        return f"pipe:[{info.ino}]"
    if info is not None and st.S_ISSOCK(info.mode):
        return f"socket:[{info.ino}]"
    if info is not None and st.S_ISCHR(info.mode):  # a host stream on a terminal or device
        return terminal_path(info.rdev) or HOST_DEVICES.get(os.major(info.rdev),
                                                              f"/dev/char/{os.major(info.rdev)}:{os.minor(info.rdev)}")
    if name in ("stdin", "stdout", "stderr"):  # a host stream on a host file: no path in the view
        return f"anon_inode:[host {name}]"
    return f"anon_inode:{name if name.startswith('[') else f'[{name}]'}"


def fdinfo(entry: FdEntry, mnt_id: int) -> str:
    """/proc/PID/fdinfo/N: position, flags in octal (O_CLOEXEC included), mount id, inode."""
    file = entry.file
    try:
        pos = file.seek(0, os.SEEK_CUR) if not getattr(file, "pipe", None) else 0
    except SyscallError:
        pos = 0
    flags = file.flags | (O_CLOEXEC if entry.cloexec else 0)
    if fd_target(file).startswith("/"):
        flags |= O_LARGEFILE
    try:
        ino = file.stat().ino
    except SyscallError:
        ino = 0
    return f"pos:\t{pos}\nflags:\t0{flags:o}\nmnt_id:\t{mnt_id}\nino:\t{ino}\n"


# -- oom ------------------------------------------------------------------------------------


def oom_score(group: ThreadGroup, kernel: Kernel, adj: int) -> str:
    """/proc/PID/oom_score: what Linux's oom_badness gives (resident pages and page tables,
    as thousandths of RAM, moved by oom_score_adj) scaled to 0..2000 (proc_oom_score)."""
    if group.space is None:
        return "0\n"
    total = kernel.machine.frames.nframes
    points = _resident_pages(group) + group.space.pagetable.table_pages
    badness = points + adj * total // 1000
    return f"{max(0, min(2000, 1000 + badness * 1000 // total))}\n"


INT_MIN, INT_MAX = -(1 << 31), (1 << 31) - 1
#: oom_score_adj_write reads at most this many bytes less one (fs/proc/base.c PROC_NUMBUF).
PROC_NUMBUF = 13
#: What kstrtoint(s, 0) accepts: a sign, then hex (0x), octal (leading 0) or decimal.
_KSTRTOINT = re.compile(rb"([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")


def parse_oom_score_adj(data: bytes) -> int:
    """The value a write to oom_score_adj sets: its first PROC_NUMBUF - 1 bytes, stripped,
    read as kstrtoint with base 0 does; EINVAL for anything else or outside -1000..1000."""
    text = data[: PROC_NUMBUF - 1].strip()
    match = _KSTRTOINT.fullmatch(text)
    if match is None:
        raise SyscallError(errno.EINVAL, f"oom_score_adj {text!r}")
    sign, digits = match.groups()
    base = 16 if digits[1:2] in (b"x", b"X") else 8 if digits.startswith(b"0") else 10
    value = -int(digits, base) if sign == b"-" else int(digits, base)
    if not INT_MIN <= value <= INT_MAX:
        raise SyscallError(errno.ERANGE, f"oom_score_adj {text!r} is no int")
    if not OOM_SCORE_ADJ_MIN <= value <= OOM_SCORE_ADJ_MAX:
        raise SyscallError(errno.EINVAL, f"oom_score_adj {value} out of range")
    return value

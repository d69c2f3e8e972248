"""The /proc/<pid> files the sandbox serves, generated from the kernel's own state.

Formats follow Linux's fs/proc (man 5 proc): maps as show_map_vma prints it, stat as
do_task_stat, status as proc_pid_status (the fields programs commonly read).

What an open /proc file holds on the host is bounded: cmdline and environ hold nothing, each
read takes the bytes from the process's own memory between the addresses where execve put
the strings (Linux's mm->arg_start/env_start, `proc_pid_cmdline_read`, `environ_read`);
the others are one snapshot taken at open, charged to the sandbox-wide /proc budget while a
descriptor names it (ENOMEM past it, as a kernel out of memory for seq_file buffers).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Protocol

from sandbox.errors import SyscallError
from sandbox.kernel.vfs import Synthetic
from sandbox.mm.fault import faults_taken
from sandbox.mm.uaccess import copy_in
from sandbox.trace import prot_string

if TYPE_CHECKING:
    from sandbox.kernel.accounting import Budget
    from sandbox.kernel.task import Task

#: /proc/PID/maps pads the path to this column (fs/proc/task_mmu.c, show_vma_header_prefix).
MAPS_PATH_COLUMN = 73
MAPS_LINE_MIN = len("00400000-00401000 r--p 00000000 00:00 0\n")  # the shortest maps line
ENTRIES = ("maps", "stat", "status", "cmdline", "environ", "comm")


def entries(exe_guest_path: str) -> dict[str, Synthetic]:
    """The names in /proc/<pid>/, with exe as a symlink to the program's guest path."""
    table = {name: Synthetic("file", name) for name in ENTRIES}
    table["exe"] = Synthetic("link", exe_guest_path, 0o777)
    return table


def maps(proc: Task) -> bytes:
    """The address space in /proc/PID/maps format."""
    lines = []
    for r in proc.space.regions:
        perms = prot_string(r.prot) + ("s" if r.shared else "p")
        offset = r.offset if r.file is not None else 0
        head = f"{r.start:08x}-{r.end:08x} {perms} {offset:08x} 00:00 0"
        name = r.name
        lines.append(f"{head:<{MAPS_PATH_COLUMN - 1}} {name}" if name else head)
    return os.fsencode("\n".join(lines) + "\n")


def comm(proc: Task) -> str:
    return proc.comm or os.path.basename(proc.exe)[:15]


def stat(proc: Task, pid: int) -> bytes:
    """/proc/PID/stat (of the process, `pid` its own) or /proc/PID/task/TID/stat (of one
    thread): 52 fields; the ones the sandbox knows are real, the rest 0."""
    vsize = sum(r.size for r in proc.space.regions)
    rss = sum(1 for _ in proc.space.pagetable.iter_leaves())
    threads = sum(1 for t in proc.group.tasks if t.alive)
    fields = [pid, f"({comm(proc)})", "R", proc.ppid, proc.pgid, proc.sid, 0, -1, 0x400000,
              faults_taken(proc.space.fault_counts), 0, 0, 0, 0, 0, 0, 0, 20, 0, threads, 0, 0, vsize, rss,
              (1 << 64) - 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    return (" ".join(str(f) for f in fields) + "\n").encode()


def status(proc: Task, pid: int) -> bytes:
    """/proc/PID/status, or a thread's: `pid` is the process's id or the thread's."""
    uid, gid = proc.kernel.identity.uid, proc.kernel.identity.gid
    vm_kb = sum(r.size for r in proc.space.regions) // 1024
    rss_kb = sum(m.size for _, m in proc.space.pagetable.iter_leaves()) // 1024
    threads = sum(1 for t in proc.group.tasks if t.alive)
    lines = [f"Name:\t{comm(proc)}", "State:\tR (running)", f"Tgid:\t{proc.pid}", f"Pid:\t{pid}",
             f"PPid:\t{proc.ppid}", f"Uid:\t{uid}\t{uid}\t{uid}\t{uid}", f"Gid:\t{gid}\t{gid}\t{gid}\t{gid}",
             f"FDSize:\t{proc.files.limit}", f"VmSize:\t{vm_kb:8d} kB", f"VmRSS:\t{rss_kb:8d} kB",
             f"Threads:\t{threads}", f"SigBlk:\t{proc.sig_mask:016x}"]
    return ("\n".join(lines) + "\n").encode()


class ProcContent(Protocol):
    """What a ProcFile reads: its size now, bytes at an offset, and what it holds while open."""

    @property
    def size(self) -> int: ...

    def read(self, offset: int, n: int) -> bytes: ...

    def hold(self) -> None:
        """A descriptor opened it: charge what it keeps (SyscallError past the budget)."""

    def drop(self) -> None:
        """The last descriptor closed: give the charge back."""


class Snapshot:
    """Text generated at open, charged to `budget` from `hold` to `drop`."""

    def __init__(self, data: bytes, budget: Budget) -> None:
        self.data = data
        self.budget = budget
        self.size = len(data)

    def read(self, offset: int, n: int) -> bytes:
        return self.data[offset : offset + n]

    def hold(self) -> None:
        self.budget.charge(self.size)

    def drop(self) -> None:
        self.budget.release(self.size)
        self.data = b""


class ProcessMemory:
    """Bytes `[start, end)` of a process's memory, read when the guest reads (nothing held):
    what the process wrote there since is what it shows, as on Linux."""

    def __init__(self, proc: Task, start: int, end: int) -> None:
        self.proc = proc
        self.start = start
        self.size = end - start

    def read(self, offset: int, n: int) -> bytes:
        """Up to `n` bytes at `offset`; none from an exited process or an unmapped page."""
        n = min(n, self.size - offset)
        if self.proc.space is None or offset < 0 or n <= 0:
            return b""
        try:
            return copy_in(self.proc.space, self.start + offset, n)
        except SyscallError:
            return b""

    def hold(self) -> None:
        """Nothing to charge: the bytes stay in guest memory."""

    def drop(self) -> None:
        """Nothing was charged."""


def content(proc: Task, name: str, budget: Budget) -> ProcContent:
    """What /proc/<pid>/<name> reads for `proc`: a snapshot charged to `budget` while
    open, or, for cmdline and environ, the process's own memory."""
    if name == "cmdline":
        return ProcessMemory(proc, *proc.arg_range)
    if name == "environ":
        return ProcessMemory(proc, *proc.env_range)
    pid = proc.pid
    if name.startswith("task/"):  # task/<tid>/<entry>: one thread's own
        _, tid, name = name.split("/")
        proc = next((t for t in proc.group.tasks if str(t.tid) == tid), proc)
        pid = proc.tid
    if name == "maps":  # refused before 30,000 regions' text is made, if it could never be held
        budget.check(len(proc.space.regions) * MAPS_LINE_MIN)
        data = maps(proc)
    elif name == "stat":
        data = stat(proc, pid)
    elif name == "status":
        data = status(proc, pid)
    elif name == "comm":
        data = os.fsencode(comm(proc) + "\n")
    else:
        raise KeyError(name)
    return Snapshot(data, budget)


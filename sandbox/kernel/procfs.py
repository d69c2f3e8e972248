"""The /proc/<pid> files the sandbox serves, generated from the kernel's own state.

Formats follow Linux's fs/proc (man 5 proc): maps as show_map_vma prints it, stat as
do_task_stat, status as proc_pid_status (the fields programs commonly read).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from sandbox.kernel.vfs import Synthetic
from sandbox.mm.fault import faults_taken
from sandbox.trace import prot_string

if TYPE_CHECKING:
    from sandbox.kernel.process import Process

#: /proc/PID/maps pads the path to this column (fs/proc/task_mmu.c, show_vma_header_prefix).
MAPS_PATH_COLUMN = 73
ENTRIES = ("maps", "stat", "status", "cmdline", "environ", "comm")


def entries(exe_guest_path: str) -> dict[str, Synthetic]:
    """The names in /proc/<pid>/, with exe as a symlink to the program's guest path."""
    table = {name: Synthetic("file", name) for name in ENTRIES}
    table["exe"] = Synthetic("link", exe_guest_path, 0o777)
    return table


def maps(proc: Process) -> bytes:
    """The address space in /proc/PID/maps format."""
    lines = []
    for r in proc.space.regions:
        perms = prot_string(r.prot) + ("s" if r.shared else "p")
        offset = r.offset if r.file is not None else 0
        head = f"{r.start:08x}-{r.end:08x} {perms} {offset:08x} 00:00 0"
        name = r.name
        lines.append(f"{head:<{MAPS_PATH_COLUMN - 1}} {name}" if name else head)
    return os.fsencode("\n".join(lines) + "\n")


def comm(proc: Process) -> str:
    return proc.comm or os.path.basename(proc.exe)[:15]


def stat(proc: Process) -> bytes:
    """/proc/PID/stat: 52 fields; the ones the sandbox knows are real, the rest 0."""
    vsize = sum(r.size for r in proc.space.regions)
    rss = sum(1 for _ in proc.space.pagetable.iter_leaves())
    fields = [proc.pid, f"({comm(proc)})", "R", proc.ppid, proc.pid, proc.pid, 0, -1, 0x400000,
              faults_taken(proc.space.fault_counts), 0, 0, 0, 0, 0, 0, 0, 20, 0, 1, 0, 0, vsize, rss,
              (1 << 64) - 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    return (" ".join(str(f) for f in fields) + "\n").encode()


def status(proc: Process) -> bytes:
    uid, gid = os.getuid(), os.getgid()
    vm_kb = sum(r.size for r in proc.space.regions) // 1024
    rss_kb = sum(m.size for _, m in proc.space.pagetable.iter_leaves()) // 1024
    lines = [f"Name:\t{comm(proc)}", "State:\tR (running)", f"Tgid:\t{proc.pid}", f"Pid:\t{proc.pid}",
             f"PPid:\t{proc.ppid}", f"Uid:\t{uid}\t{uid}\t{uid}\t{uid}", f"Gid:\t{gid}\t{gid}\t{gid}\t{gid}",
             f"FDSize:\t{proc.files.limit}", f"VmSize:\t{vm_kb:8d} kB", f"VmRSS:\t{rss_kb:8d} kB",
             "Threads:\t1", f"SigBlk:\t{proc.sig_mask:016x}"]
    return ("\n".join(lines) + "\n").encode()


def content(proc: Process, name: str) -> bytes:
    """The bytes of /proc/<pid>/<name> right now."""
    if name == "maps":
        return maps(proc)
    if name == "stat":
        return stat(proc)
    if name == "status":
        return status(proc)
    if name == "cmdline":
        return b"".join(a + b"\0" for a in proc.argv)
    if name == "environ":
        return b"".join(e + b"\0" for e in proc.envp)
    if name == "comm":
        return os.fsencode(comm(proc) + "\n")
    raise KeyError(name)


"""/proc and /sys as the sandbox serves them: which nodes exist, and what each one reads.

`ProcTree` is what the file-system view (vfs.py) asks about every path under /proc and /sys:
the node there (a directory, a generated file, a symlink) and the listing of a directory.
Everything is generated from the kernel's own state, never copied from the host: every
guest process has its /proc/<pid>/ (so `ps` and `top` see the whole sandbox), /proc/self
and /proc/thread-self are symlinks to the asking process and thread, the system files
(meminfo, cpuinfo, stat, ...) describe the sandbox's machine (procfs_sys.py, procfs_mem.py),
and the per-process files are procfs_pid.py's.

Names: a generated file's `Synthetic.name` is its canonical path ("/proc/42/status",
"/proc/meminfo"), from which `content` makes its text when it is opened.

/proc/<pid>/fd/N are symlinks to what each descriptor is (a path, "pipe:[N]", ...).
Following one whose target is no path of the view (a pipe, a socket, an unlinked file)
is Linux's "magic link": it yields the open file itself (`magic`, then `open_fd`).

What an open /proc file holds on the host is bounded: cmdline and environ hold nothing, each
read takes the bytes from the process's own memory between the addresses where execve put
the strings (Linux's mm->arg_start/env_start, `proc_pid_cmdline_read`, `environ_read`);
the others are one snapshot taken at open, charged to the sandbox-wide /proc budget while a
descriptor names it (ENOMEM past it, as a kernel out of memory for seq_file buffers); a text
that could never be held (maps, smaps of 60,000 regions) is refused before it is made.
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING, Protocol

from sandbox.errors import SyscallError
from sandbox.kernel import procfs_mem, procfs_pid, procfs_sys
from sandbox.kernel.files import O_ACCMODE, O_RDONLY, ProcFile
from sandbox.kernel.process import State
from sandbox.kernel.vfs_nodes import Synthetic
from sandbox.loader import CLOCK_TICKS
from sandbox.mm.uaccess import copy_in

if TYPE_CHECKING:
    from sandbox.kernel.accounting import Budget
    from sandbox.kernel.files import File
    from sandbox.kernel.kernel import Kernel
    from sandbox.kernel.process import ThreadGroup
    from sandbox.kernel.task import Task

MAPS_LINE_MIN = procfs_pid.MAPS_LINE_MIN
#: The files of /proc/<pid>/, each with its mode (oom_score_adj is the one written).
PID_FILES = {name: 0o444 for name in (
    "cgroup", "cmdline", "comm", "environ", "limits", "maps", "mountinfo", "mounts", "oom_score", "smaps",
    "smaps_rollup", "stat", "statm", "status")} | {"oom_score_adj": 0o644, "auxv": 0o400}
PID_LINKS = ("cwd", "exe", "root")
PID_DIRS = ("fd", "fdinfo", "task")
TASK_FILES = ("comm", "stat", "status")  # /proc/<pid>/task/<tid>/
#: /proc's own files (procfs_sys.py, procfs_mem.py); /proc/mounts is a link to self/mounts.
SYSTEM_FILES = ("cpuinfo", "filesystems", "loadavg", "meminfo", "stat", "uptime", "version")
SYS_CPU = "devices/system/cpu"  # the one /sys directory served: what glibc and nproc probe
SYS_CPU_FILES = ("online", "possible", "present")
#: Bytes below which a /proc text is made without asking the budget first.
SMALL_TEXT = 1 << 16


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
    """A process's arguments or environment, read from its memory when the guest reads
    (nothing held): what the process wrote there since is what it shows, as on Linux.

    cmdline follows the process across execve (proc_pid_cmdline_read takes the task's mm at
    each read); environ stays with the image it was opened on and reads empty once an
    execve replaced it (environ_read: the mm held since the open has no users left)."""

    def __init__(self, group: ThreadGroup, which: str, follows_exec: bool) -> None:
        self.group = group
        self.which = which  # "arg_range" or "env_range"
        self.space = None if follows_exec else group.space

    @property
    def size(self) -> int:
        start, end = getattr(self.group, self.which)
        return end - start

    def read(self, offset: int, n: int) -> bytes:
        """Up to `n` bytes at `offset`; none from an ended or replaced image or an unmapped
        page, and ESRCH once the process is reaped (proc_pid_cmdline_read finds no task)."""
        group = self.group
        if group.state is State.REAPED:
            raise SyscallError(errno.ESRCH, f"process {group.pid} is gone")
        space = group.space
        if space is None or (self.space is not None and space is not self.space):
            return b""
        start, end = getattr(group, self.which)
        n = min(n, end - start - offset)
        if offset < 0 or n <= 0:
            return b""
        try:
            return copy_in(space, start + offset, n)
        except SyscallError:
            return b""

    def hold(self) -> None:
        """Nothing to charge: the bytes stay in guest memory."""

    def drop(self) -> None:
        """Nothing was charged."""


class SettingFile(ProcFile):
    """A /proc file that is also written (oom_score_adj): reads show the snapshot taken at
    open, each write sets the value through `store(bytes) -> None` (SyscallError if bad)."""

    def __init__(self, name: str, content: ProcContent, flags: int, store) -> None:
        super().__init__(name, content)
        self.flags = flags
        self._store = store

    def write(self, data: bytes) -> int:
        self._store(data)
        return len(data)

    def pwrite(self, data: bytes, offset: int) -> int:
        return self.write(data)


def _dir(name: str) -> Synthetic:
    return Synthetic("dir", name, 0o555)


def _link(target: str) -> Synthetic:
    return Synthetic("link", target, 0o777)


def _missing(parts: list[str]) -> SyscallError:
    return SyscallError(errno.ENOENT, "/" + "/".join(parts))


class ProcTree:
    """The /proc and /sys trees of one kernel, and what their files read."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.boot_id: str | None = None
        #: Per process: when it started (USER_HZ ticks after boot), and its oom_score_adj
        #: with the floor an unprivileged writer may not go below (signal->oom_score_adj_min).
        self.started: dict[int, int] = {}
        self.oom_adj: dict[int, tuple[int, int]] = {}

    # -- processes --------------------------------------------------------------------------

    def born(self, pid: int, parent_pid: int | None) -> None:
        """A process was made: note its start, inherit its parent's oom_score_adj (fork
        copies the signal struct). Entries of reaped processes go as the maps grow."""
        if len(self.started) > 2 * len(self.kernel.processes) + 64:
            live = self.kernel.processes
            self.started = {p: t for p, t in self.started.items() if p in live}
            self.oom_adj = {p: a for p, a in self.oom_adj.items() if p in live}
        self.started[pid] = int(procfs_sys.uptime_seconds(self.kernel) * CLOCK_TICKS)
        self.oom_adj.pop(pid, None)
        if parent_pid in self.oom_adj:
            self.oom_adj[pid] = self.oom_adj[parent_pid]

    def _group(self, pid_text: str) -> ThreadGroup | None:
        """The process with id `pid_text` if it exists (live or zombie), else None."""
        if not pid_text.isdigit() or pid_text.startswith("0"):
            return None
        group = self.kernel.processes.get(int(pid_text))
        return group if group is not None and group.state is not State.REAPED and group.tasks else None

    def _task(self, group: ThreadGroup, tid_text: str):
        return next((t for t in group.tasks if str(t.tid) == tid_text and t.state is not State.REAPED), None)

    def _asking(self) -> Task | None:
        return self.kernel.current

    # -- nodes ------------------------------------------------------------------------------

    def node(self, parts: list[str]) -> Synthetic:
        """The node at /<parts> (parts[0] is "proc" or "sys"); ENOENT if there is none."""
        if parts[0] == "sys":
            return self._sys_node(parts)
        if len(parts) == 1:
            return _dir("/proc")
        name = parts[1]
        if len(parts) == 2:
            node = self._proc_top(name)
            if node is not None:
                return node
        if name == "sys":
            return self._sysctl_node(parts)
        group = self._group(name)
        if group is None:
            raise _missing(parts)
        return self._pid_node(group, parts)

    def _proc_top(self, name: str) -> Synthetic | None:
        asking = self._asking()
        if name == "self":
            return _link(str(asking.pid if asking else 1))
        if name == "thread-self":
            return _link(f"{asking.pid}/task/{asking.tid}" if asking else "1/task/1")
        if name == "mounts":
            return _link("self/mounts")
        if name in SYSTEM_FILES:
            return Synthetic("file", f"/proc/{name}")
        return None

    def _pid_node(self, group: ThreadGroup, parts: list[str]) -> Synthetic:
        """/proc/<pid>/...: its files, links, and the fd, fdinfo and task directories."""
        base = f"/proc/{group.pid}"
        if len(parts) == 2:
            return _dir(base)
        name, rest = parts[2], parts[3:]
        if name in PID_FILES and not rest:
            return Synthetic("file", f"{base}/{name}", PID_FILES[name])
        if name in PID_LINKS and not rest:
            return _link(self._pid_link(group, name))
        if name in ("fd", "fdinfo"):
            return self._fd_node(group, name, rest, parts)
        if name == "task":
            return self._task_node(group, rest, parts)
        raise _missing(parts)

    def _pid_link(self, group: ThreadGroup, name: str) -> str:
        if name == "exe":
            return group.exe_guest or "/"
        return group.cwd if name == "cwd" else "/"

    def _fd_node(self, group: ThreadGroup, name: str, rest: list[str], parts: list[str]) -> Synthetic:
        if not rest:
            return _dir(f"/proc/{group.pid}/{name}")
        entries = dict(procfs_pid.descriptors(group))
        fd = int(rest[0]) if len(rest) == 1 and rest[0].isdigit() and rest[0] == str(int(rest[0])) else -1
        if fd not in entries:
            raise _missing(parts)
        if name == "fdinfo":
            return Synthetic("file", f"/proc/{group.pid}/fdinfo/{fd}")
        return _link(procfs_pid.fd_target(entries[fd].file))

    def _task_node(self, group: ThreadGroup, rest: list[str], parts: list[str]) -> Synthetic:
        """/proc/<pid>/task, a directory per thread, and each thread's files."""
        if not rest:
            return _dir(f"/proc/{group.pid}/task")
        task = self._task(group, rest[0])
        if task is None:
            raise _missing(parts)
        if len(rest) == 1:
            return _dir(f"/proc/{group.pid}/task/{task.tid}")
        if len(rest) == 2 and rest[1] in TASK_FILES:
            return Synthetic("file", f"/proc/{group.pid}/task/{task.tid}/{rest[1]}")
        raise _missing(parts)

    def _sysctl_node(self, parts: list[str]) -> Synthetic:
        """/proc/sys and the sysctl files served (procfs_sys.SYSCTL_TREE)."""
        path = "/".join(parts[2:])
        if not path or path in procfs_sys.SYSCTL_TREE:
            return _dir("/proc/sys/" + path)
        head, _, leaf = path.rpartition("/")
        if leaf in procfs_sys.SYSCTL_TREE.get(head, ()):
            return Synthetic("file", "/proc/sys/" + path, 0o444)
        raise _missing(parts)

    def _sys_node(self, parts: list[str]) -> Synthetic:
        """/sys: only the way to devices/system/cpu, its range files and one cpuN per CPU."""
        path = "/".join(parts[1:])
        if path == "" or SYS_CPU.startswith(path + "/") or path == SYS_CPU:
            return _dir("/sys/" + path)
        head, _, leaf = path.rpartition("/")
        if head == SYS_CPU and leaf in SYS_CPU_FILES:
            return Synthetic("file", "/sys/" + path)
        if head == SYS_CPU and leaf in self._cpu_dirs():
            return _dir("/sys/" + path)
        raise _missing(parts)

    def _cpu_dirs(self) -> list[str]:
        return [f"cpu{n}" for n in range(self.kernel.options.cpus)]

    # -- listings ---------------------------------------------------------------------------

    def listing(self, parts: list[str]) -> list[tuple[str, str]] | None:
        """(name, kind) entries of the directory /<parts>, or None if it is none."""
        try:
            node = self.node(parts)
        except SyscallError:
            return None
        if node.kind != "dir":
            return None
        path = node.name
        if path == "/proc":
            pids = sorted(p for p, g in self.kernel.processes.items() if g.state is not State.REAPED and g.tasks)
            return ([(n, "file") for n in SYSTEM_FILES] + [("mounts", "link"), ("self", "link"), ("sys", "dir"),
                                                           ("thread-self", "link")] + [(str(p), "dir") for p in pids])
        if path.startswith("/proc/sys"):
            return self._sysctl_listing(path[len("/proc/sys/"):])
        if path.startswith("/sys"):
            return self._sys_listing(path[len("/sys/"):])
        return self._pid_listing(parts)

    def _pid_listing(self, parts: list[str]) -> list[tuple[str, str]]:
        group = self._group(parts[1])
        rest = parts[2:]
        if not rest:
            return sorted([(n, "file") for n in PID_FILES] + [(n, "link") for n in PID_LINKS]
                          + [(n, "dir") for n in PID_DIRS])
        if rest[0] in ("fd", "fdinfo"):
            kind = "link" if rest[0] == "fd" else "file"
            return [(str(fd), kind) for fd, _ in procfs_pid.descriptors(group)]
        if len(rest) == 1:  # task
            return [(str(t.tid), "dir") for t in group.tasks if t.state is not State.REAPED]
        return [(name, "file") for name in TASK_FILES]

    def _sysctl_listing(self, path: str) -> list[tuple[str, str]]:
        if not path.strip("/"):
            return [(name, "dir") for name in procfs_sys.SYSCTL_TREE if "/" not in name]
        path = path.strip("/")
        return [(name, "dir" if f"{path}/{name}" in procfs_sys.SYSCTL_TREE else "file")
                for name in procfs_sys.SYSCTL_TREE[path]]

    def _sys_listing(self, path: str) -> list[tuple[str, str]]:
        path = path.strip("/")
        if path == SYS_CPU:
            return [(n, "file") for n in SYS_CPU_FILES] + [(n, "dir") for n in self._cpu_dirs()]
        if SYS_CPU.startswith(path + "/") or not path:
            below = SYS_CPU[len(path) + 1:] if path else SYS_CPU
            return [(below.split("/")[0], "dir")]
        return []

    # -- descriptors as magic links ---------------------------------------------------------

    def magic(self, guest: str, node: Synthetic) -> Synthetic | None:
        """Following /proc/<pid>/fd/N whose target is no path of the view (a pipe, a socket,
        an unlinked file): the node of the open file itself (kind "fd"); None otherwise."""
        parts = guest.strip("/").split("/")
        if len(parts) != 4 or parts[0] != "proc" or parts[2] != "fd" or node.kind != "link":
            return None
        target = node.name
        group = self._group(parts[1])
        entry = dict(procfs_pid.descriptors(group)).get(int(parts[3])) if group is not None else None
        by_path = entry is not None and getattr(entry.file, "guest", None) == target
        if by_path and not target.endswith(" (deleted)"):
            return None
        return Synthetic("fd", f"{parts[1]}/{parts[3]}", 0o600)

    def open_fd(self, name: str) -> File:
        """The open file a magic fd link names ("<pid>/<fd>"); ENOENT if it is gone."""
        pid, fd = name.split("/")
        group = self._group(pid)
        entries = dict(procfs_pid.descriptors(group)) if group is not None else {}
        if int(fd) not in entries:
            raise SyscallError(errno.ENOENT, f"/proc/{pid}/fd/{fd}")
        return entries[int(fd)].file

    # -- contents ---------------------------------------------------------------------------

    def open(self, proc: Task, name: str, flags: int) -> File:
        """Open the generated file `name` for `proc`: read-only, or oom_score_adj written."""
        content = self.content(proc, name)
        if flags & O_ACCMODE == O_RDONLY:
            return ProcFile(name, content)
        if not name.endswith("/oom_score_adj"):
            raise SyscallError(errno.EACCES, name)
        group = self._group(name.split("/")[2])
        return SettingFile(name, content, flags & O_ACCMODE, lambda data: self.set_oom_adj(proc, group, data))

    def set_oom_adj(self, proc: Task, group: ThreadGroup, data: bytes) -> None:
        """A write to oom_score_adj (fs/proc/base.c __set_oom_adj): ESRCH once the process
        has ended, EINVAL for garbage, EACCES below the floor for an unprivileged writer; a
        privileged write moves the floor."""
        value = procfs_pid.parse_oom_score_adj(data)
        if not group.alive:
            raise SyscallError(errno.ESRCH, f"process {group.pid} has ended")
        _, floor = self.oom_adj.get(group.pid, (0, 0))
        privileged = proc.kernel.identity.uid == 0
        if value < floor and not privileged:
            raise SyscallError(errno.EACCES, f"oom_score_adj {value} below {floor}")
        self.oom_adj[group.pid] = (value, value if privileged else floor)

    def content(self, proc: Task, name: str) -> ProcContent:
        """What the generated file `name` reads, for the asking `proc`: a snapshot charged to
        the /proc budget while open, or, for cmdline and environ, the process's own memory."""
        budget = self.kernel.budgets.proc_snapshots
        parts = name.strip("/").split("/")
        if parts[0] == "proc" and parts[1].isdigit():
            group = self._group(parts[1])
            if group is None:
                raise SyscallError(errno.ENOENT, name)
            memory = self._process_memory(group, parts[2])
            if memory is not None:
                return memory
            if parts[2] == "auxv":  # binary: the pairs execve put on the stack (fs/proc/base.c)
                return Snapshot(group.auxv, budget)
            self._check_size(group, parts[2], budget)
            text = self._pid_text(group, parts[2:])
        else:
            text = self._system_text(parts)
        return Snapshot(os.fsencode(text), budget)

    def _process_memory(self, group: ThreadGroup, entry: str) -> ProcessMemory | None:
        if entry == "cmdline":
            return ProcessMemory(group, "arg_range", follows_exec=True)
        if entry == "environ":
            return ProcessMemory(group, "env_range", follows_exec=False)
        return None

    def _check_size(self, group: ThreadGroup, entry: str, budget: Budget) -> None:
        """Refuse (ENOMEM) before making the text of 60,000 regions if it could never be held."""
        per_region = {"maps": MAPS_LINE_MIN, "smaps": procfs_pid.SMAPS_BLOCK_MIN}.get(entry)
        if per_region is not None and group.space is not None:
            needed = len(group.space.regions) * per_region
            if needed > SMALL_TEXT:
                budget.check(needed)

    def _pid_text(self, group: ThreadGroup, rest: list[str]) -> str:
        """The text of /proc/<pid>/<rest...>."""
        task, pid = group.tasks[0], group.pid
        if rest[0] == "task":
            task = self._task(group, rest[1])
            if task is None:
                raise SyscallError(errno.ENOENT, f"/proc/{group.pid}/task/{rest[1]}")
            pid, rest = task.tid, rest[2:]
        if rest[0] == "fdinfo":
            entries = dict(procfs_pid.descriptors(group))
            if int(rest[1]) not in entries:
                raise SyscallError(errno.ENOENT, f"/proc/{group.pid}/fdinfo/{rest[1]}")
            return procfs_pid.fdinfo(entries[int(rest[1])], self.mount_id_of(entries[int(rest[1])].file))
        return self._pid_file(group, task, pid, rest[0])

    def _pid_file(self, group: ThreadGroup, task: Task, pid: int, entry: str) -> str:
        space, kernel = group.space, self.kernel
        makers = {
            "stat": lambda: procfs_pid.stat(task, pid, self.started.get(group.pid, 0)),
            "status": lambda: procfs_pid.status(task, pid),
            "comm": lambda: procfs_pid.comm(task) + "\n",
            "maps": lambda: procfs_pid.maps(group),
            "limits": lambda: procfs_pid.limits(task),
            "statm": lambda: procfs_mem.statm(space, kernel),
            "cgroup": lambda: "0::/\n",
            "oom_score_adj": lambda: f"{self.oom_adj.get(group.pid, (0, 0))[0]}\n",
            "oom_score": lambda: procfs_pid.oom_score(group, kernel, self.oom_adj.get(group.pid, (0, 0))[0]),
            "smaps": lambda: procfs_mem.smaps(space, kernel, procfs_pid.maps_header) if space else "",
            "smaps_rollup": lambda: procfs_mem.smaps_rollup(space, kernel, procfs_pid.rollup_header) if space else "",
            "mounts": lambda: self.mounts(),
            "mountinfo": lambda: self.mountinfo(),
        }
        return makers[entry]()

    def _system_text(self, parts: list[str]) -> str:
        """The text of /proc/<file>, /proc/sys/... or /sys/devices/system/cpu/..."""
        kernel = self.kernel
        if parts[0] == "sys":
            return procfs_sys.cpu_range(kernel)
        if parts[1] == "sys":
            return procfs_sys.sysctl(kernel, "/".join(parts[2:]))
        makers = {"meminfo": lambda: procfs_mem.meminfo(kernel), "cpuinfo": lambda: procfs_sys.cpuinfo(kernel),
                  "stat": lambda: procfs_sys.stat(kernel), "uptime": lambda: procfs_sys.uptime(kernel),
                  "loadavg": lambda: procfs_sys.loadavg(kernel), "version": procfs_sys.version,
                  "filesystems": procfs_sys.filesystems}
        return makers[parts[1]]()

    # -- mounts -----------------------------------------------------------------------------

    def mount_table(self) -> list[tuple[int, str, str, str, str, str]]:
        """(id, mount point, file system, source, options, file system options) of each
        mount of the namespace, as Linux lists them: the sandbox's own (the tmpfs it
        reports for host directories, sys_attr's statfs; /proc, /sys, /dev), parents
        before children, then those the guest made (sys_mount), in the order it made them,
        hidden ones too (a mount stacked on another)."""
        view = self.kernel.fs
        guest_made = [layer.mount for layer in view.layers]
        made_ids = {id(mount) for mount in guest_made}
        hidden = [m for layer in view.layers for m in layer.hidden[0]]
        own = list({id(m): m for m in [*view.mounts, *hidden] if id(m) not in made_ids}.values())
        table = [(m.guest, m.fstype, m.source, m.options(), m.data) for m in own]
        table += [("/proc", "proc", "proc", "rw", ""), ("/sys", "sysfs", "sysfs", "ro", ""),
                  ("/dev", "devtmpfs", "udev", "rw", "")]
        table.sort(key=lambda m: (m[0].count("/") if m[0] != "/" else 0, m[0]))
        table += [(m.guest, m.fstype, m.source, m.options(), m.data) for m in guest_made]
        return [(MOUNT_ID_BASE + n, *row) for n, row in enumerate(table)]

    def mount_id_of(self, file: File) -> int:
        """The id of the mount a descriptor's file lies in (fdinfo's mnt_id)."""
        path = procfs_pid.fd_target(file)
        best = (MOUNT_ID_BASE, "/")
        for mount_id, point, *_ in self.mount_table():
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best[1]):
                best = (mount_id, point)
        return best[0]

    def mounts(self) -> str:
        """/proc/PID/mounts (fstab format, show_vfsmnt)."""
        return "".join(f"{source} {point} {fs} {options},relatime{',' + data if data else ''} 0 0\n"
                       for _, point, fs, source, options, data in self.mount_table())

    def mountinfo(self) -> str:
        """/proc/PID/mountinfo (show_mountinfo): id, parent id, major:minor, root, mount
        point, options, separator, file system, source, super options. A mount's parent is
        the latest one before it at its point or above (a stacked mount's, the one below)."""
        table = self.mount_table()
        lines = []
        for index, (mount_id, point, fs, source, options, data) in enumerate(table):
            above = [m for m in table[:index] if m[1] == point or m[1] == "/" or point.startswith(m[1] + "/")]
            parent = max(above, key=lambda m: len(m[1]), default=(mount_id - 1,))[0] if point != "/" else mount_id - 1
            super_options = ("ro" if options.startswith("ro") else "rw") + (f",{data}" if data else "")
            lines.append(f"{mount_id} {parent} 0:{mount_id} / {point} {options},relatime - {fs} {source} "
                         f"{super_options}\n")
        return "".join(lines)


MOUNT_ID_BASE = 21  # Linux's first mount ids go to early kernel mounts; the root's is ~21+


def maps(proc: Task | ThreadGroup) -> bytes:
    """The address space of a process (or of a thread's) in /proc/PID/maps format (the
    API's snapshots show it)."""
    return os.fsencode(procfs_pid.maps(getattr(proc, "group", proc)))

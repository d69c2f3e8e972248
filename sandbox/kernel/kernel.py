"""The kernel: its state, processes' creation, the run loop and the invariants that hold
across the memory manager. Its entries from the CPU (system calls, exceptions: the one
boundary where guest mistakes are translated) are in entries.py, and how processes end in
exits.py: `Kernel` is made of those parts, split by concern.
"""
from __future__ import annotations

import errno
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from sandbox import abi
from sandbox.engine import EngineError
from sandbox.errors import InvariantError, LoadError, OutOfMemory, SandboxError, SyscallError
from sandbox.hostfs import CleanupError, identity_of, make_private_dir, release_private_dir, remove_path
from sandbox.kernel import (  # the other handler modules load on first use (syscalls.py)
    futex,
    limits,
    procfs,
)
from sandbox.kernel.accounting import HostBudgets
from sandbox.kernel.entries import COUNTED_NUMBERS, CpuEntries
from sandbox.kernel.exec import is_script, load_program, resolve_program
from sandbox.kernel.exits import ProcessEnds
from sandbox.kernel.identity import Identity
from sandbox.kernel.options import Options
from sandbox.kernel.process import ThreadGroup
from sandbox.kernel.quota import DiskQuota
from sandbox.kernel.sched import Scheduler
from sandbox.kernel.sys_proc import DETERMINISTIC_EPOCH_NS
from sandbox.kernel.sysview import system_grafts
from sandbox.kernel.task import Task
from sandbox.kernel.tty import Terminal
from sandbox.kernel.vfs import FileSystemView
from sandbox.kernel.vfs_nodes import Mount
from sandbox.loader import open_elf, parse_elf, read_elf
from sandbox.machine import Machine
from sandbox.mm.aspace import AddressSpace
from sandbox.mm.pagecache import CachedFile, PageCache, host_descriptor_error
from sandbox.syscall_decode import trace_first_exec
from sandbox.trace import Tracer

if TYPE_CHECKING:
    import random


#: Regions all processes may hold together (~160 bytes of host memory each): four
#: processes at Linux's vm.max_map_count.
MAX_REGIONS_TOTAL = 4 * 65530
#: Instructions a task runs before another's turn under --deterministic (Unicorn counts
#: them exactly; about 10 ms of guest time at native speed).
DETERMINISTIC_QUANTUM = 1_000_000
#: Under SANDBOX_CHECK_INVARIANTS, a check that took t seconds lets the switches of the next
#: 4t seconds go unchecked: checking costs at most a fifth of a run.
CHECK_COST_FACTOR = 5
#: Writable, sticky scratch directories of the private root: /tmp, and the host directory
#: behind /dev/shm (POSIX shared memory; /dev itself is made up).
SCRATCH_DIRS = ("tmp", "dev/shm")
#: The private root's name in the host's temporary directory, and a kept one's (--keep-root:
#: out of the names a sweep of leftovers takes, hostfs.SWEPT_PREFIXES).
PRIVATE_ROOT_PREFIX, KEPT_ROOT_PREFIX = "sandbox-root-", "sandbox-kept-"


def seeded_random(seed: int) -> random.Random:
    """The stream --deterministic draws from (random is imported only then: ~0.7 ms of
    every run's start-up otherwise)."""
    import random

    return random.Random(seed)


class Kernel(CpuEntries, ProcessEnds):
    """Runs guest processes on one `Machine`."""

    #: System-call number -> hook (sandbox.api.Sandbox.hook_syscall); None costs one test per call.
    syscall_hooks: dict | None = None
    #: The gdb stub (sandbox.gdbstub, `run --gdb`); None costs one test per quantum and per fault.
    debugger = None

    def __init__(self, machine: Machine, options: Options) -> None:
        self.machine = machine
        self.options = options
        self.processes: dict[int, ThreadGroup] = {}  # by pid, until reaped
        self.tasks: dict[int, Task] = {}  # the live threads of every process, by tid
        self.futexes = futex.Futexes()
        self.current: Task | None = None  # the task the CPU runs (or last ran)
        self.init: ThreadGroup | None = None
        self._syscall_counts: Counter[str] = Counter()  # read through syscall_counts
        self._counts_by_nr = [0] * COUNTED_NUMBERS  # calls below COUNTED_NUMBERS, folded in there
        self.fault_counts: Counter[str] = Counter()
        self.stats: Counter[str] = Counter()
        self.tracer = None
        self.fault_policies: list = list(options.fault_policies)
        self.fault_listeners: list = []
        #: Callables `listener(group, space)` told just before `space` is freed (its process
        #: ended or exec'd); `sandbox report` snapshots the space there.
        self.space_listeners: list = []
        #: Callables run once, at the next point where the CPU has stopped and no system
        #: call or fault is half done (whoever adds one calls machine.stop()); snapshots are
        #: taken and restored there.
        self.at_safe_point: list[Callable[[], object]] = []
        #: Callables returning address spaces no process holds whose frames are still owned
        #: (a snapshot's): check_invariants counts them, as the bound on regions does.
        self.space_holders: list[Callable[[], list[AddressSpace]]] = []
        if options.trace_syscalls or options.trace_faults:
            self.tracer = Tracer(options.trace_out, options.trace_syscalls, options.trace_faults,
                                 live=lambda: len(self.tasks))
            if options.trace_faults:
                self.fault_listeners.append(self.tracer.fault)
        if options.fault_log is not None:
            from sandbox.kernel.faultlog import FaultLog  # only with --fault-log

            self.fault_listeners.append(FaultLog(options.fault_log))
        self._fault_rip: int | None = None
        self._next_pid = abi.INIT_PID + 1  # pid 1 is the sandbox's init (abi.INIT_PID)
        self.boot_time = time.monotonic()
        #: CLOCK_REALTIME at start, in ns: the times of nodes the sandbox makes up.
        self.boot_wall_ns = DETERMINISTIC_EPOCH_NS if options.deterministic else time.time_ns()
        self.clock_offset = 0  # deterministic mode: ns of guest time passed
        self._random = seeded_random(options.seed) if options.deterministic else None
        #: Host directories this kernel made, with what each is (device, inode): the trees it
        #: deletes at close, by identity rather than by name.
        self._made: list[tuple[str, str, tuple[int, int]]] = []
        #: The private root (None with --root), and the generated /etc files' directory.
        self.private_root = self._make_dir(PRIVATE_ROOT_PREFIX, "the private root") if options.root is None else None
        if self.private_root is not None:
            for scratch in SCRATCH_DIRS:
                os.makedirs(os.path.join(self.private_root, scratch), 0o700)
        self.generated_dir = self._make_dir("sandbox-etc-", "the generated /etc files") if options.system else None
        root = self.private_root or options.root
        secret = seeded_random(options.seed).randbytes(16) if options.deterministic else os.urandom(16)
        self.identity = Identity(options.uid, options.gid, secret)
        self.quota = DiskQuota(options.disk)
        try:
            self.proc_tree = procfs.ProcTree(self)  # /proc and /sys
            self.fs = FileSystemView(root, options.mounts, self.proc_tree, system=self._system_grafts())
            self.fs.current_root = lambda: self.current.group.fs.root if self.current is not None else "/"
        except BaseException:
            self.close()  # a mount the view cannot open: the root made above goes too
            raise
        if self.private_root is not None:  # the guest's / is 0755, its /tmp world-writable and sticky
            self.identity.show_as(os.stat(root), 0o755)
            for scratch in SCRATCH_DIRS:
                self.identity.show_as(os.stat(os.path.join(root, scratch)), 0o1777)
        if self.generated_dir is not None:  # /etc/passwd and the like are root's, as on a system
            for name in os.listdir(self.generated_dir):
                self.identity.show_as(os.stat(os.path.join(self.generated_dir, name)), 0o644, 0, 0)
        self.page_cache = PageCache(machine.mem, machine.frames)
        self.page_cache.on_change = machine.code_changed
        self.page_cache.holder = self.quota
        self.budgets = HostBudgets(options)  # pipe buffers, /proc snapshots
        self.sched = Scheduler(self)
        self.terminal = Terminal()  # the host terminal's session state, host signals (tty.py)
        if options.max_resident is not None:
            machine.frames.limit = machine.frames.used + options.max_resident // 4096
        if options.max_instructions is not None:
            machine.count_instructions(self._instruction_budget)
        self.instructions = 0
        self.limit_hit: str | None = None
        #: SANDBOX_CHECK_INVARIANTS=1: check every invariant at every switch and at the end.
        self.check_every_switch = os.environ.get("SANDBOX_CHECK_INVARIANTS") == "1"
        self._next_check = 0.0  # when the next switch may check (see _check_at_switch)
        machine.on_syscall = self._on_syscall
        machine.report_answered_to(self._take_answered)
        machine.on_exception = self._on_exception

    def _make_dir(self, prefix: str, what: str) -> str:
        """A fresh private host directory (0700), removed at close."""
        path = make_private_dir(prefix)
        self._made.append((what, path, identity_of(os.stat(path))))
        return path

    def _system_grafts(self) -> list:
        """The system view (sysview.py) unless --no-system, and the private /dev/shm."""
        grafts = []
        if self.generated_dir is not None:
            grafts = system_grafts(self.options.sysroot, self.options.uid, self.options.gid, self.generated_dir)
        if self.private_root is not None:  # /dev is made up: its shm is a private directory
            grafts.append(Mount("/dev/shm", os.path.join(self.private_root, "dev", "shm"), True))
        return grafts

    def monotonic(self) -> float:
        """The sandbox's clock for timers and sleeps (seconds): the host's, or in
        deterministic mode the guest time that has passed."""
        return self.clock_offset / 1e9 if self.options.deterministic else time.monotonic()

    def random_bytes(self, n: int) -> bytes:
        """Randomness for the guest: the host's CSPRNG, or a seeded stream (--deterministic)."""
        return self._random.randbytes(n) if self._random is not None else os.urandom(n)

    def open_proc_file(self, proc: Task, name: str, flags: int) -> procfs.ProcFile:
        """Open the generated /proc or /sys file `name` (see procfs: bounded, counted)."""
        return self.proc_tree.open(proc, name, flags)

    def scratch_file(self) -> int:
        """A new, already unlinked host file for memfd_create (outside the guest's tree)."""
        import tempfile  # memfd_create only: tempfile imports shutil, random

        fd, path = tempfile.mkstemp(prefix="sandbox-memfd-")
        os.unlink(path)
        return fd

    def shmem_file(self, size: int, name: str, what: str) -> CachedFile:
        """Shared memory backed as Linux's shmem is: an unlinked, sparse host file of `size`
        bytes in the page cache, named `name` (MAP_SHARED|MAP_ANONYMOUS memory, System V
        segments). ENFILE when no host descriptor or cache slot is left, ENOMEM when the
        host file cannot be that large; `what` names it in the error."""
        fd = -1
        try:
            fd = self.scratch_file()
            os.ftruncate(fd, size)
            return self.page_cache.open(fd, name, True)
        except OSError as error:  # EMFILE/ENFILE: no host descriptor; EFBIG, ENOSPC: too big
            if error.errno in (errno.EMFILE, errno.ENFILE):
                raise host_descriptor_error(error, what) from None
            raise SyscallError(errno.ENOMEM, f"{what} of {size:#x} bytes: {error.strerror}") from None
        finally:
            if fd >= 0:
                os.close(fd)

    def keep_private_root(self) -> str | None:
        """Leave the private root on the host at close (--keep-root): renamed out of the
        names a sweep of leftovers takes (sandbox-kept-…, hostfs.sweep_leftovers) and
        unlocked; its path, or None if there is none (--root)."""
        root = self.private_root
        if root is None:
            return None
        self._made = [made for made in self._made if made[1] != root]
        parent, name = os.path.split(root)
        kept = os.path.join(parent, name.replace(PRIVATE_ROOT_PREFIX, KEPT_ROOT_PREFIX, 1))
        try:
            os.rename(root, kept)  # the view holds the tree by descriptors: nothing re-walks
        except OSError:
            kept = root  # left under its own name (a sweep may take it once unlocked)
        release_private_dir(root)
        self.private_root = kept
        return kept

    def close(self) -> None:
        """Close the view's host directories and remove the directories this kernel made:
        the private root, if it made one, and the generated /etc files (once).

        The guest shaped the root (any depth, modes 000, symlinks to host paths), so it goes
        by descriptor, without recursion and without following anything (sandbox.hostfs).
        CleanupError (one line) if some of it stayed on the host. The terminal's host
        signals are unblocked too (a sandbox collected without close() blocked them).
        """
        made, self._made = self._made, []
        terminal = self.__dict__.get("terminal")
        if terminal is not None:
            terminal.close()
        view = self.__dict__.get("fs")  # none if the view itself could not be made
        if view is not None:
            view.close()
        failures = []
        for what, path, identity in made:
            try:
                remove_path(path, identity)
            except OSError as error:
                failures.append(f"{what} {path}: {error}")
        if failures:
            raise CleanupError(f"could not remove {'; '.join(failures)}")

    # -- creating processes ---------------------------------------------------------------

    def spawn(self, path: str, argv: list[str], envp: list[bytes] | None = None) -> ThreadGroup:
        """Load the program at `path` as the first process, ready to run: an ELF (with its
        interpreter from the view, if it is dynamic) or a `#!` script, whose interpreter is
        found in the view as execve finds it. SandboxError if bad.

        `path` is a host path, and the program file becomes visible to the guest, read-only,
        at its absolute path; an absolute path the host lacks is looked up in the view, as
        the guest's execve would (a program under a --mount's guest path).
        """
        on_host = not os.path.isabs(path) or os.path.lexists(path)
        script = on_host and is_script(path)
        if on_host and not script:
            read_elf(path)  # refuse a bad file before anything is set up
        self.instructions, self.limit_hit = 0, None
        exe_guest = os.path.abspath(path)
        if on_host:
            self._expose_program(exe_guest, path)
        cwd = self._initial_cwd()
        task = self.new_process(None, None)
        task.cwd = cwd
        self.current = task
        environment = self.options.environment() if envp is None else envp
        args = [os.fsencode(a) for a in argv]
        try:
            if on_host and not script:
                fd, guest = open_elf(path), self._program_guest_path(exe_guest)
            else:
                fd, guest, args = self._open_in_view(task, path, exe_guest, args)
            load_program(self, task, fd, guest, args, environment, os.fsencode(exe_guest))
            if self.tracer is not None and self.tracer.syscalls:  # strace's first line: execve
                trace_first_exec(self.tracer, task)
        except BaseException:
            del self.processes[task.pid]  # nothing of a failed spawn may stay scheduled
            del self.tasks[task.tid]
            raise
        self.init = task.group
        return task.group

    def _program_guest_path(self, guest: str) -> str:
        """Where the program file is in the view, its links followed (/proc/self/exe and
        maps name the file itself, as Linux's d_path: /bin/ls is /usr/bin/ls); `guest`
        itself if the view cannot reach it (a path under /proc, say)."""
        try:
            return self.fs.resolve(os.fsencode(guest), "/").guest
        except SyscallError:
            return guest

    def _open_in_view(self, proc: Task, path: str, guest: str, argv: list[bytes]) -> tuple[int, str, list[bytes]]:
        """The program at guest path `guest` and its `#!` interpreter chain, resolved in the
        view as execve does, its ELF checked as a host program's is; LoadError (one line,
        with execve's errno) if it cannot run."""
        if not os.path.lexists(path) and not self._in_view(guest):
            raise LoadError(errno.ENOENT, f"{path}: no such file on the host or in the guest's view")
        try:
            fd, found, argv = resolve_program(self, proc, os.fsencode(guest), argv)
        except SyscallError as error:
            raise LoadError(error.errno, f"{path}: {os.strerror(error.errno)} ({error.why})") from None
        try:
            parse_elf(fd, path)
        except BaseException:
            os.close(fd)
            raise
        return fd, found, argv

    def _in_view(self, guest: str) -> bool:
        """Whether the view has something at `guest` (an error other than ENOENT on the way
        counts as something: execve's lookup reports it)."""
        try:
            return self.fs.exists(self.fs.resolve(os.fsencode(guest), "/"))
        except SyscallError as error:
            return error.errno != errno.ENOENT

    def new_process(self, parent: Task | None, space: AddressSpace | None) -> Task:
        """A new process and its first thread: the first process, or a child of the thread
        `parent` (fork, or clone without CLONE_THREAD), which inherits from it (man 2 fork)."""
        pid = self._allocate_id()
        if parent is None:
            group = ThreadGroup(self, pid, abi.INIT_PID, space, "")
            group.pgid = group.sid = pid
            group.files.limit = self.options.max_open_files
        else:
            group = ThreadGroup(self, pid, parent.pid, space, parent.exe, files=parent.files.copy())
            group.inherit(parent.group)
            parent.children.append(group)
        task = Task(group, pid)
        if parent is not None:
            task.sig_mask, task.altstack, task.comm = parent.sig_mask, parent.altstack, parent.comm
            task.affinity = parent.affinity
            self.watch_faults(group)
        self.processes[pid] = group
        self.tasks[pid] = task
        self.proc_tree.born(pid, parent.pid if parent is not None else None)
        self._requantize()
        if parent is not None and self.debugger is not None:
            self.debugger.forked(parent, task)  # gdb's fork event, as the call returns
        return task

    def new_thread(self, parent: Task) -> Task:
        """Another thread of `parent`'s process (clone with CLONE_THREAD): the signal mask
        and name are the parent's, the rest its own (man 2 clone)."""
        task = Task(parent.group, self._allocate_id())
        task.sig_mask, task.comm, task.affinity = parent.sig_mask, parent.comm, parent.affinity
        self.tasks[task.tid] = task
        self.stats["threads"] += 1
        self._requantize()
        return task

    def _requantize(self) -> None:
        """A task was born: under --deterministic the running one may be on an unbounded
        quantum (it was alone), which only the watchdog's tick -- at no fixed instruction --
        would end. Stop the CPU after this call, so the next quantum is counted."""
        if self.options.deterministic:
            self.machine.stop()

    def _allocate_id(self) -> int:
        """The next pid or tid (one number space, as Linux's)."""
        number = self._next_pid
        self._next_pid += 1
        return number

    def watch_faults(self, group: ThreadGroup, space: AddressSpace | None = None) -> None:
        """Prepare `space` (default: `group`'s) for `group`: its pid, the fault policies, and
        the fault listeners (tracing, --fault-log, API recorders), if there are any."""
        space = space or group.space
        if space is None:
            return
        space.owner_pid = group.pid
        space.fault_policies = self.fault_policies
        space.max_regions = self.options.max_map_count
        space.may_add_region = self._may_add_region
        space.file_fault_around = self.options.file_fault_around
        space.stack_limit = lambda: limits.soft(group, limits.RLIMIT_STACK)
        if self.fault_listeners:
            space.on_fault = lambda record: self._report_fault(group, space, record)

    def _may_add_region(self) -> bool:
        """Regions of all processes together stay under MAX_REGIONS_TOTAL (host memory:
        --max-processes times --max-map-count would be gigabytes of records)."""
        return sum(len(space.regions) for space in self._spaces()) < MAX_REGIONS_TOTAL

    def _spaces(self) -> list[AddressSpace]:
        """Every address space a process holds, each once (CLONE_VM shares them)."""
        spaces = list({id(p.space): p.space for p in self.processes.values() if p.space is not None}.values())
        for holder in self.space_holders:
            spaces += holder()
        return spaces

    def add_fault_listener(self, listener) -> None:
        """Call `listener(pid, space, record, rip)` after every fault from now on."""
        self.fault_listeners.append(listener)
        for group in self.processes.values():
            self.watch_faults(group)

    def _expose_program(self, guest: str, host: str) -> None:
        """Mount the program file read-only at its own path, unless the view shows that
        very file there already (/bin/ls through the system view)."""
        if any(m.guest == guest for m in self.fs.mounts):
            return
        try:
            node = self.fs.resolve(os.fsencode(guest), "/")
            seen = self.fs.lstat(node) if node.on_host else None
        except SyscallError:
            seen = None
        real = os.stat(host)
        if seen is not None and (seen.st_dev, seen.st_ino) == (real.st_dev, real.st_ino):
            return
        self.fs.add_mount(Mount(guest, os.path.realpath(host), False))

    def _initial_cwd(self) -> str:
        """--cwd, resolved in the guest tree; SandboxError if it is not a directory there."""
        try:
            node = self.fs.resolve(os.fsencode(self.options.cwd), "/")
            if self.fs.kind_of(node) != "dir":
                raise SyscallError(errno.ENOTDIR, node.guest)
        except SyscallError as error:
            raise SandboxError(f"--cwd {self.options.cwd}: {os.strerror(error.errno)}") from None
        return node.guest

    # -- running --------------------------------------------------------------------------

    def run(self, init: ThreadGroup) -> ThreadGroup:
        """Run every task until all processes have ended (as a shell waits for its
        pipeline's output); return `init`, whose status is the sandbox's."""
        self.terminal.start(init)
        try:
            return self._run_all(init)
        finally:  # a guest's raw mode never outlives its run, however the run ended
            self.terminal.restore()

    def _run_all(self, init: ThreadGroup) -> ThreadGroup:
        """Kernel.run's loop: host signals to the guest, the next task on the CPU."""
        started = time.monotonic()
        going_on: Task | None = None  # a task stopped before its time slice ended runs on
        while True:
            if self.options.timeout is not None and time.monotonic() - started > self.options.timeout:
                self.limit_reached(f"time limit of {self.options.timeout:g} s reached")
            self.terminal.deliver_posted(self)
            task, going_on = self.sched.pick(going_on), None
            if task is None:
                limit = started + self.options.timeout if self.options.timeout is not None else None
                if not any(g.alive for g in self.processes.values()) or not self.sched.idle(limit):
                    return init
                continue
            if not self.sched.switch_to(task):
                continue
            if self.debugger is not None and not self.debugger.resume(task):
                self.sched.switch_out(task)  # gdb holds it (another thread steps) or killed it
                continue
            if self.check_every_switch:
                self._check_at_switch()
            try:
                self.machine.run(self._quantum())
            except EngineError as error:
                self._die_of_emulator_error(task, error)
            except OutOfMemory as error:
                self.kill(task.group, signal.SIGKILL, f"out of memory ({error}); guest killed")
            except KeyboardInterrupt:
                for victim in [g for g in self.processes.values() if g.alive]:
                    self.kill(victim, signal.SIGINT, "interrupted")
            if self.debugger is not None:
                self.debugger.ran(task)  # a stop for gdb, served while the registers are live
            while self.at_safe_point:  # asked for with machine.stop(): the CPU is still now
                self.at_safe_point.pop(0)()
            self.sched.switch_out(task)
            # --deterministic turns at fixed points only (the watchdog's tick lands anywhere);
            # under gdb every stop is one it may have seen, after which all tasks take turns
            going_on = None if self.machine.time_slice_over or self.options.deterministic \
                or self.debugger is not None else task

    def sysv_ipc(self):  # noqa: ANN201 - the module, imported only here
        """sandbox.kernel.sys_ipc once the guest has made System V IPC objects (their
        namespace is then `self.ipc`), else None: a run without them never imports it."""
        if "ipc" not in self.__dict__:
            return None
        from sandbox.kernel import sys_ipc

        return sys_ipc

    def _check_at_switch(self) -> None:
        """check_invariants at a switch, unless checking would take more than a fifth of the
        run: a big address space costs milliseconds a check, and a program that switches
        every time slice (Go's runtime) would spend nearly all its time checking."""
        now = time.monotonic()
        if now < self._next_check:
            return
        self.check_invariants()
        self._next_check = now + CHECK_COST_FACTOR * (time.monotonic() - now)

    def _quantum(self) -> int:
        """Instructions the next task may run before the next one's turn: unbounded (the
        watchdog preempts every WATCHDOG_SECONDS, 10 ms of host time), or under
        --deterministic while more than one task lives, an exact count, so that tasks
        interleave at the same instructions on every run. A lone task runs uncounted (a
        count costs a hook call per instruction, 8x on CPU-bound code) only on an engine
        whose counting hook leaves quietly (Engine.invalidates_quietly): on others, dropping
        it after counted runs could leave a page fault in flight that turns the guest's
        next one into a double, then a triple fault (engine/patches/0008)."""
        if not self.options.deterministic:
            return 0
        if len(self.tasks) > 1 or not self.machine.counting_ends_quietly:
            return DETERMINISTIC_QUANTUM
        return 0

    # -- ending processes -----------------------------------------------------------------

    def check_invariants(self) -> None:
        """Every structure checks itself; then, across all of them, each allocated frame's
        reference count must equal its owners: the page-table entries that map it, the page
        table (or the kernel) that owns it as a table page, and the page cache. The frames
        the sandbox keeps for itself (every space's table pages, the kernel half's frames)
        are exactly those the allocator marks so, and no user leaf of any space maps one."""
        frames = self.machine.frames
        frames.check_invariants()
        if (ipc := self.sysv_ipc()) is not None:
            ipc.check_invariants(self)
        owners: Counter[int] = Counter(self.machine.kernel_frames)
        kernel_own, leaf_frames = set(self.machine.kernel_frames), set()
        spaces = [self.machine.kernel_space]
        spaces += self._spaces()
        for space in spaces:
            if not space.is_kernel:
                space.check_invariants()
            tables = [table >> 12 for table in space.pagetable.live]
            owners.update(tables)
            kernel_own.update(tables)
            for _, m in space.pagetable.iter_leaves():
                owners[m.pa >> 12] += 1
                leaf_frames.update(range(m.pa >> 12, (m.pa + m.size) >> 12))
        if kernel_own != frames.kernel_frames() or kernel_own & leaf_frames:
            raise InvariantError(f"kernel frames {sorted(kernel_own ^ frames.kernel_frames())[:8]} mismarked, "
                                 f"{sorted(kernel_own & leaf_frames)[:8]} mapped into user space")
        for cached in self.page_cache.files.values():
            owners.update(cached.pages.values())
        allocated = {pfn: frames.refcount(pfn) for pfn in frames.allocated_heads()}
        if allocated != dict(owners):
            wrong = {hex(p): (allocated.get(p), owners.get(p)) for p in set(allocated) | set(owners)
                     if allocated.get(p) != owners.get(p)}
            raise InvariantError(f"frame reference counts (count, owners) disagree: {dict(list(wrong.items())[:8])}")





"""The kernel: where the CPU enters on `syscall` and on exceptions, processes' lives, and
the run loop.

This is the one boundary where guest mistakes are translated: `SyscallError` becomes -errno
and `WouldBlock` puts the caller to sleep (in `_on_syscall`), `GuestFault` becomes a
signal, `OutOfMemory` kills the process with a message. No exception caused by the guest reaches the host.
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
from sandbox.engine import UC_ERR_INSN_INVALID, EngineError
from sandbox.errors import GuestFault, InvariantError, LoadError, OutOfMemory, SandboxError, SyscallError, WouldBlock
from sandbox.fastpath import GETTERS
from sandbox.hostfs import CleanupError, identity_of, make_private_dir, remove_path
from sandbox.kernel import (  # the other handler modules load on first use (syscalls.py)
    futex,
    limits,
    procfs,
    signal_delivery,
    sys_mm,
)
from sandbox.kernel.accounting import HostBudgets
from sandbox.kernel.exec import is_script, load_program, resolve_program
from sandbox.kernel.identity import Identity
from sandbox.kernel.options import Options
from sandbox.kernel.pipe import PipeEnd
from sandbox.kernel.process import Death, State, ThreadGroup
from sandbox.kernel.quota import DiskQuota
from sandbox.kernel.sched import Scheduler
from sandbox.kernel.sigframe import pack_siginfo
from sandbox.kernel.signals import code_name, signal_name
from sandbox.kernel.sys_proc import DETERMINISTIC_EPOCH_NS
from sandbox.kernel.syscall_names import SYSCALL_NAMES, SYSCALL_NUMBERS
from sandbox.kernel.syscalls import TABLE, SyscallEntry, to_int32
from sandbox.kernel.sysview import system_grafts
from sandbox.kernel.task import Task
from sandbox.kernel.tty import Terminal
from sandbox.kernel.vfs import FileSystemView, Mount
from sandbox.loader import open_elf, read_elf
from sandbox.machine import (
    EXC_BP,
    EXC_DB,
    EXC_DE,
    EXC_DF,
    EXC_GP,
    EXC_PF,
    EXC_UD,
    PF_INSTR,
    PF_USER,
    PF_WRITE,
    Machine,
)
from sandbox.mm.aspace import AddressSpace
from sandbox.mm.fault import FaultRecord, demand_zero_fault
from sandbox.mm.pagecache import CachedFile, PageCache, host_descriptor_error
from sandbox.mm.vma import Access
from sandbox.trace import Tracer, describe_region, disassemble

if TYPE_CHECKING:
    import random

ACCESS_READ, ACCESS_WRITE, ACCESS_EXEC = int(Access.READ), int(Access.WRITE), int(Access.EXEC)

#: CPU exceptions other than #PF, as Linux's traps.c turns them into signals.
EXCEPTION_SIGNALS = {
    EXC_DE: (signal.SIGFPE, abi.FPE_INTDIV, "integer divide by zero"),
    EXC_DB: (signal.SIGTRAP, abi.TRAP_BRKPT, "debug trap"),
    EXC_BP: (signal.SIGTRAP, abi.SI_KERNEL, "breakpoint (int3)"),
    4: (signal.SIGSEGV, abi.SI_KERNEL, "overflow (into)"),
    5: (signal.SIGSEGV, abi.SI_KERNEL, "bound range exceeded"),
    EXC_UD: (signal.SIGILL, abi.ILL_ILLOPN, "invalid opcode"),
    7: (signal.SIGSEGV, abi.SI_KERNEL, "device not available"),
    12: (signal.SIGBUS, abi.SI_KERNEL, "stack segment fault"),
    EXC_GP: (signal.SIGSEGV, abi.SI_KERNEL, "general protection fault"),
    16: (signal.SIGFPE, abi.SI_KERNEL, "x87 floating-point error"),
    17: (signal.SIGBUS, abi.SI_KERNEL, "alignment check"),
    19: (signal.SIGFPE, abi.SI_KERNEL, "SIMD floating-point error"),
}

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

#: The --stats key of every number that is no Linux system call.
UNKNOWN_SYSCALL = "(not a system call)"
#: Calls numbered below this are counted in a list by number, named when the counts are read.
COUNTED_NUMBERS = 1024

def _reader_left(task: Task, call: str, args: tuple[int, ...]) -> bool:
    """Whether a write that made progress stopped because the pipe's last reader went:
    Linux's pipe_write sends SIGPIPE then too, and returns the count written."""
    if call != "write" and call != "writev":
        return False
    files, fd = task.group.files, args[0] & 0xFFFF_FFFF
    if fd not in files:
        return False
    file = files.get(fd)
    return isinstance(file, PipeEnd) and file.writing and file.pipe.readers == 0


def _alive(task: Task) -> bool:
    """`task.alive`, by identity: this is asked of every call, and testing an Enum member's
    membership in a set runs Enum.__hash__ in Python (~0.1 us)."""
    state = task.state
    return (state is RUNNING or state is BLOCKED) and task.group.state is RUNNING


#: Calls whose EPIPE comes with SIGPIPE (a write to a pipe nobody reads).
WRITE_CALLS = {"write", "writev", "pwrite64", "pwritev", "pwritev2", "sendfile", "splice", "tee", "vmsplice"}
WRITE_NUMBERS = frozenset(SYSCALL_NUMBERS[name] for name in WRITE_CALLS)
RUNNING, BLOCKED = State.RUNNING, State.BLOCKED


def seeded_random(seed: int) -> random.Random:
    """The stream --deterministic draws from (random is imported only then: ~0.7 ms of
    every run's start-up otherwise)."""
    import random

    return random.Random(seed)



class Kernel:
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
        self.private_root = self._make_dir("sandbox-root-", "the private root") if options.root is None else None
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
        """Leave the private root on the host at close (--keep-root); its path, or None
        if there is none (--root)."""
        if self.private_root is not None:
            self._made = [made for made in self._made if made[1] != self.private_root]
        return self.private_root

    def close(self) -> None:
        """Remove the directories this kernel made: the private root, if it made one, and
        the generated /etc files (once).

        The guest shaped the root (any depth, modes 000, symlinks to host paths), so it goes
        by descriptor, without recursion and without following anything (sandbox.hostfs).
        CleanupError (one line) if some of it stayed on the host.
        """
        made, self._made = self._made, []
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
        """Load the program at host path `path` as the first process, ready to run: an ELF
        (with its interpreter from the view, if it is dynamic) or a `#!` script, whose
        interpreter is found in the view as execve finds it. SandboxError if bad.

        The program file becomes visible to the guest, read-only, at its absolute path.
        """
        script = is_script(path)
        if not script:
            read_elf(path)  # refuse a bad file before anything is set up
        self.instructions, self.limit_hit = 0, None
        exe_guest = os.path.abspath(path)
        self._expose_program(exe_guest, path)
        cwd = self._initial_cwd()
        task = self.new_process(None, None)
        task.cwd = cwd
        self.current = task
        environment = self.options.environment() if envp is None else envp
        args = [os.fsencode(a) for a in argv]
        try:
            if script:
                fd, guest, args = self._open_script(task, path, exe_guest, args)
            else:
                fd, guest = open_elf(path), self._program_guest_path(exe_guest)
            load_program(self, task, fd, guest, args, environment, os.fsencode(exe_guest))
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

    def _open_script(self, proc: Task, path: str, guest: str, argv: list[bytes]) -> tuple[int, str, list[bytes]]:
        """The interpreter chain of a `#!` script, resolved in the view as execve does;
        LoadError (one line, with execve's errno) if it cannot run."""
        try:
            return resolve_program(self, proc, os.fsencode(guest), argv)
        except SyscallError as error:
            raise LoadError(error.errno, f"{path}: {os.strerror(error.errno)} ({error.why})") from None

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
            task = self.sched.pick(going_on)
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
            # --deterministic turns at fixed points only (the watchdog's tick lands anywhere)
            going_on = None if self.machine.time_slice_over or self.options.deterministic else task

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

    def limit_reached(self, what: str) -> None:
        """A sandbox limit ends every process with SIGKILL, saying which limit."""
        self.limit_hit = what
        for group in [g for g in self.processes.values() if g.alive]:
            self.kill(group, signal.SIGKILL, f"killed: {what}")
        self.machine.stop()

    def _instruction_budget(self, executed: int) -> None:
        """Called by the machine's block counter (only with --max-instructions)."""
        self.instructions += executed
        if self.instructions > self.options.max_instructions and self.limit_hit is None:
            self.limit_reached(f"instruction limit of {self.options.max_instructions} reached")

    def kill(self, group: ThreadGroup, signo: int, message: str) -> None:
        """The default action of a fatal signal: end the process, every thread, say why."""
        self.terminate(group, death=Death(signo, message))

    def send_signal(self, target: ThreadGroup, signo: int, sender: Task | None = None) -> None:
        """Generate the process-directed `signo` for `target` (see signal_delivery.send)."""
        pid = sender.pid if sender is not None else 0
        signal_delivery.send(self, target, signo, pack_siginfo(signo, abi.SI_USER, pid=pid, uid=self.identity.uid))

    def exit_task(self, task: Task, code: int) -> None:
        """exit(2): end one thread; the process ends with its last thread."""
        if not task.alive:
            return
        if sum(1 for t in task.group.tasks if t.alive) <= 1:
            self.terminate(task.group, code=code)
            return
        if self.tracer is not None:
            self.tracer.thread_ended(task.tid, f"exited with {code & 0xFF}")
        self._end_task(task)
        task.group.tasks.remove(task)
        if task is self.current:
            self.machine.stop()

    def _end_task(self, task: Task, in_memory: bool = True) -> None:
        """A thread's end (Linux's exit_mm/mm_release): its robust futexes are marked
        OWNER_DIED, its clear_child_tid word is zeroed and one waiter woken (pthread_join);
        not `in_memory` when its memory is gone already (an execve replaced it)."""
        task.state, task.blocked = State.ZOMBIE, None
        self.tasks.pop(task.tid, None)
        self.futexes.forget(task)
        if in_memory and task.group.space is not None:
            futex.release_robust_list(self, task)
            futex.clear_child_tid(self, task)
        self.release_vfork_parent(task)

    def become_only_thread(self, task: Task) -> None:
        """execve from any thread: the others end (their memory was replaced), and the
        caller goes on as the leader, with the process's pid as its tid (de_thread)."""
        group = task.group
        for other in [t for t in group.tasks if t is not task]:
            if other.alive:
                self._end_task(other, in_memory=False)
            group.tasks.remove(other)
        if task.tid != group.pid:
            self.tasks.pop(task.tid, None)
            task.tid = group.pid
            self.tasks[task.tid] = task

    def terminate(self, group: ThreadGroup, code: int = 0, death: Death | None = None) -> None:
        """End process `group` and every thread of it: a zombie until its parent reaps it.
        Its memory and files go now (the first process keeps its memory until `release`,
        for inspection)."""
        if not group.alive:
            return
        group.exit_code, group.death = code, death
        if self.tracer is not None:
            self.tracer.ended(group)
        for task in group.tasks:
            if task.alive:
                self._end_task(task)
        group.state = State.ZOMBIE
        if (ipc := self.sysv_ipc()) is not None:
            ipc.process_exit(self, group)  # SEM_UNDO adjustments (exit_sem)
        if not self._held_elsewhere(group, "files", group.files):  # CLONE_FILES: the last user closes
            group.files.close_all()
        if group is not self.init:
            self.retire_space(group, group.space)
            group.space = None
        self._orphan_children(group)
        parent = self.processes.get(group.ppid)
        signo = group.exit_signal
        if parent is not None and parent.alive:
            if signo == signal.SIGCHLD and signal_delivery.action_of(parent, signo).handler == abi.SIG_IGN:
                self.reap(group)  # nobody will wait (man 2 sigaction: SIGCHLD ignored)
            elif signo:
                killed = abi.CLD_DUMPED if group.core_dumped else abi.CLD_KILLED
                code, status = (killed, death.signo) if death else (abi.CLD_EXITED, code)
                info = pack_siginfo(signo, code, pid=group.pid, uid=self.identity.uid, status=status)
                signal_delivery.send(self, parent, signo, info)
        elif group is not self.init:
            self.reap(group)
        if self.current is not None and self.current.group is group:
            self.machine.stop()

    def _orphan_children(self, group: ThreadGroup) -> None:
        """`group`'s children go to the sandbox's init (pid 1), which reaps each as it ends,
        as a container's init does: a zombie now, the others when they end (`terminate`
        finds no parent process for them)."""
        for child in group.children:
            child.ppid = abi.INIT_PID
            if child.state is State.ZOMBIE:
                self.reap(child)
        group.children = []

    def reap(self, group: ThreadGroup) -> None:
        """Forget a zombie (wait4 collected it, or nobody will)."""
        group.state = State.REAPED
        parent = self.processes.get(group.ppid)
        if parent is not None and group in parent.children:
            parent.children.remove(group)
        if group is not self.init:
            self.processes.pop(group.pid, None)

    def release_vfork_parent(self, task: Task) -> None:
        """A vfork child exec'd or ended: its parent may go on (mm_release)."""
        if task.vfork_parent is not None and self.debugger is not None:
            self.debugger.vfork_done(task.vfork_parent)  # gdb's vforkdone event
        task.vfork_parent = None

    def _held_elsewhere(self, group: ThreadGroup, what: str, value: object) -> bool:
        """Whether a process other than `group`, live or the first one (which keeps its
        space after it ends, for inspection), holds `value` as its `what`: an address
        space or descriptor table shared by clone with CLONE_VM or CLONE_FILES."""
        return any(g is not group and getattr(g, what) is value and (g.alive or g is self.init)
                   for g in self.processes.values())

    def retire_space(self, group: ThreadGroup, space: AddressSpace | None) -> None:
        """`group` no longer uses `space`: unless another process shares it (clone with
        CLONE_VM but not CLONE_THREAD), write back its shared file mappings, then free it
        and its frames."""
        if space is None:
            return
        if self._held_elsewhere(group, "space", space):
            return
        for listener in self.space_listeners:
            listener(group, space)
        for region in space.regions:
            sys_mm.writeback(space, region, region.start, region.end)
        self.fault_counts.update(space.fault_counts)
        if self.machine.cr3 == space.cr3:
            self.machine.kernel_space.switch_to()  # never leave CR3 on a freed PML4
        space.destroy()
        self.trim_page_cache()

    def trim_page_cache(self) -> None:
        """Free cached file pages and files that no region of any process maps any more."""
        mapped = {id(r.file) for p in self.processes.values() if p.space is not None
                  for r in p.space.regions if isinstance(r.file, CachedFile)}
        if (ipc := self.sysv_ipc()) is not None:
            mapped |= ipc.pinned_files(self, mapped)  # System V shm segments keep their pages
        if self.page_cache.trim(mapped):
            self.machine.code_changed()  # a freed file page may have held mapped code

    def release(self, init: ThreadGroup) -> None:
        """Free everything left: the first process's memory and every other process."""
        spaces = {}
        for other in list(self.processes.values()):
            if other.alive:
                self.kill(other, signal.SIGKILL, "sandbox released")
            if other.space is not None:  # each space once, however many processes shared it
                spaces[id(other.space)] = (other, other.space)
                other.space = None
        for other, space in spaces.values():
            self.retire_space(other, space)
        self.processes.clear()
        self.tasks.clear()
        self.sched.on_cpu = None

    # -- entries from the CPU ---------------------------------------------------------------

    @property
    def syscall_counts(self) -> Counter[str]:
        """System calls by name, the getters the C gate answered included."""
        self._take_answered()
        counts, by_nr = self._syscall_counts, self._counts_by_nr
        for nr, n in enumerate(by_nr):
            if n:
                counts[SYSCALL_NAMES.get(nr, UNKNOWN_SYSCALL)] += n
                by_nr[nr] = 0
        return counts

    def _take_answered(self) -> None:
        """Fold in the getter calls the C gate answered (sandbox/fastpath.py); it calls
        this itself before Python runs again, so the counts are exact wherever read."""
        counts = self._syscall_counts
        for name, n in zip(GETTERS.values(), self.machine.take_answered_counts(), strict=True):
            if n:
                counts[name] += n

    def _on_syscall(self) -> None:
        """The CPU executed `syscall` (the gate calls this for every call it does not answer
        in C): count it, run its handler, complete it. This is the path of every call nobody
        watches, kept to a few attribute reads around the handler (issue 17); a call the
        syscall trace or an api hook must see takes `_on_watched_syscall`."""
        task = self.current
        raw = self.machine.syscall_args()  # (nr, arg0..arg5)
        # Linux takes the number from EAX, as an int (arch/x86/entry/common.c, do_syscall_64):
        # 1 << 32 | 39 is getpid, and -1 or any upper half set in EAX is ENOSYS.
        nr = raw[0]
        if nr < COUNTED_NUMBERS:
            self._counts_by_nr[nr] += 1  # named when read (syscall_counts)
        else:
            nr = self._count_odd_number(nr)
        entry = TABLE.get(nr)
        if self.syscall_hooks or (self.tracer is not None and self.tracer.syscalls):
            self._on_watched_syscall(task, nr, entry, raw[1:])
            return
        if entry is None:
            self.complete(task, nr, None, raw[1:], -errno.ENOSYS)
            return
        handler, nargs = entry.handler, len(entry.args)
        try:  # three arguments (read, write, lseek, ...) without building a tuple to spread
            result = handler(task, raw[1], raw[2], raw[3]) if nargs == 3 else handler(task, *raw[1 : 1 + nargs])
        except SyscallError as error:
            result = -error.errno
        except WouldBlock as would_block:
            self._sleep_in(task, entry, raw[1:], would_block)
            return
        if task is self.sched.on_cpu and task.saved_mask is None and nr not in WRITE_NUMBERS:
            state = task.state  # complete() with nothing else to do; _alive(task), inline
            if task.fresh_entry is None and (state is RUNNING or state is BLOCKED) and task.group.state is RUNNING:
                self.machine.set_return(result)
        else:
            self.complete(task, nr, entry, raw[1:], result)
        if nr in GETTERS:
            self._publish(task, nr, result)

    def _count_odd_number(self, nr: int) -> int:
        """Count a call whose number is not below COUNTED_NUMBERS; the number as Linux reads
        it (EAX as an int). Linux's name even for a call not implemented here; numbers Linux
        does not have share one key, so a guest cannot grow the counts with every number."""
        if nr >> 31:
            nr = to_int32(nr)
        if 0 <= nr < COUNTED_NUMBERS:
            self._counts_by_nr[nr] += 1
        else:
            self._syscall_counts[SYSCALL_NAMES.get(nr, UNKNOWN_SYSCALL)] += 1
        return nr

    def _on_watched_syscall(self, task: Task, nr: int, entry: SyscallEntry | None, args: tuple[int, ...]) -> None:
        """`_on_syscall` for a call someone watches: an api hook (sandbox.api hook_syscall)
        sees and may change its arguments or skip its handler, the trace shows its entry."""
        hook, early = (self.syscall_hooks.get(nr) if self.syscall_hooks else None), None
        if hook is not None:
            args, early = hook.enter(task, nr, args)  # arguments changed; a result given skips the handler
        if self.tracer is not None and self.tracer.syscalls:
            self.tracer.enter(task.tid, task.space, nr, entry, args)
        if entry is None or early is not None:
            self.complete(task, nr, entry, args, -errno.ENOSYS if early is None else early)
            return
        try:
            result = entry.handler(task, *args[: len(entry.args)])
        except SyscallError as error:
            result = -error.errno
        except WouldBlock as would_block:
            self._sleep_in(task, entry, args, would_block)
            return
        self.complete(task, nr, entry, args, result)

    def _sleep_in(self, task: Task, entry: SyscallEntry, args: tuple[int, ...], would_block: WouldBlock) -> None:
        """The call must wait (its handler raised `would_block`): the task sleeps in it, to
        retry the handler with the same arguments, and completes it later (sched.py)."""
        call_args = args[: len(entry.args)]
        would_block.call, would_block.call_args = entry.name, args
        self.sched.block(task, would_block, lambda: entry.handler(task, *call_args))
        if self.tracer is not None and self.tracer.syscalls:
            self.tracer.blocked(task.tid, entry, args, would_block.why)

    def _publish(self, task: Task, nr: int, answer: int) -> None:
        """Let the machine's C gate answer getter `nr` itself (sandbox/fastpath.py) until
        Python runs anything else, unless something must see each call: the syscall trace,
        an api hook, the gdb stub, or a pending signal (delivered only as a call ends)."""
        if (self.tracer is not None and self.tracer.syscalls) or self.syscall_hooks or self.debugger is not None \
                or task.pending or task.group.pending or task is not self.sched.on_cpu or not task.alive:
            return
        self.machine.publish_answer(nr, answer)

    def complete(self, task: Task, nr: int | str, entry: SyscallEntry | None, args: tuple[int, ...],
                 result: int) -> None:
        """The one way a system call ends, whether it finished at once or after sleeping
        (`nr` may then be its name): SIGPIPE for a write that found no reader, the trace
        line, the mask a ppoll-like wait swapped in given back unless a signal's handler
        takes it (restore_saved_sigmask_unless), and the result in RAX (unless the call
        replaced or ended the task). `_on_syscall` does the last step itself for an
        unwatched call that needs none of the others: keep the two in step."""
        if isinstance(nr, str):
            entry = TABLE.get(SYSCALL_NUMBERS.get(nr, -1))
            nr = entry.nr if entry is not None else -1
        if self.syscall_hooks and nr in self.syscall_hooks:  # sandbox.api hook_syscall: on_exit
            result = self.syscall_hooks[nr].exit(task, nr, args, result)
        if nr in WRITE_NUMBERS and (result == -errno.EPIPE or result > 0) and entry is not None \
                and _alive(task) and (result < 0 or _reader_left(task, entry.name, args)):
            info = pack_siginfo(signal.SIGPIPE, abi.SI_USER, pid=task.pid, uid=self.identity.uid)
            signal_delivery.send_to_task(self, task, signal.SIGPIPE, info)  # pipe_write: send_sig(current)
        if task.saved_mask is not None and result != -errno.EINTR:
            task.sig_mask, task.saved_mask = task.saved_mask, None
        if self.tracer is not None and self.tracer.syscalls:
            self.tracer.syscall(task.tid, nr, entry, args, result)
        if task.fresh_entry is None and _alive(task):
            if task is self.sched.on_cpu:
                self.machine.set_return(result)  # one C call (Task.set_return: two through ctypes)
            else:
                task.set_return(result)

    def _on_exception(self, intno: int) -> None:
        cr2, error, rip = self.machine.exceptions.take()
        task = self.current
        if intno == EXC_DF:
            # Unicorn raises an instruction-fetch #PF at an indirect-branch target twice
            # (the first from the TB-lookup helper never reaches this hook), so QEMU turns it
            # into #DF with error code 0. CR2 is still right; CR2 == RIP means a fetch.
            intno, error = EXC_PF, (PF_INSTR | PF_USER if cr2 == rip else PF_USER)
        if intno == EXC_PF:
            access = ACCESS_EXEC if error & PF_INSTR else ACCESS_WRITE if error & PF_WRITE else ACCESS_READ
            try:
                if not demand_zero_fault(task.space, cr2, access):
                    self._fault_rip = rip
                    task.space.handle_page_fault(cr2, access)
            except GuestFault as fault:
                self._die_of_fault(task, fault, rip, f"{Access(access).name.lower()} at {cr2:#x}")
            except OutOfMemory as oom:
                self.kill(task.group, signal.SIGKILL, f"out of memory at {cr2:#x} ({oom}); guest killed")
            finally:
                self._fault_rip = None
            return
        signo, code, what = EXCEPTION_SIGNALS.get(intno, (signal.SIGSEGV, abi.SI_KERNEL, f"exception {intno}"))
        self._die_of_fault(task, GuestFault(signo, code, 0, what), rip, what)

    def _die_of_fault(self, task: Task, fault: GuestFault, rip: int, what: str) -> None:
        """A fault's signal: to the thread's handler, or death with a one-line account."""
        if self.debugger is not None and self.debugger.catch_fault(task, fault, rip, what):
            return  # gdb sees it first; it is delivered when gdb continues with it
        region = ""
        if fault.signo in (signal.SIGSEGV, signal.SIGBUS) and fault.addr:
            region = describe_region(task.space.find_region(fault.addr))
        detail = f"{what} ({region})" if region else what
        message = (f"killed by {signal_name(fault.signo)} ({code_name(fault.signo, fault.code)}): "
                   f"{detail}; rip {rip:#x}: {disassemble(task.space, rip)}")
        signal_delivery.force_fault(self, task, fault.signo, fault.code, fault.addr, message)

    def _die_of_emulator_error(self, task: Task, error: EngineError) -> None:
        """Unicorn reports #UD as an error (its stop_interrupt path), not through the hook."""
        if not task.alive:
            return
        rip = task.regs.rip
        if error.errno == UC_ERR_INSN_INVALID:
            self._die_of_fault(task, GuestFault(signal.SIGILL, abi.ILL_ILLOPN, rip), rip, "invalid opcode")
        else:
            self._die_of_fault(task, GuestFault(signal.SIGSEGV, abi.SI_KERNEL, 0), rip, f"emulator: {error}")

    def _report_fault(self, group: ThreadGroup, space: AddressSpace, record: FaultRecord) -> None:
        """Tell the listeners, naming the thread that faulted (the one on the CPU, if it
        runs in `space`; else the kernel touched `space` for someone: its process)."""
        task = self.current
        mine = task is not None and task.space is space
        rip = self._fault_rip if mine else None
        for listener in self.fault_listeners:
            listener(task.tid if mine else group.pid, space, record, rip)

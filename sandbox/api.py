"""The Python API: run a program, inspect what it left behind.

    from sandbox import api
    with api.Sandbox(memory=64 << 20) as sb:
        result = sb.run("guests/build/hello", ["hello"])
        print(result.status, result.stats["faults"])
        pml4 = sb.read_physical(result.cr3, 4096)   # walk the tables yourself

The process's address space stays intact after it ends, until `close()` (or the end of the
`with` block), so scripts can read its CR3 and raw guest-physical memory. `close()` also
removes the sandbox's private root from the host, whatever went wrong before it (and, for a
sandbox never closed, when it is collected or the interpreter exits).

As Qiling users expect (examples/ has a runnable script for each):

    result = sb.run(prog, argv, stdin=b"input", capture=True)   # result.stdout, result.stderr
    sb.run(prog, argv, stdin=lambda n: next_line()[:n])         # asked on each read of fd 0
    sb.hook_syscall("getuid", on_exit=lambda call: setattr(call, "result", 0))
    sb.hook_code(start, end, lambda address, size: ...)          # instructions in [start, end)
    sb.read_memory(va, n), sb.write_memory(va, data)             # through the process's page tables
"""

from __future__ import annotations

import os
import sys
import weakref
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO

from sandbox import fastpath
from sandbox.engine import Engine
from sandbox.engine import describe as engine_description
from sandbox.errors import InvariantError, OutOfMemory, SyscallError
from sandbox.guest_io import CAPTURE_LIMIT, OutputCapture, StdinSource, captured_bytes, redirect_streams
from sandbox.kernel import procfs
from sandbox.kernel.kernel import Kernel
from sandbox.kernel.options import Options
from sandbox.kernel.process import ThreadGroup
from sandbox.kernel.vfs import parse_mount
from sandbox.machine import Machine
from sandbox.mm import USER_END
from sandbox.mm.aspace import AddressSpace
from sandbox.mm.fault import faults_taken
from sandbox.mm.uaccess import copy_in, copy_out
from sandbox.syscall_hooks import SyscallCall, SyscallHook, syscall_number

if TYPE_CHECKING:
    from sandbox.snapshot import Keeper, Snapshot

#: Fault-policy types, part of this API; sandbox.mm.policy is imported on first use, since a
#: run without policies never needs it.
POLICY_NAMES = ("Deny", "FaultAround", "FaultContext", "HugePage", "Supply")
#: Snapshot types, part of this API; sandbox.snapshot is imported on first use too.
SNAPSHOT_NAMES = ("Snapshot", "SnapshotError")


def __getattr__(name: str) -> Any:
    """`from sandbox.api import FaultAround` and the like (PEP 562 lazy attributes)."""
    if name in POLICY_NAMES:
        from sandbox.mm import policy

        return getattr(policy, name)
    if name in SNAPSHOT_NAMES:
        from sandbox import snapshot

        return getattr(snapshot, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class RunResult(NamedTuple):
    """How a guest ended, and what it cost."""

    status: int  # what a shell would see: exit code, or 128 + signal
    exit_code: int | None
    signal: int | None
    message: str | None  # why it was killed, one line
    cr3: int
    pid: int
    stats: dict[str, Any]
    maps: str = ""
    stdout: bytes | None = None  # what the guest wrote to fd 1, if captured (run(capture=True))
    stderr: bytes | None = None
    dropped: int = 0  # bytes written to captured streams beyond `capture_limit`, not kept


class MemoryAccessError(Exception):
    """read_memory/write_memory touched an address the process could not touch itself."""


class Stopped(KeyboardInterrupt):
    """The run was stopped from outside, by signal `signo` to the sandbox process.

    A KeyboardInterrupt, so that the kernel's run loop ends every guest process as it does
    for Ctrl-C; raised only where the kernel's state is whole (see `Sandbox.interrupt`).
    """

    def __init__(self, signo: int) -> None:
        super().__init__(signo)
        self.signo = signo


class Sandbox:
    """One machine; runs one program at a time. Use as a context manager."""

    def __init__(self, memory: int = Options.memory, trace_syscalls: bool = False, trace_faults: bool = False,
                 trace_out: TextIO | None = None, **options: Any) -> None:
        """`options` are `Options` fields: root, mounts (list of "HOST:GUEST[:ro|rw]" or
        Mount), cwd, env (["K=V"]), inherit_env, deterministic, seed, fault_policies (callables,
        see sandbox.mm.policy), fault_log (a text file for JSON lines)."""
        mounts = [parse_mount(m) if isinstance(m, str) else m for m in options.pop("mounts", [])]
        self.machine = Machine(memory)
        self.baseline_frames = self.machine.frames.used
        try:
            opts = Options(memory=memory, trace_syscalls=trace_syscalls, trace_faults=trace_faults,
                           trace_out=trace_out or sys.stderr, mounts=mounts, **options)
            self.kernel = Kernel(self.machine, opts)
        except BaseException:
            self.machine.close()
            raise
        self._last: ThreadGroup | None = None
        self._running = False
        self._code_hooks: list[tuple[int, object]] = []
        self._keeper: Keeper | None = None  # snapshots (sandbox.snapshot), made on first use
        self._in_syscall_hook = False
        #: The private root goes even if `close` is never called (at collection, or at exit).
        self._remove_root = weakref.finalize(self, self.kernel.close)

    def run(self, path: str, argv: list[str] | None = None, env: list[str] | None = None, *,
            stdin: StdinSource = None, capture: bool = False, on_stdout: Callable[[bytes], object] | None = None,
            on_stderr: Callable[[bytes], object] | None = None, capture_limit: int = CAPTURE_LIMIT) -> RunResult:
        """Run the program at `path` to completion. Raises SandboxError for a bad file.

        The guest's standard streams are the host's unless: `stdin` (bytes, then end of
        file; or a callable, asked `stdin(n)` on each read of fd 0 for at most `n` bytes,
        b"" meaning end of file, see guest_io.InputCallback); `capture` (fd 1 and 2 kept,
        up to `capture_limit` bytes each, in the result); `on_stdout`/`on_stderr` (called
        with each write). An exception a hook or callback
        raises ends the run and is raised here."""
        self.release()
        argv = [path] if argv is None else argv
        envp = None if env is None else [os.fsencode(e) for e in env]
        proc = self.kernel.spawn(path, argv, envp)
        streams = redirect_streams(proc, stdin, capture, on_stdout, on_stderr, capture_limit)
        self._running = True
        try:
            self.kernel.run(proc)
        except BaseException:
            self.kernel.release(proc)  # a sandbox bug: leave no half-run process behind
            self.kernel.init = None
            raise
        finally:
            self._running = False
        self._last = proc
        if self.kernel.check_every_switch:
            self.kernel.check_invariants()
        return RunResult(
            status=proc.status,
            exit_code=None if proc.death else proc.exit_code,
            signal=proc.death.signo if proc.death else None,
            message=proc.death.message if proc.death else None,
            cr3=proc.space.cr3, pid=proc.pid, stats=self._stats(proc), maps=procfs.maps(proc).decode(),
            stdout=captured_bytes(streams.get(1)), stderr=captured_bytes(streams.get(2)),
            dropped=sum(s.dropped for s in streams.values() if isinstance(s, OutputCapture)),
        )

    # -- hooks and memory, as Qiling users expect -------------------------------------------

    def hook_syscall(self, call: str | int, on_enter: Callable[[SyscallCall], object] | None = None,
                     on_exit: Callable[[SyscallCall], object] | None = None) -> None:
        """Call `on_enter(SyscallCall)` before the system call `call` (a name or number) is
        handled, and `on_exit` when it completes (also after it slept); see SyscallCall for
        what they may change. One hook per call: a new one replaces the old."""
        nr = syscall_number(call)
        if self.kernel.syscall_hooks is None:
            self.kernel.syscall_hooks = {}
        self.kernel.syscall_hooks[nr] = SyscallHook(nr, self._in_hook(on_enter), self._in_hook(on_exit))

    def unhook_syscall(self, call: str | int) -> None:
        """Remove the hook of `call` (KeyError if none)."""
        hooks = self.kernel.syscall_hooks or {}
        del hooks[syscall_number(call)]
        if not hooks:
            self.kernel.syscall_hooks = None  # back to no cost at all

    def hook_code(self, start: int, end: int, callback: Callable[[int, int], object]) -> object:
        """Call `callback(address, size)` before every instruction at a virtual address in
        [start, end), in every process; only that range pays. Returns a handle for unhook_code."""
        if not 0 <= start < end <= USER_END:
            raise ValueError(f"code range {start:#x}..{end:#x} is empty or outside user space")
        handle = self.machine.hook_code(start, end, callback)
        self._code_hooks.append(handle)
        return handle

    def unhook_code(self, handle: object) -> None:
        """Remove a hook hook_code added."""
        self._code_hooks.remove(handle)
        self.machine.unhook_code(handle)

    def read_memory(self, va: int, n: int, pid: int | None = None) -> bytes:
        """`n` bytes at virtual address `va` of process `pid` (default: the one running, from
        a hook, else the last run), read through its page tables as the kernel reads it for
        a system call (a page never touched is faulted in). MemoryAccessError if the process
        could not read there."""
        space = self._space(pid)
        try:
            return copy_in(space, va, n)
        except (SyscallError, OutOfMemory) as error:
            raise MemoryAccessError(f"cannot read {n} bytes at {va:#x}: {_why(error)}") from None

    def write_memory(self, va: int, data: bytes, pid: int | None = None) -> None:
        """Write `data` at virtual address `va` of process `pid` (as read_memory), as the
        kernel writes for a system call: pages are faulted in, a copy-on-write page is copied
        (the other process keeps its own), and a read-only page is refused (MemoryAccessError)."""
        space = self._space(pid)
        try:
            copy_out(space, va, bytes(data))
        except (SyscallError, OutOfMemory) as error:
            raise MemoryAccessError(f"cannot write {len(data)} bytes at {va:#x}: {_why(error)}") from None

    def _space(self, pid: int | None) -> AddressSpace:
        """The address space read_memory and write_memory mean."""
        if pid is None:
            current = self.kernel.current
            proc = current.group if self._running and current is not None else self._last
        else:
            proc = self.kernel.processes.get(pid)
            if proc is None and self._last is not None and self._last.pid == pid:
                proc = self._last
        if proc is None or proc.space is None:
            raise MemoryAccessError(f"no process {'' if pid is None else pid} with an address space")
        return proc.space

    def interrupt(self, signo: int, frame: FrameType | None) -> None:
        """Stop the run from a signal handler (`frame` is the handler's): raise `Stopped`
        now if the handler interrupted the run loop or a sleep; inside a hook the CPU called
        (a system call, a fault) let that finish, then stop the CPU and raise it from there,
        so that no kernel operation is left half done."""
        stop = Stopped(signo)
        if not _inside_hook(frame):
            raise stop
        if self.machine.pending_error is None:
            self.machine.pending_error = stop  # Machine.run raises it once the hook returned
        self.machine.stop()

    def listen_for_signals(self) -> None:
        """Host signals will be forwarded (`forward_signal`): a guest that waits for one
        (in an interactive run; else in pause, sigsuspend or sigtimedwait with a host
        signal handled) is then not a deadlock (sandbox/kernel/tty.py, `may_wake`)."""
        self.kernel.terminal.listen()

    def forward_signal(self, signo: int) -> None:
        """From a host signal handler: give `signo` to the guest's foreground process group
        (the kernel delivers it at its next safe point, see sandbox/kernel/tty.py)."""
        self.kernel.terminal.post(signo)

    def add_fault_policy(self, policy) -> None:
        """Consult `policy(FaultContext)` on every not-present fault (see sandbox.mm.policy)."""
        self.kernel.fault_policies.append(policy)

    def add_fault_listener(self, listener) -> None:
        """Call `listener(pid, space, FaultRecord, rip)` after every handled fault."""
        self.kernel.add_fault_listener(listener)

    def pagetables(self) -> str:
        """The last process's live page-table tree, printed (see sandbox.mm.dump)."""
        from sandbox.mm.dump import dump_pagetables  # --dump-pagetables only: off the start-up path

        return dump_pagetables(self._last.space.pagetable)

    def read_physical(self, pa: int, n: int) -> bytes:
        """Raw guest-physical memory (page tables included)."""
        if pa < 0 or pa + n > self.machine.mem.size:
            raise ValueError(f"physical range {pa:#x}+{n:#x} is outside RAM")
        return self.machine.mem.read(pa, n)

    @property
    def process(self) -> ThreadGroup | None:
        """The last process run, until the next run or close."""
        return self._last

    def _stats(self, proc: ThreadGroup) -> dict[str, Any]:
        """Counters over every process of the run (faults of ended ones included)."""
        frames = self.machine.frames.stats()
        counts = self.kernel.fault_counts.copy()
        for other in self.kernel.processes.values():
            if other.space is not None:
                counts.update(other.space.fault_counts)
        faults = dict(counts)
        vma = proc.space.regions.stats()
        return {
            "faults": faults,
            "faults_total": faults_taken(faults),
            "frames": {"total": frames.total, "used": frames.used, "peak": frames.peak_used,
                       "free": frames.free, "kernel_baseline": self.baseline_frames},
            "page_table_pages": proc.space.pagetable.table_pages,
            "regions": vma.count,
            "virtual_size": vma.virtual_size,
            "processes": self.kernel.stats["forks"] + 1,
            "threads": self.kernel.stats["threads"],  # created besides each process's first
            "pages_shared_at_fork": self.kernel.stats["pages_shared_at_fork"],
            "context_switches": self.kernel.sched.switches,
            "syscalls": dict(self.kernel.syscall_counts),
            "syscalls_total": sum(self.kernel.syscall_counts.values()),
            "engine": engine_description(),
            "fast_path": fastpath.state(),  # system calls entering through C (sandbox/fastpath.py)
            # counted only under max_instructions (a block hook costs time): None otherwise
            "instructions": self.kernel.instructions if self.kernel.options.max_instructions is not None else None,
        }

    def release(self) -> None:
        """Tear down the last process: its frames, tables and descriptors return to the pool."""
        if self._last is not None:
            self.kernel.release(self._last)
            self._last = None
            self.kernel.init = None
            if self.kernel.check_every_switch:
                self.kernel.check_invariants()
                held = self._keeper is not None and self._keeper.snapshots  # snapshots hold frames
                if self.machine.frames.used != self.baseline_frames and not held:
                    raise InvariantError(f"{self.machine.frames.used - self.baseline_frames} frames leaked")

    def close(self) -> None:
        """Tear the last process down, remove the private root and free the machine: every
        step runs even if one before it failed (the first error is raised after them all;
        a root that could not be removed is a sandbox.hostfs.CleanupError)."""
        _run_all((self._release_snapshots, self.release, self.kernel.terminal.close, self._remove_root,
                  self.machine.close))

    # -- snapshots (sandbox/snapshot.py) ------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """A copy-on-write snapshot of the whole machine, from a hook during a run. From a
        code hook or fault listener it is taken now (the running task at the instruction
        the hook is called for); from a system-call hook, once that call has finished and
        the CPU stopped (`snap.taken` tells). SnapshotError outside a run."""
        from sandbox.snapshot import Snapshot, SnapshotError, take

        self._require_open()
        if not self._running:
            raise SnapshotError("a snapshot is taken during a run, from a hook (the processes have ended)")
        keeper = self._snapshot_keeper()
        snap = Snapshot(keeper)
        if self._in_syscall_hook:
            keeper.defer("take", snap)
        else:
            take(snap, self.kernel)
            keeper.added(snap)
        return snap

    def restore(self, snap: Snapshot) -> None:
        """Put the machine back as `snap` was taken; any number of times. From a hook
        during a run, at the next safe point (the CPU stops; the run goes on from the
        snapshot); between runs now, ready for `run_from`."""
        from sandbox.snapshot import SnapshotError, restore

        self._require_open()
        if snap.owner is not self._keeper or self._keeper is None:
            raise SnapshotError("this snapshot belongs to another Sandbox")
        if snap.released:
            raise SnapshotError("this snapshot was released")
        if self._running:
            self._keeper.defer("restore", snap)
            return
        if not snap.taken:
            raise SnapshotError("this snapshot was never taken (its run ended before the safe point)")
        restore(snap, self.kernel)
        self._keeper.update_pins()
        self._last = self.kernel.init
        if self.kernel.check_every_switch:
            self.kernel.check_invariants()

    def run_from(self, snap: Snapshot) -> RunResult:
        """Restore `snap` and run the machine on from there until every process ended (see
        `resume`)."""
        self.restore(snap)
        return self.resume()

    def resume(self) -> RunResult:
        """Run the machine on as it is (after `restore`, say, and writes into its memory or
        registers) until every process ended. Captured streams (run(capture=True)) hold
        what was written before the snapshot too. A hook's exception ends it, as in run,
        but leaves the processes as they are: a restore starts from the snapshot again."""
        from sandbox.snapshot import SnapshotError

        self._require_open()
        proc = self.kernel.init
        if proc is None or not proc.alive:
            raise SnapshotError("no process to resume: restore a snapshot first")
        streams = {fd: proc.files.get(fd) for fd in (1, 2) if fd in proc.files}
        self._running = True
        try:
            self.kernel.run(proc)
        finally:
            self._running = False
            self._keeper.cancel()  # a hook's exception ended the run: nothing waits for a safe point
        self._last = proc
        if self.kernel.check_every_switch:
            self.kernel.check_invariants()
        return RunResult(
            status=proc.status, exit_code=None if proc.death else proc.exit_code,
            signal=proc.death.signo if proc.death else None, message=proc.death.message if proc.death else None,
            cr3=proc.space.cr3, pid=proc.pid, stats=self._stats(proc), maps=procfs.maps(proc).decode(),
            stdout=captured_bytes(streams.get(1)), stderr=captured_bytes(streams.get(2)))

    def _snapshot_keeper(self) -> Keeper:
        from sandbox.snapshot import Keeper

        if self._keeper is None:
            self._keeper = Keeper(self.kernel)
        return self._keeper

    def _require_open(self) -> None:
        from sandbox.snapshot import SnapshotError

        if self.machine.uc is None:
            raise SnapshotError("the sandbox is closed")

    def _in_hook(self, callback: Callable[[SyscallCall], object] | None) -> Callable[[SyscallCall], object] | None:
        """`callback`, marking while it runs that a system-call hook is running."""
        if callback is None:
            return None

        def marked(call: SyscallCall) -> object:
            self._in_syscall_hook = True
            try:
                return callback(call)
            finally:
                self._in_syscall_hook = False
        return marked

    def _release_snapshots(self) -> None:
        if self._keeper is not None:
            for snap in list(self._keeper.snapshots):
                snap.release()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _why(error: Exception) -> str:
    """One line for a failed memory access."""
    return error.why or os.strerror(error.errno) if isinstance(error, SyscallError) else f"out of memory ({error})"


def _inside_hook(frame: FrameType | None) -> bool:
    """True if `frame` is Python code that the CPU called back (a hook) from inside
    Engine.emu_start, rather than emu_start itself or the code around it."""
    start = Engine.emu_start.__code__
    if frame is None or frame.f_code is start:
        return False
    frame = frame.f_back
    while frame is not None:
        if frame.f_code is start:
            return True
        frame = frame.f_back
    return False


def _run_all(steps: tuple[Callable[[], object], ...]) -> None:
    """Call every step in order; then raise the first exception one of them raised."""
    first: BaseException | None = None
    for step in steps:
        try:
            step()
        except BaseException as error:  # noqa: BLE001 - re-raised below, after the other steps
            first = first or error
    if first is not None:
        raise first


RUN_KEYWORDS = ("stdin", "capture", "on_stdout", "on_stderr", "capture_limit")


def run(path: str, argv: list[str] | None = None, **options: Any) -> RunResult:
    """Run one program in a fresh sandbox and tear it down."""
    run_options = {k: options.pop(k) for k in RUN_KEYWORDS if k in options}
    with Sandbox(**options) as sb:
        return sb.run(path, argv, **run_options)


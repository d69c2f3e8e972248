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
"""

from __future__ import annotations

import os
import sys
import weakref
from collections.abc import Callable
from types import FrameType
from typing import Any, NamedTuple, TextIO

from sandbox.engine import Engine
from sandbox.errors import InvariantError
from sandbox.kernel import procfs
from sandbox.kernel.kernel import Kernel
from sandbox.kernel.options import Options
from sandbox.kernel.process import ThreadGroup
from sandbox.kernel.vfs import parse_mount
from sandbox.machine import Machine
from sandbox.mm.dump import dump_pagetables
from sandbox.mm.fault import faults_taken

#: Fault-policy types, part of this API; sandbox.mm.policy is imported on first use, since a
#: run without policies never needs it.
POLICY_NAMES = ("Deny", "FaultAround", "FaultContext", "HugePage", "Supply")


def __getattr__(name: str) -> Any:
    """`from sandbox.api import FaultAround` and the like (PEP 562 lazy attributes)."""
    if name in POLICY_NAMES:
        from sandbox.mm import policy

        return getattr(policy, name)
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
        #: The private root goes even if `close` is never called (at collection, or at exit).
        self._remove_root = weakref.finalize(self, self.kernel.close)

    def run(self, path: str, argv: list[str] | None = None, env: list[str] | None = None) -> RunResult:
        """Run the static ELF at `path` to completion. Raises SandboxError for a bad file."""
        self.release()
        argv = [path] if argv is None else argv
        envp = None if env is None else [os.fsencode(e) for e in env]
        proc = self.kernel.spawn(path, argv, envp)
        try:
            self.kernel.run(proc)
        except BaseException:
            self.kernel.release(proc)  # a sandbox bug: leave no half-run process behind
            self.kernel.init = None
            raise
        self._last = proc
        if self.kernel.check_every_switch:
            self.kernel.check_invariants()
        return RunResult(
            status=proc.status,
            exit_code=None if proc.death else proc.exit_code,
            signal=proc.death.signo if proc.death else None,
            message=proc.death.message if proc.death else None,
            cr3=proc.space.cr3, pid=proc.pid, stats=self._stats(proc), maps=procfs.maps(proc).decode(),
        )

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
        }

    def release(self) -> None:
        """Tear down the last process: its frames, tables and descriptors return to the pool."""
        if self._last is not None:
            self.kernel.release(self._last)
            self._last = None
            self.kernel.init = None
            if self.kernel.check_every_switch:
                self.kernel.check_invariants()
                if self.machine.frames.used != self.baseline_frames:
                    raise InvariantError(f"{self.machine.frames.used - self.baseline_frames} frames leaked")

    def close(self) -> None:
        """Tear the last process down, remove the private root and free the machine: every
        step runs even if one before it failed (the first error is raised after them all;
        a root that could not be removed is a sandbox.hostfs.CleanupError)."""
        _run_all((self.release, self.kernel.terminal.close, self._remove_root, self.machine.close))

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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


def run(path: str, argv: list[str] | None = None, **options: Any) -> RunResult:
    """Run one program in a fresh sandbox and tear it down."""
    with Sandbox(**options) as sb:
        return sb.run(path, argv)


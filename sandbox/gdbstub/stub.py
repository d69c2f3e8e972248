"""The stub's side of the run loop: when the guest stops for gdb, and how it goes on.

The kernel calls these hooks, and only when a stub is attached (`Kernel.debugger`):
`resume(task)` before a task runs (it notices gdb's Ctrl-C, which the watchdog gives a
chance every time it takes the CPU back, and holds other threads while one steps alone),
`ran(task)` after it ran (a breakpoint, a watchpoint, a finished step, a caught fault or the
process's end is reported there, while the task's registers are live), and
`catch_fault(...)` where a fault would become a signal (gdb sees it first, as ptrace does);
and `forked(parent, child)` (Kernel.new_process) and `execed(task)` (exec.load_program).
The first stop is a step that ends before the program's first user instruction (past the
kernel's iretq trampoline), where the stub waits for gdb to connect. While stopped, the
whole machine waits: gdb's packets are served right there, synchronously, in the run loop,
so every register and memory access happens with the CPU off and the kernel whole.

The processes gdb debugs (forks, vforks and execs followed, several inferiors) are
kept by the `Inferiors` half of the stub (inferiors.py); gdb reads the guest's files
through the stub (`vFile`, vfile.py).
"""

from __future__ import annotations

import signal
import socket
from typing import TYPE_CHECKING, NamedTuple

from sandbox.errors import GuestFault
from sandbox.gdbstub import packets
from sandbox.gdbstub.inferiors import Inferiors, Stop
from sandbox.gdbstub.points import WATCH_KINDS, Points, Stepper, Watch
from sandbox.gdbstub.protocol import Connection, Disconnected, accept
from sandbox.gdbstub.vfile import HostIO
from sandbox.gdbstub.xfer import read_auxv
from sandbox.kernel import signal_delivery
from sandbox.kernel.process import State

if TYPE_CHECKING:
    from sandbox.kernel.kernel import Kernel
    from sandbox.kernel.process import ThreadGroup
    from sandbox.kernel.task import Task


#: Seconds a held thread's turn waits (for gdb's Ctrl-C) while the stepping one sleeps.
HOLD_WAIT = 0.005


class CaughtFault(NamedTuple):
    """A fault held back from the guest while gdb looks at it."""

    task: Task
    fault: GuestFault
    rip: int
    what: str


class GdbStub(Inferiors):
    """One gdb session on a kernel's first process (see the module doc)."""

    def __init__(self, kernel: Kernel, server: socket.socket, wait_again: bool = False) -> None:
        self.kernel, self.machine = kernel, kernel.machine
        self.server = server
        self.wait_again = wait_again  # --gdb-wait: after a detach, wait for the next gdb
        self.conn: Connection | None = None
        self.group: ThreadGroup | None = None  # the first process gdb debugs (see `held`)
        self._points: dict[ThreadGroup, Points] = {}  # each attached process's (points_of)
        self.stop: Stop | None = None  # a stop not yet reported
        self.last: Stop | None = None  # the stop gdb is looking at (the `?` reply)
        self.thread: Task | None = None  # Hg: whose registers g/G/p/P mean
        self.stepper = Stepper(self.machine, lambda: self.kernel.current, self._step_done)
        self._step_blocked = False
        self._skip: dict[Task, int] = {}  # a task resuming at a breakpoint runs it first
        self.hold_others = False  # a step of one thread only (vCont;s:TID with no default action)
        self.fault: CaughtFault | None = None
        self._delivering = False
        self._auxv: dict[ThreadGroup, bytes] = {}  # each attached process's (auxv_of)
        self.features: set[bytes] = set()  # of packets.OFFERED, agreed with qSupported
        self.held: list[ThreadGroup] = []  # the other processes gdb debugs: forked children it kept
        self.running: set[ThreadGroup] = set()  # attached processes gdb let run (the others wait)
        self._displaced: set[ThreadGroup] = set()  # vfork parents waiting for D;PID (resume_groups)
        self._declined = 0  # turns refused in a row to processes waiting for gdb
        self._new_child: Task | None = None  # a fork to report as the call returns
        self._vforks: set[Task] = set()  # parents whose vfork gdb heard of, until vforkdone
        self._exec_task: Task | None = None  # a task to stop at its new image's entry
        self.hostio = HostIO(self, packets.MAX_PREAD)  # files gdb reads through us (vFile)
        self.started = False
        self.finished = False

    # -- hooks the kernel calls -------------------------------------------------------------

    def resume(self, task: Task) -> bool:
        """Before `task` runs: stop here if gdb wants to (see the module doc). False if the
        task is not to run now (another thread steps alone) or any more (gdb killed it)."""
        if not self.started:
            self._start(task)
            return True
        if self.conn is None:
            return task.alive
        if self._waits(task.group):
            return self._decline(task)
        if task is self._exec_task and task.space is not None:
            self.stepper.start(task, None)  # through the kernel's trampoline, to the entry
        if self._skip.get(task, task.regs.rip) != task.regs.rip:
            del self._skip[task]  # a signal handler comes first: the breakpoint is not run
        if task is self.stepper.task and self._step_blocked:  # its step ended in a system call
            self.stepper.task = None
            self._step_done(task)
        self._check_exit()
        self._note_interrupt(task)
        self._serve_stop()
        return task.alive and not self._held(task)

    def _lets_run(self, group: ThreadGroup) -> bool:
        """Whether gdb debugs `group` and let it run (a followed vfork child's parent does
        not run, and hears of no vforkdone, until gdb detaches it)."""
        return self.attached(group) and group in self.running and group not in self._displaced

    def _waits(self, group: ThreadGroup) -> bool:
        """Whether `group` is a process gdb debugs and has not resumed (all-stop: it waits
        until a vCont names it, or one for every process)."""
        return self.attached(group) and group not in self.running

    def _decline(self, task: Task) -> bool:
        """`task`'s process waits for gdb: it does not run, but gdb's Ctrl-C and the ends
        of the others are noticed; when nothing else ran for a whole round (every process
        that may run is asleep), this waits a little for gdb rather than spin."""
        self._declined += 1
        if self._declined > len(self.kernel.tasks) and self.conn is not None:
            self.conn.wait_readable(HOLD_WAIT)
        self._check_exit()
        self._note_interrupt(task)
        self._serve_stop()
        return False

    def _note_interrupt(self, task: Task) -> None:
        """gdb's Ctrl-C, if it came: a SIGINT stop, in `task` if it is of a process gdb let
        run, else in one of those (else in the first process)."""
        if self.stop is None and self._interrupted():
            if not self._lets_run(task.group):
                task = next((t for g in self.attached_groups() if self._lets_run(g) for t in g.tasks if t.alive),
                            self._main_task())
            self.stop = Stop(signal.SIGINT, task)

    def _held(self, task: Task) -> bool:
        """Whether `task` must wait while another thread of the process steps alone (gdb
        steps one thread over a breakpoint it took out: the others must not run past it).
        While the stepping thread sleeps in a system call, this waits a little for gdb."""
        step = self.stepper.task
        if not self.hold_others or step is None or task is step or task.group is not step.group:
            return False
        if step.state is State.BLOCKED and self.conn is not None:
            self.conn.wait_readable(HOLD_WAIT)
        return True

    def _interrupted(self) -> bool:
        """Whether gdb sent Ctrl-C since the guest went on (a dropped gdb is let go)."""
        try:
            if self.conn is None or not self.conn.poll_interrupt():
                return False
        except Disconnected:
            self._disconnect()
            return False
        self.conn.interrupted = False
        return True

    def ran(self, task: Task) -> None:
        """After `task` ran: report a step done, a stop noted during the run, or the end."""
        self._declined = 0
        if self._new_child is not None:
            self._fork_stop(task)
        if task is self.stepper.task and task.state is State.BLOCKED:
            self._step_blocked = True
        if self.conn is None and self.stop is None:
            return
        self._check_exit()
        self._serve_stop()

    def catch_fault(self, task: Task, fault: GuestFault, rip: int, what: str) -> bool:
        """A fault in the debugged process: hold its signal and stop for gdb (True), unless
        no gdb is attached or gdb asked for that very signal to be delivered (False)."""
        if self.conn is None or self._delivering or not self.attached(task.group):
            return False
        self.fault = CaughtFault(task, fault, rip, what)
        self.stop = Stop(fault.signo, task)
        self.machine.stop()
        return True

    def finish(self) -> None:
        """The run is over: tell gdb how each process it debugs ended, and close."""
        while self._check_exit():
            pass
        self._disconnect(final=True)

    # -- starting and ending ----------------------------------------------------------------

    def _start(self, task: Task) -> None:
        """The first task is about to run (through the kernel's trampoline): stop before
        its first user instruction, where `_serve_stop` waits for gdb."""
        self.started = True
        self.group = task.group
        self.thread = task
        self.stepper.start(task, None)

    def _connect(self) -> None:
        """At the first stop: note the auxv the new image's stack holds, wait for gdb
        (for at most --timeout, if given: then the run ends as at its time limit)."""
        task = self.last.task
        self._auxv[task.group] = read_auxv(task.space, task.regs.rsp)
        timeout = self.kernel.options.timeout
        try:
            self.conn = accept(self.server, timeout, self._host_wants_out)
        except TimeoutError:
            self.finished = True
            self.kernel.limit_reached(f"time limit of {timeout:g} s reached with no gdb connected")
            return
        except Disconnected:  # a signal to the sandbox: the guest gets it, and runs without gdb
            self._disconnect()
            return
        self._serve(report=False)

    def _host_wants_out(self) -> bool:
        """A signal came to the sandbox itself (Ctrl-C in its terminal, SIGTERM) while it
        waits for gdb: the wait ends, gdb is let go, and the guest gets the signal as
        without a stub (--gdb-wait no longer waits)."""
        if self.kernel.terminal.posted:
            self.wait_again = False
            return True
        return False

    def _check_exit(self) -> bool:
        """Report the end of a process gdb debugs (W or X), once; while gdb still debugs
        another (a kept fork child, a followed vfork child's parent), serve gdb until it
        resumes one; after the last, let gdb go. True if an end was reported."""
        dead = next((g for g in self.attached_groups() if not g.alive), None)
        if self.conn is None or dead is None or self.finished:
            return False
        if dead.death is not None:
            reply = b"X%02x" % packets.gdb_signal(dead.death.signo)
        else:
            reply = b"W%02x" % (dead.exit_code & 0xFF)
        if b"multiprocess" in self.features:
            reply += b";process:%x" % dead.pid
        elif dead is not self.group:  # a held child (fork-events without multiprocess):
            self.release(dead)  # gdb could not tell which process a W meant
            return False
        if self.held and b"multiprocess" in self.features:
            self._next_process(dead, reply)
            return True
        self.finished = True
        try:
            self.conn.send(reply)
        except Disconnected:
            pass
        self._disconnect(final=True)
        return True

    def _next_process(self, dead: ThreadGroup, reply: bytes) -> None:
        """`dead` ended (`reply` says how) while gdb debugs others: it is forgotten (the
        next held one becomes the first, if it was), and gdb is served until it resumes
        or lets go of another."""
        if dead is self.group:
            self._debug_next_held()
        else:
            self.release(dead)
        self.last = Stop(signal.SIGTRAP, self._main_task())
        try:
            self.conn.send(reply)
        except Disconnected:
            self._disconnect()
            return
        self._serve(report=False)

    def _disconnect(self, final: bool = False) -> None:
        """Drop gdb: every breakpoint and watchpoint goes, a held fault is delivered, and
        the guest runs on (or, with --gdb-wait and a live guest, waits for the next gdb)."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        self.hostio.close_all()
        for points in self._points.values():
            points.clear()
        self._points, self.running, self._displaced = {}, set(), set()
        self.stepper.cancel()
        self._skip, self.stop = {}, None
        self.held, self._new_child, self._exec_task, self._vforks = [], None, None, set()
        if self.fault is not None:
            self._deliver_fault()
        if final or not self.wait_again or self.group is None or not self.group.alive:
            self.server.close()
            return
        try:
            self.conn = accept(self.server, None, self._host_wants_out)
        except Disconnected:
            self.server.close()
            return
        self.last = Stop(signal.SIGTRAP, self._main_task())
        self._serve(report=False)

    # -- stops ------------------------------------------------------------------------------

    def _main_task(self) -> Task:
        """The thread a stop names when no particular one caused it."""
        alive = [t for t in self.group.tasks if t.alive] if self.group is not None else []
        return alive[0] if alive else self.thread

    def _debugged_by(self, points: Points) -> Task | None:
        """The task on the CPU if `points` are its process's (or its vfork parent's, see
        `points_of`) and gdb debugs it; else None (the hooks see every process run)."""
        task = self.kernel.current
        if task is None or self.conn is None or not self.attached(task.group):
            return None
        return task if self.points_of(task.group) is points else None

    def _on_break(self, points: Points, address: int) -> None:
        """A breakpoint's code hook (the CPU is at `address`, the instruction not run)."""
        task = self._debugged_by(points)
        if task is None:
            return
        if self._skip.get(task) == address:
            del self._skip[task]
            return
        if self.stop is None:
            self.stop = Stop(signal.SIGTRAP, task, "swbreak:;")
        self.machine.stop()

    def _on_watch(self, points: Points, watch: Watch, _address: int) -> None:
        """The instruction after an access to watched bytes."""
        task = self._debugged_by(points)
        if task is None:
            return
        if self.stop is None:
            self.stop = Stop(signal.SIGTRAP, task, f"{WATCH_KINDS[watch.kind][0]}:{watch.addr:x};")
        self.machine.stop()

    def _step_done(self, task: Task) -> None:
        self._step_blocked = False
        extra = ""
        if task is self._exec_task:
            self._exec_task = None
            extra = f"exec:{task.group.exe_guest.encode().hex()};"
        if self.stop is None:
            self.stop = Stop(signal.SIGTRAP, task, extra)

    def _serve_stop(self) -> None:
        """If a stop is pending, report it and serve gdb until it resumes the guest (the
        first stop waits for gdb to connect)."""
        if self.stop is None or self.finished:
            return
        self.last, self.stop = self.stop, None
        self.stepper.task, self._step_blocked = None, False
        self.thread = self.last.task
        if self.conn is None:
            self._connect()
        else:
            self._serve(report=True)

    def _serve(self, report: bool) -> None:
        """Answer gdb's packets until one resumes the guest (or gdb leaves)."""
        try:
            if report:
                self.conn.send(packets.stop_reply(self, self.last))
            while self.conn is not None:
                packet = self.conn.read_packet()
                if packet is None:  # Ctrl-C while stopped: say where we are
                    self.conn.send(packets.stop_reply(self, self.last))
                    continue
                reply = packets.handle(self, packet)
                if reply is packets.RESUME:
                    return
                if reply is packets.DETACH:
                    self.conn.send(packets.OK)
                if reply in (packets.GONE, packets.DETACH):
                    self._disconnect()
                    return
                self.conn.send(reply)
        except Disconnected:
            self._disconnect()

    # -- resuming ---------------------------------------------------------------------------

    def go(self, step: Task | None, signals: dict[Task, int], others_run: bool = True,
           running: set[ThreadGroup] | None = None) -> None:
        """Resume the processes in `running` (None: every one gdb debugs; the others wait):
        `step` runs one instruction (None: all continue; unless `others_run`, the other
        threads wait for that step); `signals` are given to their threads first (a held
        fault's own signal delivers that fault)."""
        self.hold_others = not others_run
        if running is None:
            running = set(self.attached_groups()) - self._displaced
        self.running = running
        held, self.fault = self.fault, None
        for task, signo in signals.items():
            if held is not None and task is held.task and signo == held.fault.signo:
                self._deliver_fault(held)
                held = None
            elif task.alive:
                signal_delivery.send_to_task(self.kernel, task, signo)
        self._skip = {t: t.regs.rip for g in running for t in g.tasks
                      if t.alive and t.regs.rip in self.points_of(g).breakpoints}
        if step is not None and step.alive:
            self.stepper.start(step, step.regs.rip)
        else:
            self.stepper.cancel()
        current = self.kernel.current
        if current is not None and current.alive and current.on_cpu and (current.pending or current.group.pending):
            signal_delivery.deliver(self.kernel, current)  # before it runs again, as switch_to would

    def _deliver_fault(self, held: CaughtFault | None = None) -> None:
        """Give the guest the fault gdb held back: its handler runs, or it dies of it."""
        held = held or self.fault
        self.fault = None
        if held is None or not held.task.alive:
            return
        self._delivering = True
        try:
            self.kernel._die_of_fault(held.task, held.fault, held.rip, held.what)  # noqa: SLF001 - the kernel's one way
        finally:
            self._delivering = False

    def kill(self) -> None:
        """gdb's k: every guest process ends with SIGKILL."""
        for group in [g for g in self.kernel.processes.values() if g.alive]:
            self.kernel.kill(group, signal.SIGKILL, "killed by gdb")
        self.finished = True


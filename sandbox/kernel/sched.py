"""The scheduler: one CPU, many processes, one at a time.

A process leaves the CPU when it blocks in a system call (the call raised `WouldBlock`),
when it ends, or when the watchdog's time slice expires (round-robin preemption, so no guest
starves the others). Switching saves the CPU into the process's Unicorn context, restores the
next one's and reloads CR3 (which also flushes the TLB). A blocked call is retried when the
process is considered again: after its deadline, when its host descriptor is readable, or
simply on the next pass (pipes, wait4), and its result is written into the saved RAX.
"""

from __future__ import annotations

import select
import signal
import time
from typing import TYPE_CHECKING

from sandbox import engine as X
from sandbox.errors import SyscallError, WouldBlock
from sandbox.kernel import signal_delivery
from sandbox.kernel.checked import KTIME_MAX
from sandbox.kernel.process import Process, State
from sandbox.kernel.syscalls import MASK64

if TYPE_CHECKING:
    from collections.abc import Callable

    from sandbox.kernel.kernel import Kernel

#: The longest single host wait while nothing can run (seconds). A guest may sleep for ever
#: (KTIME_MAX ns, past what select() takes); the scheduler waits in slices and looks again.
IDLE_WAIT_MAX = 60.0


def host_ready(waits: list[tuple[int, int]], timeout_ms: int = 0) -> bool:
    """True if one of `waits` has one of its events (or an error or hang-up) within the time."""
    poller = select.poll()
    for fd, events in waits:
        poller.register(fd, events & 0xFFFF)
    return bool(poller.poll(timeout_ms))


def sleep(proc: Process, ns: int, why: str, finish: Callable[[], int],
          on_interrupt: Callable[[float], None] | None = None) -> int:
    """Wait `ns` nanoseconds, then return `finish()`. The process sleeps in the scheduler, so
    other processes run, signals interrupt it (EINTR; `on_interrupt(seconds left)` first) and
    --timeout still ends the run; under --deterministic the clock jumps instead."""
    deterministic = proc.kernel.options.deterministic
    ns = min(ns, KTIME_MAX)  # "for ever" is the longest time Linux keeps
    if deterministic:
        proc.kernel.clock_offset += ns
    if deterministic or ns <= 0:
        return finish()
    deadline = time.monotonic() + ns / 1e9
    left = (lambda: on_interrupt(max(0.0, deadline - time.monotonic()))) if on_interrupt else None
    raise WouldBlock(why, retry=finish, deadline=deadline, on_interrupt=left)



class Scheduler:
    """Round-robin over the kernel's processes."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.machine = kernel.machine
        self.on_cpu: Process | None = None  # whose registers are live in the CPU
        self._last_pid = 0
        self.switches = 0

    # -- choosing -------------------------------------------------------------------------

    def pick(self) -> Process | None:
        """The next process that can run, round-robin after the last one picked."""
        alive = [p for p in self.kernel.processes.values() if p.alive]
        alive.sort(key=lambda p: (p.pid <= self._last_pid, p.pid))
        self.fire_timers(alive)
        for proc in alive:
            if proc.state is State.BLOCKED and not signal_delivery.interrupt(self.kernel, proc) \
                    and not self.try_wake(proc):
                continue
            if not proc.alive:
                continue
            self._last_pid = proc.pid
            return proc
        return None

    def fire_timers(self, procs: list[Process]) -> None:
        """ITIMER_REAL: SIGALRM for every timer whose deadline passed (re-armed if periodic)."""
        now = self.kernel.monotonic()
        for proc in procs:
            if proc.itimer is None:
                continue
            deadline, interval = proc.itimer
            if now >= deadline:
                proc.itimer = (deadline + interval, interval) if interval else None
                signal_delivery.send(self.kernel, proc, signal.SIGALRM)

    def try_wake(self, proc: Process) -> bool:
        """Retry a blocked call if its condition may hold; True if the process can run."""
        blocked = proc.blocked
        if not blocked.every_pass:
            if blocked.deadline is not None and time.monotonic() < blocked.deadline:
                return False
            waits = blocked.host_waits
            if waits and not host_ready(waits):
                return False
        try:
            result = blocked.retry()
        except WouldBlock as again:  # still the same call: a signal must see its name (NOT_RESTARTED)
            again.call = blocked.call
            proc.blocked = again if again.retry is not None else _with_retry(again, blocked.retry)
            return False
        except SyscallError as error:
            result = -error.errno
        if not proc.alive:  # the retried call ended the process (exit, a fatal signal)
            return False
        proc.blocked = None
        proc.state = State.RUNNING
        self.set_result(proc, result)
        return True

    def idle(self, limit: float | None = None) -> bool:
        """Nothing can run: sleep until a deadline, host input, or the time `limit` (the run's
        --timeout, as time.monotonic). False if nothing ever can."""
        blocked = [p for p in self.kernel.processes.values() if p.state is State.BLOCKED]
        if not blocked:
            return False
        fds = [wait for p in blocked for wait in p.blocked.host_waits]
        deadlines = [p.blocked.deadline for p in blocked if p.blocked.deadline is not None]
        deadlines += [p.itimer[0] for p in blocked if p.itimer is not None and not self.kernel.options.deterministic]
        if self.kernel.options.deterministic and any(p.itimer for p in blocked):
            self.kernel.clock_offset = int(min(p.itimer[0] for p in blocked if p.itimer) * 1e9) + 1
            return True
        if not fds and not deadlines:  # (a --timeout alone never wakes anyone: a deadlock)
            for proc in blocked:
                self.kernel.kill(proc, signal.SIGKILL, f"deadlock: {proc.blocked.why}, and no other process can act")
            return True
        if limit is not None:
            deadlines.append(limit)
        timeout = min(deadlines) - time.monotonic() if deadlines else IDLE_WAIT_MAX
        host_ready(fds, int(min(max(timeout, 0.0), IDLE_WAIT_MAX) * 1000) + 1)
        return True

    # -- blocking -------------------------------------------------------------------------

    def block(self, proc: Process, would_block: WouldBlock, retry) -> None:
        """Put `proc` to sleep in its current system call; the CPU stops after the hook."""
        proc.blocked = would_block if would_block.retry is not None else _with_retry(would_block, retry)
        proc.state = State.BLOCKED
        self.machine.stop()

    def set_result(self, proc: Process, value: int) -> None:
        """Write a system call's result into `proc`'s RAX, live or saved."""
        self.reg_write(proc, X.UC_X86_REG_RAX, value & MASK64)

    def reg_read(self, proc: Process, reg: int) -> int:
        """A register of `proc`: from the CPU if its state is live there, else its context."""
        return self.machine.uc.reg_read(reg) if proc is self.on_cpu else proc.context.reg_read(reg)

    def reg_write(self, proc: Process, reg: int, value: int) -> None:
        if proc is self.on_cpu:
            self.machine.uc.reg_write(reg, value)
        else:
            proc.context.reg_write(reg, value)

    # -- switching ------------------------------------------------------------------------

    def switch_to(self, proc: Process) -> bool:
        """Give `proc` the CPU (a fresh image through the trampoline, or its saved context),
        then deliver its signals. False if a signal ended it."""
        self.kernel.current = proc
        if proc.fresh_entry is not None:
            self.machine.enter_user(proc.space, *proc.fresh_entry)
            proc.fresh_entry = None
        elif proc is not self.on_cpu:
            self.machine.uc.context_restore(proc.context)
            self.machine.forget_cr3()  # the restore changed the CPU's CR3 behind our back
            proc.space.switch_to()
            self.switches += 1
        self.on_cpu = proc
        if proc.pending or proc.sigreturn_pending:
            signal_delivery.deliver(self.kernel, proc)
        return proc.alive

    def switch_out(self, proc: Process) -> None:
        """Save `proc`'s CPU after it ran, so another process may use the CPU."""
        if not proc.alive or proc.fresh_entry is not None or self.on_cpu is not proc:
            return
        if proc.context is None:
            proc.context = self.machine.uc.context_save()
        else:
            self.machine.uc.context_update(proc.context)


def _with_retry(would_block: WouldBlock, retry) -> WouldBlock:
    would_block.retry = retry
    return would_block

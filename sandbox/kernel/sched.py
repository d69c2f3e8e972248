"""The scheduler: one CPU, many tasks (threads), one at a time.

A task leaves the CPU when it blocks in a system call (the call raised `WouldBlock`), when it
ends, when it yields, or when the watchdog's time slice expires (round-robin preemption, so
no guest starves the others). Switching saves the CPU into the task's Unicorn context and
restores the next one's; CR3 is reloaded (which flushes the TLB) only when the next task
lives in another address space: threads of one process share their page tables and TLB.
A blocked call is retried when the task is considered again: after its deadline, when its
host descriptor is readable, or simply on the next pass (pipes, wait4, futexes), and it
then ends through the kernel's one completion path, as a call that never slept does.
"""

from __future__ import annotations

import select
import signal
import time
from typing import TYPE_CHECKING

from sandbox.errors import SyscallError, WouldBlock
from sandbox.kernel import limits, signal_delivery
from sandbox.kernel.checked import KTIME_MAX
from sandbox.kernel.process import State, ThreadGroup
from sandbox.kernel.signals import signal_name
from sandbox.kernel.task import Task

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


def sleep(proc: Task, ns: int, why: str, finish: Callable[[], int],
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



def wait_ready(task: Task, why: str, check: Callable[[bool], int | None], timeout_ns: int | None,
               host_waits: tuple[tuple[int, int], ...] = (), next_event: Callable[[], float | None] | None = None,
               on_interrupt: Callable[[], None] | None = None) -> int:
    """The wait of poll, select and epoll_wait (and of reads on timers): `check(timed_out)`
    gives the call's result, or None while nothing is ready and time is left (with
    `timed_out` it must give one). The task sleeps in the scheduler and is checked on every
    pass; `host_waits` wake an idle sandbox when a host stream is ready, and `next_event()`
    (sandbox-clock seconds, say a timer's expiry) and the timeout bound the idle wait, so a
    wait on a timer is never taken for a deadlock. Under --deterministic the sandbox's clock
    jumps to the earliest of those when nothing else can run. `timeout_ns` None waits for ever."""
    kernel = task.kernel
    result = check(timeout_ns == 0)
    if result is not None:
        return result
    deterministic = kernel.options.deterministic
    interrupted = None if on_interrupt is None else lambda: on_interrupt() and None  # still EINTR
    deadline = None if timeout_ns is None else kernel.monotonic() + min(timeout_ns, KTIME_MAX) / 1e9

    def retry() -> int:
        now = kernel.monotonic()
        result = check(deadline is not None and now >= deadline)
        if result is not None:
            return result
        wake = min((t for t in (deadline, next_event() if next_event else None) if t is not None), default=None)
        host_wake = None if wake is None or deterministic else time.monotonic() + max(0.0, wake - now)
        raise WouldBlock(why, retry=retry, deadline=host_wake, host_waits=host_waits, every_pass=True,
                         on_interrupt=interrupted, clock_deadline=wake if deterministic else None)

    return retry()


class Scheduler:
    """Round-robin over the kernel's tasks."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.machine = kernel.machine
        self.on_cpu: Task | None = None  # whose registers are live in the CPU
        self._last_tid = 0
        self.switches = 0

    # -- choosing -------------------------------------------------------------------------

    def pick(self, going_on: Task | None = None) -> Task | None:
        """The next task that can run, round-robin after the last one picked; `going_on`
        first, if it still can: a task the CPU left before its time slice ended (it sent
        itself a signal, the code cache was flushed) keeps the CPU, as on Linux, where
        neither is a reason to schedule."""
        self.fire_timers([g for g in self.kernel.processes.values() if g.alive])
        signal_delivery.hang_up_orphans(self.kernel)  # job control: stopped jobs whose shell ended
        if going_on is not None and going_on.alive and going_on.state is not State.BLOCKED \
                and not signal_delivery.take_stop(self.kernel, going_on):
            return going_on
        # Job control: stop signals are taken first, so that a parent's wait sees the stops.
        alive = [t for t in self.kernel.tasks.values() if t.alive and not signal_delivery.take_stop(self.kernel, t)]
        alive.sort(key=lambda t: (t.tid <= self._last_tid, t.tid))
        for task in alive:
            if signal_delivery.take_stop(self.kernel, task):  # stopped by a signal sent during this pass
                continue
            if task.state is State.BLOCKED and not signal_delivery.interrupt(self.kernel, task) \
                    and not self.try_wake(task):
                continue
            if not task.alive:
                continue
            self._last_tid = task.tid
            return task
        return None

    def fire_timers(self, groups: list[ThreadGroup]) -> None:
        """ITIMER_REAL: SIGALRM for every timer whose deadline passed (re-armed if periodic)."""
        now = self.kernel.monotonic()
        for group in groups:
            if group.itimer is None:
                continue
            deadline, interval = group.itimer
            if now >= deadline:
                group.itimer = (deadline + interval, interval) if interval else None
                signal_delivery.send(self.kernel, group, signal.SIGALRM)

    def try_wake(self, task: Task) -> bool:
        """Retry a blocked call if its condition may hold; True if the task can run."""
        blocked = task.blocked
        if not blocked.every_pass:
            if blocked.deadline is not None and time.monotonic() < blocked.deadline:
                return False
            waits = blocked.host_waits
            if waits and not host_ready(waits):
                return False
        kernel = self.kernel
        previous, kernel.current = kernel.current, task  # the call runs on the task's behalf
        try:
            result = blocked.retry()
        except WouldBlock as again:  # still the same call: keep its name and arguments
            again.call, again.call_args = blocked.call, blocked.call_args
            task.blocked = again if again.retry is not None else _with_retry(again, blocked.retry)
            return False
        except SyscallError as error:
            result = -error.errno
        finally:
            kernel.current = previous
        if not task.alive:  # the retried call ended the task (exit, a fatal signal)
            return False
        task.blocked = None
        task.state = State.RUNNING
        self.kernel.complete(task, blocked.call, None, blocked.call_args, result)
        return True

    def idle(self, limit: float | None = None) -> bool:
        """Nothing can run: sleep until a deadline, host input, or the time `limit` (the run's
        --timeout, as time.monotonic). False if nothing ever can."""
        blocked = [t for t in self.kernel.tasks.values() if t.state is State.BLOCKED and t.alive
                   and not t.group.stop_signal]  # a stopped task's call waits for SIGCONT first
        stopped = {t.group for t in self.kernel.tasks.values() if t.alive and t.group.stop_signal}
        if not blocked and not stopped:
            return False
        if any(signal_delivery.take_stop(self.kernel, t) for t in blocked):
            return True  # a stop signal sent during the last pass: a parent's wait may end now
        groups = {t.group for t in blocked}
        timed = [g for g in groups if g.itimer is not None]
        fds = [wait for t in blocked for wait in t.blocked.host_waits]
        deadlines = [t.blocked.deadline for t in blocked if t.blocked.deadline is not None]
        clock = [g.itimer[0] for g in timed] + [t.blocked.clock_deadline for t in blocked
                                                if t.blocked.clock_deadline is not None]
        if self.kernel.options.deterministic and clock:  # the sandbox's clock jumps to the next event
            self.kernel.clock_offset = max(self.kernel.clock_offset, int(min(clock) * 1e9) + 1)
            return True
        deadlines += [g.itimer[0] for g in timed]
        if not fds and not deadlines and not self.kernel.terminal.may_wake(self.kernel):  # (nor --timeout)
            for group in groups:
                why = next(t.blocked.why for t in blocked if t.group is group)
                self.kernel.kill(group, signal.SIGKILL, f"deadlock: {why}, and no other process can act")
            for group in stopped:
                why = f"stopped by {signal_name(group.stop_signal)}"
                self.kernel.kill(group, signal.SIGKILL, f"deadlock: {why}, and no other process can continue it")
            return True
        if limit is not None:
            deadlines.append(limit)
        fds += self.kernel.terminal.wake_waits()  # a host signal ends the wait
        timeout = min(deadlines) - time.monotonic() if deadlines else IDLE_WAIT_MAX
        host_ready(fds, int(min(max(timeout, 0.0), IDLE_WAIT_MAX) * 1000) + 1)
        return True

    # -- blocking -------------------------------------------------------------------------

    def block(self, task: Task, would_block: WouldBlock, retry) -> None:
        """Put `task` to sleep in its current system call; the CPU stops after the hook."""
        task.blocked = would_block if would_block.retry is not None else _with_retry(would_block, retry)
        task.state = State.BLOCKED
        self.machine.stop()

    # -- switching ------------------------------------------------------------------------

    def switch_to(self, task: Task) -> bool:
        """Give `task` the CPU (a fresh image through the trampoline, or its saved context),
        then deliver its signals. False if a signal ended it. A thread of the process that
        was on the CPU keeps CR3 and the TLB as they are."""
        self.machine.forget_answers()  # the getters answered in C were the last task's
        self.kernel.current = task
        if task.fresh_entry is not None:
            self.machine.enter_user(task.space, *task.fresh_entry)
            task.fresh_entry = None
        elif task is not self.on_cpu:
            same_space = self.on_cpu is not None and self.on_cpu.space is task.space and task.space is not None
            self.machine.restore_context(task.context, same_space)
            if not same_space:
                task.space.switch_to()
            self.switches += 1
        self.on_cpu = task
        limits.start_cpu(task)
        if task.pending or task.group.pending or task.sigreturn_pending:
            signal_delivery.deliver(self.kernel, task)
        return task.alive

    def switch_out(self, task: Task) -> None:
        """Save `task`'s CPU after it ran, so another task may use the CPU."""
        limits.charge_cpu(self.kernel, task)
        if not task.alive or task.fresh_entry is not None or self.on_cpu is not task:
            return
        task.context = self.machine.save_context(task.context)


def _with_retry(would_block: WouldBlock, retry) -> WouldBlock:
    would_block.retry = retry
    return would_block

"""Signals from generation to the handler and back (Linux kernel/signal.c, arch/x86 signal.c).

- `send` queues a process-directed signal in the thread group (one pending instance per
  number, as for Linux's standard signals), which any thread that does not block it may
  take; `send_to_task` a thread-directed one (tgkill). SIGKILL acts at once; a signal whose
  disposition is SIG_IGN is dropped.
- `force_fault` is a CPU fault's signal, to the faulting thread: delivered to a handler if
  there is one that is neither ignored nor blocked, else the process dies (force_sig_fault).
- `interrupt` wakes a task blocked in a system call when a signal it will act on arrives
  (for a process-directed one, one thread: a runnable one if any, as complete_signal):
  the call fails with EINTR, or is restarted under SA_RESTART (RIP back onto the syscall),
  or returns what it already did (a write cut short, man 7 signal).
- `deliver` runs when the process is about to get the CPU: default actions, or a frame on
  the (alternate) stack and the registers set for the handler. `sigreturn` undoes a frame.
  Both change registers only while the CPU is stopped, never inside a Unicorn hook.
- Job control (do_signal_stop, prepare_signal): a stop signal whose action is the default
  stops every thread of the process when one thread takes it (`take_stop`, from the
  scheduler before it picks a task; a task asleep in a call stays asleep, its call
  unharmed); the parent gets SIGCHLD (CLD_STOPPED, unless SA_NOCLDSTOP) and wait4 a
  W_STOPCODE. SIGCONT, at generation and even if blocked or ignored, continues it
  (CLD_CONTINUED) and discards pending stop signals; a stop signal discards a pending
  SIGCONT. SIGTSTP, SIGTTIN and SIGTTOU are discarded in an orphaned process group, whose
  stop no shell of the session could undo (is_current_pgrp_orphaned), and a group that
  becomes orphaned while stopped is sent SIGHUP and SIGCONT (kill_orphaned_pgrp).
  SIGKILL ends a stopped process at once.
"""

from __future__ import annotations

import errno
import signal
from typing import TYPE_CHECKING

from sandbox.abi import SI_KERNEL, SI_TKILL, SI_USER, SIG_DFL, SIG_IGN, SYSCALL_INSN_LEN
from sandbox.errors import SyscallError
from sandbox.kernel.process import State, ThreadGroup
from sandbox.kernel.sigframe import (
    EFLAGS_CLEARED_FOR_HANDLER,
    REG_EFLAGS,
    REG_RIP,
    REG_RSP,
    SS_DISABLE,
    SS_ONSTACK,
    TRAPNO_PF,
    UCONTEXT_SIZE,
    SigAction,
    pack_frame,
    pack_siginfo,
    plan_frame,
    unpack_ucontext,
)
from sandbox.kernel.signals import signal_name
from sandbox.kernel.task import Task
from sandbox.mm.uaccess import copy_in, copy_out

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sandbox.kernel.kernel import Kernel

SA_SIGINFO, SA_ONSTACK, SA_RESTART = 0x4, 0x0800_0000, 0x1000_0000
SA_NODEFER, SA_RESETHAND, SA_RESTORER = 0x4000_0000, 0x8000_0000, 0x0400_0000
#: Default action "ignore" (man 7 signal).
IGNORED_BY_DEFAULT = {signal.SIGCHLD, signal.SIGURG, signal.SIGWINCH, signal.SIGCONT}
#: Default action "stop" (man 7 signal): taken by `take_stop`, never by `deliver`.
STOP_SIGNALS = frozenset({signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU})
#: The stop signals a terminal (or a job-control shell) sends; SIGSTOP is not one.
TERMINAL_STOPS = STOP_SIGNALS - {signal.SIGSTOP}
SA_NOCLDSTOP = 0x1  # no SIGCHLD when a child stops or continues (man 2 sigaction)
CLD_STOPPED, CLD_CONTINUED = 5, 6  # SIGCHLD's si_code (include/uapi/asm-generic/siginfo.h)
#: The wait status of a continued child (WIFCONTINUED; include/uapi/linux/wait.h __W_CONTINUED).
W_CONTINUED = 0xFFFF
SYNCHRONOUS = (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGTRAP)
UNBLOCKABLE = (1 << (signal.SIGKILL - 1)) | (1 << (signal.SIGSTOP - 1))
#: Calls Linux never restarts after a handler (ERESTARTNOHAND, or restart blocks we do not keep).
NOT_RESTARTED = {"pause", "rt_sigsuspend", "nanosleep", "clock_nanosleep", "poll", "ppoll", "select", "pselect6",
                 "epoll_wait", "epoll_pwait", "epoll_pwait2", "sched_yield", "rt_sigtimedwait"}


def action_of(proc: Task | ThreadGroup, signo: int) -> SigAction:
    return SigAction.parse(proc.sig_actions.get(signo, bytes(32)))


def acts_on(proc: Task | ThreadGroup, signo: int) -> bool:
    """True if delivering `signo` would do something (a handler, or a fatal default); a
    stop's default action is `take_stop`'s, which leaves a sleeping call asleep."""
    handler = action_of(proc, signo).handler
    return handler not in (SIG_DFL, SIG_IGN) or (
        handler == SIG_DFL and signo not in IGNORED_BY_DEFAULT and signo not in STOP_SIGNALS)


def ignored_at_send(proc: Task | ThreadGroup, takers: list[Task], signo: int) -> bool:
    """Whether `signo` is dropped as it is sent, never pending (Linux's sig_ignored): its
    handler is SIG_IGN, or SIG_DFL with "ignore" as the default action while none of the
    threads that could take it blocks it (sigwaitinfo and signalfd still see it then).
    Linux keeps a blocked SIG_IGN signal pending too; here it is dropped, as it would be
    once unblocked."""
    handler = action_of(proc, signo).handler
    if handler == SIG_IGN:
        return True
    return handler == SIG_DFL and signo in IGNORED_BY_DEFAULT and not any(blocked(t, signo) for t in takers)


def blocked(task: Task, signo: int) -> bool:
    return bool(task.sig_mask >> (signo - 1) & 1) and not (1 << (signo - 1)) & UNBLOCKABLE


def deliverable(task: Task) -> list[int]:
    """Pending signals `task` would take now (its own, and its process's that it does not
    block), synchronous faults first."""
    ready = {s for s in task.pending if not blocked(task, s) and acts_on(task, s)}
    ready.update(s for s in task.group.pending if not blocked(task, s) and acts_on(task, s))
    return sorted(ready, key=lambda s: (s not in SYNCHRONOUS, s))


def chosen_thread(group: ThreadGroup, signo: int) -> Task | None:
    """The thread a process-directed `signo` wakes: a runnable one that does not block it,
    else a sleeping one (Linux's complete_signal); None if every thread blocks it."""
    takers = [t for t in group.tasks if t.alive and not blocked(t, signo)]
    runnable = [t for t in takers if t.state is State.RUNNING]
    return (runnable or takers or [None])[0]


# -- generation -------------------------------------------------------------------------------

def send(kernel: Kernel, target: ThreadGroup, signo: int, info: bytes | None = None) -> None:
    """Queue the process-directed `signo` for `target` (or act at once for SIGKILL)."""
    if not target.alive:
        return
    if signo == signal.SIGKILL:
        kernel.kill(target, signo, "killed by SIGKILL")
        return
    _prepare(kernel, target, signo)
    if ignored_at_send(target, [t for t in target.tasks if t.alive], signo):
        return
    target.pending.add(signo, info or pack_siginfo(signo, SI_USER))
    if kernel.current is not None and kernel.current.group is target:
        kernel.machine.stop()  # deliver before the next user instruction


def send_to_task(kernel: Kernel, target: Task, signo: int, info: bytes | None = None) -> None:
    """Queue the thread-directed `signo` for `target` (tgkill, SIGPIPE); SIGKILL and fatal
    defaults still end the whole process."""
    if not target.alive:
        return
    if signo == signal.SIGKILL:
        kernel.kill(target.group, signo, "killed by SIGKILL")
        return
    _prepare(kernel, target.group, signo)
    if ignored_at_send(target, [target], signo):
        return
    target.pending.add(signo, info or pack_siginfo(signo, SI_TKILL))
    if target is kernel.current:
        kernel.machine.stop()


def force_fault(kernel: Kernel, task: Task, signo: int, code: int, addr: int, message: str) -> None:
    """A fault's signal, to the faulting thread: to its handler if one is installed and the
    signal is not blocked; otherwise the process dies with `message` (a blocked or ignored
    fault cannot be survived)."""
    action = action_of(task, signo)
    if action.handler in (SIG_DFL, SIG_IGN) or blocked(task, signo):
        if kernel.tracer is not None:
            kernel.tracer.signal(task.tid, pack_siginfo(signo, code, addr))
        kernel.kill(task.group, signo, message)
        return
    task.pending[signo] = pack_siginfo(signo, code, addr)
    task.fault_cr2 = addr
    kernel.machine.stop()


def _prepare(kernel: Kernel, group: ThreadGroup, signo: int) -> None:
    """What generating `signo` does before it is queued, blocked or ignored as it may be
    (prepare_signal): a stop signal discards a pending SIGCONT; SIGCONT discards pending
    stop signals and continues a stopped process."""
    if signo in STOP_SIGNALS:
        _discard(group, (signal.SIGCONT,))
    elif signo == signal.SIGCONT:
        _discard(group, STOP_SIGNALS)
        if group.stop_signal:
            continue_group(kernel, group)


def _discard(group: ThreadGroup, signals: Iterable[int]) -> None:
    """Drop every pending instance of `signals`, the process's and each thread's."""
    for holder in (group, *group.tasks):
        for signo in signals:
            holder.pending.discard(signo)


# -- job control: group stop and continue -----------------------------------------------------

def take_stop(kernel: Kernel, task: Task) -> bool:
    """True if `task` must not run now: its process is stopped, or a stop signal it takes
    (pending, not blocked, its action the default) stops it now (get_signal's
    do_signal_stop). A terminal's stop signal to an orphaned process group is discarded."""
    group = task.group
    if group.stop_signal:
        return True
    if not (task.pending or group.pending):
        return False
    for holder in (task, group):
        for signo in sorted(STOP_SIGNALS.intersection(holder.pending)):
            if blocked(task, signo) or action_of(task, signo).handler != SIG_DFL:
                continue
            info = holder.pending.pop(signo)
            if kernel.tracer is not None:
                kernel.tracer.signal(task.tid, info)
            if signo in TERMINAL_STOPS and orphaned_pgrp(kernel, group.pgid):
                continue
            stop_group(kernel, group, signo)
            return True
    return False


def stop_group(kernel: Kernel, group: ThreadGroup, signo: int) -> None:
    """Stop every thread of `group` (a sleeping one keeps its call for later); the parent
    may collect W_STOPCODE(signo) once and is sent SIGCHLD (do_notify_parent_cldstop)."""
    group.stop_signal = signo
    group.job_status = 0x7F | signo << 8
    group.stop_watched = not orphaned_pgrp(kernel, group.pgid)
    _notify_parent(kernel, group, CLD_STOPPED, signo)
    if kernel.current is not None and kernel.current.group is group:
        kernel.machine.stop()


def continue_group(kernel: Kernel, group: ThreadGroup) -> None:
    """SIGCONT for stopped `group`: its threads run again (sleeping ones sleep on); the
    parent may collect WIFCONTINUED once and is sent SIGCHLD with CLD_CONTINUED."""
    group.stop_signal = 0
    group.job_status = W_CONTINUED
    _notify_parent(kernel, group, CLD_CONTINUED, signal.SIGCONT)


def _notify_parent(kernel: Kernel, group: ThreadGroup, code: int, status: int) -> None:
    """SIGCHLD to `group`'s parent for a stop or continue, unless it asked for none
    (SA_NOCLDSTOP) or ignores SIGCHLD; the exit signal of clone plays no part here."""
    parent = kernel.processes.get(group.ppid)
    if parent is None or not parent.alive or action_of(parent, signal.SIGCHLD).flags & SA_NOCLDSTOP:
        return
    info = pack_siginfo(signal.SIGCHLD, code, pid=group.pid, uid=kernel.identity.uid, status=status)
    send(kernel, parent, signal.SIGCHLD, info)


def hang_up_orphans(kernel: Kernel) -> None:
    """A process group with stopped members that has become orphaned (its shell ended)
    is sent SIGHUP, then SIGCONT, so that it does not stay stopped for ever
    (kill_orphaned_pgrp at exit; here on the scheduler's next pass). A group that was
    orphaned when it stopped is left as it is."""
    watched = {g.pgid for g in kernel.processes.values() if g.alive and g.stop_signal and g.stop_watched}
    if not watched:
        return
    orphans = orphaned_pgrps(kernel, watched)
    members = [g for g in kernel.processes.values() if g.alive and g.pgid in orphans]
    for group in members:
        group.stop_watched = False
    for signo in (signal.SIGHUP, signal.SIGCONT):
        for group in members:
            send(kernel, group, signo, pack_siginfo(signo, SI_KERNEL))


def orphaned_pgrp(kernel: Kernel, pgid: int) -> bool:
    """Whether process group `pgid` is orphaned: no live member has a parent in another
    group of the same session, the shell that could continue it (will_become_orphaned_pgrp).
    The sandbox's first process has no parent inside: its group is orphaned unless a
    job-control shell moved a child of its own into it."""
    return pgid in orphaned_pgrps(kernel, {pgid})


def orphaned_pgrps(kernel: Kernel, pgids: set[int]) -> set[int]:
    """Those of `pgids` that are orphaned (see orphaned_pgrp), in one pass over the processes."""
    processes, held = kernel.processes, set()
    for member in processes.values():
        if member.alive and member.pgid in pgids:
            parent = processes.get(member.ppid)
            if parent is not None and parent.alive and parent.pgid != member.pgid and parent.sid == member.sid:
                held.add(member.pgid)
    return pgids - held


# -- interruption of a blocked call -------------------------------------------------------------

def interrupt(kernel: Kernel, task: Task) -> bool:
    """If a signal `task` would take waits, end its sleep: EINTR, or a restart, or what the
    call already did. True if woken. A process-directed signal wakes one thread only."""
    if task.blocked is None:
        return False
    ready = [s for s in deliverable(task) if s in task.pending or chosen_thread(task.group, s) is task]
    if not ready:
        return False
    blocked = task.blocked
    restart = blocked.restart
    if restart is None:
        restart = bool(action_of(task, ready[0]).flags & SA_RESTART) and blocked.call not in NOT_RESTARTED
    done = blocked.on_interrupt() if blocked.on_interrupt is not None else None
    task.blocked = None
    task.state = State.RUNNING
    if done is not None:  # the call made progress (a partial write): that is its result
        kernel.complete(task, blocked.call, None, blocked.call_args, done)
    elif restart:
        task.regs.rip -= SYSCALL_INSN_LEN
    else:
        kernel.complete(task, blocked.call, None, blocked.call_args, -errno.EINTR)
    return True


# -- delivery -------------------------------------------------------------------------------------

def deliver(kernel: Kernel, task: Task) -> None:
    """Deliver every signal `task` would take to it, whose registers are live now."""
    if task.sigreturn_pending:
        task.sigreturn_pending = False
        _sigreturn(kernel, task)
    while task.alive and (task.pending or task.group.pending):
        ready = deliverable(task)
        if not ready:
            return
        signo = ready[0]
        info = task.pending.pop(signo) if signo in task.pending else task.group.pending.pop(signo)
        if kernel.tracer is not None:
            kernel.tracer.signal(task.tid, info)
        action = action_of(task, signo)
        if action.handler == SIG_DFL:
            origin = _origin(info)
            kernel.kill(task.group, signo, f"killed by {signal_name(signo)}{origin}")
            return
        _setup_frame(kernel, task, signo, info, action)


def _origin(info: bytes) -> str:
    code = int.from_bytes(info[8:12], "little", signed=True)
    pid = int.from_bytes(info[16:20], "little", signed=True)
    return f" (sent by pid {pid})" if code in (SI_USER, SI_TKILL) and pid else ""


def _setup_frame(kernel: Kernel, proc: Task, signo: int, info: bytes, action: SigAction) -> None:
    """Build the frame and point the CPU at the handler; a bad stack is a fatal SIGSEGV."""
    machine = kernel.machine
    regs = machine.read_sigcontext_regs()
    ss_sp, ss_flags, ss_size = proc.altstack
    on_altstack = ss_size and ss_sp < regs[REG_RSP] <= ss_sp + ss_size
    use_altstack = bool(action.flags & SA_ONSTACK) and not ss_flags & SS_DISABLE and not on_altstack
    plan = plan_frame(regs[REG_RSP], use_altstack, ss_sp + ss_size)
    saved_mask = proc.saved_mask if proc.saved_mask is not None else proc.sig_mask
    altstack = (ss_sp, (SS_ONSTACK if on_altstack else 0) | (ss_flags & SS_DISABLE), ss_size)
    trapno = TRAPNO_PF if signo in (signal.SIGSEGV, signal.SIGBUS) else 0
    frame = pack_frame(plan, action.restorer, regs, saved_mask, info, altstack, proc.fault_cr2, trapno)
    try:
        copy_out(proc.space, plan.fpstate, machine.read_fxsave())
        copy_out(proc.space, plan.frame, frame)
    except SyscallError:
        kernel.kill(proc.group, signal.SIGSEGV, f"killed by SIGSEGV: no room for the {signal_name(signo)} frame "
                                          f"at {plan.frame:#x} (bad stack)")
        return
    proc.saved_mask, proc.fault_cr2 = None, 0
    proc.sig_mask |= action.mask & ~UNBLOCKABLE
    if not action.flags & SA_NODEFER:
        proc.sig_mask |= 1 << (signo - 1)
    if action.flags & SA_RESETHAND:
        proc.sig_actions.pop(signo, None)
    regs[REG_RSP], regs[REG_RIP] = plan.frame, action.handler
    regs[REG_EFLAGS] &= ~EFLAGS_CLEARED_FOR_HANDLER
    machine.write_sigcontext_regs(regs)
    proc.regs.rdi, proc.regs.rsi, proc.regs.rdx, proc.regs.rax = signo, plan.info, plan.ucontext, 0
    kernel.stats["signals_delivered"] += 1


def _sigreturn(kernel: Kernel, proc: Task) -> None:
    """Restore what the frame at rsp - 8 saved: registers, FPU state, mask, alternate stack."""
    machine = kernel.machine
    rsp = proc.regs.rsp
    try:
        restored = unpack_ucontext(copy_in(proc.space, rsp, UCONTEXT_SIZE))
        fpstate = copy_in(proc.space, restored.fpstate, 512) if restored.fpstate else None
    except SyscallError:
        kernel.kill(proc.group, signal.SIGSEGV, "killed by SIGSEGV: rt_sigreturn found no valid frame")
        return
    machine.write_sigcontext_regs(restored.regs)
    if fpstate is not None:
        machine.write_fxsave(fpstate)
    proc.sig_mask = restored.mask & ~UNBLOCKABLE
    ss_sp, ss_flags, ss_size = restored.altstack
    proc.altstack = (ss_sp, ss_flags & SS_DISABLE, ss_size)


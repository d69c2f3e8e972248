"""Signals from generation to the handler and back (Linux kernel/signal.c, arch/x86 signal.c).

- `send` queues a signal (one pending instance per number, as for Linux's standard signals);
  SIGKILL acts at once; a signal whose disposition is SIG_IGN is dropped.
- `force_fault` is a CPU fault's signal: delivered to a handler if there is one that is
  neither ignored nor blocked, else the process dies (Linux's force_sig_fault).
- `interrupt` wakes a process blocked in a system call when a signal it will act on arrives:
  the call fails with EINTR, or is restarted under SA_RESTART (RIP back onto the syscall),
  or returns what it already did (a write cut short, man 7 signal).
- `deliver` runs when the process is about to get the CPU: default actions, or a frame on
  the (alternate) stack and the registers set for the handler. `sigreturn` undoes a frame.
  Both change registers only while the CPU is stopped, never inside a Unicorn hook.
"""

from __future__ import annotations

import errno
import signal
from typing import TYPE_CHECKING

from sandbox import engine as X
from sandbox.abi import SI_TKILL, SI_USER, SIG_DFL, SIG_IGN, SYSCALL_INSN_LEN
from sandbox.errors import SyscallError
from sandbox.kernel.process import Process
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
from sandbox.kernel.syscalls import MASK64
from sandbox.mm.uaccess import copy_in, copy_out

if TYPE_CHECKING:
    from sandbox.kernel.kernel import Kernel

SA_SIGINFO, SA_ONSTACK, SA_RESTART = 0x4, 0x0800_0000, 0x1000_0000
SA_NODEFER, SA_RESETHAND, SA_RESTORER = 0x4000_0000, 0x8000_0000, 0x0400_0000
#: Default action "ignore" (man 7 signal). Stop signals too: there is no job control here.
IGNORED_BY_DEFAULT = {signal.SIGCHLD, signal.SIGURG, signal.SIGWINCH, signal.SIGCONT,
                      signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU}
SYNCHRONOUS = (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGTRAP)
UNBLOCKABLE = (1 << (signal.SIGKILL - 1)) | (1 << (signal.SIGSTOP - 1))
#: Calls Linux never restarts after a handler (ERESTARTNOHAND, or restart blocks we do not keep).
NOT_RESTARTED = {"pause", "rt_sigsuspend", "nanosleep", "clock_nanosleep", "poll", "ppoll", "select", "pselect6",
                 "sched_yield"}


def action_of(proc: Process, signo: int) -> SigAction:
    return SigAction.parse(proc.sig_actions.get(signo, bytes(32)))


def acts_on(proc: Process, signo: int) -> bool:
    """True if delivering `signo` would do something (a handler, or a fatal default)."""
    handler = action_of(proc, signo).handler
    return handler not in (SIG_DFL, SIG_IGN) or (handler == SIG_DFL and signo not in IGNORED_BY_DEFAULT)


def blocked(proc: Process, signo: int) -> bool:
    return bool(proc.sig_mask >> (signo - 1) & 1) and not (1 << (signo - 1)) & UNBLOCKABLE


def deliverable(proc: Process) -> list[int]:
    """Pending signals that are not blocked and would act, synchronous faults first."""
    ready = [s for s in proc.pending if not blocked(proc, s) and acts_on(proc, s)]
    return sorted(ready, key=lambda s: (s not in SYNCHRONOUS, s))


# -- generation -------------------------------------------------------------------------------

def send(kernel: Kernel, target: Process, signo: int, info: bytes | None = None) -> None:
    """Queue `signo` for `target` (or act at once for SIGKILL)."""
    if not target.alive:
        return
    if signo == signal.SIGKILL:
        kernel.kill(target, signo, "killed by SIGKILL")
        return
    if action_of(target, signo).handler == SIG_IGN:
        return
    target.pending.setdefault(signo, info or pack_siginfo(signo, SI_USER))
    if target is kernel.current:
        kernel.machine.stop()  # deliver before the next user instruction


def force_fault(kernel: Kernel, proc: Process, signo: int, code: int, addr: int, message: str) -> None:
    """A fault's signal: to its handler if one is installed and the signal is not blocked;
    otherwise the process dies with `message` (a blocked or ignored fault cannot be survived)."""
    action = action_of(proc, signo)
    if action.handler in (SIG_DFL, SIG_IGN) or blocked(proc, signo):
        kernel.kill(proc, signo, message)
        return
    proc.pending[signo] = pack_siginfo(signo, code, addr)
    proc.fault_cr2 = addr
    kernel.machine.stop()


# -- interruption of a blocked call -------------------------------------------------------------

def interrupt(kernel: Kernel, proc: Process) -> bool:
    """If a deliverable signal waits, end `proc`'s sleep: EINTR, or a restart. True if woken."""
    ready = deliverable(proc)
    if not ready or proc.blocked is None:
        return False
    call = proc.blocked.call
    restart = action_of(proc, ready[0]).flags & SA_RESTART and call not in NOT_RESTARTED
    sched = kernel.sched
    done = proc.blocked.on_interrupt() if proc.blocked.on_interrupt is not None else None
    if done is not None:  # the call made progress (a partial write): that is its result
        sched.reg_write(proc, X.UC_X86_REG_RAX, done & MASK64)
    elif restart:
        sched.reg_write(proc, X.UC_X86_REG_RIP, sched.reg_read(proc, X.UC_X86_REG_RIP) - SYSCALL_INSN_LEN)
    else:
        sched.reg_write(proc, X.UC_X86_REG_RAX, -errno.EINTR & MASK64)
    proc.blocked = None
    proc.state = proc.state.RUNNING
    return True


# -- delivery -------------------------------------------------------------------------------------

def deliver(kernel: Kernel, proc: Process) -> None:
    """Deliver every deliverable pending signal to `proc`, whose registers are live now."""
    if proc.sigreturn_pending:
        proc.sigreturn_pending = False
        _sigreturn(kernel, proc)
    while proc.alive and proc.pending:
        ready = deliverable(proc)
        if not ready:
            return
        signo = ready[0]
        info = proc.pending.pop(signo)
        action = action_of(proc, signo)
        if action.handler == SIG_DFL:
            origin = _origin(info)
            kernel.kill(proc, signo, f"killed by {signal_name(signo)}{origin}")
            return
        _setup_frame(kernel, proc, signo, info, action)


def _origin(info: bytes) -> str:
    code = int.from_bytes(info[8:12], "little", signed=True)
    pid = int.from_bytes(info[16:20], "little", signed=True)
    return f" (sent by pid {pid})" if code in (SI_USER, SI_TKILL) and pid else ""


def _setup_frame(kernel: Kernel, proc: Process, signo: int, info: bytes, action: SigAction) -> None:
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
        kernel.kill(proc, signal.SIGSEGV, f"killed by SIGSEGV: no room for the {signal_name(signo)} frame "
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
    machine.uc.reg_write_batch([(X.UC_X86_REG_RDI, signo), (X.UC_X86_REG_RSI, plan.info),
                                (X.UC_X86_REG_RDX, plan.ucontext), (X.UC_X86_REG_RAX, 0)])
    kernel.stats["signals_delivered"] += 1


def _sigreturn(kernel: Kernel, proc: Process) -> None:
    """Restore what the frame at rsp - 8 saved: registers, FPU state, mask, alternate stack."""
    machine = kernel.machine
    rsp = machine.uc.reg_read(X.UC_X86_REG_RSP)
    try:
        restored = unpack_ucontext(copy_in(proc.space, rsp, UCONTEXT_SIZE))
        fpstate = copy_in(proc.space, restored.fpstate, 512) if restored.fpstate else None
    except SyscallError:
        kernel.kill(proc, signal.SIGSEGV, "killed by SIGSEGV: rt_sigreturn found no valid frame")
        return
    machine.write_sigcontext_regs(restored.regs)
    if fpstate is not None:
        machine.write_fxsave(fpstate)
    proc.sig_mask = restored.mask & ~UNBLOCKABLE
    ss_sp, ss_flags, ss_size = restored.altstack
    proc.altstack = (ss_sp, ss_flags & SS_DISABLE, ss_size)


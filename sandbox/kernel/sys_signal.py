"""Signal system calls: rt_sigaction, rt_sigprocmask, rt_sigreturn, sigaltstack,
rt_sigpending, rt_sigsuspend, pause, alarm, setitimer, getitimer (man 2 of each)."""

from __future__ import annotations

import errno
import signal
import struct

from sandbox.errors import SyscallError, WouldBlock
from sandbox.kernel.checked import USEC_PER_SEC, seconds_ns, time_ns, timeval_fields
from sandbox.kernel.signal_delivery import SS_DISABLE, SS_ONSTACK, UNBLOCKABLE
from sandbox.kernel.syscalls import syscall, to_int32
from sandbox.kernel.task import Task
from sandbox.mm.uaccess import copy_in, copy_out

SIGSET_SIZE = 8  # the kernel's sigset_t: 64 signals
KERNEL_SIGACTION_SIZE = 32  # handler, flags, restorer, mask (arch/x86 struct kernel_sigaction)
SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK = 0, 1, 2
STACK_T = struct.Struct("<Qi4xQ")  # stack_t: ss_sp, ss_flags, ss_size
MINSIGSTKSZ = 2048
ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF = 0, 1, 2
ITIMERVAL = struct.Struct("<qqqq")  # it_interval {sec, usec}, it_value {sec, usec}


def _sigset(proc: Task, addr: int) -> int:
    return struct.unpack("<Q", copy_in(proc.space, addr, 8))[0]


@syscall("rt_sigaction", "signum act oldact sigsetsize")
def sys_rt_sigaction(proc: Task, signum: int, act: int, oldact: int, sigsetsize: int) -> int:
    signum = to_int32(signum)
    if sigsetsize != SIGSET_SIZE or not 1 <= signum <= 64:
        raise SyscallError(errno.EINVAL, "signal or sigset size")
    if act and signum in (signal.SIGKILL, signal.SIGSTOP):
        raise SyscallError(errno.EINVAL, "SIGKILL and SIGSTOP cannot be caught")
    old = proc.sig_actions.get(signum, bytes(KERNEL_SIGACTION_SIZE))
    if act:
        new = copy_in(proc.space, act, KERNEL_SIGACTION_SIZE)
        proc.sig_actions[signum] = new
        if int.from_bytes(new[:8], "little") == 1:  # SIG_IGN discards what is pending
            for holder in (proc.group, *proc.group.tasks):
                holder.pending.discard(signum)
    if oldact:
        copy_out(proc.space, oldact, old)
    return 0


@syscall("rt_sigprocmask", "how set oldset sigsetsize")
def sys_rt_sigprocmask(proc: Task, how: int, set_addr: int, oldset: int, sigsetsize: int) -> int:
    if sigsetsize != SIGSET_SIZE:
        raise SyscallError(errno.EINVAL, "sigset size")
    old = proc.sig_mask
    if set_addr:
        mask = _sigset(proc, set_addr) & ~UNBLOCKABLE
        how = to_int32(how)
        if how == SIG_BLOCK:
            proc.sig_mask |= mask
        elif how == SIG_UNBLOCK:
            proc.sig_mask &= ~mask
        elif how == SIG_SETMASK:
            proc.sig_mask = mask
        else:
            raise SyscallError(errno.EINVAL, f"how {how}")
        if proc.pending or proc.group.pending:
            proc.kernel.machine.stop()  # an unblocked pending signal is delivered now
    if oldset:
        copy_out(proc.space, oldset, struct.pack("<Q", old))
    return 0


@syscall("rt_sigreturn")
def sys_rt_sigreturn(proc: Task) -> int:
    """Undo the signal frame: done when the CPU has stopped (registers change wholesale)."""
    proc.sigreturn_pending = True
    proc.kernel.machine.stop()
    return 0


@syscall("sigaltstack", "ss old_ss")
def sys_sigaltstack(proc: Task, ss: int, old_ss: int) -> int:
    sp, flags, size = proc.altstack
    rsp = proc.regs.rsp
    on_stack = size and sp < rsp <= sp + size
    if old_ss:
        copy_out(proc.space, old_ss, STACK_T.pack(sp, SS_ONSTACK if on_stack else flags, size))
    if ss:
        new_sp, new_flags, new_size = STACK_T.unpack(copy_in(proc.space, ss, STACK_T.size))
        if on_stack:
            raise SyscallError(errno.EPERM, "changing the alternate stack while on it")
        if new_flags & ~SS_DISABLE & ~(1 << 31):  # SS_AUTODISARM is accepted
            raise SyscallError(errno.EINVAL, f"ss_flags {new_flags:#x}")
        if new_flags & SS_DISABLE:
            proc.altstack = (0, SS_DISABLE, 0)
        elif new_size < MINSIGSTKSZ:
            raise SyscallError(errno.ENOMEM, "alternate stack smaller than MINSIGSTKSZ")
        else:
            proc.altstack = (new_sp, 0, new_size)
    return 0


@syscall("rt_sigpending", "set sigsetsize")
def sys_rt_sigpending(proc: Task, set_addr: int, sigsetsize: int) -> int:
    if sigsetsize > SIGSET_SIZE:
        raise SyscallError(errno.EINVAL, "sigset size")
    pending = set(proc.pending) | set(proc.group.pending)  # the thread's and the process's
    bits = sum(1 << (s - 1) for s in pending if proc.sig_mask >> (s - 1) & 1)
    copy_out(proc.space, set_addr, struct.pack("<Q", bits)[:sigsetsize])
    return 0


def _sleep_for_a_signal(why: str):
    def retry() -> int:
        raise WouldBlock(why, retry=retry)
    return retry


@syscall("pause")
def sys_pause(proc: Task) -> int:
    """Sleep until a signal is delivered; always returns -EINTR (man 2 pause)."""
    raise WouldBlock("pause", retry=_sleep_for_a_signal("pause"))


@syscall("rt_sigsuspend", "mask sigsetsize")
def sys_rt_sigsuspend(proc: Task, mask: int, sigsetsize: int) -> int:
    """Wait with a temporary mask; the handler's frame keeps the old mask to restore."""
    if sigsetsize != SIGSET_SIZE:
        raise SyscallError(errno.EINVAL, "sigset size")
    new = _sigset(proc, mask) & ~UNBLOCKABLE
    proc.saved_mask, proc.sig_mask = proc.sig_mask, new
    raise WouldBlock("rt_sigsuspend", retry=_sleep_for_a_signal("rt_sigsuspend"))


# -- interval timers (ITIMER_REAL, driven by the sandbox's clock) -------------------------------

def _remaining(proc: Task) -> tuple[float, float]:
    if proc.itimer is None:
        return 0.0, 0.0
    deadline, interval = proc.itimer
    return max(0.0, deadline - proc.kernel.monotonic()), interval


@syscall("alarm", "seconds")
def sys_alarm(proc: Task, seconds: int) -> int:
    left, _ = _remaining(proc)
    seconds &= 0xFFFF_FFFF
    proc.itimer = (proc.kernel.monotonic() + seconds, 0.0) if seconds else None
    return int(left + 0.999999) if left else 0


def _itimerval(interval: float, left: float) -> bytes:
    """A struct itimerval for times in seconds (each at most KTIME_MAX ns: always fits)."""
    return ITIMERVAL.pack(*timeval_fields(seconds_ns(interval)), *timeval_fields(seconds_ns(left)))


@syscall("setitimer", "which new_value old_value")
def sys_setitimer(proc: Task, which: int, new_value: int, old_value: int) -> int:
    """Arm ITIMER_REAL; times are checked and saturated as Linux's (EINVAL, KTIME_MAX)."""
    if to_int32(which) != ITIMER_REAL:
        raise SyscallError(errno.EINVAL, "only ITIMER_REAL is supported")
    timer = None
    if new_value:
        isec, iusec, vsec, vusec = ITIMERVAL.unpack(copy_in(proc.space, new_value, ITIMERVAL.size))
        interval = time_ns(isec, iusec, USEC_PER_SEC, "it_interval")
        value = time_ns(vsec, vusec, USEC_PER_SEC, "it_value")
        timer = (proc.kernel.monotonic() + value / 1e9, interval / 1e9) if value else None
    if old_value:
        copy_out(proc.space, old_value, _itimerval(*reversed(_remaining(proc))))
    if new_value:
        proc.itimer = timer
    return 0


@syscall("getitimer", "which curr_value")
def sys_getitimer(proc: Task, which: int, curr_value: int) -> int:
    if to_int32(which) != ITIMER_REAL:
        raise SyscallError(errno.EINVAL, "only ITIMER_REAL is supported")
    copy_out(proc.space, curr_value, _itimerval(*reversed(_remaining(proc))))
    return 0

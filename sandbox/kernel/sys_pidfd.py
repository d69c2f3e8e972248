"""Signals by descriptor and with data, and waiting for one: pidfd_open, pidfd_send_signal,
rt_sigqueueinfo, rt_tgsigqueueinfo, rt_sigtimedwait (man 2 of each).

A pidfd is a `File` naming a process (its ThreadGroup, which stays a Python object after
the process is reaped): poll reports it readable once the process has ended, and with
POLLHUP too once it is reaped (kernel/pid.c pidfd_poll); signals through it reach that
process only, never a later one that reuses the number.
"""

from __future__ import annotations

import errno
import struct

from sandbox.abi import SI_TKILL
from sandbox.errors import SyscallError
from sandbox.kernel import signal_delivery
from sandbox.kernel.checked import read_timespec
from sandbox.kernel.files import O_NONBLOCK, O_RDWR, POLLHUP, POLLIN, File, Stat
from sandbox.kernel.process import State, ThreadGroup
from sandbox.kernel.sched import wait_ready
from sandbox.kernel.sigframe import SIGINFO_SIZE
from sandbox.kernel.signal_delivery import SYNCHRONOUS, UNBLOCKABLE
from sandbox.kernel.syscalls import syscall, to_int32
from sandbox.kernel.task import Task
from sandbox.mm.uaccess import copy_in, copy_out

PIDFD_NONBLOCK = O_NONBLOCK
POLLRDNORM = 0x40
SIGSET_SIZE = 8
MAX_SIGNAL = 64
ANON_INODE_DEV = 13  # the anon_inode filesystem's st_dev (a fixed made-up number)


class PidFd(File):
    """A descriptor for a process (`pidfd_open`, man 2 pidfd_open)."""

    def __init__(self, group: ThreadGroup, flags: int) -> None:
        super().__init__(O_RDWR | (flags & O_NONBLOCK))
        self.group = group
        self.name = "anon_inode:[pidfd]"

    def poll(self, events: int) -> int:
        if self.group.state is State.REAPED:
            return POLLIN | POLLRDNORM | POLLHUP
        if not self.group.alive:
            return (POLLIN | POLLRDNORM) & events
        return 0

    def read(self, n: int) -> bytes:
        raise SyscallError(errno.EINVAL, "a pidfd cannot be read")

    def write(self, data: bytes) -> int:
        raise SyscallError(errno.EINVAL, "a pidfd cannot be written")

    def stat(self) -> Stat:
        return Stat(dev=ANON_INODE_DEV, ino=self.group.pid, mode=0o600, blksize=4096)


def pidfd_group(proc: Task, fd: int) -> ThreadGroup:
    """The process behind descriptor `fd`: EBADF if it is not open or not a pidfd."""
    file = proc.files.get(fd)
    if not isinstance(file, PidFd):
        raise SyscallError(errno.EBADF, f"fd {fd} is not a pidfd")
    return file.group


@syscall("pidfd_open", "pid flags")
def sys_pidfd_open(proc: Task, pid: int, flags: int) -> int:
    """A close-on-exec descriptor for process `pid` (a zombie too): EINVAL for bad flags,
    a pid <= 0 or a thread that leads no process, ESRCH if no such task exists."""
    pid, flags = to_int32(pid), to_int32(flags)
    if flags & ~PIDFD_NONBLOCK or pid <= 0:
        raise SyscallError(errno.EINVAL, f"pid {pid}, flags {flags:#x}")
    group = proc.kernel.processes.get(pid)
    if group is None or group.state is State.REAPED:
        if pid in proc.kernel.tasks:
            raise SyscallError(errno.EINVAL, f"thread {pid} leads no process")
        raise SyscallError(errno.ESRCH, f"no process {pid}")
    return open_pidfd(proc, group, flags)


def require_pidfd_room(proc: Task, addr: int) -> None:
    """clone's CLONE_PIDFD checks, made before the child exists: a free descriptor (EMFILE)
    and a writable `addr` for it (EFAULT)."""
    if all(fd in proc.files for fd in range(proc.files.limit)):
        raise SyscallError(errno.EMFILE, "no descriptor free for the pidfd")
    copy_out(proc.space, addr, struct.pack("<i", -1))


def open_pidfd(proc: Task, group: ThreadGroup, flags: int = 0) -> int:
    """A new close-on-exec pidfd for `group` in the caller's table (pidfd_open, CLONE_PIDFD)."""
    return proc.files.install(PidFd(group, flags), cloexec=True)


def _check_signal(sig: int) -> None:
    if not 0 <= sig <= MAX_SIGNAL:
        raise SyscallError(errno.EINVAL, f"signal {sig}")


def _user_siginfo(proc: Task, sig: int, addr: int, to_self: bool) -> bytes:
    """A siginfo the caller made (sigqueue): si_signo becomes `sig`; a code Linux keeps for
    the kernel and kill/tgkill (si_code >= 0, or SI_TKILL) is EPERM unless the caller
    signals itself (kernel/signal.c do_rt_sigqueueinfo)."""
    info = bytearray(copy_in(proc.space, addr, SIGINFO_SIZE))
    code = struct.unpack_from("<i", info, 8)[0]
    if (code >= 0 or code == SI_TKILL) and not to_self:
        raise SyscallError(errno.EPERM, f"si_code {code} may not be forged for another process")
    struct.pack_into("<i", info, 0, sig)
    return bytes(info)


def _send(proc: Task, group: ThreadGroup, sig: int, info: bytes | None) -> int:
    """A process-directed signal with `info` (kill's own if None); 0 only checks."""
    if group.state is State.REAPED:
        raise SyscallError(errno.ESRCH, f"process {group.pid} has been reaped")
    _check_signal(sig)
    if sig and group.alive:
        if info is None:
            proc.kernel.send_signal(group, sig, sender=proc)
        else:
            signal_delivery.send(proc.kernel, group, sig, info)
    return 0


@syscall("pidfd_send_signal", "pidfd sig info flags")
def sys_pidfd_send_signal(proc: Task, pidfd: int, sig: int, info: int, flags: int) -> int:
    if to_int32(flags):
        raise SyscallError(errno.EINVAL, f"flags {to_int32(flags):#x}")
    group = pidfd_group(proc, to_int32(pidfd))
    sig = to_int32(sig)
    data = None
    if info:
        data = copy_in(proc.space, info, SIGINFO_SIZE)
        if struct.unpack_from("<i", data)[0] != sig:
            raise SyscallError(errno.EINVAL, "si_signo is not the signal sent")
        data = _user_siginfo(proc, sig, info, group is proc.group)
    return _send(proc, group, sig, data)


@syscall("rt_sigqueueinfo", "pid sig uinfo")
def sys_rt_sigqueueinfo(proc: Task, pid: int, sig: int, uinfo: int) -> int:
    """sigqueue(3): a signal with the caller's siginfo to process `pid`."""
    pid, sig = to_int32(pid), to_int32(sig)
    info = _user_siginfo(proc, sig, uinfo, pid == proc.pid)
    task = proc.kernel.tasks.get(pid) if pid > 0 else None
    group = task.group if task is not None else proc.kernel.processes.get(pid) if pid > 0 else None
    if group is None:
        raise SyscallError(errno.ESRCH, f"no process {pid}")
    return _send(proc, group, sig, info)


@syscall("rt_tgsigqueueinfo", "tgid tid sig uinfo")
def sys_rt_tgsigqueueinfo(proc: Task, tgid: int, tid: int, sig: int, uinfo: int) -> int:
    """pthread_sigqueue(3): to thread `tid` of process `tgid`."""
    tgid, tid, sig = to_int32(tgid), to_int32(tid), to_int32(sig)
    if tgid <= 0 or tid <= 0:
        raise SyscallError(errno.EINVAL, f"thread group {tgid}, thread {tid}")
    info = _user_siginfo(proc, sig, uinfo, tid == proc.tid)
    target = proc.kernel.tasks.get(tid)
    if target is None or not target.alive or target.pid != tgid:
        raise SyscallError(errno.ESRCH, f"no thread {tid} in process {tgid}")
    _check_signal(sig)
    if sig:
        signal_delivery.send_to_task(proc.kernel, target, sig, info)
    return 0


# -- rt_sigtimedwait --------------------------------------------------------------------------------

def _take_signal(task: Task, wanted: int) -> tuple[int, bytes] | None:
    """Dequeue the first pending signal of the set `wanted` (the thread's own first, then
    its process's; synchronous ones before the rest, then the lowest: next_signal)."""
    for pending in (task.pending, task.group.pending):
        ready = [s for s in pending if wanted >> (s - 1) & 1]
        if ready:
            signo = min(ready, key=lambda s: (s not in SYNCHRONOUS, s))
            return signo, pending.pop(signo)
    return None


@syscall("rt_sigtimedwait", "uthese uinfo uts sigsetsize")
def sys_rt_sigtimedwait(proc: Task, uthese: int, uinfo: int, uts: int, sigsetsize: int) -> int:
    """Wait for a signal of the set (normally blocked by the caller) and take it without
    running a handler: its number, its siginfo into uinfo; EAGAIN when the timeout passes,
    EINTR when another signal's handler ran (kernel/signal.c do_sigtimedwait)."""
    if sigsetsize != SIGSET_SIZE:
        raise SyscallError(errno.EINVAL, f"sigset size {sigsetsize}")
    wanted = struct.unpack("<Q", copy_in(proc.space, uthese, SIGSET_SIZE))[0] & ~UNBLOCKABLE
    timeout_ns = read_timespec(proc.space, uts) if uts else None

    def check(timed_out: bool) -> int | None:
        taken = _take_signal(proc, wanted)
        if taken is not None:
            if uinfo:
                copy_out(proc.space, uinfo, taken[1])
            return taken[0]
        if timed_out:
            raise SyscallError(errno.EAGAIN, "no signal of the set came in time")
        return None

    return wait_ready(proc, "rt_sigtimedwait", check, timeout_ns)

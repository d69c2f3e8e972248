"""Process system calls: fork, vfork, clone, execve, exit, wait4, waitid, kill, process groups
and sessions (man 2 of each)."""

from __future__ import annotations

import errno
import signal
import struct

from sandbox import engine as X
from sandbox.abi import CLD_EXITED, CLD_KILLED, SIG_IGN, SYSCALL_INSN_LEN
from sandbox.errors import SandboxError, SyscallError, WouldBlock
from sandbox.kernel.exec import exec_error, load_program, resolve_program
from sandbox.kernel.process import Process, State
from sandbox.kernel.signal_delivery import action_of
from sandbox.kernel.syscalls import syscall, to_int32
from sandbox.mm.uaccess import copy_in, copy_out, read_cstring

# clone flags (include/uapi/linux/sched.h).
CSIGNAL = 0xFF
CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND = 0x100, 0x200, 0x400, 0x800
CLONE_VFORK, CLONE_PARENT, CLONE_THREAD, CLONE_SETTLS = 0x4000, 0x8000, 0x10000, 0x80000
CLONE_PARENT_SETTID, CLONE_CHILD_CLEARTID, CLONE_CHILD_SETTID = 0x100000, 0x200000, 0x1000000
WNOHANG, WUNTRACED, WCONTINUED, WEXITED, WNOWAIT = 1, 2, 8, 4, 0x1000000
P_ALL, P_PID, P_PGID = 0, 1, 2
RUSAGE_SIZE = 144  # struct rusage on x86-64
SIGINFO_SIZE = 128
MAX_ARGS = 32768  # a bound on argv/envp entries read from the guest
MAX_ARG_BYTES = 2 << 20  # ARG_MAX-like bound on their total size
RLIMIT_NPROC = 6  # include/uapi/asm-generic/resource.h
RLIM_INFINITY = (1 << 64) - 1


# -- fork -----------------------------------------------------------------------------------

def fork(proc: Process, flags: int, stack: int = 0, parent_tid: int = 0, child_tid: int = 0, tls: int = 0) -> int:
    """A copy of `proc` sharing every frame copy-on-write; returns the child's pid.

    The child's CPU is the parent's at this syscall, resuming after it with RAX = 0.
    """
    kernel = proc.kernel
    limit = process_limit(proc)
    if limit is not None and sum(1 for p in kernel.processes.values() if p.state is not State.REAPED) >= limit:
        raise SyscallError(errno.EAGAIN, f"process limit of {limit} reached")
    child = kernel.new_process(proc, proc.space.clone_cow())
    context = kernel.machine.uc.context_save()
    rip = context.reg_read(X.UC_X86_REG_RIP)
    context.reg_write(X.UC_X86_REG_RIP, rip + SYSCALL_INSN_LEN)
    context.reg_write(X.UC_X86_REG_RAX, 0)
    if stack:
        context.reg_write(X.UC_X86_REG_RSP, stack)
    if flags & CLONE_SETTLS:
        context.reg_write(X.UC_X86_REG_FS_BASE, tls)
    child.context = context
    if flags & CLONE_PARENT_SETTID and parent_tid:
        copy_out(proc.space, parent_tid, struct.pack("<i", child.pid))
    if flags & CLONE_CHILD_SETTID and child_tid:
        copy_out(child.space, child_tid, struct.pack("<i", child.pid))
    if flags & CLONE_CHILD_CLEARTID:
        child.clear_child_tid = child_tid
    kernel.stats["forks"] += 1
    kernel.stats["pages_shared_at_fork"] += child.space.pages_shared_at_fork
    if flags & CLONE_VFORK:
        child.vfork_parent = proc
        raise WouldBlock("vfork: waiting for the child to exec or exit", retry=lambda: _vfork_done(child))
    return child.pid


def process_limit(proc: Process) -> int | None:
    """How many processes may exist: --max-processes, or the guest's own lower RLIMIT_NPROC.

    As Linux counts RLIMIT_NPROC (kernel/fork.c `copy_process`), a zombie counts until its
    parent reaps it: a fork bomb that never waits is bounded too (man 2 fork: EAGAIN).
    """
    limit = proc.kernel.options.max_processes
    own = proc.rlimits.get(RLIMIT_NPROC, (RLIM_INFINITY, RLIM_INFINITY))[0]
    if own < RLIM_INFINITY:
        limit = own if limit is None else min(limit, own)
    return limit


def _vfork_done(child: Process) -> int:
    if child.vfork_parent is not None:
        raise WouldBlock("vfork: waiting for the child to exec or exit", retry=lambda: _vfork_done(child))
    return child.pid


@syscall("fork")
def sys_fork(proc: Process) -> int:
    return fork(proc, signal.SIGCHLD)


@syscall("vfork")
def sys_vfork(proc: Process) -> int:
    """Like fork (copy-on-write keeps it safe); the parent sleeps until the child execs or exits."""
    return fork(proc, CLONE_VFORK | signal.SIGCHLD)


@syscall("clone", "flags stack parent_tid child_tid tls")
def sys_clone(proc: Process, flags: int, stack: int, parent_tid: int, child_tid: int, tls: int) -> int:
    """Process-creating clone only: threads (CLONE_VM without CLONE_VFORK) are not supported."""
    if flags & CLONE_VM and not flags & CLONE_VFORK or flags & CLONE_THREAD:
        raise SyscallError(errno.ENOSYS, "threads (CLONE_VM/CLONE_THREAD) are not supported")
    return fork(proc, flags, stack, parent_tid, child_tid, tls)


# -- execve ---------------------------------------------------------------------------------

def _string_array(proc: Process, addr: int) -> list[bytes]:
    """A NULL-terminated array of C strings (argv, envp); E2BIG past the bounds."""
    out, total = [], 0
    while addr:
        pointer = struct.unpack("<Q", copy_in(proc.space, addr + 8 * len(out), 8))[0]
        if not pointer:
            break
        text = read_cstring(proc.space, pointer, 128 * 1024)
        total += len(text) + 1
        if len(out) >= MAX_ARGS or total > MAX_ARG_BYTES:
            raise SyscallError(errno.E2BIG, "argument list too long")
        out.append(text)
    return out


@syscall("execve", "path argv envp")
def sys_execve(proc: Process, path: int, argv: int, envp: int) -> int:
    """Replace the program; descriptors marked FD_CLOEXEC close, caught signals reset."""
    path_bytes = read_cstring(proc.space, path, 4096)
    args, env = _string_array(proc, argv), _string_array(proc, envp)
    fd, guest, args = resolve_program(proc.kernel, proc, path_bytes, args)
    try:
        load_program(proc.kernel, proc, fd, guest, args, env, path_bytes)
    except SandboxError as error:
        raise exec_error(error) from None
    proc.files.close_on_exec()
    proc.sig_actions = {n: a for n, a in proc.sig_actions.items() if action_of(proc, n).handler == SIG_IGN}
    proc.altstack = (0, 2, 0)  # execve drops the alternate stack; pending signals stay
    proc.kernel.release_vfork_parent(proc)
    proc.kernel.machine.stop()
    return 0


@syscall("execveat", "dirfd path argv envp flags")
def sys_execveat(proc: Process, dirfd: int, path: int, argv: int, envp: int, flags: int) -> int:
    if to_int32(dirfd) != -100 or to_int32(flags):
        raise SyscallError(errno.ENOSYS, "execveat with a dirfd or flags")
    return sys_execve(proc, path, argv, envp)


# -- exit and wait --------------------------------------------------------------------------

@syscall("exit", "status")
def sys_exit(proc: Process, status: int) -> int:
    """One thread per process here, so exit ends the process like exit_group."""
    proc.kernel.terminate(proc, code=status & 0xFF)
    return 0


@syscall("exit_group", "status")
def sys_exit_group(proc: Process, status: int) -> int:
    proc.kernel.terminate(proc, code=status & 0xFF)
    return 0


def _matches(proc: Process, child: Process, pid: int) -> bool:
    """wait4's pid argument: -1 any child, >0 that child, 0 my group, < -1 group -pid."""
    if pid == -1:
        return True
    if pid > 0:
        return child.pid == pid
    return child.pgid == (proc.pgid if pid == 0 else -pid)


def _exited_child(proc: Process, pid: int) -> Process | None:
    """A zombie child matching `pid` (wait4's encoding), None if they all still run; ECHILD
    if no child matches at all."""
    candidates = [c for c in proc.children if _matches(proc, c, pid)]
    if not candidates:
        raise SyscallError(errno.ECHILD, "no such child")
    return next((c for c in candidates if c.state is State.ZOMBIE), None)


@syscall("wait4", "pid wstatus options rusage")
def sys_wait4(proc: Process, pid: int, wstatus: int, options: int, rusage: int) -> int:
    pid, options = to_int32(pid), to_int32(options)
    if options & ~(WNOHANG | WUNTRACED | WCONTINUED | 0x40000000 | 0x80000000 | 0x20000000):
        raise SyscallError(errno.EINVAL, f"options {options:#x}")
    zombie = _exited_child(proc, pid)
    if zombie is None:
        if options & WNOHANG:
            return 0
        raise WouldBlock("wait4: no child has exited yet")
    if wstatus:
        copy_out(proc.space, wstatus, struct.pack("<i", zombie.wait_status))
    if rusage:
        copy_out(proc.space, rusage, bytes(RUSAGE_SIZE))
    proc.kernel.reap(zombie)
    return zombie.pid


@syscall("waitid", "idtype id infop options rusage")
def sys_waitid(proc: Process, idtype: int, ident: int, infop: int, options: int, rusage: int) -> int:
    idtype, ident, options = to_int32(idtype), to_int32(ident), to_int32(options)
    if idtype not in (P_ALL, P_PID, P_PGID) or not options & WEXITED:
        raise SyscallError(errno.EINVAL, "waitid needs P_ALL/P_PID/P_PGID and WEXITED")
    pid = -1 if idtype == P_ALL else ident if idtype == P_PID else -ident if ident else 0
    zombie = _exited_child(proc, pid)
    if zombie is None:
        if options & WNOHANG:
            if infop:
                copy_out(proc.space, infop, bytes(SIGINFO_SIZE))
            return 0
        raise WouldBlock("waitid: no child has exited yet")
    if infop:
        code, status = (CLD_KILLED, zombie.death.signo) if zombie.death else (CLD_EXITED, zombie.exit_code)
        info = struct.pack("<iii4xiIi", signal.SIGCHLD, 0, code, zombie.pid, 0, status)
        copy_out(proc.space, infop, info.ljust(SIGINFO_SIZE, b"\0"))
    if not options & WNOWAIT:
        proc.kernel.reap(zombie)
    return 0


# -- signals between processes --------------------------------------------------------------

@syscall("kill", "pid sig")
def sys_kill(proc: Process, pid: int, sig: int) -> int:
    pid, sig = to_int32(pid), to_int32(sig)
    if not 0 <= sig <= 64:
        raise SyscallError(errno.EINVAL, f"signal {sig}")
    kernel = proc.kernel
    alive = [p for p in kernel.processes.values() if p.state is not State.REAPED]
    if pid > 0:
        targets = [p for p in alive if p.pid == pid]
    elif pid == -1:
        targets = [p for p in alive if p.pid != 1]
    else:
        group = proc.pgid if pid == 0 else -pid
        targets = [p for p in alive if p.pgid == group]
    if not targets:
        raise SyscallError(errno.ESRCH, f"no process {pid}")
    for target in targets:
        if sig and target.alive:
            kernel.send_signal(target, sig, sender=proc)
    return 0


@syscall("tgkill", "tgid tid sig")
def sys_tgkill(proc: Process, tgid: int, tid: int, sig: int) -> int:
    if to_int32(tgid) != to_int32(tid):
        raise SyscallError(errno.ESRCH, "one thread per process")
    return sys_kill(proc, tid, sig)


@syscall("tkill", "tid sig")
def sys_tkill(proc: Process, tid: int, sig: int) -> int:
    return sys_kill(proc, tid, sig)


# -- process groups and sessions ------------------------------------------------------------

def _target(proc: Process, pid: int) -> Process:
    pid = to_int32(pid)
    if pid == 0:
        return proc
    target = proc.kernel.processes.get(pid)
    if target is None or target.state is State.REAPED:
        raise SyscallError(errno.ESRCH, f"no process {pid}")
    return target


@syscall("getpgid", "pid")
def sys_getpgid(proc: Process, pid: int) -> int:
    return _target(proc, pid).pgid


@syscall("getpgrp")
def sys_getpgrp(proc: Process) -> int:
    return proc.pgid


@syscall("setpgid", "pid pgid")
def sys_setpgid(proc: Process, pid: int, pgid: int) -> int:
    target, pgid = _target(proc, pid), to_int32(pgid)
    if pgid < 0:
        raise SyscallError(errno.EINVAL, "negative pgid")
    if target is not proc and target not in proc.children:
        raise SyscallError(errno.ESRCH, "not self or a child")
    if target.sid == target.pid:
        raise SyscallError(errno.EPERM, "a session leader keeps its group")
    target.pgid = pgid or target.pid
    return 0


@syscall("getsid", "pid")
def sys_getsid(proc: Process, pid: int) -> int:
    return _target(proc, pid).sid


@syscall("setsid")
def sys_setsid(proc: Process) -> int:
    if proc.pgid == proc.pid:
        raise SyscallError(errno.EPERM, "a group leader cannot start a session")
    proc.sid = proc.pgid = proc.pid
    return proc.sid

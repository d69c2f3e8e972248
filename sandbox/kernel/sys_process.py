"""Process system calls: fork, vfork, clone, execve, exit, wait4, waitid, kill, process groups
and sessions (man 2 of each)."""

from __future__ import annotations

import errno
import signal
import struct

from sandbox.abi import CLD_DUMPED, CLD_EXITED, CLD_KILLED, INIT_PID, SI_TKILL, SIG_IGN, SYSCALL_INSN_LEN
from sandbox.errors import SandboxError, SyscallError, WouldBlock
from sandbox.kernel import limits, signal_delivery
from sandbox.kernel.exec import exec_error, load_program, resolve_program
from sandbox.kernel.process import State, ThreadGroup
from sandbox.kernel.sigframe import pack_siginfo
from sandbox.kernel.signal_delivery import CLD_CONTINUED, CLD_STOPPED, W_CONTINUED, action_of
from sandbox.kernel.sys_pidfd import open_pidfd, pidfd_group, require_pidfd_room
from sandbox.kernel.syscalls import syscall, to_int32
from sandbox.kernel.task import Task
from sandbox.mm import PAGE_SIZE, USER_END
from sandbox.mm.uaccess import copy_in, copy_out, read_cstring

# clone flags (include/uapi/linux/sched.h).
CSIGNAL = 0xFF
CLONE_VM, CLONE_FS, CLONE_FILES, CLONE_SIGHAND = 0x100, 0x200, 0x400, 0x800
CLONE_VFORK, CLONE_PARENT, CLONE_THREAD, CLONE_SETTLS = 0x4000, 0x8000, 0x10000, 0x80000
CLONE_PARENT_SETTID, CLONE_CHILD_CLEARTID, CLONE_CHILD_SETTID = 0x100000, 0x200000, 0x1000000
WNOHANG, WUNTRACED, WCONTINUED, WEXITED, WNOWAIT = 1, 2, 8, 4, 0x1000000
WSTOPPED = WUNTRACED  # waitid's name for it
#: What waitid takes: the above, and __WNOTHREAD, __WALL, __WCLONE (include/uapi/linux/wait.h).
WAITID_OPTIONS = WNOHANG | WSTOPPED | WEXITED | WCONTINUED | WNOWAIT | 0x20000000 | 0x40000000 | 0x80000000
P_ALL, P_PID, P_PGID, P_PIDFD = 0, 1, 2, 3
SIGINFO_SIZE = 128
MAX_ARGS = 32768  # a bound on argv/envp entries read from the guest
MAX_ARG_BYTES = 2 << 20  # ARG_MAX-like bound on their total size


# -- fork and clone -------------------------------------------------------------------------

CLONE_PIDFD, CLONE_CLEAR_SIGHAND = 0x1000, 1 << 32  # (CLONE_SYSVSEM is accepted: no SysV semaphores here)
CLONE_DETACHED = 0x40_0000  # ignored by clone, refused with CLONE_PIDFD
#: Namespaces (include/uapi/linux/sched.h): refused with EPERM, as a container without
#: CAP_SYS_ADMIN refuses them.
CLONE_NAMESPACES = 0x0002_0000 | 0x0200_0000 | 0x0400_0000 | 0x0800_0000 | 0x1000_0000 | 0x2000_0000 | 0x4000_0000
CLONE_NEWNS, CLONE_NEWUSER = 0x0002_0000, 0x1000_0000
#: struct clone_args (clone3): flags, pidfd, child_tid, parent_tid, exit_signal, stack,
#: stack_size, tls, set_tid, set_tid_size, cgroup.
CLONE_ARGS = struct.Struct("<11Q")
CLONE_ARGS_SIZE_VER0 = 64  # the first version: up to tls


class CloneRequest:
    """What clone or clone3 asked for (man 2 clone)."""

    def __init__(self, flags: int, exit_signal: int, stack: int = 0, parent_tid: int = 0, child_tid: int = 0,
                 tls: int = 0, clone3: bool = False, pidfd: int = 0) -> None:
        self.flags, self.exit_signal, self.stack = flags, exit_signal, stack
        self.parent_tid, self.child_tid, self.tls = parent_tid, child_tid, tls
        self.pidfd = pidfd  # where CLONE_PIDFD's descriptor goes (clone: parent_tid's place)
        self.clone3 = clone3  # clone3 checks more (clone3_args_valid)

    def check(self) -> None:
        """The combinations Linux refuses (kernel/fork.c copy_process): EINVAL; namespaces
        and pidfds, which this sandbox has not: EPERM and ENOSYS."""
        flags = self.flags
        if flags & CLONE_NEWNS and flags & CLONE_FS or flags & CLONE_NEWUSER and flags & CLONE_FS:
            raise SyscallError(errno.EINVAL, "a new namespace with CLONE_FS")
        if flags & CLONE_THREAD and not flags & CLONE_SIGHAND:
            raise SyscallError(errno.EINVAL, "CLONE_THREAD without CLONE_SIGHAND")
        if flags & CLONE_SIGHAND and not flags & CLONE_VM:
            raise SyscallError(errno.EINVAL, "CLONE_SIGHAND without CLONE_VM")
        if flags & (CLONE_THREAD | CLONE_PARENT) and self.exit_signal and self.clone3:
            raise SyscallError(errno.EINVAL, "clone3: a thread or CLONE_PARENT child has no exit signal")
        if not 0 <= self.exit_signal <= 64:
            raise SyscallError(errno.EINVAL, f"exit signal {self.exit_signal}")
        if flags & CLONE_NAMESPACES:
            raise SyscallError(errno.EPERM, "namespaces are not available in the sandbox")
        if flags & CLONE_PIDFD and flags & (CLONE_THREAD | CLONE_DETACHED):
            raise SyscallError(errno.EINVAL, "CLONE_PIDFD with CLONE_THREAD or CLONE_DETACHED")
        if flags & CLONE_PIDFD and flags & CLONE_PARENT_SETTID and self.pidfd == self.parent_tid:
            raise SyscallError(errno.EINVAL, "CLONE_PIDFD and CLONE_PARENT_SETTID at one address")
        if flags & CLONE_CLEAR_SIGHAND and flags & CLONE_SIGHAND:
            raise SyscallError(errno.EINVAL, "CLONE_CLEAR_SIGHAND with CLONE_SIGHAND")
        if flags & CLONE_SETTLS and self.tls >= USER_END:
            raise SyscallError(errno.EPERM, f"TLS base {self.tls:#x} is not a user address")


def clone(proc: Task, request: CloneRequest) -> int:
    """A new thread (CLONE_THREAD) or process sharing what `request` asks (CLONE_VM,
    CLONE_FILES, CLONE_SIGHAND; copies otherwise, copy-on-write for memory); returns its id.

    The child's CPU is the caller's at this syscall, resuming after it with RAX = 0 (on its
    own stack and TLS if given).
    """
    request.check()
    kernel, flags = proc.kernel, request.flags
    _require_room(proc, thread=bool(flags & CLONE_THREAD))
    if flags & CLONE_PIDFD:  # EMFILE and EFAULT before the child exists (copy_process)
        require_pidfd_room(proc, request.pidfd)
    if flags & CLONE_THREAD:
        child = kernel.new_thread(proc)
    else:
        child = _new_process(proc, request)
    child.context = kernel.machine.save_context()
    child.regs.rip = proc.regs.rip + SYSCALL_INSN_LEN
    child.regs.rax = 0
    if request.stack:
        child.regs.rsp = request.stack
    if flags & CLONE_SETTLS:
        child.regs.fs_base = request.tls
    if flags & CLONE_PIDFD:
        copy_out(proc.space, request.pidfd, struct.pack("<i", open_pidfd(proc, child.group)))
    if flags & CLONE_PARENT_SETTID and request.parent_tid:
        _put_tid(proc, request.parent_tid, child.tid)
    if flags & CLONE_CHILD_SETTID and request.child_tid:
        _put_tid(child, request.child_tid, child.tid)
    if flags & CLONE_CHILD_CLEARTID:
        child.clear_child_tid = request.child_tid
    if flags & CLONE_CLEAR_SIGHAND:
        child.sig_actions = {n: a for n, a in child.sig_actions.items() if action_of(child, n).handler == SIG_IGN}
    if flags & CLONE_VFORK:
        child.vfork_parent = proc
        raise WouldBlock("vfork: waiting for the child to exec or exit", retry=lambda: _vfork_done(child))
    return child.tid


def _put_tid(task: Task, addr: int, tid: int) -> None:
    """CLONE_*_SETTID: the tid into `task`'s memory; a bad address is ignored, as Linux's
    put_user there is (the child exists by then)."""
    try:
        copy_out(task.space, addr, struct.pack("<i", tid))
    except SyscallError:
        pass


def _new_process(proc: Task, request: CloneRequest) -> Task:
    """The child process of a clone without CLONE_THREAD: its memory shared (CLONE_VM) or
    a copy-on-write copy, its descriptor table and signal actions shared or copied."""
    kernel, flags = proc.kernel, request.flags
    space = proc.space if flags & CLONE_VM else proc.space.clone_cow()
    child = kernel.new_process(proc, space)
    group = child.group
    group.exit_signal = request.exit_signal
    if flags & CLONE_FILES:
        group.files = proc.files
    if flags & CLONE_FS:
        group.fs = proc.group.fs
    if flags & CLONE_SIGHAND:
        group.sig_actions = proc.sig_actions
    if flags & CLONE_PARENT and proc.group is not kernel.init:
        proc.children.remove(group)
        group.ppid = proc.ppid
        grandparent = kernel.processes.get(proc.ppid)
        if grandparent is not None:
            grandparent.children.append(group)
    kernel.stats["forks"] += 1
    if not flags & CLONE_VM:
        kernel.stats["pages_shared_at_fork"] += space.pages_shared_at_fork
    return child


def _require_room(proc: Task, thread: bool) -> None:
    """EAGAIN past the process limit: live threads and unreaped processes count, as
    Linux counts RLIMIT_NPROC (kernel/fork.c `copy_process`): a fork bomb that never
    waits, or a thread bomb, is bounded too."""
    limit = process_limit(proc)
    if limit is None:
        return
    kernel = proc.kernel
    zombies = sum(1 for g in kernel.processes.values() if g.state is State.ZOMBIE)
    if len(kernel.tasks) + zombies >= limit:
        what = "thread" if thread else "process"
        raise SyscallError(errno.EAGAIN, f"process limit of {limit} reached (no new {what})")


def process_limit(proc: Task) -> int | None:
    """How many tasks may exist: --max-processes, or the guest's own lower RLIMIT_NPROC."""
    limit = proc.kernel.options.max_processes
    own = limits.soft(proc, limits.RLIMIT_NPROC)
    if own < limits.RLIM_INFINITY:
        limit = own if limit is None else min(limit, own)
    return limit


def _vfork_done(child: Task) -> int:
    if child.vfork_parent is not None:
        raise WouldBlock("vfork: waiting for the child to exec or exit", retry=lambda: _vfork_done(child))
    return child.tid


@syscall("fork")
def sys_fork(proc: Task) -> int:
    return clone(proc, CloneRequest(0, signal.SIGCHLD))


@syscall("vfork")
def sys_vfork(proc: Task) -> int:
    """clone(CLONE_VM | CLONE_VFORK, SIGCHLD), as Linux's vfork is: the child shares the
    parent's memory (what it writes before exec or _exit, the parent sees; posix_spawn and
    shells report exec failures that way) and the parent sleeps until the child execs or exits."""
    return clone(proc, CloneRequest(CLONE_VM | CLONE_VFORK, signal.SIGCHLD))


@syscall("clone", "flags stack parent_tid child_tid tls")
def sys_clone(proc: Task, flags: int, stack: int, parent_tid: int, child_tid: int, tls: int) -> int:
    """The x86-64 argument order: flags, stack, parent_tid, child_tid, tls (man 2 clone)."""
    flags &= 0xFFFF_FFFF
    return clone(proc, CloneRequest(flags & ~CSIGNAL, flags & CSIGNAL, stack, parent_tid, child_tid, tls,
                                    pidfd=parent_tid))


@syscall("clone3", "cl_args size")
def sys_clone3(proc: Task, cl_args: int, size: int) -> int:
    """clone with a struct clone_args: its stack is a base and a size (man 2 clone3)."""
    if size > PAGE_SIZE:
        raise SyscallError(errno.E2BIG, f"clone_args of {size} bytes")
    if size < CLONE_ARGS_SIZE_VER0:
        raise SyscallError(errno.EINVAL, f"clone_args of {size} bytes")
    raw = copy_in(proc.space, cl_args, size)
    if any(raw[CLONE_ARGS.size:]):
        raise SyscallError(errno.E2BIG, "clone_args fields this kernel does not know")
    (flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size,
     cgroup) = CLONE_ARGS.unpack(raw.ljust(CLONE_ARGS.size, b"\0"))
    if flags & CSIGNAL or (flags & ~CLONE_CLEAR_SIGHAND) >> 32 or set_tid or set_tid_size or cgroup \
            or bool(stack) != bool(stack_size) or stack + stack_size >= 1 << 64:
        raise SyscallError(errno.EINVAL, "clone3 arguments")
    request = CloneRequest(flags, exit_signal, stack + stack_size if stack else 0, parent_tid, child_tid, tls, True,
                           pidfd)
    return clone(proc, request)


# -- execve ---------------------------------------------------------------------------------

def _string_array(proc: Task, addr: int) -> list[bytes]:
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
def sys_execve(proc: Task, path: int, argv: int, envp: int) -> int:
    """Replace the program; descriptors marked FD_CLOEXEC close, caught signals reset. From
    any thread: the others end, and the caller goes on as the process's only thread, with
    its pid (fs/exec.c de_thread)."""
    path_bytes = read_cstring(proc.space, path, 4096)
    args, env = _string_array(proc, argv), _string_array(proc, envp)
    fd, guest, args = resolve_program(proc.kernel, proc, path_bytes, args)
    try:
        load_program(proc.kernel, proc, fd, guest, args, env, path_bytes)
    except SandboxError as error:
        raise exec_error(error) from None
    proc.kernel.become_only_thread(proc)
    if any(g is not proc.group and g.files is proc.files and g.alive for g in proc.kernel.processes.values()):
        proc.group.files = proc.files.copy()  # a table shared by CLONE_FILES is unshared (unshare_files)
    proc.files.close_on_exec()
    # a new table: one CLONE_SIGHAND shared with another process is unshared here
    proc.sig_actions = {n: a for n, a in proc.sig_actions.items() if action_of(proc, n).handler == SIG_IGN}
    proc.altstack = (0, 2, 0)  # execve drops the alternate stack; pending signals stay
    proc.clear_child_tid = proc.robust_list = 0  # exec_mm_release: they named the old image
    proc.kernel.release_vfork_parent(proc)
    proc.kernel.machine.stop()
    return 0


@syscall("execveat", "dirfd path argv envp flags")
def sys_execveat(proc: Task, dirfd: int, path: int, argv: int, envp: int, flags: int) -> int:
    if to_int32(dirfd) != -100 or to_int32(flags):
        raise SyscallError(errno.ENOSYS, "execveat with a dirfd or flags")
    return sys_execve(proc, path, argv, envp)


# -- exit and wait --------------------------------------------------------------------------

@syscall("exit", "status")
def sys_exit(proc: Task, status: int) -> int:
    """End the calling thread; the process ends with its last one (man 2 exit)."""
    limits.note_memory(proc.group, always=True)  # its peak size, before its memory goes
    proc.kernel.exit_task(proc, status & 0xFF)
    return 0


@syscall("exit_group", "status")
def sys_exit_group(proc: Task, status: int) -> int:
    """End every thread of the process (man 2 exit_group)."""
    limits.note_memory(proc.group, always=True)
    proc.kernel.terminate(proc.group, code=status & 0xFF)
    return 0


def _matches(proc: Task, child: ThreadGroup, pid: int) -> bool:
    """wait4's pid argument: -1 any child, >0 that child, 0 my group, < -1 group -pid."""
    if pid == -1:
        return True
    if pid > 0:
        return child.pid == pid
    return child.pgid == (proc.pgid if pid == 0 else -pid)


def _waitable_child(proc: Task, pid: int, options: int) -> tuple[ThreadGroup, int] | None:
    """The first child matching `pid` (wait4's encoding) with something `options` asks
    for: an end (WEXITED) as CLD_* code, a stop not yet collected (WSTOPPED), a continue
    not yet collected (WCONTINUED), as Linux's wait_consider_task tries them. None if no
    such child has news; ECHILD if no child matches at all."""
    candidates = [c for c in proc.children if _matches(proc, c, pid)]
    if not candidates:
        raise SyscallError(errno.ECHILD, "no such child")
    for child in candidates:
        if child.state is State.ZOMBIE:
            if options & WEXITED:
                return child, _exit_code(child)
        elif child.job_status == W_CONTINUED:
            if options & WCONTINUED:
                return child, CLD_CONTINUED
        elif child.job_status and child.stop_signal and options & WSTOPPED:
            return child, CLD_STOPPED
    return None


def _exit_code(zombie: ThreadGroup) -> int:
    """waitid's si_code for an ended child."""
    if zombie.death is None:
        return CLD_EXITED
    return CLD_DUMPED if zombie.core_dumped else CLD_KILLED


def _no_news(call: str, options: int) -> str:
    """Why a wait sleeps, for --trace and the deadlock message."""
    what = [word for bit, word in ((WEXITED, "exited"), (WSTOPPED, "stopped"), (WCONTINUED, "continued"))
            if options & bit]
    return f"{call}: no child has {' or '.join(what)} yet"


@syscall("wait4", "pid wstatus options rusage")
def sys_wait4(proc: Task, pid: int, wstatus: int, options: int, rusage: int) -> int:
    """Collect a child that ended, or with WUNTRACED one that stopped and with WCONTINUED
    one that continued since the last wait (man 2 wait4); only an ended one is reaped."""
    pid, options = to_int32(pid), to_int32(options)
    if options & 0xFFFF_FFFF & ~(WNOHANG | WUNTRACED | WCONTINUED | 0x40000000 | 0x80000000 | 0x20000000):
        raise SyscallError(errno.EINVAL, f"options {options:#x}")
    found = _waitable_child(proc, pid, options | WEXITED)
    if found is None:
        if options & WNOHANG:
            return 0
        raise WouldBlock(_no_news("wait4", options | WEXITED))
    child, code = found
    status = child.wait_status if code not in (CLD_STOPPED, CLD_CONTINUED) else child.job_status
    usage = limits.pack_rusage(child.usage, child.children_usage)
    _collect(proc, child, code)  # collected even if the copies fault, as kernel_wait4's put_user
    if wstatus:
        copy_out(proc.space, wstatus, struct.pack("<i", status))
    if rusage:
        copy_out(proc.space, rusage, usage)
    return child.pid


def _collect(proc: Task, child: ThreadGroup, code: int) -> None:
    """What was reported is gone: a stop or continue is reported once, an ended child
    is reaped."""
    if code in (CLD_STOPPED, CLD_CONTINUED):
        child.job_status = 0
    else:
        _reap(proc, child)


def _reap(proc: Task, zombie: ThreadGroup) -> None:
    """Collect `zombie`: its usage becomes its parent's children's, and it is gone."""
    limits.reap_child(proc.group, zombie)
    proc.kernel.reap(zombie)


@syscall("waitid", "idtype id infop options rusage")
def sys_waitid(proc: Task, idtype: int, ident: int, infop: int, options: int, rusage: int) -> int:
    """wait4 with a siginfo_t and a choice of events: WEXITED, WSTOPPED, WCONTINUED, and
    WNOWAIT to leave what it reports to be reported again (man 2 waitid)."""
    idtype, ident, options = to_int32(idtype), to_int32(ident), to_int32(options)
    if options & 0xFFFF_FFFF & ~WAITID_OPTIONS or not options & (WEXITED | WSTOPPED | WCONTINUED):
        raise SyscallError(errno.EINVAL, f"waitid options {options:#x}")
    if idtype not in (P_ALL, P_PID, P_PGID, P_PIDFD):
        raise SyscallError(errno.EINVAL, f"waitid idtype {idtype}")
    if idtype == P_PIDFD:  # the process a pidfd names (EBADF if `ident` is none)
        idtype, ident = P_PID, pidfd_group(proc, ident).pid
    pid = -1 if idtype == P_ALL else ident if idtype == P_PID else -ident if ident else 0
    found = _waitable_child(proc, pid, options)
    if found is None:
        if options & WNOHANG:
            if infop:
                copy_out(proc.space, infop, bytes(SIGINFO_SIZE))
            return 0
        raise WouldBlock(_no_news("waitid", options))
    child, code = found
    info, usage = _child_info(child, code), limits.pack_rusage(child.usage, child.children_usage)
    if not options & WNOWAIT:
        _collect(proc, child, code)  # even if the copies fault (kernel_waitid)
    if infop:
        copy_out(proc.space, infop, info)
    if rusage:
        copy_out(proc.space, rusage, usage)
    return 0


def _child_info(child: ThreadGroup, code: int) -> bytes:
    """waitid's siginfo_t: SIGCHLD, the CLD_* code, the pid and the status (an exit code
    or the signal that killed, stopped or continued the child)."""
    if code == CLD_EXITED:
        status = child.exit_code
    elif code in (CLD_KILLED, CLD_DUMPED):
        status = child.death.signo
    else:
        status = child.stop_signal if code == CLD_STOPPED else signal.SIGCONT
    info = struct.pack("<iii4xiIi", signal.SIGCHLD, 0, code, child.pid, 0, status)
    return info.ljust(SIGINFO_SIZE, b"\0")


# -- signals between processes --------------------------------------------------------------

@syscall("kill", "pid sig")
def sys_kill(proc: Task, pid: int, sig: int) -> int:
    """A process-directed signal to a process, a process group, or every process."""
    pid, sig = to_int32(pid), to_int32(sig)
    _check_signal(sig)
    kernel = proc.kernel
    if pid == INIT_PID:  # the sandbox's init has no handlers: the signal is dropped (pid namespaces)
        return 0
    alive = [g for g in kernel.processes.values() if g.state is not State.REAPED]
    if pid > 0:
        targets = [g for g in alive if g.pid == pid]
    elif pid == -1:  # everyone but init and the caller (kill_something_info)
        targets = [g for g in alive if g is not proc.group]
    else:
        group = proc.pgid if pid == 0 else -pid
        targets = [g for g in alive if g.pgid == group]
    if not targets:
        raise SyscallError(errno.ESRCH, f"no process {pid}")
    for target in targets:
        if sig and target.alive:
            kernel.send_signal(target, sig, sender=proc)
    return 0


def _check_signal(sig: int) -> None:
    if not 0 <= sig <= 64:
        raise SyscallError(errno.EINVAL, f"signal {sig}")


def _thread_signal(proc: Task, tgid: int | None, tid: int, sig: int) -> int:
    """A thread-directed signal (tgkill; tkill when `tgid` is None); 0 only checks."""
    _check_signal(sig)
    target = proc.kernel.tasks.get(tid) if tid > 0 else None
    if target is None or not target.alive or tgid is not None and target.pid != tgid:
        raise SyscallError(errno.ESRCH if tid > 0 else errno.EINVAL, f"no thread {tid}")
    if sig:
        info = pack_siginfo(sig, SI_TKILL, pid=proc.pid, uid=proc.kernel.identity.uid)
        signal_delivery.send_to_task(proc.kernel, target, sig, info)
    return 0


@syscall("tgkill", "tgid tid sig")
def sys_tgkill(proc: Task, tgid: int, tid: int, sig: int) -> int:
    tgid = to_int32(tgid)
    if tgid <= 0:
        raise SyscallError(errno.EINVAL, f"thread group {tgid}")
    return _thread_signal(proc, tgid, to_int32(tid), to_int32(sig))


@syscall("tkill", "tid sig")
def sys_tkill(proc: Task, tid: int, sig: int) -> int:
    return _thread_signal(proc, None, to_int32(tid), to_int32(sig))


# -- process groups and sessions ------------------------------------------------------------

def _target(proc: Task, pid: int) -> ThreadGroup:
    pid = to_int32(pid)
    if pid == 0:
        return proc.group
    target = proc.kernel.processes.get(pid)
    if target is None or target.state is State.REAPED:
        raise SyscallError(errno.ESRCH, f"no process {pid}")
    return target


@syscall("getpgid", "pid")
def sys_getpgid(proc: Task, pid: int) -> int:
    return _target(proc, pid).pgid


@syscall("getpgrp")
def sys_getpgrp(proc: Task) -> int:
    return proc.pgid


@syscall("setpgid", "pid pgid")
def sys_setpgid(proc: Task, pid: int, pgid: int) -> int:
    target, pgid = _target(proc, pid), to_int32(pgid)
    if pgid < 0:
        raise SyscallError(errno.EINVAL, "negative pgid")
    if target is not proc.group and target not in proc.children:
        raise SyscallError(errno.ESRCH, "not self or a child")
    if target.sid == target.pid:
        raise SyscallError(errno.EPERM, "a session leader keeps its group")
    target.pgid = pgid or target.pid
    return 0


@syscall("getsid", "pid")
def sys_getsid(proc: Task, pid: int) -> int:
    return _target(proc, pid).sid


@syscall("setsid")
def sys_setsid(proc: Task) -> int:
    if proc.pgid == proc.pid:
        raise SyscallError(errno.EPERM, "a group leader cannot start a session")
    proc.sid = proc.pgid = proc.pid
    return proc.sid

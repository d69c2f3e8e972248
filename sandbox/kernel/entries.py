"""Where the CPU enters the kernel: the `syscall` instruction (through the gate in
sandbox/fastpath.py) and exceptions. A part of `Kernel` (sandbox/kernel/kernel.py), split out
by concern as gVisor splits its Task across files.

This is the one boundary where guest mistakes are translated: `SyscallError` becomes -errno
and `WouldBlock` puts the caller to sleep (in `_on_syscall`), `GuestFault` becomes a
signal, `OutOfMemory` kills the process with a message. No exception caused by the guest
reaches the host.
"""

from __future__ import annotations

import errno
import signal
from collections import Counter

from sandbox import abi
from sandbox.engine import UC_ERR_INSN_INVALID, EngineError
from sandbox.errors import GuestFault, OutOfMemory, SyscallError, WouldBlock
from sandbox.fastpath import GETTERS
from sandbox.kernel import signal_delivery
from sandbox.kernel.pipe import PipeEnd
from sandbox.kernel.process import State, ThreadGroup
from sandbox.kernel.sigframe import pack_siginfo
from sandbox.kernel.signals import code_name, signal_name
from sandbox.kernel.syscall_names import SYSCALL_NAMES, SYSCALL_NUMBERS
from sandbox.kernel.syscalls import TABLE, SyscallEntry, to_int32
from sandbox.kernel.task import Task
from sandbox.mm.aspace import AddressSpace
from sandbox.mm.fault import FaultRecord, demand_zero_fault
from sandbox.mm.vma import Access
from sandbox.trace import describe_region, disassemble
from sandbox.x86 import (
    EXC_BP,
    EXC_DB,
    EXC_DE,
    EXC_DF,
    EXC_GP,
    EXC_PF,
    EXC_UD,
    PF_INSTR,
    PF_USER,
    PF_WRITE,
)

ACCESS_READ, ACCESS_WRITE, ACCESS_EXEC = int(Access.READ), int(Access.WRITE), int(Access.EXEC)

#: CPU exceptions other than #PF, as Linux's traps.c turns them into signals.
EXCEPTION_SIGNALS = {
    EXC_DE: (signal.SIGFPE, abi.FPE_INTDIV, "integer divide by zero"),
    EXC_DB: (signal.SIGTRAP, abi.TRAP_BRKPT, "debug trap"),
    EXC_BP: (signal.SIGTRAP, abi.SI_KERNEL, "breakpoint (int3)"),
    4: (signal.SIGSEGV, abi.SI_KERNEL, "overflow (into)"),
    5: (signal.SIGSEGV, abi.SI_KERNEL, "bound range exceeded"),
    EXC_UD: (signal.SIGILL, abi.ILL_ILLOPN, "invalid opcode"),
    7: (signal.SIGSEGV, abi.SI_KERNEL, "device not available"),
    12: (signal.SIGBUS, abi.SI_KERNEL, "stack segment fault"),
    EXC_GP: (signal.SIGSEGV, abi.SI_KERNEL, "general protection fault"),
    16: (signal.SIGFPE, abi.SI_KERNEL, "x87 floating-point error"),
    17: (signal.SIGBUS, abi.SI_KERNEL, "alignment check"),
    19: (signal.SIGFPE, abi.SI_KERNEL, "SIMD floating-point error"),
}

#: The --stats key of every number that is no Linux system call.
UNKNOWN_SYSCALL = "(not a system call)"
#: Calls numbered below this are counted in a list by number, named when the counts are read.
COUNTED_NUMBERS = 1024
#: Calls whose EPIPE comes with SIGPIPE (a write to a pipe nobody reads).
WRITE_CALLS = {"write", "writev", "pwrite64", "pwritev", "pwritev2", "sendfile", "splice", "tee", "vmsplice"}
WRITE_NUMBERS = frozenset(SYSCALL_NUMBERS[name] for name in WRITE_CALLS)
RUNNING, BLOCKED = State.RUNNING, State.BLOCKED


def _reader_left(task: Task, call: str, args: tuple[int, ...]) -> bool:
    """Whether a write that made progress stopped because the pipe's last reader went:
    Linux's pipe_write sends SIGPIPE then too, and returns the count written."""
    if call != "write" and call != "writev":
        return False
    files, fd = task.group.files, args[0] & 0xFFFF_FFFF
    if fd not in files:
        return False
    file = files.get(fd)
    return isinstance(file, PipeEnd) and file.writing and file.pipe.readers == 0


def _alive(task: Task) -> bool:
    """`task.alive`, by identity: this is asked of every call, and testing an Enum member's
    membership in a set runs Enum.__hash__ in Python (~0.1 us)."""
    state = task.state
    return (state is RUNNING or state is BLOCKED) and task.group.state is RUNNING


class CpuEntries:
    """`Kernel`'s entries from the CPU: system calls and exceptions (a mixin: the state is
    the Kernel's)."""

    @property
    def syscall_counts(self) -> Counter[str]:
        """System calls by name, the getters the C gate answered included."""
        self._take_answered()
        counts, by_nr = self._syscall_counts, self._counts_by_nr
        for nr, n in enumerate(by_nr):
            if n:
                counts[SYSCALL_NAMES.get(nr, UNKNOWN_SYSCALL)] += n
                by_nr[nr] = 0
        return counts

    def _take_answered(self) -> None:
        """Fold in the getter calls the C gate answered (sandbox/fastpath.py); it calls
        this itself before Python runs again, so the counts are exact wherever read."""
        counts = self._syscall_counts
        for name, n in zip(GETTERS.values(), self.machine.take_answered_counts(), strict=True):
            if n:
                counts[name] += n

    def _on_syscall(self) -> None:
        """The CPU executed `syscall` (the gate calls this for every call it does not answer
        in C): count it, run its handler, complete it. This is the path of every call nobody
        watches, kept to a few attribute reads around the handler (issue 17); a call the
        syscall trace or an api hook must see takes `_on_watched_syscall`."""
        task = self.current
        raw = self.machine.syscall_args()  # (nr, arg0..arg5)
        # Linux takes the number from EAX, as an int (arch/x86/entry/common.c, do_syscall_64):
        # 1 << 32 | 39 is getpid, and -1 or any upper half set in EAX is ENOSYS.
        nr = raw[0]
        if nr < COUNTED_NUMBERS:
            self._counts_by_nr[nr] += 1  # named when read (syscall_counts)
        else:
            nr = self._count_odd_number(nr)
        entry = TABLE.get(nr)
        if self.syscall_hooks or (self.tracer is not None and self.tracer.syscalls):
            self._on_watched_syscall(task, nr, entry, raw[1:])
            return
        if entry is None:
            self.complete(task, nr, None, raw[1:], -errno.ENOSYS)
            return
        handler, nargs = entry.handler, len(entry.args)
        try:  # three arguments (read, write, lseek, ...) without building a tuple to spread
            result = handler(task, raw[1], raw[2], raw[3]) if nargs == 3 else handler(task, *raw[1 : 1 + nargs])
        except SyscallError as error:
            result = -error.errno
        except WouldBlock as would_block:
            self._sleep_in(task, entry, raw[1:], would_block)
            return
        if task is self.sched.on_cpu and task.saved_mask is None and nr not in WRITE_NUMBERS:
            state = task.state  # complete() with nothing else to do; _alive(task), inline
            if task.fresh_entry is None and (state is RUNNING or state is BLOCKED) and task.group.state is RUNNING:
                self.machine.set_return(result)
        else:
            self.complete(task, nr, entry, raw[1:], result)
        if nr in GETTERS:
            self._publish(task, nr, result)

    def _count_odd_number(self, nr: int) -> int:
        """Count a call whose number is not below COUNTED_NUMBERS; the number as Linux reads
        it (EAX as an int). Linux's name even for a call not implemented here; numbers Linux
        does not have share one key, so a guest cannot grow the counts with every number."""
        if nr >> 31:
            nr = to_int32(nr)
        if 0 <= nr < COUNTED_NUMBERS:
            self._counts_by_nr[nr] += 1
        else:
            self._syscall_counts[SYSCALL_NAMES.get(nr, UNKNOWN_SYSCALL)] += 1
        return nr

    def _on_watched_syscall(self, task: Task, nr: int, entry: SyscallEntry | None, args: tuple[int, ...]) -> None:
        """`_on_syscall` for a call someone watches: an api hook (sandbox.api hook_syscall)
        sees and may change its arguments or skip its handler, the trace shows its entry."""
        hook, early = (self.syscall_hooks.get(nr) if self.syscall_hooks else None), None
        if hook is not None:
            args, early = hook.enter(task, nr, args)  # arguments changed; a result given skips the handler
        if self.tracer is not None and self.tracer.syscalls:
            self.tracer.enter(task.tid, task.space, nr, entry, args)
        if entry is None or early is not None:
            self.complete(task, nr, entry, args, -errno.ENOSYS if early is None else early)
            return
        try:
            result = entry.handler(task, *args[: len(entry.args)])
        except SyscallError as error:
            result = -error.errno
        except WouldBlock as would_block:
            self._sleep_in(task, entry, args, would_block)
            return
        self.complete(task, nr, entry, args, result)

    def _sleep_in(self, task: Task, entry: SyscallEntry, args: tuple[int, ...], would_block: WouldBlock) -> None:
        """The call must wait (its handler raised `would_block`): the task sleeps in it, to
        retry the handler with the same arguments, and completes it later (sched.py)."""
        call_args = args[: len(entry.args)]
        would_block.call, would_block.call_args = entry.name, args
        self.sched.block(task, would_block, lambda: entry.handler(task, *call_args))
        if self.tracer is not None and self.tracer.syscalls:
            self.tracer.blocked(task.tid, entry, args, would_block.why)

    def _publish(self, task: Task, nr: int, answer: int) -> None:
        """Let the machine's C gate answer getter `nr` itself (sandbox/fastpath.py) until
        Python runs anything else, unless something must see each call: the syscall trace,
        an api hook, the gdb stub, or a pending signal (delivered only as a call ends)."""
        if (self.tracer is not None and self.tracer.syscalls) or self.syscall_hooks or self.debugger is not None \
                or task.pending or task.group.pending or task is not self.sched.on_cpu or not task.alive:
            return
        self.machine.publish_answer(nr, answer)

    def complete(self, task: Task, nr: int | str, entry: SyscallEntry | None, args: tuple[int, ...],
                 result: int) -> None:
        """The one way a system call ends, whether it finished at once or after sleeping
        (`nr` may then be its name): SIGPIPE for a write that found no reader, the trace
        line, the mask a ppoll-like wait swapped in given back unless a signal's handler
        takes it (restore_saved_sigmask_unless), and the result in RAX (unless the call
        replaced or ended the task). `_on_syscall` does the last step itself for an
        unwatched call that needs none of the others: keep the two in step."""
        if isinstance(nr, str):
            entry = TABLE.get(SYSCALL_NUMBERS.get(nr, -1))
            nr = entry.nr if entry is not None else -1
        if self.syscall_hooks and nr in self.syscall_hooks:  # sandbox.api hook_syscall: on_exit
            result = self.syscall_hooks[nr].exit(task, nr, args, result)
        if nr in WRITE_NUMBERS and (result == -errno.EPIPE or result > 0) and entry is not None \
                and _alive(task) and (result < 0 or _reader_left(task, entry.name, args)):
            info = pack_siginfo(signal.SIGPIPE, abi.SI_USER, pid=task.pid, uid=self.identity.uid)
            signal_delivery.send_to_task(self, task, signal.SIGPIPE, info)  # pipe_write: send_sig(current)
        if task.saved_mask is not None and result != -errno.EINTR:
            task.sig_mask, task.saved_mask = task.saved_mask, None
        if self.tracer is not None and self.tracer.syscalls:
            self.tracer.syscall(task.tid, nr, entry, args, result)
        if task.fresh_entry is None and _alive(task):
            if task is self.sched.on_cpu:
                self.machine.set_return(result)  # one C call (Task.set_return: two through ctypes)
            else:
                task.set_return(result)

    def _on_exception(self, intno: int) -> None:
        cr2, error, rip = self.machine.exceptions.take()
        task = self.current
        if intno == EXC_DF:
            # Unicorn raises an instruction-fetch #PF at an indirect-branch target twice
            # (the first from the TB-lookup helper never reaches this hook), so QEMU turns it
            # into #DF with error code 0. CR2 is still right; CR2 == RIP means a fetch.
            intno, error = EXC_PF, (PF_INSTR | PF_USER if cr2 == rip else PF_USER)
        if intno == EXC_PF:
            access = ACCESS_EXEC if error & PF_INSTR else ACCESS_WRITE if error & PF_WRITE else ACCESS_READ
            try:
                if not demand_zero_fault(task.space, cr2, access):
                    self._fault_rip = rip
                    task.space.handle_page_fault(cr2, access)
            except GuestFault as fault:
                self._die_of_fault(task, fault, rip, f"{Access(access).name.lower()} at {cr2:#x}")
            except OutOfMemory as oom:
                self.kill(task.group, signal.SIGKILL, f"out of memory at {cr2:#x} ({oom}); guest killed")
            finally:
                self._fault_rip = None
            return
        signo, code, what = EXCEPTION_SIGNALS.get(intno, (signal.SIGSEGV, abi.SI_KERNEL, f"exception {intno}"))
        self._die_of_fault(task, GuestFault(signo, code, 0, what), rip, what)

    def _die_of_fault(self, task: Task, fault: GuestFault, rip: int, what: str) -> None:
        """A fault's signal: to the thread's handler, or death with a one-line account."""
        if self.debugger is not None and self.debugger.catch_fault(task, fault, rip, what):
            return  # gdb sees it first; it is delivered when gdb continues with it
        region = ""
        if fault.signo in (signal.SIGSEGV, signal.SIGBUS) and fault.addr:
            region = describe_region(task.space.find_region(fault.addr))
        detail = f"{what} ({region})" if region else what
        message = (f"killed by {signal_name(fault.signo)} ({code_name(fault.signo, fault.code)}): "
                   f"{detail}; rip {rip:#x}: {disassemble(task.space, rip)}")
        signal_delivery.force_fault(self, task, fault.signo, fault.code, fault.addr, message)

    def _die_of_emulator_error(self, task: Task, error: EngineError) -> None:
        """Unicorn reports #UD as an error (its stop_interrupt path), not through the hook."""
        if not task.alive:
            return
        rip = task.regs.rip
        if error.errno == UC_ERR_INSN_INVALID:
            self._die_of_fault(task, GuestFault(signal.SIGILL, abi.ILL_ILLOPN, rip), rip, "invalid opcode")
        else:
            self._die_of_fault(task, GuestFault(signal.SIGSEGV, abi.SI_KERNEL, 0), rip, f"emulator: {error}")

    def _report_fault(self, group: ThreadGroup, space: AddressSpace, record: FaultRecord) -> None:
        """Tell the listeners, naming the thread that faulted (the one on the CPU, if it
        runs in `space`; else the kernel touched `space` for someone: its process)."""
        task = self.current
        mine = task is not None and task.space is space
        rip = self._fault_rip if mine else None
        for listener in self.fault_listeners:
            listener(task.tid if mine else group.pid, space, record, rip)

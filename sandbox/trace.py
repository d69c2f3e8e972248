"""Human-readable traces: system calls in strace's format, page faults, guest instructions.

The system-call trace is what `strace -f -s 32` prints: one line per call with its
arguments decoded (`sandbox.syscall_decode`), `<unfinished ...>` / `<... read resumed>`
when another task's line comes between a call's entry and its end, `--- SIGSEGV {...} ---`
for a delivered signal and `+++ exited with 0 +++` for a task's end. Lines carry the task
id as `[pid N]` when more than one task lives (strace -f), or as a leading column on every
line when the trace goes to a file other than stderr (strace -f -o FILE). Nothing is
decoded unless a tracer exists: the kernel calls it only under --trace-syscalls.

Capstone is imported only when an instruction is first disassembled, so start-up does not
pay for it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, TextIO

from sandbox.kernel.syscalls import SyscallEntry, syscall_name
from sandbox.mm.vma import PROT_EXEC, PROT_READ, PROT_WRITE, Region, RegionKind

if TYPE_CHECKING:
    from sandbox.kernel.process import ThreadGroup
    from sandbox.mm.aspace import AddressSpace
    from sandbox.mm.fault import FaultRecord

MAX_INSN = 15  # longest x86 instruction, Intel SDM vol. 2A §2.3.11
_disassembler = None


def peek(space: AddressSpace, va: int, n: int) -> bytes:
    """Up to `n` bytes at `va` from pages already present; never faults anything in."""
    out = bytearray()
    while len(out) < n:
        pa = space.translate(va + len(out))
        if pa is None:
            break
        room = 4096 - (pa & 0xFFF)
        out += space.mem.read(pa, min(room, n - len(out)))
    return bytes(out)


def disassemble(space: AddressSpace, rip: int) -> str:
    """The instruction at `rip` as 'mov dword ptr [rax], 1', or why it cannot be shown."""
    global _disassembler
    code = peek(space, rip, MAX_INSN)
    if not code:
        return "<not mapped>"
    if _disassembler is None:
        from capstone import CS_ARCH_X86, CS_MODE_64, Cs

        _disassembler = Cs(CS_ARCH_X86, CS_MODE_64)
    for insn in _disassembler.disasm(code, rip, 1):
        return f"{insn.mnemonic} {insn.op_str}".strip()
    return f"<undecodable: {code[:4].hex(' ')}>"


def prot_string(prot: int) -> str:
    """'rw-' style, as in /proc/PID/maps."""
    return ("r" if prot & PROT_READ else "-") + ("w" if prot & PROT_WRITE else "-") + (
        "x" if prot & PROT_EXEC else "-")


def describe_region(region: Region | None) -> str:
    """One phrase naming a region (Region.label, after "code" or "data" for a part of a
    file), for fault traces and death messages."""
    if region is None:
        return "no mapping"
    kind = f"{region.kind.value} " if region.kind in (RegionKind.CODE, RegionKind.DATA) else ""  # a file's part
    return f"region {region.start:#x}-{region.end:#x} {prot_string(region.prot)} {kind}{region.label}"


RESULT_COLUMN = 40  # strace's default -a: results start in this column


class OutputFailed(Exception):  # noqa: N818 - a condition, as click's Abort
    """A trace or log the sandbox writes for the user could not be written (ENOSPC, EIO,
    EPIPE...). Not a sandbox bug and not the guest's doing: the run ends, the guest is
    killed and the command says which output failed (sandbox.cli). Not an OSError, so
    that no guest-facing handler mistakes it for a host call's errno."""

    def __init__(self, stream: object, error: OSError) -> None:
        super().__init__(f"{getattr(stream, 'name', stream)}: {error.strerror or error}")
        self.stream = stream
        self.error = error


def write_or_fail(out: TextIO, text: str, flush: bool = False) -> None:
    """`out.write(text)` (and its flush): OutputFailed if the host refuses it."""
    try:
        out.write(text)
        if flush:
            out.flush()
    except OSError as error:
        raise OutputFailed(out, error) from None


class _Pending:
    """A call between entry and exit: its name, raw arguments, the line's start (prefix,
    name and the arguments shown at entry),
    the first argument left for exit (None: none) and the caller's address space."""

    __slots__ = ("name", "args", "head", "start", "space")

    def __init__(self, name: str, args: tuple[int, ...], head: str, start: int | None,
                 space: AddressSpace | None) -> None:
        self.name = name
        self.args = args
        self.head = head
        self.start = start
        self.space = space


class Tracer:
    """Writes one line per traced event to `out`.

    `syscalls` is True for every call, a collection of names for those only (strace's
    -e trace=), or False; `live` counts the live tasks (for the `[pid N]` prefix);
    `pid_column` prefixes every line with the task id (default: when `out` is not stderr).
    """

    def __init__(self, out: TextIO, syscalls: bool | Collection[str], faults: bool,
                 live: Callable[[], int] | None = None, pid_column: bool | None = None) -> None:
        self.out = out
        self.syscalls = bool(syscalls)
        self.chosen = None if isinstance(syscalls, bool) else frozenset(syscalls)
        self.faults = faults
        # The decoders are imported only by a tracer: a run without one never loads them.
        from sandbox import strace_flags, strace_format, syscall_decode

        self._flags, self._format, self._decode = strace_flags, strace_format, syscall_decode
        self.live = live or (lambda: 1)
        self.pid_column = out is not sys.stderr if pid_column is None else pid_column
        self._pending: dict[int, _Pending] = {}  # by tid: calls entered, not yet ended
        self._open: tuple[int, str] | None = None  # (tid, text) of a line written up to its end
        self._unfinished: set[int] = set()  # tids whose pending line was cut '<unfinished ...>'

    # -- system calls ----------------------------------------------------------------------------

    def enter(self, tid: int, space: AddressSpace | None, nr: int, entry: SyscallEntry | None,
              args: tuple[int, ...]) -> None:
        """A call begins: decode what it reads (strace's syscall-entry stop)."""
        name = entry.name if entry is not None else syscall_name(nr)
        if self.chosen is not None and name not in self.chosen:
            return
        texts, start = self._decode.decode_entry(space, name, args, entry.args if entry is not None else None)
        # The prefix is chosen at entry, as strace starts the line then: clone's own line
        # has none while its caller is the only task.
        head = self._prefix(tid) + f"{name}(" + ", ".join(texts) + (", " if texts and start is not None else "")
        if name in self._decode.NO_RETURN:  # the process ends inside the call: its line comes first
            self._line(tid, self._with_result(head + ")", "?"))
            return
        self._pending[tid] = _Pending(name, args, head, start, space)

    def blocked(self, tid: int, entry: SyscallEntry, raw: tuple[int, ...], why: str) -> None:
        """The call sleeps: its line stays open until another task writes one."""
        pending = self._pending.get(tid)
        if pending is None:
            return
        self._close_open()
        self._open = (tid, pending.head)
        write_or_fail(self.out, self._open[1])

    def syscall(self, tid: int, nr: int, entry: SyscallEntry | None, raw: tuple[int, ...], result: int,
                space: AddressSpace | None = None) -> None:
        """The call ended with `result`: decode what it wrote, and the result."""
        pending = self._pending.pop(tid, None)
        if pending is None:
            return
        space = space if space is not None else pending.space
        tail = ", ".join(self._decode.decode_exit(space, pending.name, pending.args, result, pending.start)) + ")"
        shown = self._decode.result_text(space, pending.name, pending.args, result)
        shown += " [not implemented]" if entry is None else ""  # no handler: the sandbox's ENOSYS
        if self._open is not None and self._open[0] == tid:
            text, self._open = self._open[1] + tail, None
            write_or_fail(self.out, self._with_result(text, shown)[len(text) - len(tail):] + "\n", flush=True)
            return
        if tid in self._unfinished:
            self._unfinished.discard(tid)
            self._line(tid, self._with_result(f"{self._prefix(tid)}<... {pending.name} resumed>{tail}", shown))
            return
        self._line(tid, self._with_result(pending.head + tail, shown))

    def signal(self, tid: int, info: bytes) -> None:
        """A signal is delivered (or kills): '--- SIGSEGV {si_signo=...} ---'."""
        if self.syscalls:
            signo = int.from_bytes(info[:4], "little")
            name = self._flags.signal_name(signo)
            self._line(tid, f"{self._prefix(tid)}--- {name} {self._format.siginfo(info)} ---")

    def ended(self, group: ThreadGroup) -> None:
        """Process `group` ends: '+++ exited with 0 +++' or '+++ killed by SIGSEGV +++' for
        each of its live threads; a call one of them slept in ends with '= ?'."""
        death = group.death
        if death is None:
            what = f"exited with {group.exit_code & 0xFF}"
        else:
            what = f"killed by {self._flags.signal_name(death.signo)}"
            what += " (core dumped)" if group.core_dumped else ""
        for task in group.tasks:
            if task.alive:
                self.thread_ended(task.tid, what)

    def thread_ended(self, tid: int, what: str) -> None:
        """One thread ends (`what`: 'exited with 0')."""
        if not self.syscalls:
            return
        pending = self._pending.pop(tid, None)
        if pending is not None and (tid in self._unfinished or (self._open and self._open[0] == tid)):
            self._unfinished.add(tid)
            self._close_open()
            self._line(tid, self._with_result(f"{self._prefix(tid)}<... {pending.name} resumed>)", "?"))
        self._unfinished.discard(tid)
        self._line(tid, f"{self._prefix(tid)}+++ {what} +++")

    # -- lines ------------------------------------------------------------------------------------------

    def _prefix(self, tid: int) -> str:
        if self.pid_column:
            return f"{tid:<5} "
        return f"[pid {tid:>5}] " if self.live() > 1 else ""

    @staticmethod
    def _with_result(text: str, shown: str) -> str:
        """`text` and ' = result', the result in RESULT_COLUMN when there is room (strace's tabto)."""
        return (text + " ").ljust(RESULT_COLUMN) + "= " + shown

    def _close_open(self) -> None:
        """Cut the open line of a sleeping call: ' <unfinished ...>'."""
        if self._open is not None:
            write_or_fail(self.out, " <unfinished ...>\n")
            self._unfinished.add(self._open[0])
            self._open = None

    def _line(self, tid: int, text: str) -> None:
        self._close_open()
        write_or_fail(self.out, text + "\n", flush=True)

    # -- faults -----------------------------------------------------------------------------------------

    def fault(self, pid: int, space: AddressSpace, record: FaultRecord, rip: int | None) -> None:
        """One line per fault (a kernel fault listener)."""
        where = f"rip {rip:#x} {disassemble(space, rip)}" if rip is not None else "by the kernel"
        grown = " (stack grown)" if record.stack_grown else ""
        self._line(pid, f"[pid {pid}] fault {record.kind} {record.access_name} at {record.va:#x}{grown}: "
                        f"{where}; pfn {record.pfn:#x}, {record.tables_created} table(s) created; "
                        f"{describe_region(record.region)}")

"""Human-readable traces: system calls (strace-like), page faults, and guest instructions.

Capstone is imported only when an instruction is first disassembled, so start-up does not
pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

from sandbox.kernel.syscalls import SyscallEntry, syscall_name, to_signed
from sandbox.mm.vma import PROT_EXEC, PROT_READ, PROT_WRITE, Region

if TYPE_CHECKING:
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
    """One phrase naming a region, for fault traces and death messages."""
    if region is None:
        return "no mapping"
    name = f" {region.name}" if region.name else ""
    return f"region {region.start:#x}-{region.end:#x} {prot_string(region.prot)} {region.kind.value}{name}"


def format_arg(name: str, value: int) -> str:
    """Pointers and flags in hex, counts and descriptors in decimal."""
    if name in ("fd", "dirfd", "status", "clockid", "code", "iovcnt", "count", "length", "buflen"):
        return str(to_signed(value)) if value >> 63 else str(value)
    return hex(value)


def format_result(result: int) -> str:
    """'3', '0x7ffff7ff8000', or '-1 ENOSYS (Function not implemented)' like strace."""
    import errno
    import os

    if -4096 < result < 0:
        return f"-1 {errno.errorcode.get(-result, '?')} ({os.strerror(-result)})"
    return hex(result) if result > 0xFFFF else str(result)


class Tracer:
    """Writes one line per traced event to `out`, prefixed with the process id."""

    def __init__(self, out: TextIO, syscalls: bool, faults: bool) -> None:
        self.out = out
        self.syscalls = syscalls
        self.faults = faults

    def syscall(self, pid: int, nr: int, entry: SyscallEntry | None, raw: tuple[int, ...], result: int) -> None:
        if entry is None:
            args = ", ".join(hex(a) for a in raw)
            line = f"{syscall_name(nr)}({args}) = {format_result(result)} [not implemented]"
        else:
            args = ", ".join(format_arg(n, v) for n, v in zip(entry.args, raw, strict=False))
            line = f"{entry.name}({args}) = {format_result(result)}"
        self.out.write(f"[pid {pid}] {line}\n")
        self.out.flush()

    def blocked(self, pid: int, entry: SyscallEntry, raw: tuple[int, ...], why: str) -> None:
        args = ", ".join(format_arg(n, v) for n, v in zip(entry.args, raw, strict=False))
        self.out.write(f"[pid {pid}] {entry.name}({args}) <blocked: {why}>\n")
        self.out.flush()

    def fault(self, pid: int, space: AddressSpace, record: FaultRecord, rip: int | None) -> None:
        """One line per fault (a kernel fault listener)."""
        where = f"rip {rip:#x} {disassemble(space, rip)}" if rip is not None else "by the kernel"
        grown = " (stack grown)" if record.stack_grown else ""
        self.out.write(
            f"[pid {pid}] fault {record.kind} {record.access_name} at {record.va:#x}{grown}: "
            f"{where}; frame {record.pfn:#x}, {record.tables_created} table(s) created; "
            f"{describe_region(record.region)}\n")
        self.out.flush()

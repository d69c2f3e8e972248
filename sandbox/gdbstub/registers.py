"""The registers gdb sees, their target description, and their values in a task.

gdb learns the register layout of a remote target from an XML target description
(qXfer:features:read, GDB manual "Target Descriptions"). Ours has the features gdb's amd64
Linux support looks for, by name (gdb/features/i386/64bit-core.xml, 64bit-sse.xml,
64bit-linux.xml, 64bit-segments.xml): without `org.gnu.gdb.i386.linux` gdb would not apply
its GNU/Linux ABI (signal frames, shared-library handling). Remote register numbers (p/P,
and the order of g/G) are the positions in REGISTERS.

Values are read where the task's registers live: the CPU while it is on it, its saved
Unicorn context otherwise (sandbox.kernel.task.Task.reg_read does the same for 64-bit ones).
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING, NamedTuple

from sandbox import engine as X

if TYPE_CHECKING:
    from sandbox.kernel.task import Task

# Unicorn's numbers for registers sandbox.engine does not name (unicorn/x86.h, uc_x86_reg).
UC_X86_REG_DS, UC_X86_REG_ES, UC_X86_REG_FS, UC_X86_REG_GS = 17, 28, 32, 33
UC_X86_REG_FCS, UC_X86_REG_FDS = 255, 257
FSW_TOP_SHIFT, FSW_TOP_MASK = 11, 7  # x87 status word bits 13..11: the stack top (Intel SDM vol. 1 §8.1.3)


class Reg(NamedTuple):
    """One register as gdb sees it: name, bytes, XML type and group, feature, how to reach it.

    `kind` is "gpr" (a Unicorn register, `size` bytes of it), "st" (x87 ST(`index`)),
    "xmm" (XMM`index`) or "zero" (not kept by the CPU model: reads 0, writes ignored)."""

    name: str
    size: int
    type: str
    feature: str
    kind: str
    index: int
    group: str = ""


CORE, SSE, LINUX, SEGMENTS = "core", "sse", "linux", "segments"
_GPRS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
         "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")


def _gpr(name: str) -> Reg:
    kind = {"rbp": "data_ptr", "rsp": "data_ptr"}.get(name, "int64")
    return Reg(name, 8, kind, CORE, "gpr", getattr(X, f"UC_X86_REG_{name.upper()}"))


REGISTERS: tuple[Reg, ...] = (
    *(_gpr(name) for name in _GPRS),
    Reg("rip", 8, "code_ptr", CORE, "gpr", X.UC_X86_REG_RIP),
    Reg("eflags", 4, "i386_eflags", CORE, "gpr", X.UC_X86_REG_EFLAGS),
    Reg("cs", 4, "int32", CORE, "gpr", X.UC_X86_REG_CS),
    Reg("ss", 4, "int32", CORE, "gpr", X.UC_X86_REG_SS),
    Reg("ds", 4, "int32", CORE, "gpr", UC_X86_REG_DS),
    Reg("es", 4, "int32", CORE, "gpr", UC_X86_REG_ES),
    Reg("fs", 4, "int32", CORE, "gpr", UC_X86_REG_FS),
    Reg("gs", 4, "int32", CORE, "gpr", UC_X86_REG_GS),
    *(Reg(f"st{i}", 10, "i387_ext", CORE, "st", i) for i in range(8)),
    Reg("fctrl", 4, "int", CORE, "gpr", X.UC_X86_REG_FPCW, "float"),
    Reg("fstat", 4, "int", CORE, "gpr", X.UC_X86_REG_FPSW, "float"),
    Reg("ftag", 4, "int", CORE, "gpr", X.UC_X86_REG_FPTAG, "float"),
    Reg("fiseg", 4, "int", CORE, "gpr", UC_X86_REG_FCS, "float"),
    Reg("fioff", 4, "int", CORE, "gpr", X.UC_X86_REG_FIP, "float"),
    Reg("foseg", 4, "int", CORE, "gpr", UC_X86_REG_FDS, "float"),
    Reg("fooff", 4, "int", CORE, "gpr", X.UC_X86_REG_FDP, "float"),
    Reg("fop", 4, "int", CORE, "gpr", X.UC_X86_REG_FOP, "float"),
    *(Reg(f"xmm{i}", 16, "vec128", SSE, "xmm", i) for i in range(16)),
    Reg("mxcsr", 4, "i386_mxcsr", SSE, "gpr", X.UC_X86_REG_MXCSR, "vector"),
    Reg("orig_rax", 8, "int", LINUX, "zero", 0, "system"),
    Reg("fs_base", 8, "int", SEGMENTS, "gpr", X.UC_X86_REG_FS_BASE),
    Reg("gs_base", 8, "int", SEGMENTS, "gpr", X.UC_X86_REG_GS_BASE),
)
G_PACKET_SIZE = sum(r.size for r in REGISTERS)

# -- the target description --------------------------------------------------------------

_EFLAGS_FIELDS = ("CF", 0), ("", 1), ("PF", 2), ("AF", 4), ("ZF", 6), ("SF", 7), ("TF", 8), ("IF", 9), \
    ("DF", 10), ("OF", 11), ("NT", 14), ("RF", 16), ("VM", 17), ("AC", 18), ("VIF", 19), ("VIP", 20), ("ID", 21)
_MXCSR_FIELDS = ("IE", 0), ("DE", 1), ("ZE", 2), ("OE", 3), ("UE", 4), ("PE", 5), ("DAZ", 6), ("IM", 7), \
    ("DM", 8), ("ZM", 9), ("OM", 10), ("UM", 11), ("PM", 12), ("FZ", 15)
_VEC128 = """  <vector id="v4f" type="ieee_single" count="4"/>
  <vector id="v2d" type="ieee_double" count="2"/>
  <vector id="v16i8" type="int8" count="16"/>
  <vector id="v8i16" type="int16" count="8"/>
  <vector id="v4i32" type="int32" count="4"/>
  <vector id="v2i64" type="int64" count="2"/>
  <union id="vec128">
    <field name="v4_float" type="v4f"/>
    <field name="v2_double" type="v2d"/>
    <field name="v16_int8" type="v16i8"/>
    <field name="v8_int16" type="v8i16"/>
    <field name="v4_int32" type="v4i32"/>
    <field name="v2_int64" type="v2i64"/>
    <field name="uint128" type="uint128"/>
  </union>
"""


def _flags(name: str, fields: tuple[tuple[str, int], ...]) -> str:
    """A 32-bit <flags> type, one bit per field."""
    body = "".join(f'    <field name="{f}" start="{bit}" end="{bit}"/>\n' for f, bit in fields)
    return f'  <flags id="{name}" size="4">\n{body}  </flags>\n'


def _feature(feature: str, types: str) -> str:
    """One <feature> with its types and its registers, numbered by their place in REGISTERS."""
    regs = ""
    for number, reg in enumerate(REGISTERS):
        if reg.feature == feature:
            group = f' group="{reg.group}"' if reg.group else ""
            regs += f'  <reg name="{reg.name}" bitsize="{reg.size * 8}" type="{reg.type}" regnum="{number}"{group}/>\n'
    return f'<feature name="org.gnu.gdb.i386.{feature}">\n{types}{regs}</feature>\n'


def target_xml() -> bytes:
    """The whole target description (one document, no includes)."""
    return ('<?xml version="1.0"?>\n<!DOCTYPE target SYSTEM "gdb-target.dtd">\n<target version="1.0">\n'
            "<architecture>i386:x86-64</architecture>\n<osabi>GNU/Linux</osabi>\n"
            + _feature(CORE, _flags("i386_eflags", _EFLAGS_FIELDS))
            + _feature(SSE, _VEC128 + _flags("i386_mxcsr", _MXCSR_FIELDS))
            + _feature(LINUX, "") + _feature(SEGMENTS, "") + "</target>\n").encode()


# -- values ---------------------------------------------------------------------------------

class TaskRegisters:
    """Raw register access for one task, wherever its state lives."""

    def __init__(self, task: Task) -> None:
        self.task = task
        machine = task.kernel.machine
        if task.on_cpu:
            handle = machine.uc.handle
            self._read = lambda reg, buf: X.lib.uc_reg_read(handle, reg, ctypes.byref(buf))
            self._write = lambda reg, buf: X.lib.uc_reg_write(handle, reg, ctypes.byref(buf))
        elif task.context is not None:
            pointer = task.context.pointer
            self._read = lambda reg, buf: X.lib.uc_context_reg_read(pointer, reg, ctypes.byref(buf))
            self._write = lambda reg, buf: X.lib.uc_context_reg_write(pointer, reg, ctypes.byref(buf))
        else:  # a task that never ran has no registers yet
            self._read = self._write = lambda reg, buf: 0

    def _top(self) -> int:
        """The x87 stack top, from the status word."""
        return int.from_bytes(self._raw(X.UC_X86_REG_FPSW, 2), "little") >> FSW_TOP_SHIFT & FSW_TOP_MASK

    def _raw(self, reg: int, size: int) -> bytes:
        buf = (ctypes.c_uint8 * max(size, 8))()
        self._read(reg, buf)
        return bytes(buf)[:size]

    def _unicorn_number(self, reg: Reg) -> int:
        if reg.kind == "st":  # gdb's st0..st7 are stack-relative, Unicorn's FP0..FP7 physical
            return X.UC_X86_REG_FP0 + (self._top() + reg.index) % 8
        if reg.kind == "xmm":
            return X.UC_X86_REG_XMM0 + reg.index
        return reg.index

    def read(self, reg: Reg) -> bytes:
        """The register's value, little-endian, `reg.size` bytes."""
        if reg.kind == "zero":
            return bytes(reg.size)
        return self._raw(self._unicorn_number(reg), reg.size)

    def write(self, reg: Reg, value: bytes) -> None:
        """Set the register from `reg.size` little-endian bytes (a 32-bit one zero-extended)."""
        if reg.kind == "zero":
            return
        buf = (ctypes.c_uint8 * max(reg.size, 16))(*value[: reg.size])
        self._write(self._unicorn_number(reg), buf)

    def read_all(self) -> bytes:
        """The g packet's data: every register in order."""
        return b"".join(self.read(reg) for reg in REGISTERS)

    def write_all(self, data: bytes) -> None:
        """The G packet's data (its length was checked)."""
        offset = 0
        for reg in REGISTERS:
            self.write(reg, data[offset : offset + reg.size])
            offset += reg.size

"""QEMU's exception state in a Unicorn context, and how its place there is found.

Unicorn never delivers an exception through a guest IDT and never clears QEMU's "exception
in flight" field (`CPUX86State.old_exception`, Unicorn issue #1883), so a second #PF would be
reported as #DF and a third would end the run as a triple fault. After every exception the
kernel handles, `ExceptionState.take` saves the CPU context, reads CR2 / the error code / RIP
from it, resets that field to -1 and restores the context. The offsets of those fields
inside the context are found once at start-up (`calibrate`) by diffing contexts around two
deliberate page faults; if they cannot be found, start-up fails loudly rather than run
wrongly.
"""

from __future__ import annotations

import ctypes
import struct
from typing import TYPE_CHECKING

from sandbox import engine as X
from sandbox.engine import Engine
from sandbox.errors import InvariantError, SandboxError
from sandbox.mm.aspace import AddressSpace
from sandbox.mm.vma import PROT_EXEC, PROT_READ, PROT_WRITE, Access
from sandbox.x86 import EXC_PF, PF_USER, PF_WRITE

if TYPE_CHECKING:
    from sandbox.machine import Machine

#: Used only by start-up calibration: user addresses the two deliberate faults touch.
_PROBE_CODE = 0x1000_0000
_PROBE_WRITE = 0x2345_6000 + 0x88
_PROBE_READ = 0x3456_7000 + 0x44
#: The length of probe_code's first instruction (mov byte ptr [disp32], imm8).
_PROBE_FIRST_LEN = 8


def probe_code(write_addr: int, read_addr: int) -> bytes:
    """`mov byte ptr [write_addr], 1; mov al, byte ptr [read_addr]` (absolute disp32 forms)."""
    return (b"\xc6\x04\x25" + struct.pack("<I", write_addr) + b"\x01"
            + b"\x8a\x04\x25" + struct.pack("<I", read_addr))


class ExceptionState:
    """Where CR2, the error code, RIP and `old_exception` live in a saved CPU context."""

    def __init__(self, uc: Engine, offsets: dict[str, int]) -> None:
        self._h = uc.handle
        self.offsets = offsets
        self._ctx = uc.context_save()
        self._ptr = self._ctx.pointer
        base = self._ptr.value
        self._cr2 = ctypes.c_uint64.from_address(base + offsets["cr2"])
        self._rip = ctypes.c_uint64.from_address(base + offsets["rip"])
        self._error = ctypes.c_int32.from_address(base + offsets["error_code"])
        self._old = ctypes.c_int32.from_address(base + offsets["old_exception"])
        self._save, self._restore = X.lib.uc_context_save, X.lib.uc_context_restore

    def take(self) -> tuple[int, int, int]:
        """(cr2, error code, rip) of the exception just raised; clears the in-flight state."""
        self._save(self._h, self._ptr)
        self._old.value = -1
        self._restore(self._h, self._ptr)
        return self._cr2.value, self._error.value, self._rip.value


def calibrate(machine: Machine, trampoline_va: int) -> ExceptionState:
    """Find CR2, error code, RIP and old_exception in the saved context: run two deliberate
    page faults in a throwaway address space and diff the contexts around them. The
    machine's exception handler is its own again after."""
    space = AddressSpace.new_user(machine.kernel_space)
    space.map_region(_PROBE_CODE, 1, PROT_READ | PROT_EXEC)
    machine.mem.write(space.translate(_PROBE_CODE), probe_code(_PROBE_WRITE, _PROBE_READ))
    space.reserve_region(_PROBE_WRITE & ~0xFFF, 1, PROT_READ | PROT_WRITE)
    space.reserve_region(_PROBE_READ & ~0xFFF, 1, PROT_READ | PROT_WRITE)
    machine.enter_user(space, _PROBE_CODE, 0)
    before = bytes(machine.uc.context_save())
    snaps: list[bytes] = []
    handler = machine.on_exception
    machine.on_exception = lambda intno: _probe_fault(machine, space, intno, snaps, before)
    machine.run(count=100)
    machine.on_exception = handler
    space.destroy()
    return _locate_fields(machine.uc, before, snaps, trampoline_va)


def _probe_fault(machine: Machine, space: AddressSpace, intno: int, snaps: list[bytes], before: bytes) -> None:
    """Record the context at each deliberate fault, then let the fault complete."""
    uc = machine.uc
    ctx = uc.context_save()
    snaps.append(bytes(ctx))
    if intno != EXC_PF or len(snaps) > 2:
        raise InvariantError(f"calibration: unexpected exception {intno}")
    offsets = _find_i32(before, snaps[0], -1, EXC_PF)
    if len(offsets) != 1:
        raise SandboxError("this Unicorn build hides QEMU's old_exception field; cannot run")
    ctypes.c_int32.from_address(ctx.pointer.value + offsets[0]).value = -1
    uc.context_restore(ctx)
    cr2 = _PROBE_WRITE if len(snaps) == 1 else _PROBE_READ
    space.handle_page_fault(cr2, Access.READ)
    if len(snaps) == 2:
        uc.emu_stop()


def _locate_fields(uc: Engine, before: bytes, snaps: list[bytes], trampoline_va: int) -> ExceptionState:
    """Each field must sit at exactly one offset consistent with both faults."""
    if len(snaps) != 2:
        raise SandboxError(f"calibration saw {len(snaps)} page faults, expected 2")
    first, second = snaps
    found = {
        "old_exception": _find_i32(before, first, -1, EXC_PF),
        "error_code": [o for o in _find_i32(before, first, None, PF_WRITE | PF_USER)
                       if struct.unpack_from("<i", second, o)[0] == PF_USER],
        "cr2": _find_u64(first, second, _PROBE_WRITE, _PROBE_READ),
        # env->eip, not exception_next_eip (equal at a fault): only eip held the entry point.
        "rip": [o for o in _find_u64(first, second, _PROBE_CODE, _PROBE_CODE + _PROBE_FIRST_LEN)
                if struct.unpack_from("<Q", before, o)[0] == trampoline_va],
    }
    for name, offsets in found.items():
        if len(offsets) != 1:
            raise SandboxError(f"cannot locate the CPU's {name} in a Unicorn context "
                               f"({len(offsets)} candidates); this Unicorn build is unsupported")
    return ExceptionState(uc, {name: offs[0] for name, offs in found.items()})


def _find_i32(a: bytes, b: bytes, va: int | None, vb: int) -> list[int]:
    """Offsets where a 4-aligned int32 is `va` in `a` (or anything else if None) and `vb` in `b`."""
    return [4 * i for i, (x, y) in enumerate(zip(_words(a, "i"), _words(b, "i"), strict=False))
            if y == vb and (x == va if va is not None else x != vb)]


def _find_u64(a: bytes, b: bytes, va: int, vb: int) -> list[int]:
    """Offsets where an 8-aligned u64 is `va` in `a` and `vb` in `b`."""
    return [8 * i for i, (x, y) in enumerate(zip(_words(a, "Q"), _words(b, "Q"), strict=False))
            if x == va and y == vb]


def _words(data: bytes, fmt: str) -> memoryview:
    """`data` as native-endian (x86: little-endian) words of struct format `fmt`."""
    size = struct.calcsize(fmt)
    return memoryview(data)[: len(data) - len(data) % size].cast(fmt)

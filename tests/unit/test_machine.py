"""The machine's hand-encoded instructions and its start-up calibration."""

from __future__ import annotations

from capstone import CS_ARCH_X86, CS_MODE_64, Cs

from sandbox.exception_state import probe_code
from sandbox.machine import IRETQ, KERNEL_CS, USER_CS, USER_DS, Machine


def disassemble(code: bytes, address: int) -> list[str]:
    return [f"{i.mnemonic} {i.op_str}" for i in Cs(CS_ARCH_X86, CS_MODE_64).disasm(code, address)]


def test_hand_encoded_bytes_decode_as_documented() -> None:
    assert disassemble(IRETQ, 0) == ["iretq "]
    assert disassemble(probe_code(0x2345_6088, 0x3456_7044), 0x1000_0000) == [
        "mov byte ptr [0x23456088], 1",
        "mov al, byte ptr [0x34567044]",
    ]


def test_calibration_finds_each_field_once() -> None:
    machine = Machine(8 << 20)
    try:
        assert machine.exceptions is not None
        assert machine.frames.used == machine.kernel_space.pagetable.table_pages + 3
    finally:
        machine.close()


def test_selectors_are_linux_values() -> None:
    assert (KERNEL_CS, USER_DS, USER_CS) == (0x10, 0x2B, 0x33)

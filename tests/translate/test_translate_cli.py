"""`sandbox translate PROG VA` and `run --translate VA` on real guests: the walk's physical
address equals the CPU's own (Unicorn's vmem_translate); huge pages, holes, bad input."""

from __future__ import annotations

import re

import pytest
from elftools.elf.elffile import ELFFile

from tests.conftest import guest, run_sandbox

HELLO_GREETING = b"Hello from a guest"
STACK_TOP_WORD = 0x7FFF_FFFF_EFF8  # the last word under the stack's top: argc/argv live there
HUGE_VA = 0x7FFF_F7A0_1234  # inside the 2 MiB pages demo-huge-pages maps


def walk(prog: str, va: str, *args: str, status: int = 0) -> str:
    """`sandbox translate PROG VA` on stdout; the status is the guest's own."""
    result = run_sandbox(["translate", "--timeout", "60", prog, va, *args])
    assert result.returncode == status, result.stderr
    return result.stdout.decode()


def answers(text: str) -> tuple[int, int]:
    """The walk's physical address and the CPU's, from the printout."""
    ours = re.search(r"^physical address (0x[0-9a-f]+)", text, re.M)
    cpu = re.search(r"^CPU \(Unicorn vmem_translate\): (0x[0-9a-f]+) -- agrees$", text, re.M)
    assert ours and cpu, text
    return int(ours.group(1), 16), int(cpu.group(1), 16)


def test_entry_point_and_stack_agree_with_the_cpu() -> None:
    hello = guest("hello")
    with open(hello, "rb") as f:
        entry = ELFFile(f).header["e_entry"]
    text = walk(hello, hex(entry))
    ours, cpu = answers(text)
    assert ours == cpu and ours & 0xFFF == entry & 0xFFF
    pml4, pdpt, pd, pt = ((entry >> s) & 511 for s in (39, 30, 21, 12))
    assert f"PML4 index {pml4} (bits 47-39), PDPT index {pdpt} (38-30), PD index {pd} (29-21), PT index {pt}" in text
    assert [m for m in re.findall(r"^(PML4|PDPT|PD|PT)\[", text, re.M)] == ["PML4", "PDPT", "PD", "PT"]
    assert re.search(r"^PT\[\d+\] .*\n    bits: P US A( D)?$", text, re.M), text  # code: not RW, not NX
    assert "(code)" in text.splitlines()[-1]
    stack = walk(hello, str(STACK_TOP_WORD))  # decimal is accepted too
    ours, cpu = answers(stack)
    assert ours == cpu and "[stack]" in stack and re.search(r"bits: P RW US( A)?( D)? NX$", stack, re.M)


def test_guest_output_goes_to_stderr() -> None:
    result = run_sandbox(["translate", guest("hello"), "0x401000"])
    assert HELLO_GREETING in result.stderr and HELLO_GREETING not in result.stdout
    assert result.stdout.startswith(b"virtual address 0x0000000000401000\n")


def test_run_translate_prints_at_exit_on_stderr() -> None:
    result = run_sandbox(["run", "--translate", "0x401000", "--translate", str(STACK_TOP_WORD), guest("hello")])
    assert result.returncode == 0 and HELLO_GREETING in result.stdout and b"virtual address" not in result.stdout
    assert result.stderr.count(b"-- agrees") == 2


def test_two_mib_page() -> None:
    text = walk(guest("demo-huge-pages"), hex(HUGE_VA))
    ours, cpu = answers(text)
    assert ours == cpu and ours & ((2 << 20) - 1) == HUGE_VA & ((2 << 20) - 1)
    assert "PS set at the PD level" in text and not re.search(r"^PT\[", text, re.M) and "in a 2 MiB page" in text


def test_symbol_of_a_pie_program() -> None:
    text = walk(guest("args-pie"), "main", status=1)  # args exits 1 with no arguments
    ours, cpu = answers(text)
    assert ours == cpu and "(code)" in text.splitlines()[-1]


@pytest.mark.parametrize(("va", "where", "region"), [("0x12345678", "PD", "none"),
                                                     ("0x7ffff0000000", "PD", "none"),
                                                     ("0x7ffffffde000", "PT", "[stack]")])
def test_unmapped_says_where_the_walk_stopped(va: str, where: str, region: str) -> None:
    text = walk(guest("hello"), va)
    assert re.search(rf"^not mapped: the walk stopped at {where}\[\d+\] \(not present", text, re.M), text
    assert "CPU (Unicorn vmem_translate): no translation -- agrees" in text
    assert region in text.splitlines()[-1]


@pytest.mark.parametrize("va", ["0x800000000000", "0xffff7fffffffffff", "garbage", "-5", "0x1" + "0" * 17,
                                "nosuch_symbol", "''"])
def test_bad_address_is_one_line_and_status_2(va: str) -> None:
    for argv in (["translate", guest("hello"), va], ["run", "--translate", va, guest("hello")]):
        result = run_sandbox(argv)
        assert result.returncode == 2 and result.stdout == b"", result
        assert result.stderr.count(b"\n") == 1 and result.stderr.startswith(b"sandbox"), result.stderr

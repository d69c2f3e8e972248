"""An independent page walker, reading raw guest-physical RAM from CR3 through the public
API, checked against the regions and against the emulated CPU's own MMU."""

from __future__ import annotations

import struct

import pytest

from sandbox.api import Sandbox
from sandbox.engine import UC_PROT_READ
from sandbox.mm.vma import PROT_EXEC, PROT_NONE, PROT_WRITE
from tests.conftest import guest

P, W, U, PS, NX = 1, 2, 4, 1 << 7, 1 << 63
ADDR = 0x000F_FFFF_FFFF_F000


def walk(read, cr3: int) -> dict[int, tuple[int, int, int]]:
    """{va: (pa, leaf entry, page size)} for every present user page, from raw RAM only."""
    leaves = {}

    def table(pa: int, shift: int, base: int, count: int) -> None:
        entries = struct.unpack("<512Q", read(pa, 4096))
        for index in range(count):
            entry = entries[index]
            if not entry & P:
                continue
            va = base | (index << shift)
            if shift == 12 or entry & PS:
                size = 1 << shift
                leaves[va] = (entry & ADDR & ~(size - 1), entry, size)
            else:
                assert entry & U, f"user-half table entry without U/S at {va:#x}"
                table(entry & ADDR, shift - 9, va, 512)

    table(cr3, 39, 0, 256)
    return leaves


def cpu_translate(sb: Sandbox, va: int) -> int | None:
    """The emulated MMU's own answer (uc_vmem_translate, probe mode: raises nothing)."""
    return sb.machine.uc.vmem_translate(va, UC_PROT_READ)


@pytest.mark.parametrize("argv", [["sections"], ["mmaptest"], ["pagetouch", "700"], ["stackgrow", "3000"],
                                  ["args-pie", "a"]])
def test_tables_agree_with_regions_and_cpu(argv: list[str]) -> None:
    with Sandbox(memory=64 << 20) as sb:
        result = sb.run(guest(argv[0]), [guest(argv[0]), *argv[1:]], env=[])
        assert result.exit_code is not None
        space = sb.process.space
        leaves = walk(sb.read_physical, result.cr3)
        assert leaves, "a run maps pages"
        for va, (pa, entry, size) in leaves.items():
            region = space.find_region(va)
            assert region is not None and va + size <= region.end, f"{va:#x} mapped outside a region"
            assert bool(entry & U) == (region.prot != PROT_NONE)
            assert not entry & W or region.prot & PROT_WRITE
            assert bool(entry & NX) == (not region.prot & PROT_EXEC)
            assert sb.machine.frames.refcount(pa >> 12) >= 1
            if entry & U:
                assert cpu_translate(sb, va + 0x123) == pa + 0x123
        for va in (0, 0xFFFF_FFFF_8000_0000):
            assert cpu_translate(sb, va) is None, "the CPU refuses null and the kernel half at CPL 3"
        pml4 = struct.unpack("<512Q", sb.read_physical(result.cr3, 4096))
        assert any(e & P for e in pml4[256:]) and not any(e & U for e in pml4[256:])


def test_fault_count_equals_pages_mapped() -> None:
    with Sandbox(memory=64 << 20) as sb:
        result = sb.run(guest("pagetouch"), [guest("pagetouch"), "2500"])
        mapped = walk(sb.read_physical, result.cr3)
        assert result.stats["faults"]["demand-zero"] + result.stats["faults"].get("file", 0) == len(mapped)
        assert result.stats["faults_total"] == len(mapped)

"""`sandbox.mm.translate` on plain memory (no Unicorn): tables written by hand, every field checked."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sandbox.mm.frames import FrameAllocator
from sandbox.mm.pagetable import PageTable
from sandbox.mm.physmem import PhysicalMemory
from sandbox.mm.translate import format_translation, is_canonical, parse_va, translate_va

ROOT, PDPT, PD, PT, FRAME, HUGE = 0x1000, 0x2000, 0x3000, 0x4000, 0x7000, 0x200000
# va 0x0000_7f80_4060_1abc: PML4 255, PDPT 2, PD 3, PT 1, offset 0xabc
VA = (255 << 39) | (2 << 30) | (3 << 21) | (1 << 12) | 0xABC


class FakeRegion(SimpleNamespace):
    """Just what the printer reads of a region."""


def build(words, pd_entry: int | None = None) -> None:
    """PML4[255] -> PDPT[2] -> PD[3] -> PT[1] -> FRAME, with chosen bits at each level."""
    words[(ROOT >> 3) + 255] = PDPT | 0x7  # P RW US
    words[(PDPT >> 3) + 2] = PD | 0x27  # P RW US A
    words[(PD >> 3) + 3] = pd_entry if pd_entry is not None else PT | 0x7
    words[(PT >> 3) + 1] = FRAME | (1 << 63) | 0x165  # P US A D G NX


@pytest.fixture
def mem() -> PhysicalMemory:
    return PhysicalMemory(4 << 20)


def space_of(mem: PhysicalMemory, region=None) -> SimpleNamespace:
    return SimpleNamespace(pagetable=SimpleNamespace(root=ROOT), mem=mem, find_region=lambda va: region)


def test_four_levels_every_field(mem: PhysicalMemory) -> None:
    build(mem.words)
    region = FakeRegion(start=VA & ~0xFFF, end=(VA & ~0xFFF) + 0x1000, name="[heap]",
                        kind=SimpleNamespace(name="HEAP"))
    t = translate_va(space_of(mem, region), VA, cpu=lambda va: FRAME | (va & 0xFFF))
    assert t.indices == (255, 2, 3, 1) and t.offset == 0xABC and t.cr3 == ROOT
    assert [(s.level, s.table, s.index, s.slot) for s in t.steps] == [
        ("PML4", ROOT, 255, ROOT + 255 * 8), ("PDPT", PDPT, 2, PDPT + 16),
        ("PD", PD, 3, PD + 24), ("PT", PT, 1, PT + 8)]
    assert [s.bits for s in t.steps] == [("P", "RW", "US"), ("P", "RW", "US", "A"), ("P", "RW", "US"),
                                         ("P", "US", "A", "D", "G", "NX")]
    assert [(s.target, s.target_kind) for s in t.steps] == [
        (PDPT, "PDPT"), (PD, "PD"), (PT, "PT"), (FRAME, "4 KiB page")]
    assert t.steps[-1].entry == FRAME | (1 << 63) | 0x165
    assert t.pa == FRAME | 0xABC and t.page_size == 0x1000 and t.stopped_at is None
    assert t.cpu_pa == t.pa and t.agrees and t.region is region
    text = format_translation(t)
    assert "PT[1] in table at 0x4000: entry 0x8000000000007165" in text
    assert "bits: P US A D G NX" in text and "-> 4 KiB page at 0x7000 (pfn 0x7)" in text
    assert "physical address 0x7abc" in text and "agrees" in text and "[heap] (heap)" in text


def test_every_named_bit(mem: PhysicalMemory) -> None:
    build(mem.words)
    mem.words[(PT >> 3) + 1] = FRAME | (1 << 63) | 0x1FF
    t = translate_va(space_of(mem), VA)
    assert t.steps[-1].bits == ("P", "RW", "US", "PWT", "PCD", "A", "D", "PS", "G", "NX")


def test_two_mib_page_stops_at_pd(mem: PhysicalMemory) -> None:
    build(mem.words, pd_entry=HUGE | 0x87 | (1 << 12))  # P RW US PS, and the PAT bit (12)
    t = translate_va(space_of(mem), VA, cpu=lambda va: None)
    assert len(t.steps) == 3 and t.steps[-1].is_leaf and t.page_size == 2 << 20
    assert t.steps[-1].target == HUGE and t.steps[-1].target_kind == "2 MiB page"
    assert t.pa == HUGE | (VA & ((2 << 20) - 1))
    assert not t.agrees  # the CPU said no: shown, not hidden
    text = format_translation(t)
    assert "PS set at the PD level" in text and "DISAGREES" in text


def test_one_gib_page_stops_at_pdpt(mem: PhysicalMemory) -> None:
    build(mem.words)
    mem.words[(PDPT >> 3) + 2] = (1 << 30) | 0x87
    t = translate_va(space_of(mem), VA)
    assert len(t.steps) == 2 and t.page_size == 1 << 30 and t.pa == (1 << 30) | (VA & ((1 << 30) - 1))
    assert "a 1 GiB page" in format_translation(t)


@pytest.mark.parametrize(("hole", "level", "steps"), [(ROOT + 255 * 8, "PML4", 1), (PDPT + 16, "PDPT", 2),
                                                      (PD + 24, "PD", 3), (PT + 8, "PT", 4)])
def test_not_present_says_where_the_walk_stopped(mem: PhysicalMemory, hole: int, level: str, steps: int) -> None:
    build(mem.words)
    mem.words[hole >> 3] = 0x6  # RW US but not P: still not present
    t = translate_va(space_of(mem), VA, cpu=lambda va: None)
    assert t.pa is None and len(t.steps) == steps and t.stopped_at.level == level and t.agrees
    assert t.stopped_at.bits == ("RW", "US")
    assert f"the walk stopped at {level}[" in format_translation(t)


def test_a_real_page_table(mem: PhysicalMemory) -> None:
    """The walk agrees with PageTable.translate for a 4 KiB and a 2 MiB mapping."""
    pt = PageTable(mem, FrameAllocator(mem))
    pt.map(0x400000, 0x100000, 0x5)
    pt.map(0x7FFF_F7A0_0000, 0x200000, 0x7, size=2 << 20)
    space = SimpleNamespace(pagetable=pt, mem=mem, find_region=lambda va: None)
    for va in (0x400123, 0x7FFF_F7A1_2345, 0x500000):
        assert translate_va(space, va).pa == pt.translate(va)


@pytest.mark.parametrize(("text", "va"), [("0x401000", 0x401000), ("4198400", 0x401000),
                                          ("0xffff800000000000", 0xFFFF_8000_0000_0000),
                                          ("0x7fffffffffff", 0x7FFF_FFFF_FFFF), ("main", 0x401234)])
def test_parse_va(text: str, va: int) -> None:
    assert parse_va(text, lambda name: 0x401234 if name == "main" else None) == va


@pytest.mark.parametrize("text", ["0x800000000000", "0xffff7fffffffffff", "-1", "0x10000000000000000",
                                  "zz", "", "nosuch", "0x"])
def test_parse_va_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="address"):
        parse_va(text, lambda name: None)


def test_canonical() -> None:
    assert is_canonical(0) and is_canonical((1 << 64) - 1) and not is_canonical(1 << 47)

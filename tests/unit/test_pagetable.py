"""Page tables in plain RAM: entries, walks, huge pages, freeing empty tables."""

from __future__ import annotations

import pytest

from sandbox.errors import InvariantError
from sandbox.mm.frames import FrameAllocator
from sandbox.mm.pagetable import (
    PTE_ACCESSED,
    PTE_HUGE,
    PTE_NX,
    PTE_PRESENT,
    PTE_USER,
    PTE_WRITABLE,
    PageTable,
    format_pte,
)
from sandbox.mm.physmem import PhysicalMemory


@pytest.fixture
def table() -> PageTable:
    mem = PhysicalMemory(16 << 20)
    return PageTable(mem, FrameAllocator(mem))


def test_map_builds_three_tables_and_translates(table: PageTable) -> None:
    pa = table.frames.alloc() << 12
    entry = table.map(0x40_1000, pa, PTE_USER | PTE_WRITABLE)
    assert entry == pa | PTE_PRESENT | PTE_USER | PTE_WRITABLE
    assert table.table_pages == 4  # PML4 + PDPT + PD + PT
    assert table.translate(0x40_1234) == pa + 0x234
    assert table.translate(0x40_2000) is None
    names = [level.name for level in table.levels(0x40_1000)]
    assert names == ["PML4", "PDPT", "PD", "PT"]
    table.check_invariants()


def test_entries_are_where_the_sdm_says(table: PageTable) -> None:
    va = (3 << 39) | (5 << 30) | (7 << 21) | (9 << 12)
    table.map(va, 0x123000, PTE_USER)
    indexes = [level.index for level in table.levels(va)]
    assert indexes == [3, 5, 7, 9]
    leaf = table.levels(va)[-1]
    assert table.mem.words[(leaf.table >> 3) + 9] == leaf.entry == 0x123000 | PTE_USER | PTE_PRESENT


def test_unmap_frees_tables_that_become_empty(table: PageTable) -> None:
    base = table.frames.used
    table.map(0x40_0000, 0x5000, PTE_USER)
    table.map(0x40_1000, 0x6000, PTE_USER)
    assert table.unmap(0x40_0000).pa == 0x5000
    assert table.table_pages == 4
    table.unmap(0x40_1000)
    assert table.table_pages == 1 and table.frames.used == base
    assert table.unmap(0x40_1000) is None
    table.check_invariants()


def test_huge_page_is_one_pd_entry(table: PageTable) -> None:
    table.map(0x20_0000, 0x40_0000, PTE_USER, size=2 << 20)
    m = table.lookup(0x3F_FFFF)
    assert m.size == 2 << 20 and m.entry & PTE_HUGE
    assert table.translate(0x2F_0123) == 0x4F_0123
    assert table.table_pages == 3  # no PT below a 2 MiB entry


def test_double_map_is_a_bug(table: PageTable) -> None:
    table.map(0x1000, 0x5000, PTE_USER)
    with pytest.raises(InvariantError):
        table.map(0x1000, 0x6000, PTE_USER)


def test_iter_leaves_respects_range(table: PageTable) -> None:
    for i in range(5):
        table.map(0x10_0000 + i * 0x1000, 0x10_0000 + i * 0x1000, PTE_USER)
    table.map(0x7F00_0000_0000, 0x20_0000, PTE_USER)
    got = [va for va, _ in table.iter_leaves(0x10_1000, 0x10_3000)]
    assert got == [0x10_1000, 0x10_2000]
    assert len(list(table.iter_leaves())) == 6


def test_kernel_half_is_shared_not_owned() -> None:
    mem = PhysicalMemory(16 << 20)
    frames = FrameAllocator(mem)
    kernel = PageTable(mem, frames)
    kernel.map(0xFFFF_FFFF_8000_0000, 0x9000, PTE_WRITABLE)
    user = PageTable(mem, frames)
    user.copy_kernel_half(kernel.root)
    assert user.translate(0xFFFF_FFFF_8000_0000) == 0x9000
    assert list(user.iter_leaves()) == []
    assert not user.levels(0xFFFF_FFFF_8000_0000)[0].entry & PTE_USER
    user.release()


def test_format_pte_names_bits() -> None:
    text = format_pte(0x5000 | PTE_PRESENT | PTE_WRITABLE | PTE_USER | PTE_ACCESSED | PTE_NX)
    assert text == "0x000000005000 P RW US A NX"
    assert "not present" in format_pte(0)


def test_invariants_catch_a_stray_entry(table: PageTable) -> None:
    table.map(0x1000, 0x5000, PTE_USER)
    leaf = table.levels(0x1000)[-1]
    table.mem.words[(leaf.table >> 3) + 7] = 0x7000 | PTE_PRESENT
    with pytest.raises(InvariantError):
        table.check_invariants()


# -- containment: frames that are not the guest's never become user leaves (issue 12) -------


def test_a_user_leaf_never_maps_a_table_page(table: PageTable) -> None:
    table.map(0x40_0000, table.frames.alloc() << 12, PTE_USER)
    pt = table.levels(0x40_0000)[-1].table
    with pytest.raises(InvariantError, match="kernel's frame"):
        table.map(0x80_0000, pt, PTE_USER | PTE_WRITABLE)
    other = PageTable(table.mem, table.frames)  # another space's root is no better
    with pytest.raises(InvariantError, match="kernel's frame"):
        table.map(0x80_0000, other.root, PTE_USER)
    slot = table.walk(0x40_1000)
    with pytest.raises(InvariantError, match="kernel's frame"):
        table.fill_slot(slot, table.root | PTE_PRESENT | PTE_USER)
    leaf = table.lookup(0x40_0000)
    with pytest.raises(InvariantError, match="kernel's frame"):
        table.set_entry(leaf.slot, pt | PTE_PRESENT | PTE_USER)
    table.check_invariants()


def test_a_user_leaf_never_maps_a_kernel_frame(table: PageTable) -> None:
    gdt = table.frames.alloc_kernel()
    with pytest.raises(InvariantError):
        table.map(0x1000, gdt << 12, PTE_USER)
    huge = table.frames.alloc(9)
    table.frames.kernel_use[huge + 300] = 1  # a 2 MiB page is checked over all its frames
    with pytest.raises(InvariantError):
        table.map(0x20_0000, huge << 12, PTE_USER, size=2 << 20)
    table.frames.kernel_use[huge + 300] = 0
    table.map(0x20_0000, huge << 12, PTE_USER, size=2 << 20)
    with pytest.raises(InvariantError):  # and beyond RAM is no frame at all
        table.map(0x1000, table.mem.size, PTE_USER)


def test_a_pd_slot_takes_only_a_2mib_leaf(table: PageTable) -> None:
    pd_slot = table.walk(0x20_0000, 21, create=True)
    page = table.frames.alloc() << 12
    with pytest.raises(InvariantError, match="PD table"):  # the CPU would walk `page` as a PT
        table.fill_slot(pd_slot, page | PTE_PRESENT | PTE_USER | PTE_WRITABLE)
    huge = table.frames.alloc(9) << 12
    table.fill_slot(pd_slot, huge | PTE_PRESENT | PTE_USER | PTE_HUGE)
    table.check_invariants()
    pt_slot = table.walk(0x40_0000, create=True)
    with pytest.raises(InvariantError, match="PDPT table"):  # no 1 GiB leaves either
        table.set_entry(table.walk(0x4000_0000, 30), huge | PTE_PRESENT | PTE_USER | PTE_HUGE)
    table.fill_slot(pt_slot, page | PTE_PRESENT | PTE_USER)
    table.check_invariants()


def test_invariants_catch_a_forged_table(table: PageTable) -> None:
    """The original exploit's state: a PD entry without PS pointing at a data frame."""
    page = table.frames.alloc() << 12
    slot = table.walk(0x20_0000, 21, create=True)
    table.mem.words[slot >> 3] = page | PTE_PRESENT | PTE_USER | PTE_WRITABLE
    table.live[slot & ~0xFFF] += 1
    with pytest.raises(InvariantError, match="does not point at a PT table"):
        table.check_invariants()


def test_invariants_catch_a_leaf_on_a_table_page(table: PageTable) -> None:
    table.map(0x40_0000, table.frames.alloc() << 12, PTE_USER)
    leaf = table.levels(0x40_0000)[-1]
    table.mem.words[(leaf.table >> 3) + 1] = table.root | PTE_PRESENT | PTE_USER
    table.live[leaf.table] += 1
    with pytest.raises(InvariantError, match="kernel frame"):
        table.check_invariants()


def test_freed_tables_lose_their_mark(table: PageTable) -> None:
    table.map(0x40_0000, table.frames.alloc() << 12, PTE_USER)
    tables = [level.table >> 12 for level in table.levels(0x40_0000)]
    assert all(table.frames.is_kernel(pfn) for pfn in tables)
    table.unmap(0x40_0000)
    assert [table.frames.is_kernel(pfn) for pfn in tables] == [True, False, False, False]
    table.frames.check_invariants()

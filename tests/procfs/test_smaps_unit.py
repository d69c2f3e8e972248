"""smaps' counters on plain RAM (no CPU), against hand-computed sharing: a private region
touched, forked (copy-on-write: every page mapped twice, Pss halves), then partly written
by the child (those pages private again); a page-cache frame counts one mapping less than
its references (the cache holds one)."""

from __future__ import annotations

import pytest

from sandbox.kernel import procfs_mem
from sandbox.mm.aspace import Access, AddressSpace, NoMmu
from sandbox.mm.frames import FrameAllocator
from sandbox.mm.physmem import PhysicalMemory
from sandbox.mm.vma import PROT_READ, PROT_WRITE

P = 4096
PAGES = 8
START = 0x100000
NO_CACHE = procfs_mem.FrameKinds(set(), set())


@pytest.fixture
def space() -> AddressSpace:
    mem = PhysicalMemory(16 << 20)
    kernel = AddressSpace.new_kernel(mem, FrameAllocator(mem), NoMmu())
    user = AddressSpace.new_user(kernel)
    user.reserve_region(START, PAGES, PROT_READ | PROT_WRITE)
    for page in range(PAGES):
        user.handle_page_fault(START + page * P, Access.WRITE)
    return user


def counts(space: AddressSpace, kinds: procfs_mem.FrameKinds = NO_CACHE) -> dict[str, int]:
    usage = procfs_mem.region_usage(space, space.regions.find(START), kinds)
    c = dict(usage.counts)
    for name in c:
        if name.startswith("Pss"):
            c[name] >>= procfs_mem.PSS_SHIFT
    return c


def test_a_private_region_is_all_private_dirty(space: AddressSpace) -> None:
    c = counts(space)
    assert (c["Rss"], c["Pss"], c["Private_Dirty"], c["Shared_Dirty"], c["Anonymous"]) == (
        PAGES * P, PAGES * P, PAGES * P, 0, PAGES * P)


def test_fork_halves_pss_and_writes_make_pages_private(space: AddressSpace) -> None:
    child = space.clone_cow()
    for side in (space, child):
        c = counts(side)
        assert (c["Rss"], c["Pss"], c["Shared_Dirty"], c["Private_Dirty"]) == (PAGES * P, PAGES * P // 2, PAGES * P, 0)
    for page in range(3):  # the child copies three pages on write
        child.handle_page_fault(START + page * P, Access.WRITE)
    expected_pss = 3 * P + (PAGES - 3) * P // 2
    for side in (space, child):
        c = counts(side)
        assert (c["Pss"], c["Private_Dirty"], c["Shared_Dirty"]) == (expected_pss, 3 * P, (PAGES - 3) * P)
    child.destroy()
    assert counts(space)["Pss"] == PAGES * P


def test_a_cached_frame_counts_one_mapping_less(space: AddressSpace) -> None:
    """Frames the page cache holds (one reference its own) mapped once are private and clean
    unless the leaf is dirty; they are file pages, not anonymous."""
    pfns = {m.pa >> 12 for _, m in space.pagetable.iter_leaves(START, START + PAGES * P)}
    for pfn in pfns:
        space.frames.get(pfn)  # the cache's own reference
    c = counts(space, procfs_mem.FrameKinds(pfns, set()))
    assert (c["Rss"], c["Pss"], c["Anonymous"], c["Pss_File"]) == (PAGES * P, PAGES * P, 0, PAGES * P)
    assert c["Shared_Clean"] + c["Shared_Dirty"] == 0

"""The buddy allocator on plain RAM: splitting, merging, refcounts, zeroing, OOM."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.errors import InvariantError, OutOfMemory
from sandbox.mm.frames import HUGE_ORDER, MAX_ORDER, FrameAllocator
from sandbox.mm.physmem import PhysicalMemory


@pytest.fixture
def frames() -> FrameAllocator:
    return FrameAllocator(PhysicalMemory(8 << 20))


def test_fresh_allocator_counts_every_frame(frames: FrameAllocator) -> None:
    stats = frames.stats()
    assert stats.total == 2048 and stats.reserved == 1
    assert stats.free == 2047 and stats.used == 0
    frames.check_invariants()


def test_alloc_zeroes_and_free_merges_back(frames: FrameAllocator) -> None:
    pfn = frames.alloc()
    frames.mem.write(pfn << 12, b"secret" * 100)
    assert frames.put(pfn)
    again = [frames.alloc() for _ in range(2047)]
    assert all(frames.mem.read(p << 12, 4096) == bytes(4096) for p in again)
    for p in again:
        frames.put(p)
    assert frames.used == 0
    assert frames._free[MAX_ORDER], "free blocks merged back to the largest order"
    frames.check_invariants()


def test_huge_block_is_aligned(frames: FrameAllocator) -> None:
    frames.alloc()
    pfn = frames.alloc(HUGE_ORDER)
    assert pfn % 512 == 0 and frames.order_of(pfn) == HUGE_ORDER
    assert frames.used == 513
    frames.check_invariants()


def test_refcount_keeps_shared_frame(frames: FrameAllocator) -> None:
    pfn = frames.alloc()
    frames.get(pfn)
    assert frames.refcount(pfn) == 2
    assert not frames.put(pfn)
    assert frames.put(pfn)
    with pytest.raises(InvariantError):
        frames.put(pfn)


def test_out_of_memory_changes_nothing(frames: FrameAllocator) -> None:
    held = [frames.alloc() for _ in range(2047)]
    with pytest.raises(OutOfMemory):
        frames.alloc()
    assert frames.used == 2047 and len(held) == 2047
    frames.check_invariants()


def test_resident_cap() -> None:
    frames = FrameAllocator(PhysicalMemory(8 << 20), limit=10)
    for _ in range(10):
        frames.alloc()
    with pytest.raises(OutOfMemory):
        frames.alloc()


def test_invariant_check_catches_corruption(frames: FrameAllocator) -> None:
    pfn = frames.alloc()
    frames._free[0].add(pfn)  # a block both free and allocated
    with pytest.raises(InvariantError):
        frames.check_invariants()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 4), st.integers(0, 10_000)), max_size=120))
def test_random_alloc_free_keeps_invariants(ops: list[tuple[bool, int, int]]) -> None:
    frames = FrameAllocator(PhysicalMemory(4 << 20))
    held: list[int] = []
    for is_alloc, order, pick in ops:
        if is_alloc or not held:
            try:
                held.append(frames.alloc(order))
            except OutOfMemory:
                continue
        else:
            frames.put(held.pop(pick % len(held)))
        frames.check_invariants()
    for pfn in held:
        frames.put(pfn)
    assert frames.used == 0
    frames.check_invariants()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=80), st.lists(st.integers(0, 10_000), max_size=40),
       st.randoms(use_true_random=False))
def test_put_many_matches_put_one_by_one(orders: list[int], extra_refs: list[int], rng) -> None:
    """Batch release (teardown) leaves the allocator exactly as single puts would: the same
    free lists, the same counts, freed frames zeroed, shared blocks kept."""
    batch, single = FrameAllocator(PhysicalMemory(4 << 20)), FrameAllocator(PhysicalMemory(4 << 20))
    heads = [(batch.alloc(order), single.alloc(order)) for order in orders]
    assert [a for a, _ in heads] == [b for _, b in heads]
    pfns = [a for a, _ in heads]
    for pick in extra_refs:  # some blocks shared: one put leaves them allocated
        batch.get(pfns[pick % len(pfns)])
        single.get(pfns[pick % len(pfns)])
    for pfn in pfns:
        batch.mem.write(pfn << 12, b"dirty")
    rng.shuffle(pfns)
    freed = batch.put_many(pfns)
    assert freed == sorted(pfn for pfn in pfns if single.put(pfn))
    batch.check_invariants()
    assert batch.used == single.used and batch.free == single.free
    assert [sorted(f) for f in batch._free] == [sorted(f) for f in single._free]
    assert all(batch.mem.read(pfn << 12, 5) == bytes(5) for pfn in freed)
    assert all(batch.refcount(pfn) == single.refcount(pfn) for pfn in pfns)


def test_put_many_refuses_a_free_frame(frames: FrameAllocator) -> None:
    pfn = frames.alloc()
    frames.put(pfn)
    with pytest.raises(InvariantError):
        frames.put_many([pfn])


def test_freed_huge_block_comes_back_zeroed(frames: FrameAllocator) -> None:
    """Blocks past MADVISE_MIN are zeroed by the host (MADV_DONTNEED), which only reads back
    zeros on a private mapping: a shared one kept the old bytes for the next owner."""
    pfn = frames.alloc(HUGE_ORDER)
    frames.mem.write(pfn << 12, b"secret" * 100_000)
    frames.put(pfn)
    again = frames.alloc(HUGE_ORDER)
    assert again == pfn and frames.mem.read(pfn << 12, 2 << 20) == bytes(2 << 20)

"""The VMA tree, checked against a plain model: a dict from page number to attributes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.mm.vma import PROT_READ, PROT_WRITE, Region, RegionOverlap, VmaTree

P = 4096
pages = st.integers(0, 40)
lengths = st.integers(1, 12)
prots = st.sampled_from([PROT_READ, PROT_READ | PROT_WRITE])
op = st.one_of(
    st.tuples(st.just("insert"), pages, lengths, prots),
    st.tuples(st.just("fixed"), pages, lengths, prots),
    st.tuples(st.just("remove"), pages, lengths, prots),
    st.tuples(st.just("protect"), pages, lengths, prots),
    st.tuples(st.just("coalesce"), pages, lengths, prots),
)


def model_of(tree: VmaTree) -> dict[int, int]:
    return {page: r.prot for r in tree for page in range(r.start // P, r.end // P)}


def apply(tree: VmaTree, model: dict[int, int], kind: str, first: int, n: int, prot: int) -> None:
    start, end = first * P, (first + n) * P
    span = range(first, first + n)
    if kind == "insert":
        if any(p in model for p in span):
            with pytest.raises(RegionOverlap):
                tree.insert(Region(start, end, prot))
            return
        tree.insert(Region(start, end, prot))
        model.update(dict.fromkeys(span, prot))
    elif kind == "fixed":
        removed = tree.insert_fixed(Region(start, end, prot))
        assert sum(r.size for r in removed) == P * sum(p in model for p in span)
        model.update(dict.fromkeys(span, prot))
    elif kind == "remove":
        removed = tree.remove_range(start, end)
        assert all(start <= r.start and r.end <= end for r in removed)
        for p in span:
            model.pop(p, None)
    elif kind == "protect":
        tree.split_at(start)
        tree.split_at(end)
        for r in tree.overlapping(start, end):
            tree.replace(r, r.replaced(prot=prot))
        model.update({p: prot for p in span if p in model})
    else:
        tree.coalesce()


@settings(max_examples=200, deadline=None)
@given(st.lists(op, max_size=30))
def test_tree_matches_model(ops) -> None:
    tree, model = VmaTree(), {}
    for kind, first, n, prot in ops:
        apply(tree, model, kind, first, n, prot)
        tree.check_invariants()
        assert model_of(tree) == model
    for page in range(0, 60):
        found = tree.find(page * P + 17)
        assert (found is not None) == (page in model)
        if found:
            assert found.prot == model[page]


@settings(max_examples=100, deadline=None)
@given(st.lists(op, max_size=20), st.integers(1, 8))
def test_find_free_is_highest_fitting_gap(ops, n: int) -> None:
    tree, model = VmaTree(), {}
    for kind, first, count, prot in ops:
        apply(tree, model, kind, first, count, prot)
    low, high = 0, 64 * P
    got = tree.find_free(n * P, low, high)
    fits = [s for s in range(0, 64 - n + 1) if not any(p in model for p in range(s, s + n))]
    assert got == (max(fits) * P if fits else None)


def test_coalesce_merges_only_compatible_neighbours() -> None:
    tree = VmaTree()
    tree.insert(Region(0, P, PROT_READ))
    tree.insert(Region(P, 2 * P, PROT_READ))
    tree.insert(Region(2 * P, 3 * P, PROT_READ | PROT_WRITE))
    tree.insert(Region(4 * P, 5 * P, PROT_READ | PROT_WRITE))
    assert tree.coalesce() == 1
    assert [(r.start, r.end) for r in tree] == [(0, 2 * P), (2 * P, 3 * P), (4 * P, 5 * P)]


def test_file_regions_merge_only_when_offsets_continue() -> None:
    class F:
        name, size = "f", 1 << 20

        def read(self, offset: int, n: int) -> bytes:
            return bytes(n)

    f = F()
    tree = VmaTree()
    tree.insert(Region(0, P, PROT_READ, file=f, offset=0, file_end=P))
    tree.insert(Region(P, 2 * P, PROT_READ, file=f, offset=5 * P, file_end=P))
    assert tree.coalesce() == 0


def test_stats_and_lookup_helpers() -> None:
    tree = VmaTree()
    tree.insert(Region(P, 3 * P, PROT_READ))
    tree.insert(Region(10 * P, 11 * P, PROT_READ))
    stats = tree.stats()
    assert stats == (2, 3 * P, 1, 7 * P)
    assert tree.next_after(4 * P).start == 10 * P
    assert tree.prev_before(10 * P).start == P
    assert tree.by_start(P).end == 3 * P and tree.by_start(2 * P) is None

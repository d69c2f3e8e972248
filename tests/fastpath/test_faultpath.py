"""The page-fault entry in C (sandbox/native/faultpath.c, sandbox/fastpath.py): first touches
of anonymous memory are mapped without Python exactly as Python maps them, and every other
fault still reaches Python: guard pages, PROT_NONE, the top of the user half, a region
another thread unmaps, mprotect, fork's copy-on-write, stack growth, RAM running out
(tests/fastpath/faults.c). Fault counts and frame counts in --stats, traces and limits are
the same with SANDBOX_FAST_PATH=0 and 1, and the reserve of frames the C side maps from
keeps every invariant (SANDBOX_CHECK_INVARIANTS=1 in every test run).
"""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import pytest

from sandbox import fastpath
from sandbox.api import Sandbox
from sandbox.errors import OutOfMemory
from sandbox.mm import PAGE_SIZE
from sandbox.mm.frames import FrameAllocator
from sandbox.mm.physmem import PhysicalMemory
from sandbox.mm.vma import PROT_READ, PROT_WRITE, Region, RegionOverlap, VmaTree
from tests.conftest import ROOT, assert_as_natively, build_c, guest, run_native, run_sandbox

SOURCE = ROOT / "tests" / "fastpath" / "faults.c"
COMMANDS = ["guard", "protnone", "top", "kernel", "unmapped 512", "threads 8", "mprotect", "fork 64", "stack 2000"]
PYTHON_PATH = {**os.environ, fastpath.SWITCH_VARIABLE: "0"}
C_PATH = {**os.environ, fastpath.SWITCH_VARIABLE: "1"}
needs_c = pytest.mark.skipif(fastpath.state() != "on", reason=f"the C fast path is {fastpath.state()}")


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_c(SOURCE, tmp_path_factory.mktemp("faultpath"), "-pthread")


def boxed(program: Path, command: str, *options: str, env: dict | None = None):
    return run_sandbox(["run", "--timeout", "60", "--mount", f"{program.parent}:{program.parent}:ro", *options,
                        str(program), *command.split()], env=env)


def without_gate_line(stderr: bytes) -> bytes:
    """--stats output less the line that names the fast path's state."""
    return b"\n".join(line for line in stderr.splitlines() if not line.startswith(b"fast path"))


@pytest.mark.parametrize("env", [C_PATH, PYTHON_PATH], ids=["c", "python"])
@pytest.mark.parametrize("command", COMMANDS)
def test_as_natively(faults: Path, command: str, env: dict) -> None:
    assert_as_natively(run_native([str(faults), *command.split()]), boxed(faults, command, env=env))


@pytest.mark.parametrize("command", ["fork 64", "mprotect", "guard", "stack 2000", "threads 8"])
def test_stats_are_the_same_either_way(faults: Path, command: str) -> None:
    """Fault kinds, frames used and peak, tables, calls: one --stats for both paths."""
    runs = [boxed(faults, command, "--stats", "--deterministic", env=env) for env in (C_PATH, PYTHON_PATH)]
    assert runs[0].returncode == runs[1].returncode == 0
    assert runs[0].stdout == runs[1].stdout
    assert without_gate_line(runs[0].stderr) == without_gate_line(runs[1].stderr)
    assert b"demand-zero" in runs[0].stderr


def test_running_out_of_ram_ends_at_the_same_page(faults: Path) -> None:
    """With 16 MiB of RAM the guest is killed at the same page either way: the reserve is
    sized within what is free and handed back before any allocation fails."""
    runs = [boxed(faults, "fill 32", "--memory", "16M", "--stats", env=env) for env in (C_PATH, PYTHON_PATH)]
    assert runs[0].returncode == runs[1].returncode == 137
    assert runs[0].stdout == runs[1].stdout and runs[0].stdout.count(b"\n") > 40
    assert without_gate_line(runs[0].stderr) == without_gate_line(runs[1].stderr)
    assert b"out of memory" in runs[0].stderr


def test_a_resident_cap_is_reached_at_the_same_page(faults: Path) -> None:
    runs = [boxed(faults, "fill 32", "--max-resident", "8M", "--stats", env=env) for env in (C_PATH, PYTHON_PATH)]
    assert runs[0].returncode == runs[1].returncode != 0
    assert runs[0].stdout == runs[1].stdout
    assert without_gate_line(runs[0].stderr) == without_gate_line(runs[1].stderr)


def test_fault_traces_are_the_same_either_way(faults: Path) -> None:
    """--trace-faults is a fault listener: it turns the C path off and sees every fault."""
    runs = [boxed(faults, "mprotect", "--trace-faults", "--deterministic", env=env) for env in (C_PATH, PYTHON_PATH)]
    assert runs[0].stderr == runs[1].stderr and runs[0].stderr.count(b"demand-zero") >= 5
    assert runs[0].stdout == runs[1].stdout


# -- in one process: what the C side handled ------------------------------------------------


def touch_pages(n: int, **options) -> tuple[Sandbox, dict]:
    box = Sandbox(memory=64 << 20, **options)
    result = box.run(guest("pagetouch"), ["pagetouch", str(n)])
    assert result.exit_code == 0
    return box, result.stats


@needs_c
def test_first_touches_are_mapped_in_c() -> None:
    box, stats = touch_pages(2000)
    try:
        assert stats["faults"]["demand-zero"] == 2001  # the stack's first page too
        assert box.machine._faults.handled >= 1990
        box.kernel.check_invariants()
        assert box.machine.frames.stats().used == stats["frames"]["used"]
    finally:
        box.close()


@needs_c
@pytest.mark.parametrize("options", [{"trace_faults": True, "trace_out": io.StringIO()},
                                     {"max_resident": 32 << 20}], ids=["listener", "resident-cap"])
def test_watchers_and_caps_keep_every_fault_in_python(options: dict) -> None:
    box, stats = touch_pages(300, **options)
    try:
        assert box.machine._faults.handled == 0
        assert stats["faults"]["demand-zero"] == 301
    finally:
        box.close()


@needs_c
def test_a_fault_policy_keeps_every_fault_in_python() -> None:
    seen = []

    def policy(context):
        seen.append(context.address)

    box, stats = touch_pages(300, fault_policies=[policy])
    try:
        assert box.machine._faults.handled == 0 and stats["faults"]["demand-zero"] == 301
        assert len(seen) == sum(stats["faults"].values())  # every not-present fault: file ones too
    finally:
        box.close()


@needs_c
def test_the_same_machine_runs_twice_and_closes_clean() -> None:
    box = Sandbox(memory=32 << 20)
    try:
        spaces = box.machine.frames.spaces  # how the C side finds a space from CR3
        for n in (500, 700):
            assert box.run(guest("pagetouch"), ["pagetouch", str(n)]).exit_code == 0
            box.kernel.check_invariants()
            assert all(space.cr3 == root for root, space in spaces.items())
            assert len(spaces) == 2  # the kernel's and the last process's: retired ones leave
        assert box.machine._faults.handled >= 1190
    finally:
        box.close()


# -- the allocator's reserve API, on plain memory ---------------------------------------------


class ListReserve:
    """A reserve as FrameAllocator sees one: a run of frames handed out in order."""

    def __init__(self, frames: FrameAllocator) -> None:
        self.frames, self.first, self.count = frames, 0, 0

    def fill(self, order: int) -> None:
        self.first, self.count = self.frames.alloc_reserve(order), 1 << order

    def take(self) -> int:
        """Hand out one frame, counting it as the C side does."""
        pfn, self.first, self.count = self.first, self.first + 1, self.count - 1
        self.frames.used += 1
        self.frames.peak_used = max(self.frames.peak_used, self.frames.used)
        return pfn

    def held(self) -> range:
        return range(self.first, self.first + self.count)

    def reclaim(self) -> bool:
        first, count, self.count = self.first, self.count, 0
        if count:
            self.frames.free_reserve(first, count)
        return count > 0


def reserve_on(pages: int) -> tuple[FrameAllocator, ListReserve]:
    frames = FrameAllocator(PhysicalMemory(pages * PAGE_SIZE))
    reserve = ListReserve(frames)
    frames.attach_reserve(reserve)
    return frames, reserve


def test_reserved_frames_are_allocated_but_not_used() -> None:
    frames, reserve = reserve_on(256)
    reserve.fill(4)
    assert frames.used == 0 and frames.free == 255 and len(reserve.held()) == 16
    assert all(frames.refcount(pfn) == 1 for pfn in reserve.held())
    assert not set(frames.allocated_heads()) & set(reserve.held())
    frames.check_invariants()
    taken = [reserve.take() for _ in range(5)]
    assert frames.used == 5 and frames.allocated_heads() == sorted(taken)
    frames.check_invariants()
    assert reserve.reclaim() and frames.used == 5
    frames.check_invariants()
    frames.put_many(taken)
    assert frames.used == 0 and frames.free == 255
    frames.check_invariants()


def test_an_allocation_takes_the_reserve_back_before_failing() -> None:
    frames, reserve = reserve_on(64)
    reserve.fill(5)  # 32 of the 63 frames
    taken = [frames.alloc() for _ in range(31)]
    assert frames.free == 32 and len(reserve.held()) == 32
    taken.append(frames.alloc())  # no free block left: the reserve comes back first
    assert len(reserve.held()) == 0 and frames.used == 32
    frames.check_invariants()
    taken += [frames.alloc() for _ in range(31)]
    with pytest.raises(OutOfMemory):
        frames.alloc()
    frames.check_invariants()
    assert frames.used == 63 and len(set(taken)) == 63


def test_the_refill_stays_within_what_is_free() -> None:
    if fastpath.state() != "on":
        pytest.skip(f"the C fast path is {fastpath.state()}")
    box = Sandbox(memory=2 << 20)  # 512 frames
    try:
        gate, frames = box.machine._faults, box.machine.frames
        gate._refill()
        held = gate.held()
        assert 0 < len(held) <= frames.free // fastpath.RESERVE_SHARE + 1
        box.kernel.check_invariants()
        assert gate.reclaim() and not gate.held()
        box.kernel.check_invariants()
    finally:
        box.close()


# -- what the C side relies on: VmaTree's one-entry cache ---------------------------------------


def test_the_region_cache_is_always_a_region_of_the_tree() -> None:
    """faultpath.c uses `VmaTree._cache` as `find` does: whenever it contains an address it is
    the region there. So it must always be None or a region the tree holds, whatever changed."""
    rng = random.Random(17)
    tree = VmaTree()
    page = PAGE_SIZE
    for _ in range(3000):
        start = rng.randrange(0, 64) * page
        end = start + rng.randrange(1, 8) * page
        op = rng.randrange(7)
        try:
            if op == 0:
                tree.insert(Region(start, end, PROT_READ | PROT_WRITE))
            elif op == 1:
                tree.insert_fixed(Region(start, end, PROT_READ))
            elif op == 2:
                tree.remove_range(start, end)
            elif op == 3:
                tree.split_at(start)
            elif op == 4 and (old := tree.find(start)) is not None:
                tree.replace(old, old.replaced(prot=PROT_READ))
            elif op == 5 and (old := tree.find(start)) is not None:
                tree.resize(old, old.start, old.end + page)
            elif op == 6:
                tree.coalesce()
        except RegionOverlap:
            pass
        tree.find(rng.randrange(0, 72) * page)
        cached = tree._cache
        assert cached is None or tree.by_start(cached.start) is cached
    assert tree.copy()._cache is None

"""Issue 17's memory items: guest RAM of 4 GiB by default, reserved lazily; the frame
allocator's per-frame tables as arrays that cost nothing until used; no scrubbing at the
CLI's exit; one page flushed, not the whole TLB, after a copy-on-write fault.

The copy-on-write guest (cowtlb.c, built here) reads pages so that the CPU caches read-only
translations, then writes them, by its own stores and by read(2) into them (the kernel's
copy_out resolves that fault, and the CPU's TLB still names the old frame), with and without
fork, over many pages; it checks each page at once. Skipping the flush makes it report
wrong pages (checked below through the Python API), so it sees a stale entry if one is left.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sandbox.api import Sandbox
from sandbox.cli import RUN_DEFAULTS
from sandbox.kernel.options import Options
from sandbox.mm import PAGE_SHIFT, PAGE_SIZE
from sandbox.mm.aspace import NoMmu
from sandbox.mm.fault import flush_tlb_page
from sandbox.mm.frames import HUGE_ORDER, FrameAllocator
from sandbox.mm.physmem import DEFAULT_MEMORY, MADVISE_MIN, PhysicalMemory
from tests.conftest import assert_as_natively, build_c, guest, run_native, run_sandbox

HERE = Path(__file__).resolve().parent
GIB = 1 << 30


@pytest.fixture(scope="module")
def cowtlb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_c(HERE / "cowtlb.c", tmp_path_factory.mktemp("cowtlb"))


def boxed(program: Path, *args: str) -> subprocess.CompletedProcess:
    where = program.parent
    return run_sandbox(["run", "--timeout", "60", "--mount", f"{where}:{where}:ro", str(program), *args])


# -- guest RAM by default -------------------------------------------------------------------


def test_the_default_is_4_gib_everywhere() -> None:
    assert DEFAULT_MEMORY == 4 * GIB
    assert Options().memory == DEFAULT_MEMORY and RUN_DEFAULTS["memory"] == DEFAULT_MEMORY
    with Sandbox() as sb:
        assert sb.machine.mem.size == DEFAULT_MEMORY


def test_256_mib_touched_with_defaults_runs_as_natively() -> None:
    """Killed as out of memory when guest RAM defaulted to 256 MiB."""
    argv = [guest("pagetouch"), "65536"]
    assert_as_natively(run_native(argv), run_sandbox(["run", "--timeout", "60", *argv]))


def test_memory_option_still_bounds_guest_ram() -> None:
    result = run_sandbox(["run", "--memory", "64M", guest("pagetouch"), "65536"])
    err = result.stderr.decode()
    assert result.returncode == 128 + 9 and "out of memory" in err and "Traceback" not in err


@pytest.mark.parametrize("size", ["3M", "65G", "4097K"])
def test_memory_option_refuses_what_it_always_did(size: str) -> None:
    result = run_sandbox(["run", "--memory", size, guest("hello")])
    assert result.returncode == 2 and b"need a multiple of 4 KiB, at least 4M and at most 64G" in result.stderr


def test_untouched_ram_and_frame_tables_cost_the_host_nothing() -> None:
    """4 GiB of RAM and its allocator: a million frames' tables, none of them touched yet
    (the tables were an array and a bytearray filled at set-up: 5 MiB of host memory)."""
    before = _resident_kib()
    frames = FrameAllocator(PhysicalMemory(4 * GIB))
    assert _resident_kib() - before < 1024
    pfns = [frames.alloc() for _ in range(1000)]
    frames.check_invariants()
    assert frames.allocated_heads() == sorted(pfns)
    assert _resident_kib() - before < 4 * 1024 + 1024  # the 1000 frames, and a page or so of tables


def _resident_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (PAGE_SIZE >> 10)


# -- the frame tables -----------------------------------------------------------------------


@pytest.fixture
def frames() -> FrameAllocator:
    return FrameAllocator(PhysicalMemory(16 << 20))


def test_orders_and_heads_live_in_the_tables(frames: FrameAllocator) -> None:
    small, huge = frames.alloc(), frames.alloc(HUGE_ORDER)
    assert frames.order_of(small) == 0 and frames.order_of(huge) == HUGE_ORDER
    assert frames.allocated_heads() == sorted([small, huge])
    with pytest.raises(KeyError):
        frames.order_of(huge + 1)  # a tail frame heads nothing
    frames.get(huge)
    assert not frames.put(huge) and frames.refcount(huge) == 1
    assert frames.put(huge) and frames.put(small)
    assert frames.allocated_heads() == [] and frames.used == 0
    with pytest.raises(KeyError):
        frames.order_of(small)
    frames.check_invariants()


def test_kernel_marks_survive_and_clear(frames: FrameAllocator) -> None:
    pfns = [frames.alloc_kernel() for _ in range(3)]
    assert frames.kernel_frames() == set(pfns) and frames.is_kernel(pfns[1])
    assert frames.is_kernel(frames.nframes) and frames.is_kernel(-1)  # not RAM
    frames.put_many(pfns)
    assert frames.kernel_frames() == set() and not frames.is_kernel(pfns[0])
    frames.check_invariants()


def test_many_blocks_in_and_out(frames: FrameAllocator) -> None:
    """Every frame out, every one back, twice: the tables end as they began."""
    for _ in range(2):
        pfns = [frames.alloc() for _ in range(frames.free)]
        with pytest.raises(Exception, match="no free block"):
            frames.alloc()
        frames.check_invariants()
        frames.put_many(pfns)
        assert frames.used == 0 and frames.allocated_heads() == []
    frames.check_invariants()


def test_stop_zeroing_leaves_small_runs_and_returns_large_ones(frames: FrameAllocator) -> None:
    """At the CLI's exit freed frames are not scrubbed; runs of MADVISE_MIN bytes or more
    still go back to the host (what unmapping them would cost anyway)."""
    lone = frames.alloc()
    run = [frames.alloc() for _ in range(2 * (MADVISE_MIN >> PAGE_SHIFT))]
    for pfn in (lone, *run):
        frames.mem.write(pfn << PAGE_SHIFT, b"old data")
    frames.stop_zeroing()
    frames.put_many(run)  # contiguous runs (the allocator hands out neighbours here)
    frames.put(lone)
    assert frames.mem.read(lone << PAGE_SHIFT, 8) == b"old data"
    contiguous = sorted(run)[: MADVISE_MIN >> PAGE_SHIFT]
    if contiguous[-1] - contiguous[0] == len(contiguous) - 1:
        assert frames.mem.read(contiguous[0] << PAGE_SHIFT, 8) == bytes(8)
    frames.check_invariants()


def test_freed_frames_are_zero_before_stop_zeroing(frames: FrameAllocator) -> None:
    pfn = frames.alloc()
    frames.mem.write(pfn << PAGE_SHIFT, b"secret")
    frames.put(pfn)
    again = [frames.alloc() for _ in range(frames.free)]
    assert all(frames.mem.read(p << PAGE_SHIFT, 6) == bytes(6) for p in again)


# -- one page flushed after copy-on-write ---------------------------------------------------


class _PageFlushingMmu(NoMmu):
    def __init__(self) -> None:
        super().__init__()
        self.pages: list[int] = []

    def flush_tlb_page(self, va: int) -> None:
        self.pages.append(va)


class _Space:
    def __init__(self, mmu: NoMmu, cr3: int) -> None:
        self.mmu, self.cr3 = mmu, cr3


def test_flush_tlb_page_flushes_one_page_of_the_running_space() -> None:
    mmu = _PageFlushingMmu()
    flush_tlb_page(_Space(mmu, 0), 0x1234_5000)
    assert mmu.pages == [0x1234_5000] and mmu.flushes == 0


def test_flush_tlb_page_leaves_a_space_not_running_alone() -> None:
    mmu = _PageFlushingMmu()
    flush_tlb_page(_Space(mmu, 0x9000), 0x1234_5000)  # its switch_to writes CR3
    assert mmu.pages == [] and mmu.flushes == 0


def test_an_mmu_without_page_flush_flushes_everything() -> None:
    mmu = NoMmu()
    flush_tlb_page(_Space(mmu, 0), 0x1234_5000)
    assert mmu.flushes == 1
    flush_tlb_page(_Space(_PageFlushingMmu(), 0), None)


def test_the_engine_takes_a_one_page_flush() -> None:
    with Sandbox() as sb:
        sb.machine.flush_tlb_page(0x7FFF_0000_0000)  # no error: the control and its argument


@pytest.mark.parametrize("args", [["fork", "2048"], ["fork", "3"], ["file", "SELF"]])
def test_copy_on_write_sees_the_new_frame(cowtlb: Path, args: list[str]) -> None:
    args = [str(cowtlb) if a == "SELF" else a for a in args]
    native = run_native([str(cowtlb), *args])
    assert b"wrong 0" in native.stdout and b"wrong 1" not in native.stdout
    assert_as_natively(native, boxed(cowtlb, *args))


def test_the_guest_catches_a_stale_entry(cowtlb: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the flush, read(2) into a page shared since fork leaves the CPU reading the
    old frame: the guest counts those pages. So its "wrong 0" above means something."""
    from sandbox.machine import Machine

    monkeypatch.setattr(Machine, "flush_tlb_page", lambda self, va: None)
    with Sandbox(mounts=[f"{cowtlb.parent}:{cowtlb.parent}:ro"]) as sb:
        result = sb.run(str(cowtlb), ["cowtlb", "fork", "64"], capture=True)
    assert b"child: wrong 32" in result.stdout

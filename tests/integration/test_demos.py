"""Every demo runs, and its narrative's figures are what the story claims."""

from __future__ import annotations

import io

import pytest

from sandbox.demos import DEMOS, run_demo
from tests.conftest import run_sandbox


def figures(name: str) -> tuple[dict, str]:
    out = io.StringIO()
    result = run_demo(name, out)
    return result, out.getvalue()


def test_demand_paging_one_fault_per_page() -> None:
    got, story = figures("demand-paging")
    assert got["status"] == 0 and got["mmap_faults"] == 1000 and got["bss_faults"] == 200
    assert "(not present)  ->  " in story


def test_cow_fork_copies_each_first_write() -> None:
    got, story = figures("cow-fork")
    assert got["status"] == 0 and got["child_copies"] == 16 and got["parent_copies"] == 8
    assert got["shared_at_fork"] >= 64 and " P US A D NX  ->  " in story


def test_stack_grows_to_the_limit_and_overflow_is_caught() -> None:
    got, _ = figures("stack-growth")
    assert got["status"] == 0 and got["signals"] == 1
    assert 8 << 20 >= got["stack_bytes"] > (8 << 20) - (64 << 10)
    assert got["growth_faults"] > 2000


def test_write_barrier_signals_once_per_dirty_page() -> None:
    got, _ = figures("write-barrier")
    assert got == {"status": 0, "signals": 4}


def test_shared_memory_maps_the_same_frames() -> None:
    got, _ = figures("shared-memory")
    assert got["status"] == 0 and got["frames_mapped_by_both"] == 2


def test_huge_pages_one_fault_per_2mib() -> None:
    got, story = figures("huge-pages")
    assert got == {"status": 0, "huge_faults": 2, "ps_set": True}
    assert " PS " in story


def test_shared_libraries_share_frames_until_written() -> None:
    got, story = figures("shared-libraries")
    assert got["status"] == 0 and got["pages_both_touched"] > 10
    assert got["same_frame"] == got["pages_both_touched"]  # read through one page cache
    assert got["shared_with_parent"] > 0
    assert min(got["copied"]) > 0 and got["copies_in_common"] == 0  # writes copy, privately
    assert f"{got['same_frame']} mapped the very same physical frame" in story


def test_threads_share_one_page_table() -> None:
    got, story = figures("threads-share")
    assert got["status"] == 0 and got["threads"] == 2 and got["address_spaces"] == 1
    assert got["own_stacks"] == 2 and "without reloading CR3" in story
    story = " ".join(story.split())  # unwrapped
    for tid, faults in got["shared_faults"].items():
        present = got["already_present"][tid]
        assert got["pages_written"][tid] == 16 == faults + len(present)  # every page faulted, or explained
        assert f"tid {tid}: {faults} demand-zero fault" in story
        for va, earlier, kind in present:  # the buffer's first page: the data segment's last, main's
            assert earlier is not None and f"its write at {va:#x} found page {va & ~0xFFF:#x} present" in story
            assert f"(tid {earlier}) had faulted it in before ({kind} fault" in story
            assert f"So tid {tid} took {faults} faults for 16 pages" in story
    assert f'"(sum {got["sum"]})"' in story and got["sum"] == 16  # one thread wrote 0s, the other 1s
    assert "so the sum is 0 + 16:" in story or "so the sum is 16 + 0:" in story


def test_lazy_file_reads_only_touched_pages() -> None:
    got, _ = figures("lazy-file")
    assert got["status"] == 0 and got["file_faults"] == 16
    # 16 windows of 16 pages; only the first may be clipped by the region's start
    assert 15 * 16 < got["pages_read"] <= 16 * 16


def test_python_pager_supplies_and_traces() -> None:
    got, _ = figures("python-pager")
    assert got == {"status": 0, "supplied": 5, "trace": [5, 0, 42, 63, 17]}


def test_cli_lists_and_runs_demos() -> None:
    listing = run_sandbox(["demo", "--list"]).stdout.decode()
    assert all(name in listing for name in DEMOS) and listing.count("\n") == len(DEMOS)
    ran = run_sandbox(["demo", "write-barrier"])
    assert ran.returncode == 0 and b"dirty pages: 3 7 8 20 (4 of 32)" in ran.stdout
    missing = run_sandbox(["demo", "nonsense"])
    assert missing.returncode == 2 and b"no demo 'nonsense'" in missing.stderr  # a usage mistake


@pytest.mark.parametrize("name", list(DEMOS))
def test_every_demo_exits_cleanly(name: str) -> None:
    got, story = figures(name)
    assert got["status"] == 0 and story.startswith(f"== {name}:")

"""Fault policies through the API, the fault log and its plot, and the page-table printer."""

from __future__ import annotations

import json
import re
from pathlib import Path

from sandbox.api import Deny, FaultAround, FaultContext, HugePage, Sandbox
from tests.conftest import guest, run_sandbox


def big_region(fault: FaultContext) -> bool:
    """The pagetouch guest's mapping (its only large anonymous region)."""
    return fault.region.size >= 512 * 4096 and fault.region.file is None


def test_fault_around_maps_neighbours_in_one_fault() -> None:
    with Sandbox(memory=64 << 20, fault_policies=[lambda f: FaultAround(15) if big_region(f) else None]) as sb:
        result = sb.run(guest("pagetouch"), ["pagetouch", "1600"])
    faults = result.stats["faults"]
    assert result.status == 0
    # Up to 15 neighbours per fault, fewer where a fault is near a leaf table's 2 MiB end.
    assert faults["mapped-around"] >= 1450 and faults["demand-zero"] < 250


def test_huge_page_policy_maps_2mib_entries() -> None:
    with Sandbox(memory=64 << 20, fault_policies=[lambda f: HugePage() if big_region(f) else None]) as sb:
        result = sb.run(guest("pagetouch"), ["pagetouch", "2048"])
        space = sb.process.space
        huge = [r for r in space.regions if r.page_size == 2 << 20]
        assert result.status == 0 and result.stats["faults"]["huge-page"] == len(huge) >= 3
        space.check_invariants()


def test_deny_policy_is_a_sigsegv_for_the_guest() -> None:
    def deny_late_pages(fault: FaultContext):
        if big_region(fault) and fault.page >= fault.region.start + 100 * 4096:
            return Deny("page budget of 100 reached")
        return None

    with Sandbox(memory=64 << 20, fault_policies=[deny_late_pages]) as sb:
        result = sb.run(guest("pagetouch"), ["pagetouch", "1000"])
    assert result.signal == 11 and "SEGV_ACCERR" in result.message and "write at 0x" in result.message


def test_observing_policy_sees_every_demand_fault_and_changes_nothing() -> None:
    seen = []
    with Sandbox(memory=64 << 20, fault_policies=[lambda f: seen.append((f.pid, f.access)) and None]) as sb:
        result = sb.run(guest("pagetouch"), ["pagetouch", "300"])
    assert result.status == 0
    assert len(seen) == result.stats["faults_total"] and ("write" in {a for _, a in seen})


def test_fault_log_has_one_line_per_fault_and_plots(tmp_path: Path) -> None:
    log, stats, picture = tmp_path / "faults.jsonl", tmp_path / "s.json", tmp_path / "faults.png"
    run = run_sandbox(["run", "--fault-log", str(log), "--stats-json", str(stats), guest("stackgrow"), "500"])
    assert run.returncode == 0
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) == json.loads(stats.read_text())["faults_total"]
    assert {"t", "pid", "address", "kind", "access", "rip", "frame"} <= set(lines[0])
    drawn = run_sandbox(["plot", str(log), "-o", str(picture)])
    assert drawn.returncode == 0 and picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pagetable_printer_collapses_runs() -> None:
    result = run_sandbox(["pagetable", guest("pagetouch"), "3000"])
    text = result.stdout.decode()  # what `pagetable` exists to print is on stdout
    assert text.startswith("PML4 @ ") and "PML4[256..511]: kernel half" in text
    runs = [int(n) for n in re.findall(r"PT\[\d+\.\.\d+\] P RW US A D NX: (\d+) pages", text)]
    # a run of consecutive frames is one line (the C fault path's frame reserve splits a
    # leaf table's run where it was refilled)
    assert max(runs) >= 400
    tree = text[: text.index("\nlegend")]
    assert len(tree.splitlines()) < 40, "3000 pages fit in a few lines"

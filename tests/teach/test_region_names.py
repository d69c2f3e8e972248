"""One name per region across the tools (Region.label): the fault log and plot,
--trace-faults, the report and step-faults name a region alike; `sandbox maps` keeps
Linux's format (anonymous memory unnamed)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from sandbox.kernel.faultlog import FaultLog
from sandbox.mm.vma import PROT_READ, PROT_WRITE, Region, RegionKind
from sandbox.report import _region_key
from sandbox.stepper import _region
from sandbox.trace import describe_region
from tests.conftest import guest, run_sandbox

RW = PROT_READ | PROT_WRITE
REGIONS = [  # (region, its label, its timeline row in the report)
    (Region(0x401000, 0x402000, PROT_READ, kind=RegionKind.CODE, name="/bin/prog"), "/bin/prog", "prog 0x401000"),
    (Region(0x4a9000, 0x4af000, RW, kind=RegionKind.BSS), "bss", "bss 0x4a9000"),
    (Region(0x4af000, 0x4d1000, RW, kind=RegionKind.HEAP, name="[heap]"), "[heap]", "[heap] 0x4af000"),
    (Region(0x7ffff7fbf000, 0x7ffff7fff000, RW), "anon@0x7ffff7fbf000", "anon@0x7ffff7fbf000"),
    (Region(0x7ffffffde000, 0x7ffffffff000, RW, kind=RegionKind.STACK, name="[stack]"), "[stack]", "[stack]"),
]


@pytest.mark.parametrize(("region", "label", "row"), REGIONS)
def test_every_tool_calls_the_one_name(region: Region, label: str, row: str) -> None:
    assert region.label == label == FaultLog.region_name(region)
    assert _region(region).endswith(f" {label}")  # step-faults
    assert f" {label}" in describe_region(region)  # --trace-faults and death messages
    assert _region_key(region) == row  # the report's timeline


def test_fault_log_and_trace_agree_on_a_real_run(tmp_path: Path) -> None:
    """Each --trace-faults line names the region its --fault-log line names."""
    log = tmp_path / "faults.jsonl"
    run = run_sandbox(["run", "--timeout", "60", "--trace-faults", "--fault-log", str(log), guest("demo-cow-fork")])
    assert run.returncode == 0, run.stderr
    traced = [line for line in run.stderr.decode().splitlines() if re.match(r"\[pid \d+\] fault ", line)]
    logged = [json.loads(line)["region"] for line in log.read_text().splitlines()]
    assert len(traced) == len(logged) and {"bss", "[heap]", "[stack]"} <= set(logged)
    assert any(re.fullmatch(r"anon@0x[0-9a-f]+", name) for name in logged)
    for line, name in zip(traced, logged, strict=True):
        assert f" {name}" in line.split("; region ", 1)[1]


def test_report_names_regions_alike(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    made = run_sandbox(["report", "--timeout", "60", "-o", str(page), guest("demo-cow-fork")])
    assert made.returncode == 0, made.stderr
    text = page.read_text()
    data = json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>', text, re.S).group(1))
    names = {r["name"] for p in data["processes"] for r in p["regions"]}
    anon = next(name for name in names if name.startswith("anon@0x"))
    assert {"bss", "[heap]", "[stack]", anon} <= names and "" not in names
    rows = {row["label"] for row in data["rows"]}
    assert anon in rows and any(row.startswith("bss 0x") for row in rows)
    assert "anonymous" not in text and "[anon]" not in text
    assert os.path.basename(guest("demo-cow-fork")) in {label.split()[0] for label in rows}

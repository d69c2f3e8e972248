"""One unit for frames (pfn) and a legend in the page-table printer; demos that take the run
options, name their guest's source and wrap their prose (issue 16, tools that teach)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from sandbox.demos import DEMOS
from sandbox.mm.dump import BIT_MEANINGS, describe_pte, entry_pfn
from sandbox.mm.pagetable import PTE_ACCESSED, PTE_DIRTY, PTE_HUGE, PTE_NX, PTE_PRESENT, PTE_USER, PTE_WRITABLE
from tests.conftest import ROOT, build_c, guest, run_sandbox

LEAF = re.compile(r"^\s+PT\[[\d.]+\] ([A-Z ]+): \d+ pages? va (0x[0-9a-f]+)-(0x[0-9a-f]+), pfn (0x[0-9a-f]+)")
BSS_PAGE = 0x404000  # fewfaults' second bss page


@pytest.fixture(scope="module")
def prog(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("teach-out")
    return str(build_c(ROOT / "tests" / "teach" / "fewfaults.c", out, "-nostdlib", "-fno-stack-protector"))


# -- the unit ----------------------------------------------------------------------------------


def test_an_entry_is_its_pfn_and_its_bits() -> None:
    entry = 0x1A3000 | PTE_PRESENT | PTE_WRITABLE | PTE_USER | PTE_ACCESSED | PTE_DIRTY | PTE_NX
    assert describe_pte(entry) == "pfn 0x1a3 P RW US A D NX"
    assert describe_pte(0) == "empty (not present)" and describe_pte(0x1A3000) == "0x1a3000 (not present)"
    huge = 0x40_0000 | PTE_PRESENT | PTE_HUGE | 1 << 12  # bit 12 of a 2 MiB entry is PAT, not address
    assert entry_pfn(huge) == 0x400 and describe_pte(huge).startswith("pfn 0x400 P PS")


def test_the_tree_says_pfn_and_its_legend_names_every_bit_it_shows(prog: str) -> None:
    text = run_sandbox(["pagetable", prog]).stdout.decode()
    tree, legend = text.split("legend:\n")
    assert tree.startswith("PML4 @ pfn 0x") and "frame 0x" not in text and " @ 0x" not in tree
    assert all(" -> " not in line or " @ pfn 0x" in line for line in tree.splitlines())
    shown = {bit for bits in re.findall(r"\] ([A-Z ]+?)(?: ->|:)", tree) for bit in bits.split()}
    named = {line.split()[0] for line in legend.splitlines() if line.split()[0] in dict(BIT_MEANINGS)}
    assert shown == named and {"P", "RW", "US", "NX"} <= shown
    assert "pfn N" in legend and "X @ pfn N" in legend


def test_the_tree_and_translate_give_the_same_pfn(prog: str) -> None:
    """`sandbox pagetable --translate VA`: the walk's pfn is the one the tree's leaf says."""
    text = run_sandbox(["pagetable", "--translate", hex(BSS_PAGE), prog]).stdout.decode()
    walked = int(re.search(r"physical address 0x[0-9a-f]+ \(pfn (0x[0-9a-f]+)", text).group(1), 16)
    for line in text.splitlines():
        match = LEAF.match(line)
        if match and int(match.group(2), 16) <= BSS_PAGE < int(match.group(3), 16):
            assert int(match.group(4), 16) + ((BSS_PAGE - int(match.group(2), 16)) >> 12) == walked
            return
    pytest.fail(f"no leaf maps {BSS_PAGE:#x} in {text}")


# -- demos with run options -----------------------------------------------------------------


def test_a_demo_writes_a_fault_log_and_traces(tmp_path: Path) -> None:
    log = tmp_path / "faults.jsonl"
    ran = run_sandbox(["demo", "write-barrier", "--fault-log", str(log), "--trace-faults"])
    assert ran.returncode == 0 and b"dirty pages: 3 7 8 20 (4 of 32)" in ran.stdout
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    traced = [line for line in ran.stderr.decode().splitlines() if "] fault " in line]
    assert len(lines) == len(traced) > 10 and {"address", "kind", "frame"} <= set(lines[0])


def test_a_demo_with_too_little_memory_says_so_as_run_does() -> None:
    demo = run_sandbox(["demo", "demand-paging", "--memory", "4M"])
    run = run_sandbox(["run", "--memory", "4M", DEMOS["demand-paging"].guest])
    assert demo.returncode == run.returncode == 137
    assert b"out of memory" in demo.stderr and demo.stderr.splitlines()[-1] == run.stderr.splitlines()[-1]


def test_a_bad_demo_option_is_a_usage_error(tmp_path: Path) -> None:
    for args in (["--memory", "lots"], ["--fault-log", str(tmp_path)]):
        ran = run_sandbox(["demo", "write-barrier", *args])
        assert ran.returncode == 2 and len(ran.stderr.splitlines()) == 1 and not ran.stdout


def test_a_demo_steps_its_faults_off_a_terminal(tmp_path: Path) -> None:
    log = tmp_path / "faults.jsonl"
    ran = run_sandbox(["demo", "huge-pages", "--step-faults", "--fault-log", str(log)])
    err = ran.stderr.decode()
    assert ran.returncode == 0 and err.count("without pausing") == 1
    assert err.count("-- page fault ") == len(log.read_text().splitlines())
    assert " PS NX " in err and "holds a 2 MiB page" in err


@pytest.mark.parametrize("name", ["demand-paging", "cow-fork", "huge-pages", "threads-share"])
def test_a_demo_names_its_source_and_wraps_its_prose(name: str) -> None:
    ran = run_sandbox(["demo", name], env={**_env(), "COLUMNS": "60"})
    assert ran.returncode == 0
    guest_lines = set(run_sandbox(["run", guest(f"demo-{name}")]).stdout.decode().splitlines())  # its own
    story = [line for line in ran.stdout.decode().splitlines() if line not in guest_lines]
    source = DEMOS[name].source
    assert f"guest: {source}" in "\n".join(story) and (ROOT / source).exists()
    long = [line for line in story if len(line) > 60 and not line.startswith("    ")]
    assert not long, f"lines past 60 columns: {long}"


def test_a_demo_explains_the_entry_it_shows() -> None:
    story = run_sandbox(["demo", "cow-fork"], env={**_env(), "COLUMNS": "1000"}).stdout.decode()  # unwrapped
    assert "pfn, the page frame number" in story and "RW writable" in story and "instead of pfn 0x" in story


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)

"""`sandbox plot` and the --fault-log it draws: region names and resident pages in the log
(checked against the page tables), a real forking run drawn, old and malformed logs, the
time axis, and a log of 100k faults from 100 processes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from sandbox.errors import SandboxError
from sandbox.kernel.faultlog import FaultLog
from sandbox.mm.aspace import Access, AddressSpace, NoMmu
from sandbox.mm.frames import FrameAllocator
from sandbox.mm.physmem import PhysicalMemory
from sandbox.mm.vma import PROT_READ, PROT_WRITE, RegionKind
from sandbox.plot import MAX_BANDS, plot_fault_log
from tests.conftest import guest, run_sandbox

RW = PROT_READ | PROT_WRITE
P = 4096
OLD_KEYS = {"t", "pid", "address", "kind", "access", "rip", "frame"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# -- the log, on plain memory ---------------------------------------------------------------


@pytest.fixture
def space() -> AddressSpace:
    mem = PhysicalMemory(32 << 20)
    kernel = AddressSpace.new_kernel(mem, FrameAllocator(mem), NoMmu())
    return AddressSpace.new_user(kernel)


def logged(space: AddressSpace) -> list[dict]:
    """Log every fault of `space` with a FaultLog; the list fills as faults happen."""
    out, lines = io.StringIO(), []
    log = FaultLog(out)

    def listener(record) -> None:
        log(7, space, record, None)
        lines.append(json.loads(out.getvalue().splitlines()[-1]))

    space.on_fault = listener
    return lines


def resident(space: AddressSpace) -> int:
    """Resident pages recounted from scratch, one leaf at a time."""
    return sum(m.size for _, m in space.pagetable.iter_leaves()) // P


def test_resident_pages_follow_the_page_tables(space: AddressSpace) -> None:
    lines = logged(space)
    space.reserve_region(0x10000, 600, RW)  # 600 pages: two leaf tables
    space.reserve_region(0x4000_0000, 1, RW, page_size=2 << 20)
    for page in range(0, 600, 7):
        space.handle_page_fault(0x10000 + page * P, Access.WRITE)
        assert lines[-1]["resident"] == resident(space)
    space.handle_page_fault(0x4000_0000, Access.WRITE)  # one 2 MiB page: 512 more
    assert lines[-1]["resident"] == resident(space) and resident(space) == 86 + 512
    space.unmap_range(0x10000, 300 * P)  # between faults: seen at the next count
    for page in range(301, 600, 2):
        space.handle_page_fault(0x10000 + page * P, Access.WRITE)
    assert lines[-1]["resident"] == resident(space)
    space.check_invariants()


def test_copy_on_write_leaves_resident_pages_alone(space: AddressSpace) -> None:
    lines = logged(space)
    space.reserve_region(0x10000, 4, PROT_READ)
    space.handle_page_fault(0x10000, Access.READ)
    space.protect_range(0x10000, 4 * P, RW)
    space.handle_page_fault(0x10000, Access.WRITE)
    assert [line["resident"] for line in lines] == [1, 1] == [resident(space)] * 2


@pytest.mark.parametrize(("name", "kind", "shown"), [
    ("/lib/x86_64-linux-gnu/libc.so.6", RegionKind.CODE, "/lib/x86_64-linux-gnu/libc.so.6"),
    ("[heap]", RegionKind.HEAP, "[heap]"),
    ("", RegionKind.BSS, "bss"),
    ("", RegionKind.MMAP, "anon@0x10000"),
])
def test_regions_named_by_their_label(space: AddressSpace, name: str, kind: RegionKind, shown: str) -> None:
    lines = logged(space)
    space.reserve_region(0x10000, 1, RW, kind=kind, name=name)
    space.handle_page_fault(0x10000, Access.WRITE)
    assert lines[-1]["region"] == shown and OLD_KEYS <= set(lines[-1])


# -- a real forking run ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def cow_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The copy-on-write demo's guest (it forks once) run with --fault-log."""
    log = tmp_path_factory.mktemp("plot") / "faults.jsonl"
    run = run_sandbox(["run", "--timeout", "60", "--fault-log", str(log), guest("demo-cow-fork")])
    assert run.returncode == 0, run.stderr
    return log


def faults_of(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_forking_run_logs_regions_and_resident_pages(cow_log: Path) -> None:
    faults = faults_of(cow_log)
    assert all(OLD_KEYS | {"region", "resident"} <= set(f) for f in faults)
    anon = next(f["region"] for f in faults if f["region"].startswith("anon@0x"))  # the mmap'd 64 pages
    assert {f["region"] for f in faults} == {guest("demo-cow-fork"), "bss", "[heap]", anon, "[stack]"}
    parent, child = sorted({f["pid"] for f in faults})
    copies = [f for f in faults if f["pid"] == child and f["region"] == anon]
    assert len(copies) == 16 and {f["kind"] for f in copies} == {"copy-on-write"}
    assert max(f["resident"] for f in faults if f["pid"] == parent) >= 64 + 16  # 64 pages and the program


def test_forking_run_plots(cow_log: Path, tmp_path: Path) -> None:
    picture = tmp_path / "faults.png"
    summary = plot_fault_log(str(cow_log), str(picture))
    assert (summary.faults, summary.processes) == (len(faults_of(cow_log)), 2)
    anon = next(f["region"] for f in faults_of(cow_log) if f["region"].startswith("anon@0x"))
    assert summary.regions == ("demo-cow-fork", "bss", "[heap]", anon, "[stack]")  # by address
    assert picture.read_bytes()[:8] == PNG_MAGIC


def test_command_prints_the_summary(cow_log: Path, tmp_path: Path) -> None:
    picture = tmp_path / "faults.svg"
    drawn = run_sandbox(["plot", str(cow_log), "-o", str(picture), "--title", "cow"])
    count = len(faults_of(cow_log))
    assert drawn.returncode == 0 and drawn.stdout.decode() == f"{picture}: {count} faults, 2 processes, 5 regions\n"
    assert picture.read_text().startswith("<?xml") and "cow: " in picture.read_text()


def test_time_axis(cow_log: Path, tmp_path: Path) -> None:
    picture = tmp_path / "faults.png"
    drawn = run_sandbox(["plot", "--time", str(cow_log), "-o", str(picture)])
    assert drawn.returncode == 0 and picture.read_bytes()[:8] == PNG_MAGIC
    assert plot_fault_log(str(cow_log), str(tmp_path / "t.pdf"), time=True).processes == 2


def test_old_log_plots_by_address_clusters(cow_log: Path, tmp_path: Path) -> None:
    old = tmp_path / "old.jsonl"
    old.write_text("".join(json.dumps({k: f[k] for k in OLD_KEYS}) + "\n" for f in faults_of(cow_log)))
    summary = plot_fault_log(str(old), str(tmp_path / "old.png"))
    assert summary.processes == 2 and summary.faults == len(faults_of(cow_log))
    low, high = summary.regions  # the program and its heap; the mmap and the stack
    assert low.startswith("0x400000 +") and low.endswith(" KiB") and high.startswith("0x7ffff7")


# -- bad and extreme logs -------------------------------------------------------------------


@pytest.mark.parametrize(("text", "needle"), [
    ("garbage\n", ":1: not a fault-log line (not JSON)"),
    ("[1, 2]\n", ":1: not a fault-log line (not a JSON object)"),
    ('{"t": 0, "pid": 2, "address": 4096}\n', ":1: not a fault-log line ('kind' missing or not a string)"),
    ('{"t": true, "pid": 2, "address": 4096, "kind": "file"}\n', "('t' missing or not a number)"),
    ('{"t": 0, "pid": 2, "address": -1, "kind": "file"}\n', "(address -1 is not 64-bit)"),
    ('{"t": 1e999, "pid": 2, "address": 1, "kind": "file"}\n', "(time inf is not finite)"),
    ('{"t": 0, "pid": 2, "address": 1, "kind": "f", "region": 3}\n', "('region' is not a string)"),
    ('{"t": 0, "pid": 2, "address": 1, "kind": "f", "resident": -4}\n', "('resident' is not a count: -4)"),
    ("\n" + "[" * 100_000 + "\n", ":2: not a fault-log line (not JSON)"),
])
def test_malformed_log_is_refused(tmp_path: Path, text: str, needle: str) -> None:
    log = tmp_path / "bad.jsonl"
    log.write_text(text)
    with pytest.raises(SandboxError) as info:
        plot_fault_log(str(log), str(tmp_path / "out.png"))
    assert str(info.value).startswith(str(log)) and needle in str(info.value)
    assert not (tmp_path / "out.png").exists()


def test_malformed_log_is_one_line_error(tmp_path: Path) -> None:
    """A bad input the user gave: one line, status 2 (a usage mistake)."""
    log = tmp_path / "bad.jsonl"
    log.write_text('{"t": 0, "pid": 2, "address": 4096, "kind": "file"}\n{"t": 0}\n')
    drawn = run_sandbox(["plot", str(log), "-o", str(tmp_path / "out.png")])
    assert drawn.returncode == 2 and drawn.stdout == b""
    assert drawn.stderr.decode() == f"sandbox: {log}:2: not a fault-log line ('pid' missing or not a number)\n"


def test_binary_log_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "bad.jsonl"
    log.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(SandboxError, match="not a fault log"):
        plot_fault_log(str(log), str(tmp_path / "out.png"))


def test_empty_log_plots(tmp_path: Path) -> None:
    log = tmp_path / "empty.jsonl"
    log.write_text("")
    summary = plot_fault_log(str(log), str(tmp_path / "out.png"))
    assert (summary.faults, summary.processes, summary.regions) == (0, 0, ())


def test_100k_faults_of_100_processes(tmp_path: Path) -> None:
    """Rasterized dots, the rarest regions merged into one band, the legend cut short."""
    log = tmp_path / "big.jsonl"
    with log.open("w") as f:
        for n in range(100_000):
            region = n * 7 % 40
            f.write(json.dumps({"t": n / 1e4, "pid": 2 + n // 1000, "address": (region << 32) + (n % 997) * P,
                                "kind": ("file", "demand-zero", "odd")[n % 3], "region": f"/lib/r{region}.so",
                                "resident": n % 1000}) + "\n")
    picture = tmp_path / "big.svg"
    summary = plot_fault_log(str(log), str(picture))
    assert (summary.faults, summary.processes, len(summary.regions)) == (100_000, 100, MAX_BANDS)
    assert "other (25 regions)" in summary.regions
    assert picture.stat().st_size < 4 << 20, "the dots are one image, not 100k paths"


# -- the resident-pages panel: lines that lie on each other stay seen ------------------------


def resident_lines(log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list:
    """The resident-pages panel's lines as plot_fault_log draws them for `log`."""
    from sandbox import plot

    drawn, draw = [], plot._draw_resident

    def keep(axes, *args) -> None:
        draw(axes, *args)
        drawn.extend(axes.get_lines())
    monkeypatch.setattr(plot, "_draw_resident", keep)
    plot_fault_log(str(log), str(tmp_path / "faults.png"))
    return drawn


def look(line) -> tuple:
    """What tells a line apart: colour, width, dash pattern (matplotlib keeps no public getter
    for a custom pattern)."""
    return (line.get_color(), line.get_linewidth(), line._unscaled_dash_pattern)


def test_forked_child_line_leaves_the_parent_seen(cow_log: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    parent, child = sorted({f["pid"] for f in faults_of(cow_log)})
    lines = resident_lines(cow_log, tmp_path, monkeypatch)
    assert [line.get_label() for line in lines] == [f"pid {parent}", f"pid {child}"]
    first, second = lines
    assert first._unscaled_dash_pattern[1] is None and second._unscaled_dash_pattern[1]  # solid, then dashed
    assert first.get_linewidth() > second.get_linewidth()  # the parent shows on both sides of the child


def test_equal_counts_of_many_processes_stay_distinguishable(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight processes with the same resident count throughout: one line each, no two alike."""
    log = tmp_path / "same.jsonl"
    log.write_text("".join(json.dumps({"t": n / 100, "pid": 2 + n % 8, "address": 0x10000 + n * P,
                                       "kind": "demand-zero", "region": "bss", "resident": 50}) + "\n"
                           for n in range(80)))
    lines = resident_lines(log, tmp_path, monkeypatch)
    assert [line.get_label() for line in lines] == [f"pid {pid}" for pid in range(2, 10)]
    assert len({look(line) for line in lines}) == 8
    assert len({look(line)[1:] for line in lines}) == 8  # apart even for a reader without colour

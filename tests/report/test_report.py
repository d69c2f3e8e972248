"""`sandbox report PROG -o page.html`: the page's data checked against `sandbox maps`, a
native run and what fork must share; the page drawn by headless Chromium (its DOM after the
script ran, and a screenshot); and attacks: hostile file names and arguments, a page for
65,536 touched pages, every cap reached, bad output paths.

forker.c (built here) forks children that write part of a buffer the parent filled, so the
frames they still share at their exit are known: copy-on-write ones at the same address.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from sandbox import report
from sandbox.api import Sandbox
from sandbox.report_page import render
from tests.conftest import build_c, guest, require_tool, run_native, run_sandbox

HERE = Path(__file__).resolve().parent
#: A file name a guest maps: the page must show it as text, never as markup.
HOSTILE = 'a<script>alert(1)</script-x<b>"&.txt'.replace("/", "_")
#: The data element: the only place the page's JSON may be.
DATA = re.compile(r'<script type="application/json" id="data">(.*?)</script>', re.S)
COW_RED, DEMAND_BLUE = (214, 39, 40), (31, 119, 180)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    build_c(HERE / "forker.c", out)
    (out / HOSTILE).write_text("hello\n")
    return out


def page_data(page: Path) -> dict:
    """The JSON blob inside the page."""
    return json.loads(DATA.search(page.read_text()).group(1))


def make_report(page: Path, argv: list[str], *options: str) -> subprocess.CompletedProcess:
    return run_sandbox(["report", "--timeout", "60", *options, "-o", str(page), *argv])


@pytest.fixture(scope="module")
def fork_report(built: Path) -> tuple[Path, subprocess.CompletedProcess, list[str]]:
    """forker with 2 children, 64 pages and the hostile file: (page, its run, argv)."""
    argv = [str(built / "forker"), "2", "64", str(built / HOSTILE)]
    page = built / "fork.html"
    return page, make_report(page, argv, "--mount", f"{built}:{built}:ro"), argv


def leaves(nodes: list[dict]):
    """Every leaf node of a page-table tree."""
    for node in nodes:
        if "c" in node:
            yield from leaves(node["c"])
        elif "page" in node:
            yield node


def test_a_static_guest_matches_sandbox_maps(tmp_path: Path) -> None:
    """One process: its regions are `sandbox maps`'s lines; its tree's leaves are its
    resident pages and lie in its regions; every fault is drawn (none capped), and the
    run options still work (--fault-log logs the same faults)."""
    page, log = tmp_path / "hello.html", tmp_path / "faults.jsonl"
    boxed = make_report(page, [guest("hello")], "--fault-log", str(log))
    maps = run_sandbox(["maps", guest("hello")])
    assert (boxed.returncode, boxed.stderr) == (maps.returncode, maps.stderr)  # the guest's stdout, on stderr
    assert re.fullmatch(rf"{re.escape(str(page))}: 1 process, \d+ faults, 0 frames shared between processes\n",
                        boxed.stdout.decode())
    data = page_data(page)
    (process,) = data["processes"]
    assert [r["line"] for r in process["regions"]] == maps.stdout.decode().splitlines()
    pages = list(leaves(process["tree"]["nodes"]))
    assert sum(leaf["n"] for leaf in pages) == process["resident"] == sum(r["resident"] for r in process["regions"])
    assert all(any(r["start"] <= leaf["va"] and leaf["end"] <= r["end"] for r in process["regions"]) for leaf in pages)
    assert data["faults_total"] == len(data["faults"]) == sum(data["fault_counts"].values()) > 0
    assert [json.loads(line)["address"] for line in log.read_text().splitlines()] == [f[2] for f in data["faults"]]
    assert {data["rows"][fault[1]]["pid"] for fault in data["faults"]} == {process["pid"]}
    assert not any(data["capped"].values()) and data["shared"] == []


def test_a_forking_guest_shares_frames_copy_on_write(built: Path, fork_report) -> None:
    """Run as natively; each child's end finds frames it shares with its parent: the
    buffer's unwritten pages, copy-on-write at the same address and read-only in both."""
    page, boxed, argv = fork_report
    native = run_native(argv)
    assert (boxed.stderr, boxed.returncode) == (native.stdout, native.returncode)
    data = page_data(page)
    parent, *children = data["processes"]
    assert [c["ended"] for c in children] == ["exit 0", "exit 1"] and parent["ended"] == "exit 0"
    assert all(c["ppid"] == parent["pid"] for c in children)
    assert all([r["line"] for r in c["regions"]] == [r["line"] for r in parent["regions"]] for c in children)
    cow = [frame for frame in data["shared"] if frame["kind"] == "copy-on-write"]
    assert data["shared_by_kind"]["copy-on-write"] == len(cow)
    for child in children:  # it left 48 of the 64 pages unwritten (the second shares the same frames)
        assert sum(child["pid"] in {m["pid"] for m in frame["maps"]} for frame in cow) >= 48
    for frame in cow:
        assert parent["pid"] in {m["pid"] for m in frame["maps"]} and len({m["va"] for m in frame["maps"]}) == 1
        assert not any(m["writable"] for m in frame["maps"])
    assert data["fault_counts"]["copy-on-write"] >= 2 * 16  # each child wrote 16 pages
    assert f"3 processes, {data['faults_total']} faults, {len(data['shared'])} frames" in boxed.stdout.decode()


def test_guest_strings_stay_text(fork_report) -> None:
    """A mapped file named with markup, and markup in argv: no tag of theirs in the page."""
    page, _, _ = fork_report
    text = page.read_text()
    assert text.count("<script") == 2 and "alert(1)" in text  # escaped, inside the data
    assert "<b>" not in text and HOSTILE not in text
    names = {r["name"] for p in page_data(page)["processes"] for r in p["regions"]}
    assert any(name.endswith(HOSTILE) for name in names)


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    """Headless Chromium (Debian's), required in CI."""
    return subprocess.run([require_tool("chromium"), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--user-data-dir={profile}", *args], capture_output=True, timeout=120)


def test_the_page_draws_itself_in_chromium(fork_report, tmp_path: Path) -> None:
    """The DOM after the script ran: the summary filled, the PML4 level open, one mark per
    fault, one row per shared frame, the hostile name shown as text."""
    page, _, _ = fork_report
    data = page_data(page)
    dom = chromium("--dump-dom", page.as_uri(), profile=tmp_path / "profile").stdout.decode()
    assert 'data-rendered="yes"' in dom
    summary = re.search(r'<p id="summary"[^>]*>(.*?)</p>', dom).group(0)
    assert f'data-shared="{len(data["shared"])}"' in summary and "3 processes" in summary
    assert dom.count("<details open") == sum(len(p["tree"]["nodes"]) for p in data["processes"])
    assert len(re.findall(r"<title>fault \d+, pid", dom)) == len(data["faults"])
    table = re.search(r'<table id="shared-table">.*?</table>', dom, re.S).group(0)
    assert table.count("<tr>") == len(data["shared"]) + 1
    assert "a&lt;script&gt;alert(1)" in dom and "<b>" not in dom


def test_a_screenshot_of_the_page(fork_report, tmp_path: Path) -> None:
    """A 1200x900 picture, not blank: many colours, the timeline's red and blue among them."""
    imread = pytest.importorskip("matplotlib.image").imread
    page, _, _ = fork_report
    shot = tmp_path / "page.png"
    chromium(f"--screenshot={shot}", "--window-size=1200,900", page.as_uri(), profile=tmp_path / "profile")
    pixels = (imread(shot)[:, :, :3] * 255).round().astype(int)
    assert pixels.shape == (900, 1200, 3)
    colours = {tuple(p) for p in pixels.reshape(-1, 3)}
    assert len(colours) > 50
    assert COW_RED in colours and DEMAND_BLUE in colours


def test_65536_pages_make_a_small_page(tmp_path: Path) -> None:
    """The timeline is capped (and says so); the page stays far under 5 MB."""
    page = tmp_path / "big.html"
    unchecked = {**os.environ, "SANDBOX_CHECK_INVARIANTS": "0"}  # checks at every switch: minutes here
    boxed = run_sandbox(["report", "--memory", "512M", "-o", str(page), guest("pagetouch"), "65536"], env=unchecked)
    assert boxed.returncode == 0, boxed.stderr.decode()
    assert page.stat().st_size < 5 << 20
    data = page_data(page)
    assert data["capped"]["faults"] and len(data["faults"]) == report.MAX_FAULTS
    assert data["faults_total"] > 65536
    heap = max(data["processes"][0]["regions"], key=lambda r: r["resident"])
    assert heap["resident"] == 65536


def test_every_cap_holds(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Small caps, a guest past all of them: processes, faults, tree entries and shared
    frames stop at their caps, the rest is counted, and the page still renders."""
    caps = {"MAX_PROCESSES": 2, "MAX_FAULTS": 10, "MAX_TREE_NODES": 6, "MAX_TREE_NODES_EACH": 4, "MAX_SHARED": 3,
            "MAX_REGIONS": 4, "MAX_SHARERS": 2, "MAX_ROWS": 3}
    for name, value in caps.items():
        monkeypatch.setattr(report, name, value)
    with Sandbox(mounts=[f"{built}:{built}:ro"]) as sandbox:
        recorder = report.Recorder(sandbox)
        recorder.attach()
        result = sandbox.run(str(built / "forker"), ["forker", "4", "16"], capture=True)
        recorder.snapshot(sandbox.process, sandbox.process.space, "exit", final=True)
        recorder.detach()
        data = recorder.data("forker", ["forker", "4", "16"], result)
    assert result.status == 0 and result.stdout.count(b"child") == 4
    assert len(data["processes"]) == 3 and data["capped"]["processes"] == 2  # 2 children of 4, and the parent
    parent = data["processes"][0]
    assert sum(1 for node in _all_nodes(parent) if "more" not in node) == 4  # its share, kept for it
    assert sum(1 for p in data["processes"][1:] for node in _all_nodes(p) if "more" not in node) == 2
    assert len(data["faults"]) == 10 < data["faults_total"]
    assert data["capped"]["rows"] and {row["label"] for row in data["rows"][3:]} == {report.OTHER_ROW}
    assert all(len(p["regions"]) == 4 < p["regions_total"] for p in data["processes"])
    assert data["capped"]["tree"] and all(any("more" in n for n in _all_nodes(p)) for p in data["processes"])
    assert len(data["shared"]) <= 3 and data["capped"]["shared"]
    assert all(len(frame["maps"]) == 2 for frame in data["shared"]) and recorder.sharers_dropped > 0
    assert page_json(render(data)) == json.loads(json.dumps(data))


def test_the_shared_frame_search_is_bounded(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each process's end reads the tables of every live one: a budget stops it."""
    monkeypatch.setattr(report, "MAX_SHARE_VISITS", 50)
    with Sandbox(mounts=[f"{built}:{built}:ro"]) as sandbox:
        recorder = report.Recorder(sandbox)
        recorder.attach()
        result = sandbox.run(str(built / "forker"), ["forker", "3", "64"], capture=True)
        data = recorder.data("forker", ["forker"], result)
    assert data["capped"]["shared"] and recorder.share_budget.left == 0


def _all_nodes(process: dict):
    pending = list(process["tree"]["nodes"])
    while pending:
        node = pending.pop()
        yield node
        pending.extend(node.get("c", []))


def page_json(text: str) -> dict:
    return json.loads(DATA.search(text).group(1))


def test_execve_and_a_killed_shell(tmp_path: Path) -> None:
    """A shell's child that exec'd is snapshotted twice (before execve, at exit); a guest
    a signal killed still gets its page, and the status a shell would see."""
    busybox = require_tool("busybox")
    for script, status in (("/bin/busybox echo hi; exit 3", 3), ("kill -SEGV $$", 139)):
        native = run_native([busybox, "sh", "-c", script])
        page = tmp_path / f"sh-{status}.html"
        boxed = make_report(page, [busybox, "sh", "-c", script])
        assert boxed.returncode == status == (native.returncode if native.returncode >= 0 else 128 - native.returncode)
        data = page_data(page)
        assert data["status"] == status
        if status == 3:
            assert boxed.stderr == native.stdout == b"hi\n"
            assert sorted(p["event"] for p in data["processes"]) == ["execve", "exit", "exit"]
        else:
            assert "SIGSEGV" in data["ended"] and "SIGSEGV" in boxed.stderr.decode()


@pytest.mark.parametrize("output, why", [("/nonexistent/dir/page.html", "no such directory"),
                                         ("/tmp", "is a directory")])
def test_a_bad_output_path_is_a_usage_error(built: Path, output: str, why: str) -> None:
    """Checked before the guest runs (it would print): one line, status 2."""
    boxed = run_sandbox(["report", "-o", output, str(built / "forker")])
    assert boxed.returncode == 2 and boxed.stdout == b""
    assert boxed.stderr.decode().count("\n") == 1 and why in boxed.stderr.decode()


@pytest.mark.parametrize("option", [["--stats"], ["--translate", "main"], ["--dump-pagetables"]])
def test_run_only_options_are_refused(built: Path, tmp_path: Path, option: list[str]) -> None:
    """The options that report on a run are `sandbox run`'s: one line, status 2, no run."""
    boxed = run_sandbox(["report", *option, "-o", str(tmp_path / "p.html"), str(built / "forker")])
    assert (boxed.returncode, boxed.stdout) == (2, b"")
    assert boxed.stderr.decode() == f"sandbox: report: {option[0]} is for `sandbox run`\n"
    assert not (tmp_path / "p.html").exists()


@pytest.mark.parametrize("option", ["--trace-out", "--fault-log"])
def test_an_output_that_fails_is_one_line_and_74(tmp_path: Path, option: str) -> None:
    """A --trace-out or --fault-log the disk refuses ends the report as it ends `sandbox run`:
    one line naming the file, EX_IOERR (it was "internal error", exit 70)."""
    extra = ["--trace-syscalls"] if option == "--trace-out" else []
    done = run_sandbox(["report", *extra, "-o", str(tmp_path / "r.html"), option, "/dev/full", guest("hello")])
    lines = done.stderr.decode().splitlines()
    assert done.returncode == 74 and lines[-1] == "sandbox: /dev/full: No space left on device; the run was ended"
    assert "internal error" not in done.stderr.decode() and "Traceback" not in done.stderr.decode()

"""`sandbox batch` on this machine: a small batch with -j 2 judged entry by entry (and each
finished run's output compared with the same program run natively), limits, resuming,
--deterministic, Ctrl-C, and the runner's own wall limit and cancellation."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sandbox.batch.record import without_timing
from sandbox.batch.runner import Cancelled, _spawn
from tests.batch.conftest import batch, read_records, write_jsonl
from tests.conftest import ROOT, run_native

#: id -> (args, stdin, expect, limits, (passed, failure, status, signal, limit))
SMALL = {
    "echo": (["echo", "a", "b"], None, {"stdout": "a b\n", "status": 0}, {}, (True, None, 0, None, None)),
    "echo-wrong": (["echo", "a"], None, {"stdout": "b\n"}, {}, (False, "wrong-output", 0, None, None)),
    "sum": (["sum"], "1 2 39\n", {"stdout": "42\n"}, {}, (True, None, 0, None, None)),
    "exit-4": (["exit", "4"], None, {"status": 3}, {}, (False, "wrong-status", 4, None, None)),
    "crash": (["crash"], None, {}, {}, (False, "crashed", 139, "SIGSEGV", None)),
    "crash-expected": (["crash"], None, {"status": 139}, {}, (True, None, 139, "SIGSEGV", None)),
    "loop": (["loop"], None, {}, {"timeout": 1}, (False, "timeout", 137, "SIGKILL", "timeout")),
    "count": (["loop"], None, {}, {"instructions": 200000}, (False, "instruction-limit", 137, "SIGKILL",
                                                              "instructions")),
}


def small_manifest(path: Path, tool: Path) -> Path:
    return write_jsonl(path, [
        {"id": key, "program": str(tool), "args": args, **({"stdin": stdin} if stdin else {}), "expect": expect,
         "limits": limits} for key, (args, stdin, expect, limits, _) in SMALL.items()])


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory, tool: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """The small batch run once with -j 2; (the command's result, its records)."""
    where = tmp_path_factory.mktemp("small")
    result = batch(small_manifest(where / "m.jsonl", tool), "-o", where / "out.jsonl", "-j", "2")
    return result, read_records(where / "out.jsonl")


def test_small_batch_judged(small: tuple) -> None:
    result, records = small
    assert result.returncode == 1, result.stderr  # some failed
    assert set(records) == set(SMALL)
    for key, (*_, want) in SMALL.items():
        record = records[key]
        got = (record["passed"], record["failure"], record["status"], record["signal"], record["limit"])
        assert got == want, (key, record)


def test_small_batch_outputs_as_native(small: tuple, tool: Path) -> None:
    """Each run that ended by itself printed what the program prints natively."""
    _, records = small
    for key, (args, stdin, *_) in SMALL.items():
        if records[key]["limit"] or records[key]["signal"]:
            continue
        native = run_native([str(tool), *args], stdin=(stdin or "").encode())
        record = records[key]
        assert (record["stdout"]["sha256"], record["stdout"]["head"], record["status"]) == \
               (hashlib.sha256(native.stdout).hexdigest(), native.stdout.decode(), native.returncode)
        assert record["stdout"]["bytes"] == len(native.stdout) and record["stderr"]["bytes"] == 0


def test_small_batch_record_contents(small: tuple) -> None:
    _, records = small
    echo = records["echo"]
    assert echo["stats"]["syscalls"]["write"] == 1 and echo["stats"]["frames"]["peak"] > 0
    assert echo["stats"]["faults_total"] > 0 and echo["stats"]["faults"]["demand-zero"] > 0
    assert echo["expected"] == {"status": 0, "stdout_sha256": hashlib.sha256(b"a b\n").hexdigest()}
    assert echo["instructions"] is None  # counted only under an instruction limit
    assert records["count"]["instructions"] > 200000
    assert echo["exit_code"] == 0 and echo["message"] is None and set(echo["timing"]) == {"wall_s", "cpu_s"}
    assert records["loop"]["message"] == "killed: time limit of 1 s reached"
    assert records["loop"]["timing"]["wall_s"] >= 1 and records["loop"]["exit_code"] is None
    assert records["crash"]["message"].startswith("killed by SIGSEGV")


def test_small_batch_summary(small: tuple) -> None:
    result, _ = small
    out = result.stdout.decode()
    assert out.startswith("sandbox batch: 8 of 8 runs recorded: 3 passed, 5 failed\n")
    for kind, count in (("crashed", 1), ("instruction-limit", 1), ("timeout", 1), ("wrong-output", 1),
                        ("wrong-status", 1)):
        assert any(line.split() == [kind, str(count)] for line in out.splitlines()), out
    slowest = out.split("slowest runs:\n")[1].splitlines()
    assert len(slowest) == 6 and slowest[0].split() == ["id", "wall", "s", "cpu", "s", "status", "outcome"]
    walls = [float(line.split()[1]) for line in slowest[1:]]
    assert walls == sorted(walls, reverse=True) and "loop" in {line.split()[0] for line in slowest[1:]}


def test_entries_see_env_files_mounts(tmp_path: Path, tool: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "in.txt").write_text("mounted\n")
    (tmp_path / "shipped.txt").write_text("shipped\n")
    manifest = write_jsonl(tmp_path / "m.jsonl", [
        {"id": "argv0", "program": str(tool), "args": ["argv0"], "env": {"GREETING": "hello"},
         "expect": {"stdout": "./tool hello\n"}},
        {"id": "mount", "program": str(tool), "args": ["file", "/data/in.txt"], "mounts": ["data:/data:ro"],
         "expect": {"stdout": "mounted\n"}},
        {"id": "files", "program": str(tool), "args": ["file", "/in/s.txt"], "files": {"/in/s.txt": "shipped.txt"},
         "expect": {"stdout": "shipped\n"}},
        {"id": "busybox", "program": "/bin/busybox", "args": ["echo", "applet"], "expect": {"stdout": "applet\n"}},
    ])
    result = batch(manifest, "-o", tmp_path / "out.jsonl", "-j", "2")
    records = read_records(tmp_path / "out.jsonl")
    assert result.returncode == 0, (records, result.stderr)
    assert all(r["passed"] for r in records.values()) and len(records) == 4


def test_flood_is_counted_not_kept(tmp_path: Path, tool: Path) -> None:
    """A guest writing 24 MiB: the record has its size, digest and first KiB."""
    manifest = write_jsonl(tmp_path / "m.jsonl", [{"id": "flood", "program": str(tool), "args": ["flood", "24"],
                                                   "expect": {"stdout": {"file": str(tool)}}}])
    batch(manifest, "-o", tmp_path / "out.jsonl")
    record = read_records(tmp_path / "out.jsonl")["flood"]
    assert record["stdout"]["bytes"] == 24 << 20 and record["stdout"]["head"] == "x" * 1024
    assert record["stdout"]["sha256"] == hashlib.sha256(b"x" * (24 << 20)).hexdigest()
    assert record["failure"] == "wrong-output"


def quick_manifest(path: Path, tool: Path, count: int) -> Path:
    entries = [{"id": f"e{i}", "program": str(tool), "args": ["echo", str(i)], "expect": {"stdout": f"{i}\n"}}
               for i in range(count)]
    entries += [{"id": "random", "program": str(tool), "args": ["random"]},
                {"id": "crash", "program": str(tool), "args": ["crash"]}]
    return write_jsonl(path, entries)


def test_resume_after_truncation(tmp_path: Path, tool: Path) -> None:
    """An output cut to 2 records and half a line: the rerun keeps those 2 as they were,
    drops the half line, and runs the rest; the final set is the full one."""
    manifest, out = quick_manifest(tmp_path / "m.jsonl", tool, 3), tmp_path / "out.jsonl"
    batch(manifest, "-o", out, "-j", "2", "--deterministic")
    full = out.read_bytes().splitlines(keepends=True)
    assert len(full) == 5
    out.write_bytes(b"".join(full[:2]) + full[2][: len(full[2]) // 2])
    result = batch(manifest, "-o", out, "-j", "2", "--deterministic")
    assert result.returncode == 1 and b"5 of 5 runs recorded: 4 passed, 1 failed" in result.stdout
    again = out.read_bytes().splitlines(keepends=True)
    assert again[:2] == full[:2] and len(again) == 5
    first = {r["id"]: without_timing(r) for r in map(json.loads, full)}
    assert {r["id"]: without_timing(r) for r in map(json.loads, again)} == first
    assert batch(manifest, "-o", out).returncode == 1 and out.read_bytes() == b"".join(again)  # nothing to do


def test_deterministic_records(tmp_path: Path, tool: Path) -> None:
    """Two --deterministic batches write the same lines in the same (manifest) order, timing
    fields apart: the guest's clock and randomness too."""
    manifest = quick_manifest(tmp_path / "m.jsonl", tool, 3)
    runs = []
    for name in ("a.jsonl", "b.jsonl"):
        batch(manifest, "-o", tmp_path / name, "-j", "2", "--deterministic")
        runs.append([without_timing(json.loads(line)) for line in (tmp_path / name).read_bytes().splitlines()])
    assert runs[0] == runs[1]
    assert [r["id"] for r in runs[0]] == ["e0", "e1", "e2", "random", "crash"]
    assert runs[0][3]["stdout"]["head"].startswith("1700000000 ")


@pytest.mark.parametrize("signo", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_leaves_valid_partial_output(tmp_path: Path, tool: Path, signo: int) -> None:
    """Ctrl-C (or SIGTERM) with two guests looping: exit 130, the finished run recorded,
    the others killed (no process left) and said in the summary."""
    marker = f"marker-{os.getpid()}-{time.monotonic_ns()}"
    manifest = write_jsonl(tmp_path / "m.jsonl", [
        {"id": "quick", "program": str(tool), "args": ["echo", "q"]},
        *({"id": f"loop{i}", "program": str(tool), "args": ["loop", marker], "limits": {"timeout": 60}}
          for i in range(2))])
    out = tmp_path / "out.jsonl"
    child = subprocess.Popen([sys.executable, "-m", "sandbox", "batch", str(manifest), "-o", str(out), "-j", "3"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    for _ in range(600):
        if out.exists() and out.read_bytes().count(b"\n") == 1 and _running(marker) == 2:
            break
        time.sleep(0.1)
    child.send_signal(signo)
    stdout, _ = child.communicate(timeout=60)
    assert child.returncode == 130
    assert list(read_records(out)) == ["quick"]
    assert b"2 runs have no record yet" in stdout
    assert _running(marker) == 0


def _running(marker: str) -> int:
    """Processes whose command line holds `marker`."""
    count = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                count += marker.encode() in f.read()
        except OSError:
            pass
    return count


def test_wall_limit_kills_the_group(tmp_path: Path) -> None:
    """A child that outlives the wall limit, and its own child, are killed."""
    outcome = _spawn(["sh", "-c", "sleep 30 & sleep 30"], str(tmp_path), None, 0.5, None)
    assert outcome.status is None and 0.5 <= outcome.wall < 10


def test_cancel_stops_the_run(tmp_path: Path) -> None:
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    with pytest.raises(Cancelled):
        _spawn(["sleep", "30"], str(tmp_path), None, 60, cancel)

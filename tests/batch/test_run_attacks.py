"""Hostile batches run for real: the command line's one-line refusals (bad manifests,
NaN timeouts, a locked output, a records file of the wrong shape), Ctrl-C while the
manifest is read, guests that flood, fork or allocate, -j 2 really running two at once,
the progress bar only on a terminal, and a wall-limit kill that leaves no private root."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.batch.manifest import parse_manifest
from sandbox.batch.runner import _spawn, run_entry
from tests.batch.conftest import batch, read_records, write_jsonl
from tests.conftest import ROOT


def one_line(result: subprocess.CompletedProcess, status: int = 2) -> str:
    """The one stderr line of a refused batch."""
    assert result.returncode == status and result.stdout == b"", result.stderr
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_deep_manifest_on_the_command_line(tmp_path: Path) -> None:
    (tmp_path / "deep.jsonl").write_text("[" * 100_000 + "]" * 100_000 + "\n")
    assert "deep.jsonl:1: not JSON we accept" in one_line(batch(tmp_path / "deep.jsonl", "-o", tmp_path / "o"))


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e7", "0"])
def test_timeout_must_be_finite(tmp_path: Path, tool: Path, value: str) -> None:
    manifest = write_jsonl(tmp_path / "m.jsonl", [{"id": "a", "program": str(tool)}])
    assert "'--timeout'" in one_line(batch(manifest, "-o", tmp_path / "o", "--timeout", value))


def test_record_without_passed_is_refused(tmp_path: Path, tool: Path) -> None:
    manifest = write_jsonl(tmp_path / "m.jsonl", [{"id": "a", "program": str(tool)}])
    (tmp_path / "out.jsonl").write_text('{"id": "a"}\n')
    assert one_line(batch(manifest, "-o", tmp_path / "out.jsonl")).endswith("out.jsonl:1: not a batch record; "
                                                                          "use another -o or remove the file")


def test_second_batch_on_the_same_output_is_refused(tmp_path: Path, tool: Path) -> None:
    """A batch holding the output's flock: the other is refused at once, nothing written."""
    manifest = write_jsonl(tmp_path / "m.jsonl", [{"id": "a", "program": str(tool)}])
    out = tmp_path / "out.jsonl"
    with open(out, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert "another batch is writing it" in one_line(batch(manifest, "-o", out))
    assert out.read_bytes() == b""
    assert batch(manifest, "-o", out).returncode == 0 and list(read_records(out)) == ["a"]


def _signals_as_born() -> None:
    """In the child: SIGINT at its default and nothing blocked, whatever this test process
    inherited or blocked (an in-process sandbox blocks host signals while it listens)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


@pytest.mark.parametrize("signo", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_while_reading_the_manifest(tmp_path: Path, signo: int) -> None:
    """The manifest is a FIFO we hold open: the batch is reading it when Ctrl-C (or
    SIGTERM) comes. (SIGINT is made default in the child: a shell's background job, as
    this test may be, has it ignored.)"""
    fifo = tmp_path / "m.jsonl"
    os.mkfifo(fifo)
    child = subprocess.Popen([sys.executable, "-m", "sandbox", "batch", str(fifo), "-o", str(tmp_path / "o")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, preexec_fn=_signals_as_born)
    with open(fifo, "w") as writer:  # returns once the batch has opened it
        writer.write('{"id": "a",')
        writer.flush()
        child.send_signal(signo)
        _out, err = child.communicate(timeout=60)
    assert child.returncode == 130 and err == b"sandbox batch: interrupted\n"


def test_guests_that_fork_allocate_and_overlap(tmp_path: Path, tool: Path) -> None:
    """1000 forks capped by max_processes; memory and max_resident limits recorded as
    memory-limit; -j 2 runs the two `stamp` guests at once (their own clocks overlap)."""
    manifest = write_jsonl(tmp_path / "m.jsonl", [
        {"id": "fork", "program": str(tool), "args": ["fork", "1000"], "limits": {"max_processes": 50},
         "expect": {"stdout": "forked 49\n", "status": 0}},
        {"id": "memory", "program": str(tool), "args": ["alloc", "200"], "limits": {"memory": "64M"}},
        {"id": "resident", "program": str(tool), "args": ["alloc", "100"], "limits": {"max_resident": "16M"}},
        {"id": "stamp0", "program": str(tool), "args": ["stamp", "1000"]},
        {"id": "stamp1", "program": str(tool), "args": ["stamp", "1000"]},
    ])
    batch(manifest, "-o", tmp_path / "out.jsonl", "-j", "2")
    records = read_records(tmp_path / "out.jsonl")
    assert records["fork"]["passed"], records["fork"]
    for name in ("memory", "resident"):
        assert (records[name]["failure"], records[name]["limit"]) == ("memory-limit", "memory")
    (start0, end0), (start1, end1) = (map(int, records[f"stamp{i}"]["stdout"]["head"].split()) for i in range(2))
    assert max(start0, start1) < min(end0, end1), "the two runs did not overlap"


def test_flood_is_read_with_bounded_memory(tmp_path: Path, tool: Path) -> None:
    """64 MiB of output through run_entry here: this process grows by far less."""
    entry, = parse_manifest(str(write_jsonl(tmp_path / "m.jsonl", [
        {"id": "flood", "program": str(tool), "args": ["flood", "64"]}])))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    record = run_entry(entry)
    assert record["stdout"]["bytes"] == 64 << 20
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 16 << 10  # KiB


def _with_pty(args: list[str]) -> bytes:
    """What a batch wrote to its stderr, a terminal."""
    master, slave = pty.openpty()
    child = subprocess.Popen([sys.executable, "-m", "sandbox", "batch", *args], stdout=subprocess.DEVNULL,
                             stderr=slave, cwd=ROOT)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not chunk:
            break
        seen += chunk
    child.wait(timeout=60)
    os.close(master)
    return seen


def test_progress_bar_only_on_a_terminal(tmp_path: Path, tool: Path) -> None:
    manifest = write_jsonl(tmp_path / "m.jsonl", [{"id": "a", "program": str(tool), "args": ["echo", "x"]}])
    drawn = _with_pty([str(manifest), "-o", str(tmp_path / "tty.jsonl")])
    assert b"sandbox batch" in drawn and b"100%" in drawn
    piped = batch(manifest, "-o", tmp_path / "pipe.jsonl")
    assert piped.returncode == 0 and piped.stderr == b""


def test_wall_limit_kill_leaves_no_private_root(tmp_path: Path, tool: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A sandbox past the runner's wall limit is sent SIGTERM first: it removes its root."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    command = [sys.executable, "-m", "sandbox", "run", "--timeout", "60", str(tool), "loop"]
    outcome = _spawn(command, str(ROOT), None, 3.0, None)
    assert outcome.status is None
    assert not [name for name in os.listdir(tmp) if name.startswith("sandbox-root-")]


def test_deterministic_records_leave_out_host_facts(tmp_path: Path, tool: Path) -> None:
    manifest = write_jsonl(tmp_path / "m.jsonl", [{"id": "a", "program": str(tool), "args": ["echo", "x"]}])
    batch(manifest, "-o", tmp_path / "det.jsonl", "--deterministic")
    batch(manifest, "-o", tmp_path / "plain.jsonl")
    deterministic, plain = (json.loads((tmp_path / name).read_text())["stats"] for name in ("det.jsonl", "plain.jsonl"))
    assert "engine" in plain and "fast_path" in plain
    assert "engine" not in deterministic and "fast_path" not in deterministic and "syscalls" in deterministic


def test_sigterm_deaf_guest_leaves_nothing(tmp_path: Path, tool: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A guest that ignores SIGTERM keeps its sandbox running past the grace: it is
    SIGKILLed, and its private root goes with the run's own directory (its TMPDIR)."""
    import tempfile

    from sandbox.batch import runner

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the run's own directory
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where the sandbox's root would go but for the runner
    monkeypatch.setattr(runner, "wall_limit", lambda _timeout: 2.0)
    entry, = parse_manifest(str(write_jsonl(tmp_path / "m.jsonl", [
        {"id": "deaf", "program": str(tool), "args": ["deaf"]}])))
    record = run_entry(entry)
    assert record["failure"] == "wall-limit"
    assert sorted(os.listdir(tmp_path)) == ["m.jsonl"]

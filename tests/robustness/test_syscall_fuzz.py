"""Random system calls with hostile arguments: each returns -errno or ends the guest with a
signal or a limit; no host exception, and no host file outside the guest's root is touched."""

from __future__ import annotations

import os
from pathlib import Path

from sandbox.kernel import kernel  # noqa: F401 - registers the handlers
from sandbox.kernel.syscalls import TABLE
from tests.conftest import guest, run_sandbox
from tests.robustness.test_hostile import check_figures

SEEDS = range(1, 7)
CALLS = 2500
#: Calls that wait, take times or move file positions, fuzzed in real time under --timeout
#: (their hostile times and offsets once raised host exceptions, finding 8 of issue 12).
TIMED_CALLS = ("read pread64 readv lseek open openat close dup2 sendfile getdents64 nanosleep clock_nanosleep "
               "pause rt_sigsuspend alarm setitimer getitimer poll ppoll select pselect6 ftruncate fcntl futex "
               "clock_gettime").split()
TIMED_SEEDS = range(1, 5)


def test_random_syscalls_stay_inside(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "keep.txt").write_text("untouched")
    before = {p: p.lstat().st_mtime_ns for p in tmp_path.parent.iterdir()}  # pytest's *current links may dangle
    numbers = ",".join(str(nr) for nr in sorted(TABLE))
    outcomes = {"completed": 0, "ended by a signal or limit": 0, "calls": 0}
    for seed in SEEDS:
        result = run_sandbox(["run", "--root", str(root), "--deterministic", "--max-processes", "4",
                              "--max-instructions", "50000000", guest("fuzzsys"), str(seed), str(CALLS), numbers])
        err = result.stderr.decode(errors="replace")
        assert "internal error" not in err and "Traceback" not in err, err
        if result.returncode == 0:
            outcomes["completed"] += 1
            outcomes["calls"] += int(result.stdout.split()[1].rstrip(b":"))
        else:
            assert result.returncode > 128 and err.startswith("sandbox: "), err
            outcomes["ended by a signal or limit"] += 1
    assert (outside / "keep.txt").read_text() == "untouched" and os.listdir(outside) == ["keep.txt"]
    assert not Path("/tmp/sandbox-escape").exists()
    assert {p for p in tmp_path.parent.iterdir()} == set(before)
    assert outcomes["completed"] >= 3
    check_figures("random system calls", {"programs": len(SEEDS), "calls per program": CALLS, **outcomes})


def test_random_waits_and_offsets_end_cleanly(tmp_path: Path) -> None:
    """Sleeps, timers, polls and offsets with hostile integers, in real time: each run ends by
    completing, by a signal or by its --timeout, never with a host exception."""
    numbers = ",".join(str(nr) for nr, entry in sorted(TABLE.items()) if entry.name in TIMED_CALLS)
    for seed in TIMED_SEEDS:
        result = run_sandbox(["run", "--root", str(tmp_path), "--timeout", "2", "--max-processes", "4",
                              guest("fuzzsys"), str(seed), str(CALLS), numbers, "timed"])
        err = result.stderr.decode(errors="replace")
        assert "internal error" not in err and "Traceback" not in err, err
        assert result.returncode == 0 or (result.returncode > 128 and err.startswith("sandbox: ")), err

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


def test_random_syscalls_stay_inside(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "keep.txt").write_text("untouched")
    before = {p: p.stat().st_mtime_ns for p in tmp_path.parent.iterdir()}
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

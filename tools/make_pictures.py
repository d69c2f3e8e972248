"""Make the README's pictures under docs/ from real runs (regenerate them after changing
`sandbox plot` or the fault path).

docs/fault-plot.png: the copy-on-write demo's guest (examples/cow_fork.c, built by
`make guests` as guests/build/demo-cow-fork) run with --fault-log, drawn by `sandbox plot`.

Run: python tools/make_pictures.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.plot import plot_fault_log, summary_line  # noqa: E402

DOCS = ROOT / "docs"
GUEST = ROOT / "guests" / "build" / "demo-cow-fork"
#: The largest picture the README should carry.
MAX_BYTES = 200 << 10


def record_faults(program: Path, log: Path) -> None:
    """Run `program` in the sandbox with --fault-log `log` (--deterministic: the same faults
    in the same order every time); SystemExit if it fails."""
    argv = [sys.executable, "-m", "sandbox", "run", "--deterministic", "--fault-log", str(log), str(program)]
    run = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"{program.name} failed ({run.returncode}): {run.stderr.strip()}")


def make_fault_plot(output: Path) -> None:
    """docs/fault-plot.png: the cow-fork demo's faults, regions, processes and resident pages."""
    if not GUEST.exists():
        raise SystemExit(f"{GUEST} is missing: run `make guests` first")
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "faults.jsonl"
        record_faults(GUEST, log)
        summary = plot_fault_log(str(log), str(output), title="copy-on-write after fork (demo-cow-fork)")
    size = output.stat().st_size
    if size > MAX_BYTES:
        raise SystemExit(f"{output}: {size} bytes, more than {MAX_BYTES} for the README")
    print(summary_line(str(output.relative_to(ROOT)), summary) + f", {size // 1024} KiB")


def main() -> None:
    DOCS.mkdir(exist_ok=True)
    make_fault_plot(DOCS / "fault-plot.png")


if __name__ == "__main__":
    main()

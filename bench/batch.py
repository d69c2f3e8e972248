"""Runs per second of `sandbox batch` for N short guests (default 200): sequentially (one
at a time), on the local pool (one run per core), and on a Dask LocalCluster (one worker
process per core, one thread each). The pool's speed-up over sequential is what parallel
runs buy; the Dask rate against the pool's is the engine's overhead per run (scheduling,
shipping the program as bytes, a worker's thread per run). Prints a table; writes JSON to
--output (default bench/results/batch.json), so that it can run from outside the tree.

    python bench/batch.py [--runs N] [--output FILE] [--program PATH [ARGS...]]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.batch.manifest import parse_manifest  # noqa: E402 - after the path above
from sandbox.batch.pool import LocalPool, default_jobs, run_batch  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "batch.json"
#: The cluster's dashboard on a free loopback port (None would take 8787).
DASHBOARD = "127.0.0.1:0"
HELLO = ROOT / "guests" / "build" / "hello"


def manifest(where: Path, runs: int, argv: list[str]) -> list:
    """`runs` entries of the same short guest, each expecting a clean exit."""
    path = where / "bench.jsonl"
    with open(path, "w") as f:
        for index in range(runs):
            f.write(json.dumps({"id": f"run{index}", "program": argv[0], "args": argv[1:],
                                "expect": {"status": 0}}) + "\n")
    return parse_manifest(str(path))


def rate(entries: list, backend: object, where: Path, name: str) -> dict:
    """Run every entry on `backend` into a fresh output; runs per second and failures."""
    out = where / f"{name}.jsonl"
    started = time.monotonic()
    result = run_batch(entries, str(out), backend, progress=False)
    seconds = time.monotonic() - started
    failed = sum(1 for r in result.records.values() if not r["passed"])
    return {"runner": name, "runs": result.ran, "seconds": round(seconds, 2),
            "runs_per_s": round(result.ran / seconds, 2), "failed": failed}


def dask_rate(entries: list, where: Path, workers: int) -> dict | None:
    """The Dask LocalCluster's rate (cluster start-up not counted), or None without Dask."""
    try:
        from distributed import Client, LocalCluster

        from sandbox.batch.dask_backend import DaskPool
    except ImportError:
        print("dask[distributed] is not installed: pip install -e '.[batch]'", file=sys.stderr)
        return None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=DASHBOARD)
    with cluster, Client(cluster) as client:
        return rate(entries, DaskPool(client), where, f"dask LocalCluster ({workers} workers)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--output", type=Path, default=RESULTS, help="the JSON results (default: %(default)s)")
    parser.add_argument("--program", nargs="+", default=[str(HELLO)] if HELLO.exists() else ["/bin/busybox", "true"])
    options = parser.parse_args()
    jobs = default_jobs()
    with tempfile.TemporaryDirectory(prefix="sandbox-bench-batch-") as tmp:
        where = Path(tmp)
        entries = manifest(where, options.runs, options.program)
        rows = [rate(entries, LocalPool(1), where, "sequential (-j 1)"),
                rate(entries, LocalPool(jobs), where, f"local pool (-j {jobs})"),
                dask_rate(entries, where, jobs)]
    rows = [row for row in rows if row]
    print(f"{options.runs} runs of {' '.join(options.program)}")
    print(f"{'runner':<30} {'seconds':>8} {'runs/s':>8} {'speed-up':>9} {'failed':>7}")
    for row in rows:
        print(f"{row['runner']:<30} {row['seconds']:>8.2f} {row['runs_per_s']:>8.2f} "
              f"{row['runs_per_s'] / rows[0]['runs_per_s']:>8.2f}x {row['failed']:>7}")
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps({"program": options.program, "cores": jobs, "rows": rows},
                                                   indent=2) + "\n")


if __name__ == "__main__":
    main()

"""The side-by-side benchmark: each workload natively, under qemu-x86_64 and under `sandbox run`.

Runners take turns (native, qemu, sandbox, native, ...) so drift on a shared machine hits all
alike. Reports median / min / max wall time and peak RSS per runner, the ratios
sandbox/qemu and sandbox/native, and per-operation costs derived from the sandbox's own
counters (--stats-json) and the timings. Writes a table to stdout and JSON to bench/results/.

    python bench/run.py [--repeat N] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUESTS = ROOT / "guests" / "build"
RESULTS = ROOT / "bench" / "results"


@dataclass
class Workload:
    name: str
    argv: list[str]
    per_op: str = ""  # which counter divides the time: "syscalls" or "faults"


WORKLOADS = [
    Workload("start-up (hello)", ["hello"]),
    Workload("200,000 getppid syscalls", ["getppid", "200000"], per_op="syscalls"),
    Workload("touch 65,536 pages (256 MiB)", ["pagetouch", "65536"], per_op="faults"),
    Workload("CPU-bound (sieve + hash)", ["cpu", "4000000", "12"]),
]


def runners() -> dict[str, list[str]]:
    """Command prefixes; qemu is required (make bench installs Debian's qemu-user)."""
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        sys.exit("qemu-x86_64 not found: `make bench` installs Debian's qemu-user")
    sandbox = [sys.executable, "-m", "sandbox", "run", "--memory", "512M"]
    return {"native": [], "qemu": [qemu], "sandbox": sandbox}


def run_once(prefix: list[str], argv: list[str], extra: list[str] | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one run, from wait4's own accounting."""
    cmd = [*prefix, *(extra or []), str(GUESTS / argv[0]), *argv[1:]]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-500:]}")
    return elapsed, usage.ru_maxrss


def sandbox_counters(prefix: list[str], argv: list[str]) -> dict:
    """The sandbox's statistics for one run of the workload."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        run_once(prefix, argv, ["--stats-json", out.name])
        return json.loads(Path(out.name).read_text())


def measure(workload: Workload, repeat: int, cmds: dict[str, list[str]]) -> dict:
    samples: dict[str, list[tuple[float, int]]] = {name: [] for name in cmds}
    for _ in range(repeat):
        for name, prefix in cmds.items():
            samples[name].append(run_once(prefix, workload.argv))
    row = {"workload": workload.name, "argv": workload.argv, "runners": {}}
    for name, values in samples.items():
        times = [t for t, _ in values]
        row["runners"][name] = {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
                                "peak_rss_kib": max(r for _, r in values)}
    med = {name: r["median_s"] for name, r in row["runners"].items()}
    row["sandbox/qemu"] = med["sandbox"] / med["qemu"]
    row["sandbox/native"] = med["sandbox"] / med["native"]
    return row


def per_op(rows: list[dict], cmds: dict[str, list[str]]) -> dict[str, float]:
    """Microseconds per syscall and per fault beyond the start-up run."""
    base = rows[0]["runners"]["sandbox"]["median_s"]
    out = {}
    for workload, row in zip(WORKLOADS, rows, strict=True):
        if not workload.per_op:
            continue
        stats = sandbox_counters(cmds["sandbox"], workload.argv)
        count = stats["syscalls_total"] if workload.per_op == "syscalls" else stats["faults_total"]
        extra = row["runners"]["sandbox"]["median_s"] - base
        out[f"us per {workload.per_op[:-1]}"] = extra / count * 1e6
    return out


def table(rows: list[dict], ops: dict[str, float]) -> str:
    head = f"{'workload':<32}{'native':>10}{'qemu':>10}{'sandbox':>10}{'sb/qemu':>9}{'sb/native':>10}{'sb RSS':>9}"
    lines = [head, "-" * len(head)]
    for row in rows:
        r = row["runners"]
        lines.append(f"{row['workload']:<32}" + "".join(f"{r[n]['median_s'] * 1000:>8.1f}ms" for n in r)
                     + f"{row['sandbox/qemu']:>9.1f}{row['sandbox/native']:>10.1f}"
                     + f"{r['sandbox']['peak_rss_kib'] / 1024:>7.0f}MB")
    lines += [f"{name}: {value:.2f}" for name, value in ops.items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", nargs="*", help="workload names containing these words")
    args = parser.parse_args()
    global WORKLOADS
    if args.only:
        WORKLOADS = [WORKLOADS[0]] + [w for w in WORKLOADS[1:] if any(o in w.name for o in args.only)]
    cmds = runners()
    rows = [measure(w, args.repeat, cmds) for w in WORKLOADS]
    ops = per_op(rows, cmds)
    print(table(rows, ops))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / time.strftime("bench-%Y%m%d-%H%M%S.json")
    out.write_text(json.dumps({"rows": rows, "per_op_us": ops, "repeat": args.repeat}, indent=2))
    print(f"results: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

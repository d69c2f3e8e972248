"""The side-by-side benchmark: each workload natively, under qemu-x86_64, under `sandbox run`,
and under Qiling when `make bench-peers` has installed it into .venv-peers.

Runners take turns (native, qemu, sandbox, qiling, native, ...) so drift on a shared machine
hits all alike. Reports median / min / max wall time and peak RSS per runner, the ratios
sandbox/qemu, sandbox/qiling and sandbox/native, and per-operation costs derived from the
sandbox's own counters (--stats-json) and the timings. Writes a table to stdout and JSON to
bench/results/.

    python bench/run.py [--repeat N] [--only WORDS ...]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUESTS = ROOT / "guests" / "build"
RESULTS = ROOT / "bench" / "results"


@dataclass
class Workload:
    name: str
    argv: list[str]
    per_op: str = ""  # which counter divides the time: "syscalls", "reads", "faults", "pages" or "copy-on-write"
    sandbox_options: list[str] = field(default_factory=list)  # extra `sandbox run` options
    plain: bool = False  # `sandbox run PROG` alone, without the options every other row passes


WORK = Path(tempfile.gettempdir()) / "sandbox-bench"
WORKLOADS = [
    Workload("start-up (hello)", ["hello"], plain=True),
    Workload("  the same, with options", ["hello"]),
    Workload("start-up (dynamic hello: ld.so + libc)", ["dyn-hello"]),
    Workload("python3 -c pass (dynamic, 60+ files)", ["/usr/bin/python3", "-c", "pass"]),
    # qemu-user hands execve to the host kernel: its column runs the 100 /bin/true natively
    Workload("sh running 100 dynamic /bin/true (exec)", ["/bin/sh", "-c", "i=0; while [ $i -lt 100 ]; do /bin/true; "
                                                         "i=$((i+1)); done"]),
    Workload("200,000 getppid syscalls", ["getppid", "200000"], per_op="syscalls"),
    Workload("touch 65,536 pages (256 MiB), defaults", ["pagetouch", "65536"], per_op="faults"),
    Workload("  the same, --memory 1G", ["pagetouch", "65536"], sandbox_options=["--memory", "1G"]),
    Workload("  the same, --fault-around 15", ["pagetouch", "65536"], sandbox_options=["--fault-around", "15"]),
    Workload("200,000 1-byte reads of /dev/zero", ["zeroread-glibc", "200000", "1", "0"], per_op="reads"),
    Workload("CPU-bound (sieve + hash)", ["cpu", "4000000", "12"]),
    Workload("64 MiB memcpy x4 + sort 16 MiB", ["memsort-glibc"]),
    Workload("busybox sha256sum, 10 MiB", ["/bin/busybox", "sha256sum", str(WORK / "10mib.bin")]),
    Workload("read a 64 MiB file mapping", ["mapread-musl", str(WORK / "64mib.bin")], per_op="pages"),
    Workload("200 fork+exit+wait, 16 MiB dirty", ["forkbench-musl", "200"], per_op="copy-on-write"),
    Workload("pthreads: 8 x 10,000 mutex increments and more", ["threads-glibc"]),
    Workload("pthreads: 64 x 10,000 mutex increments", ["threads-glibc", "64", "10000"]),
]
PEERS = ROOT / ".venv-peers" / "bin" / "python"
#: The floor under any start-up on this engine: the interpreter with libunicorn loaded (the
#: sandbox's own ctypes binding; Unicorn's Python module would add ~45 ms, bench/RESULTS.md).
FLOOR = "python -c 'import sandbox.engine'"
#: What every row but the plain start-up passes: the input files. No --memory: the default
#: guest RAM (4 GiB, reserved lazily) holds the 256 MiB touch, as native runs and qemu's do.
SANDBOX_OPTIONS = ["--mount", f"{WORK}:{WORK}:ro"]


def runners() -> dict[str, list[str]]:
    """Command prefixes; qemu is required (make bench installs Debian's qemu-user)."""
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        sys.exit("qemu-x86_64 not found: `make bench` installs Debian's qemu-user")
    sandbox = [sys.executable, "-m", "sandbox", "run"]
    runners = {"native": [], "qemu": [qemu], "sandbox": sandbox}
    if PEERS.exists():
        runners["qiling"] = [str(PEERS), str(ROOT / "bench" / "qiling_run.py")]
    return runners


def make_data() -> None:
    """The input files, made once, a MiB at a time: a child's peak RSS (from wait4) counts
    its copy of this process before exec, so this process must stay small."""
    WORK.mkdir(exist_ok=True)
    for name, size in (("10mib.bin", 10 << 20), ("64mib.bin", 64 << 20)):
        path = WORK / name
        if not path.exists() or path.stat().st_size != size:
            rng = random.Random(size)
            with open(path, "wb") as f:
                for _ in range(size >> 20):
                    f.write(rng.randbytes(1 << 20))


def run_once(prefix: list[str], argv: list[str], extra: list[str] | None = None) -> tuple[float, int] | None:
    """Wall seconds and peak RSS (KiB) of one run, from wait4's own accounting; None if it
    failed (a peer may not support a workload: reported, not fatal)."""
    program = argv[0] if argv[0].startswith("/") else str(GUESTS / argv[0])
    cmd = [*prefix, *(extra or []), program, *argv[1:]]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        print(f"  ({' '.join(cmd[-3:])} failed: {proc.stderr.read().decode()[-200:].strip()})", file=sys.stderr)
        return None
    return elapsed, usage.ru_maxrss


def options_for(workload: Workload) -> list[str]:
    """The `sandbox run` options of one workload's rows."""
    return [] if workload.plain else [*SANDBOX_OPTIONS, *workload.sandbox_options]


def sandbox_counters(prefix: list[str], workload: Workload) -> dict:
    """The sandbox's statistics for one run of the workload."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        run_once(prefix, workload.argv, [*options_for(workload), "--stats-json", out.name])
        return json.loads(Path(out.name).read_text())


def measure(workload: Workload, repeat: int, cmds: dict[str, list[str]]) -> dict:
    if workload is WORKLOADS[0]:  # start-up: also time its floor, in the same turns
        cmds = {**cmds, FLOOR: [sys.executable, "-c", "import sandbox.engine"]}
    samples: dict[str, list[tuple[float, int]]] = {name: [] for name in cmds}
    for _ in range(repeat):
        for name, prefix in cmds.items():
            extra = options_for(workload) if name == "sandbox" else []
            sample = run_once(prefix, workload.argv, extra)
            if sample is not None:
                samples[name].append(sample)
    row = {"workload": workload.name, "argv": workload.argv, "runners": {}}
    for name, values in samples.items():
        if not values:
            row["runners"][name] = None
            continue
        times = [t for t, _ in values]
        row["runners"][name] = {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
                                "peak_rss_kib": max(r for _, r in values)}
    med = {name: r["median_s"] for name, r in row["runners"].items() if r}
    for peer in ("qemu", "qiling", "native"):
        if "sandbox" in med and peer in med:
            row[f"sandbox/{peer}"] = med["sandbox"] / med[peer]
    if FLOOR in med and "qiling" in med:
        row["floor/qiling"] = med[FLOOR] / med["qiling"]
    return row


def per_op(rows: list[dict], cmds: dict[str, list[str]]) -> dict[str, float]:
    """Microseconds per syscall and per fault beyond the start-up run with the same options."""
    base = rows[1]["runners"]["sandbox"]["median_s"]
    out = {}
    for workload, row in zip(WORKLOADS, rows, strict=True):
        if not workload.per_op or not row["runners"].get("sandbox"):
            continue
        stats = sandbox_counters(cmds["sandbox"], workload)
        count = {"syscalls": stats["syscalls_total"], "reads": stats["syscalls_total"], "faults": stats["faults_total"],
                 "pages": stats["faults_total"] + stats["faults"].get("mapped-around", 0),
                 "copy-on-write": stats["faults"].get("copy-on-write", 0)}[workload.per_op]
        extra = row["runners"]["sandbox"]["median_s"] - base
        label = {"syscalls": "us per syscall", "reads": "us per 1-byte read (a system call Python answers)",
                 "faults": f"us per fault ({workload.name})",
                 "pages": f"us per page mapped ({workload.name}; faults and fault-around)",
                 "copy-on-write": "us per copy-on-write fault (fork work included)"}[workload.per_op]
        out[label] = extra / max(count, 1) * 1e6
    return out


def table(rows: list[dict], ops: dict[str, float], names: list[str]) -> str:
    ratios = [f"sb/{peer}" for peer in ("qemu", "qiling", "native") if peer in names]
    head = f"{'workload (median)':<34}" + "".join(f"{n:>11}" for n in names) + "".join(f"{r:>10}" for r in ratios) \
        + f"{'sb RSS':>9}{'RSS/qemu':>10}"
    lines = [head, "-" * len(head)]
    for row in rows:
        r = row["runners"]
        cells = "".join(f"{r[n]['median_s'] * 1000:>9.1f}ms" if r.get(n) else f"{'failed':>11}" for n in names)
        cells += "".join(f"{row.get('sandbox/' + x.split('/')[1], float('nan')):>10.2f}" for x in ratios)
        rss = r["sandbox"]["peak_rss_kib"] / 1024 if r.get("sandbox") else float("nan")
        rss_ratio = rss * 1024 / r["qemu"]["peak_rss_kib"] if r.get("qemu") else float("nan")
        lines.append(f"{row['workload']:<34}{cells}{rss:>7.0f}MB{rss_ratio:>10.2f}")
    floor = rows[0]["runners"].get(FLOOR)
    if floor:
        share = f" = {rows[0]['floor/qiling']:.2f} x qiling" if "floor/qiling" in rows[0] else ""
        lines.append(f"start-up floor, {FLOOR}: {floor['median_s'] * 1000:.1f}ms{share}")
    lines += [f"{name}: {value:.2f}" for name, value in ops.items()]
    return "\n".join(lines)


def engine_in_use() -> str:
    """Which libunicorn the sandbox runs on (`sandbox --version`: the project's build or the
    PyPI wheel's; $SANDBOX_ENGINE=wheel measures the wheel)."""
    done = subprocess.run([sys.executable, "-m", "sandbox", "--version"], capture_output=True, text=True)
    said = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    return f"{said.get('engine', 'unknown')}; fast path {said.get('fast path', 'unknown')}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="workload names containing these words")
    args = parser.parse_args()
    global WORKLOADS
    if args.only:
        WORKLOADS = WORKLOADS[:2] + [w for w in WORKLOADS[2:] if any(o in w.name for o in args.only)]
    cmds = runners()
    make_data()
    rows = [measure(w, args.repeat, cmds) for w in WORKLOADS]
    ops = per_op(rows, cmds)
    engine = engine_in_use()
    print(table(rows, ops, list(cmds)))
    print(f"engine: {engine}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / time.strftime("bench-%Y%m%d-%H%M%S.json")
    out.write_text(json.dumps({"rows": rows, "per_op_us": ops, "repeat": args.repeat, "engine": engine}, indent=2))
    print(f"results: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

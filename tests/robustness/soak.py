"""The soak test (`make soak`): random guests and system calls for a while, in one sandbox
per kind, reporting runs, faults, system calls, host exceptions and leaks.

    python tests/robustness/soak.py [--seconds 600] [--seed N]

Exits non-zero on any host exception, invariant failure or leaked frame.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ["SANDBOX_CHECK_INVARIANTS"] = "1"

from sandbox.api import Sandbox  # noqa: E402
from sandbox.errors import SandboxError  # noqa: E402
from sandbox.kernel.syscalls import TABLE  # noqa: E402
from tests.robustness import corpus  # noqa: E402

GUESTS = ROOT / "guests" / "build"


def one_run(sb: Sandbox, path: Path, argv: list[str], tally: Counter) -> None:
    faults_before = sum(sb.kernel.fault_counts.values())
    syscalls_before = sum(sb.kernel.syscall_counts.values())
    try:
        result = sb.run(str(path), argv)
    except SandboxError:
        tally["refused"] += 1
        return
    tally["runs"] += 1
    tally["faults"] += result.stats["faults_total"] - faults_before  # the kernel's counts are cumulative
    tally["syscalls"] += result.stats["syscalls_total"] - syscalls_before
    tally["limit" if sb.kernel.limit_hit else "signal" if result.signal else "exit"] += 1
    sb.release()
    if sb.machine.frames.used != sb.baseline_frames:
        tally["leaks"] += 1


def soak(seconds: float, seed: int) -> Counter:
    rng = random.Random(seed)
    tally: Counter = Counter()
    sources = [(GUESTS / name).read_bytes() for name in ("hello", "args-pie", "basics-musl", "sysinfo")]
    numbers = ",".join(str(nr) for nr in sorted(TABLE))
    deadline = time.monotonic() + seconds
    stdin = os.open(os.devnull, os.O_RDONLY)
    os.dup2(stdin, 0)  # a guest reading stdin gets end-of-file, as the test suite's do
    with tempfile.TemporaryDirectory() as tmp, \
            Sandbox(memory=64 << 20, max_instructions=2_000_000, timeout=20, root=tmp, max_processes=8) as sb:
        path = Path(tmp) / "input.elf"
        while time.monotonic() < deadline:
            kind = rng.choice(["malformed", "random code", "syscalls"])
            tally[f"inputs: {kind}"] += 1
            try:
                if kind == "malformed":
                    data = rng.choice(sources)
                    _, mutated = next(corpus.bit_flips(data, rng, 1)) if rng.random() < 0.7 else \
                        next(corpus.truncations(data, rng, 1))
                    path.write_bytes(mutated)
                    one_run(sb, path, [str(path)], tally)
                elif kind == "random code":
                    corpus.random_code_elf(path, rng.randbytes(4096))
                    one_run(sb, path, [str(path)], tally)
                else:
                    fuzz = GUESTS / "fuzzsys"
                    one_run(sb, fuzz, [str(fuzz), str(rng.randrange(1 << 30)), "2000", numbers], tally)
            except Exception:  # noqa: BLE001 - counting host exceptions is the point
                tally["host exceptions"] += 1
                traceback.print_exc()
                sb.release()
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    tally = soak(args.seconds, args.seed)
    print(f"soak: seed {args.seed}, {args.seconds:g} s")
    for key in sorted(tally):
        print(f"  {key:<28} {tally[key]}")
    print(f"  host exceptions              {tally['host exceptions']}\n  leaks                        {tally['leaks']}")
    sys.exit(1 if tally["host exceptions"] or tally["leaks"] else 0)


if __name__ == "__main__":
    main()

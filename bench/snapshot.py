"""What a snapshot costs (sandbox/snapshot.py): the time to take one, and per restore the time
and the frames the restore gave back (those the guest copied by writing since), for a guest
that writes K pages of a 2 MiB buffer after the snapshot, K = 0, 8, 64, 512. Prints a table;
writes JSON to bench/results/snapshot.json.

    python bench/snapshot.py [--restores N]
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.api import Sandbox  # noqa: E402 - after the path above
from sandbox.mm.translate import elf_symbol  # noqa: E402

RESULTS = ROOT / "bench" / "results"
WRITES = (0, 8, 64, 512)
GUEST = r"""
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
__attribute__((noinline)) void checkpoint(void) { __asm__ volatile("" ::: "memory"); }
int main(int argc, char **argv) {
    char *data = mmap(0, 512 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(data, 1, 512 * 4096);
    int pages = atoi(argv[1]);
    checkpoint();
    for (int i = 0; i < pages; i++) data[i * 4096] = 2;
    return 0;
}
"""


def build(where: Path) -> str:
    gcc = shutil.which("gcc")
    if gcc is None:
        raise SystemExit("bench/snapshot.py needs gcc")
    source, program = where / "snapguest.c", where / "snapguest"
    source.write_text(GUEST)
    subprocess.run([gcc, "-static", "-O2", "-w", "-o", str(program), str(source)], check=True)
    return str(program)


def measure(program: str, pages: int, restores: int) -> dict:
    """Snapshot at checkpoint(); then `restores` times: run on to the end, restore (timed)."""
    address = elf_symbol(program, "checkpoint")
    folder = str(Path(program).parent)
    with Sandbox(memory=64 << 20, mounts=[f"{folder}:{folder}:ro"]) as sb:
        snaps, took = [], []

        def at_checkpoint(_a: int, _s: int) -> None:
            if not snaps:
                started = time.perf_counter()
                snaps.append(sb.snapshot())
                took.append(time.perf_counter() - started)

        handle = sb.hook_code(address, address + 1, at_checkpoint)
        sb.run(program, [program, str(pages)])
        sb.unhook_code(handle)
        snap = snaps[0]
        times, given_back = [], []
        sb.restore(snap)
        at_snapshot = sb.machine.frames.used
        for _ in range(restores):
            sb.resume()
            before = sb.machine.frames.used
            started = time.perf_counter()
            sb.restore(snap)
            times.append(time.perf_counter() - started)
            given_back.append(before - sb.machine.frames.used)
            assert sb.machine.frames.used == at_snapshot
        figures = {"pages_written": pages, "snapshot_ms": took[0] * 1e3, "snapshot_frames": snap.frames,
                   "restore_us": statistics.median(times) * 1e6, "frames_given_back": statistics.median(given_back)}
        snap.release()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--restores", type=int, default=200)
    args = parser.parse_args()
    os.environ.pop("SANDBOX_CHECK_INVARIANTS", None)
    with tempfile.TemporaryDirectory() as scratch:
        program = build(Path(scratch))
        rows = [measure(program, pages, args.restores) for pages in WRITES]
    print(f"{'pages written':>14} {'snapshot ms':>12} {'frames held':>12} {'restore us':>11} {'frames back':>12}")
    for row in rows:
        print(f"{row['pages_written']:>14} {row['snapshot_ms']:>12.2f} {row['snapshot_frames']:>12} "
              f"{row['restore_us']:>11.0f} {row['frames_given_back']:>12.0f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "snapshot.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

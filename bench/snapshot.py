"""What a snapshot costs (sandbox/snapshot.py): the time to take one, and per restore the time
and the frames the restore gave back (those the guest copied by writing since), for a guest
that writes K pages of a 2 MiB buffer after the snapshot, K = 0, 8, 64, 512; and the file
journal's cost (sandbox/kernel/fsjournal.py): per restore the time to put back F files of
16 KiB the guest rewrote after the snapshot (F = 0, 8, 64), and the bytes of copies held.
Prints two tables; writes JSON to bench/results/snapshot.json.

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
FILES = (0, 8, 64)
FILE_SIZE = 16 << 10
GUEST = r"""
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
__attribute__((noinline)) void checkpoint(void) { __asm__ volatile("" ::: "memory"); }
int main(int argc, char **argv) {
    char *data = mmap(0, 512 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(data, 1, 512 * 4096);
    int pages = atoi(argv[1]), files = argc > 2 ? atoi(argv[2]) : 0;
    checkpoint();
    for (int i = 0; i < pages; i++) data[i * 4096] = 2;
    for (int i = 0; i < files; i++) {  /* rewrite /tmp/fI (made before the run) */
        char name[32]; snprintf(name, sizeof name, "/tmp/f%d", i);
        int fd = open(name, O_WRONLY | O_TRUNC); write(fd, data, 16384); close(fd);
    }
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


def measure_files(program: str, files: int, restores: int) -> dict:
    """Snapshot at checkpoint(); then `restores` times: run on (the guest rewrites `files`
    files of the sandbox's /tmp), restore (timed)."""
    address = elf_symbol(program, "checkpoint")
    folder = str(Path(program).parent)
    with Sandbox(memory=64 << 20, mounts=[f"{folder}:{folder}:ro"]) as sb:
        for i in range(max(FILES)):
            Path(sb.kernel.private_root, "tmp", f"f{i}").write_bytes(b"\0" * FILE_SIZE)
        snaps: list = []
        handle = sb.hook_code(address, address + 1, lambda _a, _s: snaps or snaps.append(sb.snapshot()))
        sb.run(program, [program, "0", str(files)])
        sb.unhook_code(handle)
        snap, times = snaps[0], []
        sb.restore(snap)
        for _ in range(restores):
            sb.resume()
            started = time.perf_counter()
            sb.restore(snap)
            times.append(time.perf_counter() - started)
        figures = {"files_written": files, "restore_us": statistics.median(times) * 1e6,
                   "journal_bytes": snap.journal.charged}
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
        file_rows = [measure_files(program, files, args.restores) for files in FILES]
    print(f"{'pages written':>14} {'snapshot ms':>12} {'frames held':>12} {'restore us':>11} {'frames back':>12}")
    for row in rows:
        print(f"{row['pages_written']:>14} {row['snapshot_ms']:>12.2f} {row['snapshot_frames']:>12} "
              f"{row['restore_us']:>11.0f} {row['frames_given_back']:>12.0f}")
    print(f"\n{'files written':>14} {'restore us':>11} {'journal bytes':>14}")
    for row in file_rows:
        print(f"{row['files_written']:>14} {row['restore_us']:>11.0f} {row['journal_bytes']:>14}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "snapshot.json").write_text(json.dumps({"memory": rows, "files": file_rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

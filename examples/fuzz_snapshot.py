"""Fuzz a guest function from a snapshot: the harness fuzzers run on emulators use.

    python examples/fuzz_snapshot.py [--seconds 10] [--runs N] [--seed 1] [PROGRAM]

PROGRAM (default: examples/fuzz_parser.c, compiled here with gcc) has a function
`parse(buf, len)` and a global `input` buffer. The machine runs to parse's entry once and is
snapshotted there; then for each input: restore the snapshot, write the input into `input`
and its length into rsi (parse's second argument), run until parse returns (a code hook at
the return address stops the run) or the guest dies of a signal (a crash, kept). Only what
parse wrote since the snapshot is undone at each restore: the frames it copied.

Driven by atheris (libFuzzer's coverage-guided loop) if it is importable, else by a plain
mutation loop (random byte flips, insertions and splices from a corpus). Prints executions per
second and the crashes found, one line each, as JSON at the end with --json.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sandbox.api import Sandbox
from sandbox.mm.translate import elf_symbol

HERE = Path(__file__).resolve().parent
SEEDS = [b"REC\x01\x01\x03abc", b"REC\x02\x02\x01a\x02bc", b"REC\x03\x01\x04abcd"]
MAX_INPUT = 4096


class Returned(Exception):
    """Raised from the hook at parse's return address: this input is done."""


class Harness:
    """One sandbox, one snapshot at parse's entry, one input per `execute`."""

    def __init__(self, program: str) -> None:
        self.program = program
        self.sandbox = Sandbox(memory=64 << 20, mounts=[f"{Path(program).parent}:{Path(program).parent}:ro"])
        self.input_va = elf_symbol(program, "input")
        entry = elf_symbol(program, "parse")
        self.snap = None
        self.returned_with: int | None = None
        self.sandbox.hook_code(entry, entry + 1, self._at_entry)
        try:
            self.sandbox.run(program, [program], capture=True)  # snapshots, then stops at parse's return
        except Returned:
            pass
        if self.snap is None:
            raise SystemExit(f"{program} never called parse()")

    def _at_entry(self, _address: int, _size: int) -> None:
        if self.snap is not None:
            return
        self.snap = self.sandbox.snapshot()
        task = self.sandbox.kernel.current
        back = int.from_bytes(self.sandbox.read_memory(task.regs.rsp, 8), "little")  # the return address
        self.sandbox.hook_code(back, back + 1, self._at_return)

    def _at_return(self, _address: int, _size: int) -> None:
        self.returned_with = self.sandbox.kernel.current.regs.rax
        raise Returned

    def execute(self, data: bytes) -> str | None:
        """Run parse on `data`; None if it returned, else how the guest died."""
        data = data[:MAX_INPUT]
        sb = self.sandbox
        sb.restore(self.snap)
        sb.write_memory(self.input_va, data)
        sb.kernel.init.tasks[0].regs.rsi = len(data)
        try:
            result = sb.resume()
        except Returned:
            return None
        return result.message or f"exit status {result.status}"

    def close(self) -> None:
        self.snap.release()
        self.sandbox.close()


def mutate(rng: random.Random, corpus: list[bytes]) -> bytes:
    """One random change to a corpus entry: flip, set, insert, delete or splice."""
    data = bytearray(rng.choice(corpus))
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(5)
        at = rng.randrange(len(data) + 1)
        if choice == 0 and data:
            data[at % len(data)] ^= 1 << rng.randrange(8)
        elif choice == 1 and data:
            data[at % len(data)] = rng.choice((0, 1, 2, 3, 0x7F, 0xC8, 0xFF, rng.randrange(256)))
        elif choice == 2:
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif choice == 3 and data:
            del data[at:at + rng.randint(1, 4)]
        else:
            other = rng.choice(corpus)
            data[at:] = other[rng.randrange(len(other) + 1):]
    return bytes(data[:MAX_INPUT])


def plain_loop(harness: Harness, seconds: float, runs: int | None, seed: int) -> tuple[int, dict[str, bytes]]:
    """The mutation loop: (executions, {crash message: first input}) within the budget."""
    rng, corpus, crashes, executions = random.Random(seed), list(SEEDS), {}, 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and (runs is None or executions < runs):
        data = mutate(rng, corpus)
        crash = harness.execute(data)
        executions += 1
        if crash is not None:
            key = crash.split(";")[0]
            if key not in crashes:
                crashes[key] = data
        elif len(corpus) < 256 and harness.returned_with not in (0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_FFFF_FFFE):
            corpus.append(data)  # it parsed past the header: a seed worth mutating further
    return executions, crashes


def atheris_loop(atheris, harness: Harness, runs: int | None) -> tuple[int, dict[str, bytes]]:  # noqa: ANN001
    """libFuzzer's loop through atheris (it stops at the first crash, as libFuzzer does)."""
    crashes: dict[str, bytes] = {}
    count = [0]

    def one_input(data: bytes) -> None:
        count[0] += 1
        crash = harness.execute(data)
        if crash is not None:
            crashes.setdefault(crash.split(";")[0], data)
            raise RuntimeError(f"guest crashed: {crash}")

    atheris.Setup([sys.argv[0], f"-runs={runs or 100000}"], one_input)
    try:
        atheris.Fuzz()
    except RuntimeError:
        pass
    return count[0], crashes


def build_target(out: Path) -> str:
    gcc = shutil.which("gcc")
    if gcc is None:
        raise SystemExit("gcc is needed to build examples/fuzz_parser.c")
    target = out / "fuzz_parser"
    subprocess.run([gcc, "-static", "-O2", "-w", "-o", str(target), str(HERE / "fuzz_parser.c")], check=True)
    return str(target)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("program", nargs="?")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--plain", action="store_true", help="the plain loop even if atheris is importable")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        harness = Harness(args.program or build_target(Path(scratch)))
        try:
            atheris = None if args.plain else __import__("atheris")
        except ImportError:
            atheris = None
        started = time.perf_counter()
        try:
            if atheris is not None:
                executions, crashes = atheris_loop(atheris, harness, args.runs)
            else:
                executions, crashes = plain_loop(harness, args.seconds, args.runs, args.seed)
        finally:
            harness.close()
        elapsed = time.perf_counter() - started
    rate = executions / elapsed if elapsed else 0.0
    if args.json:
        print(json.dumps({"executions": executions, "per_second": rate, "driver": "atheris" if atheris else "plain",
                          "crashes": {k: v.hex() for k, v in crashes.items()}}))
    else:
        print(f"{executions} executions in {elapsed:.1f} s: {rate:.0f} per second "
              f"({'atheris' if atheris else 'plain mutation loop'}); {len(crashes)} distinct crashes")
        for message, data in crashes.items():
            print(f"  {data!r}: {message}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

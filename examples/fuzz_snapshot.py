"""Fuzz a guest function from a snapshot, guided by the guest's own coverage.

    python examples/fuzz_snapshot.py [--target parser|magic] [--seconds 10] [--runs N]
                                     [--seed 1] [--plain] [--blind] [--json] [PROGRAM]

PROGRAM (default: the target's source, examples/fuzz_parser.c or fuzz_magic.c, compiled here
with gcc) has a function `parse(buf, len)` and a global `input` buffer. The machine runs to
parse's entry once and is snapshotted there; then for each input: restore the snapshot, write
the input into `input` and its length into rsi (parse's second argument), run until parse
returns (a code hook at the return address stops the run) or the guest dies of a signal (a
crash, kept). Only what parse wrote since the snapshot is undone at each restore.

Coverage: a block hook on parse's code (Unicorn's UC_HOOK_BLOCK over the symbol's range,
through the machine's engine) records the edges each run takes, AFL style: each block's
address hashed, an edge the previous block's hash shifted right once XOR this one's, in a
fixed map of MAP_SIZE slots, with its hit count in AFL's buckets (1, 2, 3, 4-7, 8-15, ...).

Driven by atheris if it is importable (and not --plain): libFuzzer's loop, fed the guest's
edges as its own coverage -- MAP_SIZE of libFuzzer's 8-bit counters are reserved
(atheris._reserve_counter) and each edge a run took bumps its counter (atheris._trace_branch,
what atheris's instrumented Python calls per branch), so an input that takes a new edge in
the guest is a new feature to libFuzzer and joins its corpus. Else by a plain loop: random
byte changes, insertions and splices from a corpus, interleaved with sweeps (every value of
each of the next few bytes after where a new input differs from its parent: how a byte-wise
magic check is climbed); an input whose run took an edge (or hit-count bucket) not seen
before joins the corpus. `--blind` turns that feedback off (the corpus stays the seeds), to
compare. Prints executions per second and the crashes found, one line each, or JSON with
--json (the executions it took to find the first crash too).
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from sandbox import engine
from sandbox.api import Sandbox
from sandbox.mm.translate import elf_symbol

HERE = Path(__file__).resolve().parent
SEEDS = [b"REC\x01\x01\x03abc", b"REC\x02\x02\x01a\x02bc", b"REC\x03\x01\x04abcd"]
#: The built-in targets: their source next to this file, and the seeds to start from.
TARGETS = {"parser": ("fuzz_parser.c", SEEDS), "magic": ("fuzz_magic.c", [b"AAAA"])}
MAX_INPUT = 4096
MAP_SIZE = 1 << 16  # the edge map's slots (AFL's MAP_SIZE)
SWEEP_WIDTH = 4  # bytes a sweep tries every value of, after where a new input changed
#: The block hook's C signature (uc_cb_hookcode_t): engine, address, size, user data.
BLOCK_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_void_p)


class Coverage:
    """The edges the guest takes in [start, end), per run: a Unicorn block hook over that
    range only (code elsewhere runs as before), AFL's edge hashing and hit-count buckets.
    Only the basic blocks of the code (`starts`) count, and a block reported twice in a row
    once: the CPU may stop inside a block or before it (the sandbox's scheduler takes it
    back now and then, at times the host's clock decides) and go on there, a block of its
    own to Unicorn, or the same one again, but no edge of the program's."""

    def __init__(self, sandbox: Sandbox, start: int, end: int, starts: frozenset[int]) -> None:
        self.hits: collections.Counter[int] = collections.Counter()
        self.previous = 0
        self.last = -1
        self.starts = starts
        self._callback = BLOCK_CALLBACK(self._on_block)  # kept alive as long as the hook
        machine = sandbox.machine
        machine.use_block_stopper()  # the watchdog's stops land before this hook, never after it
        handle = ctypes.c_size_t()
        engine.check(engine.lib.uc_hook_add(machine.uc.handle, ctypes.byref(handle), engine.UC_HOOK_BLOCK,
                                            self._callback, None, start, end - 1))
        machine.tb_flush_pending = True  # blocks translated before have no call to the hook

    def _on_block(self, _uc: object, address: int, _size: int, _data: object) -> None:
        if address not in self.starts or address == self.last:
            return
        self.last = address
        here = ((address >> 4) ^ (address << 8)) & (MAP_SIZE - 1)
        self.hits[here ^ self.previous] += 1
        self.previous = here >> 1

    def take(self) -> frozenset[tuple[int, int]]:
        """The (edge, hit-count bucket) pairs of the run since the last take; reset."""
        taken = frozenset((edge, bucket(n)) for edge, n in self.hits.items())
        self.hits.clear()
        self.previous, self.last = 0, -1
        return taken


def bucket(hits: int) -> int:
    """AFL's hit-count classes: 1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128+."""
    return hits if hits <= 3 else min(7, 4 + (hits >= 8) + (hits >= 16) + (hits >= 32) + (hits >= 128))


def block_starts(program: str, start: int, end: int) -> frozenset[int]:
    """The basic blocks of [start, end) of `program`'s code: its first instruction, every
    jump's target and every instruction after a jump, call or return (capstone)."""
    from capstone import CS_ARCH_X86, CS_GRP_CALL, CS_GRP_JUMP, CS_GRP_RET, CS_MODE_64, Cs
    from elftools.elf.elffile import ELFFile

    with open(program, "rb") as f:
        elf = ELFFile(f)
        segment = next(s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"
                       and s["p_vaddr"] <= start < s["p_vaddr"] + s["p_filesz"])
        code = segment.data()[start - segment["p_vaddr"]:end - segment["p_vaddr"]]
    decoder = Cs(CS_ARCH_X86, CS_MODE_64)
    decoder.detail = True
    starts = {start}
    for insn in decoder.disasm(code, start):
        if any(insn.group(g) for g in (CS_GRP_JUMP, CS_GRP_CALL, CS_GRP_RET)):
            starts.add(insn.address + insn.size)
            if insn.group(CS_GRP_JUMP) and insn.op_str.startswith("0x"):
                starts.add(int(insn.op_str, 16))
    return frozenset(a for a in starts if start <= a < end)


def symbol_range(program: str, name: str) -> tuple[int, int]:
    """[start, end) of the function `name` in `program` (its .symtab size)."""
    from elftools.elf.elffile import ELFFile

    with open(program, "rb") as f:
        found = ELFFile(f).get_section_by_name(".symtab").get_symbol_by_name(name)
    if not found:
        raise SystemExit(f"{program} has no symbol {name}")
    return found[0]["st_value"], found[0]["st_value"] + max(1, found[0]["st_size"])


class Returned(Exception):
    """Raised from the hook at parse's return address: this input is done."""


class Harness:
    """One sandbox, one snapshot at parse's entry, one input per `execute`."""

    def __init__(self, program: str) -> None:
        self.program = program
        self.sandbox = Sandbox(memory=64 << 20, mounts=[f"{Path(program).parent}:{Path(program).parent}:ro"])
        self.input_va = elf_symbol(program, "input")
        entry, end = symbol_range(program, "parse")
        self.snap = None
        self.returned_with: int | None = None
        self.sandbox.hook_code(entry, entry + 1, self._at_entry)
        try:
            self.sandbox.run(program, [program], capture=True)  # snapshots, then stops at parse's return
        except Returned:
            pass
        if self.snap is None:
            raise SystemExit(f"{program} never called parse()")
        # (the first run's edges are not an input's: the hook comes after it)
        self.coverage = Coverage(self.sandbox, entry, end, block_starts(program, entry, end))

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


def first_difference(data: bytes, parent: bytes) -> int:
    """Where `data` first differs from `parent` (the shorter one's length if nowhere)."""
    return next((i for i, (a, b) in enumerate(zip(data, parent, strict=False)) if a != b), min(len(data), len(parent)))


def mutate(rng: random.Random, corpus: list[bytes]) -> tuple[bytes, bytes]:
    """One random change to a corpus entry (the newest one half the time: what was found
    last is where the next step is): flip, set, insert, delete or splice. (input, parent)"""
    parent = corpus[-1] if rng.random() < 0.5 else rng.choice(corpus)
    data = bytearray(parent)
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
    return bytes(data[:MAX_INPUT]), parent


def sweep(data: bytes, start: int) -> Iterator[tuple[bytes, int]]:
    """Every other value of each of the SWEEP_WIDTH bytes from `start`: (input, the byte)."""
    for at in range(start, min(start + SWEEP_WIDTH, len(data))):
        for value in range(256):
            if value != data[at]:
                yield data[:at] + bytes((value,)) + data[at + 1:], at


class Found:
    """What a loop found: executions, {crash message: first input}, the executions to the
    first crash (None: none), the corpus size."""

    def __init__(self) -> None:
        self.executions = 0
        self.crashes: dict[str, bytes] = {}
        self.first_crash: int | None = None
        self.corpus = 0

    def crashed(self, message: str, data: bytes) -> None:
        self.crashes.setdefault(message.split(";")[0], data)
        if self.first_crash is None:
            self.first_crash = self.executions


def plain_loop(harness: Harness, seconds: float, runs: int | None, seed: int, seeds: list[bytes],
               feedback: bool = True) -> Found:
    """The mutation loop within the budget: sweeps (of the seeds, then of each input that
    took a new edge, from the byte after the first it changed, newest first) interleaved
    with random changes; with `feedback`, an input that took a new edge joins the corpus
    (else it never grows)."""
    rng, corpus, seen, found = random.Random(seed), list(seeds), set(), Found()
    sweeps: collections.deque[Iterator[tuple[bytes, int]]] = collections.deque(sweep(s, 0) for s in seeds)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and (runs is None or found.executions < runs):
        data, changed = None, None
        if sweeps and found.executions % 2:  # every other input from the sweep at the front
            data, changed = next(sweeps[0], (None, None))
            if data is None:
                sweeps.popleft()
        if data is None:
            data, parent = mutate(rng, corpus)
            changed = first_difference(data, parent)
        crash = harness.execute(data)
        found.executions += 1
        edges = harness.coverage.take()
        if crash is not None:
            found.crashed(crash, data)
        elif feedback and not edges <= seen and len(corpus) < 256:
            seen |= edges
            corpus.append(data)
            sweeps.appendleft(sweep(data, changed + 1))  # the bytes after the change next
    found.corpus = len(corpus)
    return found


def atheris_loop(atheris, harness: Harness, runs: int | None, seconds: float, report) -> Found:  # noqa: ANN001
    """libFuzzer's loop through atheris, fed the guest's edges as 8-bit counters (see the
    module docstring). libFuzzer stops at the first crash, and ends the process when done
    (`report(found)` is called first: at the crash, or in the last run)."""
    counters = [atheris._reserve_counter() for _ in range(MAP_SIZE)]
    found = Found()
    limit = runs or 100_000

    def one_input(data: bytes) -> None:
        found.executions += 1
        crash = harness.execute(data)
        for edge, classes in harness.coverage.take():
            for _ in range(classes):  # the count's class, as libFuzzer buckets its counters itself
                atheris._trace_branch(counters[edge])
        if crash is not None:
            found.crashed(crash, data)
            report(found)
            raise RuntimeError(f"guest crashed: {crash}")
        if found.executions >= limit:
            report(found)

    atheris.Setup([sys.argv[0], f"-runs={limit}", f"-max_total_time={max(1, int(seconds))}",
                   f"-max_len={MAX_INPUT}"], one_input)
    try:
        atheris.Fuzz()
    except RuntimeError:
        pass
    return found


def build_target(out: Path, source: str) -> str:
    gcc = shutil.which("gcc")
    if gcc is None:
        raise SystemExit(f"gcc is needed to build examples/{source}")
    target = out / Path(source).stem
    subprocess.run([gcc, "-static", "-O2", "-w", "-o", str(target), str(HERE / source)], check=True)
    return str(target)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("program", nargs="?")
    parser.add_argument("--target", choices=sorted(TARGETS), default="parser", help="the built-in target to build")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--plain", action="store_true", help="the plain loop even if atheris is importable")
    parser.add_argument("--blind", action="store_true", help="the plain loop without coverage feedback")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args()
    source, seeds = TARGETS[args.target]
    try:
        atheris = None if args.plain or args.blind else __import__("atheris")
    except ImportError:
        atheris = None
    driver = "atheris" if atheris else "blind" if args.blind else "plain"
    started = time.perf_counter()

    def report(found: Found) -> None:
        elapsed = time.perf_counter() - started
        rate = found.executions / elapsed if elapsed else 0.0
        if args.json:
            print(json.dumps({"executions": found.executions, "per_second": rate, "driver": driver,
                              "first_crash": found.first_crash, "corpus": found.corpus,
                              "crashes": {k: v.hex() for k, v in found.crashes.items()}}), flush=True)
            return
        print(f"{found.executions} executions in {elapsed:.1f} s: {rate:.0f} per second ({driver}); "
              f"{len(found.crashes)} distinct crashes", flush=True)
        for message, data in found.crashes.items():
            print(f"  {data!r}: {message}", flush=True)

    with tempfile.TemporaryDirectory() as scratch:
        harness = Harness(args.program or build_target(Path(scratch), source))
        started = time.perf_counter()
        try:
            if atheris is not None:
                atheris_loop(atheris, harness, args.runs, args.seconds, report)
            else:
                report(plain_loop(harness, args.seconds, args.runs, args.seed, seeds, feedback=not args.blind))
        finally:
            harness.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

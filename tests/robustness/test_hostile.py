"""Hostile input: malformed ELF files and random machine code, each refused with a clear
message or run to a clean end (exit, signal or limit) -- never a host exception or a hang.

The outcome counts are deterministic (fixed seeds, instruction limits rather than clocks)
and must equal tests/robustness/figures.json, from which the README's robustness section is
generated; SANDBOX_UPDATE_FIGURES=1 rewrites the figures.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from pathlib import Path

from sandbox.api import Sandbox
from sandbox.errors import SandboxError
from tests.conftest import guest
from tests.robustness import corpus

FIGURES = Path(__file__).parent / "figures.json"
SEED = 20261121


def outcome(sb: Sandbox, path: Path) -> str:
    """'refused', 'exit', 'signal' or 'limit'; anything else raises (and fails the test)."""
    try:
        result = sb.run(str(path), [str(path)])
    except SandboxError as error:
        assert "\n" not in str(error) and str(error), "a refusal is one line"
        return "refused"
    sb.release()
    if sb.kernel.limit_hit:
        return "limit"
    return "signal" if result.signal else "exit"


def malformed_elf_outcomes(tmp: Path) -> dict[str, Counter]:
    rng = random.Random(SEED)
    results: dict[str, Counter] = {"header fields": Counter(), "truncations": Counter(), "bit flips": Counter()}
    sources = [Path(guest(name)).read_bytes() for name in ("hello", "args-pie", "basics-musl")]
    with Sandbox(memory=32 << 20, max_instructions=200_000) as sb:
        for data in sources:
            cases = {"header fields": corpus.header_mutations(data),
                     "truncations": corpus.truncations(data, rng, 20),
                     "bit flips": corpus.bit_flips(data, rng, 60)}
            for category, inputs in cases.items():
                for _, mutated in inputs:
                    path = tmp / "input.elf"
                    path.write_bytes(mutated)
                    results[category][outcome(sb, path)] += 1
        assert sb.machine.frames.used == sb.baseline_frames
    return results


def random_code_outcomes(tmp: Path, count: int = 2000) -> Counter:
    rng = random.Random(SEED + 1)
    results: Counter = Counter()
    with Sandbox(memory=32 << 20, max_instructions=20_000) as sb:
        for _ in range(count):
            path = tmp / "random.elf"
            corpus.random_code_elf(path, rng.randbytes(4096))
            results[outcome(sb, path)] += 1
        assert sb.machine.frames.used == sb.baseline_frames
    return results


def check_figures(name: str, figures: dict) -> None:
    recorded = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    if os.environ.get("SANDBOX_UPDATE_FIGURES") == "1":
        recorded[name] = figures
        FIGURES.write_text(json.dumps(recorded, indent=2, sort_keys=True) + "\n")
    assert recorded.get(name) == figures, f"{name}: figures changed; SANDBOX_UPDATE_FIGURES=1 to record"


def test_malformed_elf_files(tmp_path: Path) -> None:
    results = malformed_elf_outcomes(tmp_path)
    figures = {category: dict(sorted(counts.items())) for category, counts in results.items()}
    assert sum(results["header fields"].values()) >= 100 and results["header fields"]["refused"] > 60
    check_figures("malformed ELF", figures)


def test_random_machine_code(tmp_path: Path) -> None:
    results = random_code_outcomes(tmp_path)
    assert sum(results.values()) == 2000 and set(results) <= {"exit", "signal", "limit"}
    check_figures("random machine code", dict(sorted(results.items())))


def test_readme_shows_these_figures() -> None:
    from tools.gen_readme_robustness import robustness_block

    assert robustness_block() in (Path(__file__).parents[2] / "README.md").read_text(), \
        "run: python tools/gen_readme_robustness.py"

"""Translated code never outlives the frames it was translated from.

When a process exits, the page-cache frames of its program text are freed and may be filled
with another program's text at the same virtual addresses; QEMU caches translated code by
physical address and never sees those writes. The machine drops the code of exactly the
freed frames (engine/patches/0009; the PyPI wheel's library drops it all). Without it the
second program runs the first one's stale translations and crashes (checked: this loop
segfaults from its third run with the invalidation of freed frames switched off).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import build_c, run_sandbox

HERE = Path(__file__).parent
ROUNDS = 10


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reuse")
    build_c(HERE / "reuse_a.c", out)
    build_c(HERE / "reuse_b.c", out, "-O0")
    return out


@pytest.mark.parametrize("engine", ["built", "wheel"])
def test_programs_taking_turns_at_the_same_addresses(programs: Path, engine: str) -> None:
    loop = f"for i in $(seq {ROUNDS}); do {programs}/reuse_a; {programs}/reuse_b; done"
    result = run_sandbox(["run", "--mount", f"{programs}:{programs}:ro", "/bin/busybox", "sh", "-c", loop],
                         env={**os.environ, "SANDBOX_ENGINE": engine})
    assert (result.returncode, result.stdout, result.stderr) == (0, b"a\nb\n" * ROUNDS, b"")

"""Translated code and per-block bookkeeping are bounded (issue 12: every host resource a
guest can make the sandbox hold is bounded).

guests/c/codecache.c calls every byte of a `ret`-filled page range: each call is a new
translation block. Unicorn's code cache defaulted to 1 GiB, the --max-instructions block
counts were never pruned and Unicorn's per-hook table of instrumented blocks only grows:
300,000 offsets took 163 MB, 251 MB with --max-instructions (1M: 480 MB / 774 MB). Fixed,
the sandbox stays near its ordinary size (about 80-100 MB here), whatever the count.
"""

from __future__ import annotations

import pytest

from tests.conftest import guest
from tests.robustness.test_resource_bounds import MB, measured

OFFSETS = 300_000
#: Well above a fixed run's peak, well below the unfixed ones'.
BOUND = 130 * MB


@pytest.mark.parametrize("limit", [[], ["--max-instructions", "100000000"]], ids=["plain", "counted"])
def test_new_code_at_every_offset_is_bounded(limit: list[str]) -> None:
    run = measured(["run", "--memory", "64M", *limit, guest("codecache"), str(OFFSETS)])
    assert run["status"] == 0 and f"called {OFFSETS} offsets" in run["stdout"], run
    assert run["maxrss"] < BOUND, run["maxrss"] // MB



def test_instruction_counts_stay_exact_across_table_resets(monkeypatch: pytest.MonkeyPatch, capfd) -> None:
    """Resetting the block table (and renewing the block hook) must not change what
    --max-instructions counts: the same run, with resets every few hundred blocks and with
    none, counts the same instructions."""
    from sandbox import machine
    from sandbox.api import Sandbox

    def instructions() -> int:
        with Sandbox(max_instructions=10**9) as sb:
            assert sb.run(guest("codecache"), ["codecache", "3000"]).status == 0
            return sb.kernel.instructions

    unbounded = instructions()
    monkeypatch.setattr(machine, "BLOCK_COUNTS_MAX", 300)
    assert instructions() == unbounded > 3000

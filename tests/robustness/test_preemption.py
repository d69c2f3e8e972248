"""Preemption at many points (a watchdog period of half a millisecond) must never change
what a guest computes: Unicorn, stopped asynchronously, resumed at the start of an
instruction whose store it had already made, so `incq` added 2 and `xchg` or `lock
cmpxchg` lost their results (sandbox/native/stopper.c). These guests failed that way
before the watchdog stopped the CPU through a block hook."""

from __future__ import annotations

import pytest

from sandbox import machine
from sandbox.api import Sandbox
from tests.conftest import guest

ROUNDS = 2_000_000


@pytest.fixture
def eager_watchdog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(machine, "WATCHDOG_SECONDS", 0.0005)


def test_read_modify_write_instructions_run_once(eager_watchdog: None, capfd: pytest.CaptureFixture) -> None:
    with Sandbox() as sb:
        result = sb.run(guest("rmw"), ["rmw", str(ROUNDS)])
    assert result.status == 0
    assert capfd.readouterr().out == f"inc {ROUNDS} xadd {ROUNDS} xchg {ROUNDS} cmpxchg {ROUNDS}\n"


def test_threads_preempted_everywhere_still_count_right(eager_watchdog: None, capfd: pytest.CaptureFixture) -> None:
    """Locks are read-modify-write instructions: a lost xchg or cmpxchg broke mutual
    exclusion or lost a wake-up between threads switched mid-computation."""
    with Sandbox() as sb:
        result = sb.run(guest("threads-glibc"), ["threads", "8", "20000"])
    out = capfd.readouterr().out
    assert result.status == 0, out
    assert out.startswith("counter 160000 of 160000, join values sum 36\n")

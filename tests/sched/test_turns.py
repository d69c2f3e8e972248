"""When the scheduler turns to another task: when a time slice ends, a task blocks or
yields, not when the CPU stopped for anything else. A process raising signals at itself
while another spins keeps the CPU between raises: before, every raise handed it to the
spinner for a whole time slice (musl's raise-race regression test took minutes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import build_c, run_native, run_sandbox

RAISES = 2000


@pytest.fixture(scope="module")
def raiser(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_c(Path(__file__).with_name("raiser.c"), tmp_path_factory.mktemp("raiser"))


@pytest.fixture(scope="module")
def hog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_c(Path(__file__).with_name("hog.c"), tmp_path_factory.mktemp("hog"))


def test_raising_a_signal_at_oneself_keeps_the_cpu(raiser: Path, tmp_path: Path) -> None:
    stats = tmp_path / "stats.json"
    boxed = run_sandbox(["run", "--timeout", "60", "--stats-json", str(stats),
                         "--mount", f"{raiser.parent}:{raiser.parent}:ro", str(raiser), str(RAISES)])
    assert boxed.stdout == run_native([str(raiser), str(RAISES)]).stdout == f"handled {RAISES}\n".encode()
    switches = json.loads(stats.read_text())["context_switches"]
    assert switches < RAISES // 10, switches  # time slices only, not one (or two) per raise


def test_a_task_raising_for_ever_still_yields_at_its_time_slice(hog: Path) -> None:
    """The attack on keeping the CPU after a stop: a process whose every instruction stream
    is a stop (raise in a loop) cannot starve another; its time slice still ends."""
    boxed = run_sandbox(["run", "--timeout", "60", "--mount", f"{hog.parent}:{hog.parent}:ro", str(hog)])
    assert boxed.stdout == run_native([str(hog)]).stdout == (
        b"parent turn 0\nparent turn 1\nparent turn 2\nhog ended by signal 9\n")
    assert boxed.returncode == 0

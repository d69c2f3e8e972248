"""Stops of the CPU by the sandbox's watchdog (time slices, preemption between threads) never
change what a guest computes on the engine that runs: read-modify-write instructions in two
threads, counted (stopcount.c), as natively; and again with a watchdog period of 0.2 ms,
thousands of stops, in-process. Nor what a hook sees: a code hook fires once per execution
of its instruction, however often the watchdog stops the CPU (hooked.c)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox import machine
from sandbox.api import Sandbox
from tests.conftest import assert_as_natively, build_c, run_native, run_sandbox

ROUNDS = "300000"


@pytest.fixture(scope="module")
def stopcount(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_c(Path(__file__).with_name("stopcount.c"), tmp_path_factory.mktemp("stopcount"), "-pthread")


def test_counts_as_natively(stopcount: Path) -> None:
    native = run_native([str(stopcount), ROUNDS])
    boxed = run_sandbox(["run", "--timeout", "60", "--mount", f"{stopcount.parent}:{stopcount.parent}:ro",
                         str(stopcount), ROUNDS])
    assert_as_natively(native, boxed)


def test_counts_as_natively_with_a_stop_every_fifth_of_a_millisecond(
        stopcount: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture) -> None:
    native = run_native([str(stopcount), ROUNDS])
    monkeypatch.setattr(machine, "WATCHDOG_SECONDS", 0.0002)
    with Sandbox(mounts=[f"{stopcount.parent}:{stopcount.parent}:ro"]) as sb:
        result = sb.run(str(stopcount), [str(stopcount), ROUNDS])
    assert result.status == 0
    assert capfd.readouterr().out.encode() == native.stdout


def test_a_code_hook_fires_once_per_execution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capfd: pytest.CaptureFixture) -> None:
    """The engine's own stop from another thread can land after an instruction's hooks ran
    and before it does; with a code hook installed the watchdog stops through stopper.c's
    block hook instead (Machine.use_block_stopper), so no call is seen twice."""
    from sandbox.mm.translate import elf_symbol

    program = build_c(Path(__file__).with_name("hooked.c"), tmp_path)
    calls = 200_000
    monkeypatch.setattr(machine, "WATCHDOG_SECONDS", 0.0002)
    seen = []
    with Sandbox(mounts=[f"{tmp_path}:{tmp_path}:ro"]) as sb:
        address = elf_symbol(str(program), "tick")
        sb.hook_code(address, address + 1, lambda _address, _size: seen.append(1))
        result = sb.run(str(program), [str(program), str(calls)])
    assert result.status == 0
    assert capfd.readouterr().out == f"{calls * (calls - 1) // 2}\n"
    assert len(seen) == calls

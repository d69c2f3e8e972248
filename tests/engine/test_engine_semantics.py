"""The project's engine computes what the PyPI wheel's does where its patches changed code
generation (engine/patches/): a memory hook added after the code was translated, a stop from
inside it, a store to unmapped memory without hooks (probe.py runs each on both engines);
and a stop from another thread now lands between instructions, so the run resumes at the
exact RIP: the wheel re-ran the read-modify-write instruction whose store was done."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.engine.test_engine_choice import requires_built

PROBE = Path(__file__).with_name("probe.py")
STORE_AT = 0x1007  # probe.STORE_AT: the loop's `mov [DATA], rcx`


def probe(scenario: str, kind: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "LIBUNICORN_PATH"}
    done = subprocess.run([sys.executable, str(PROBE), scenario], capture_output=True, text=True, cwd=ROOT,
                          env={**env, "SANDBOX_ENGINE": kind, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result.pop("engine") == kind
    return result


@pytest.mark.parametrize("scenario", ["memory_hook_added_late", "unmapped_store_without_hooks"])
def test_built_engine_agrees_with_the_wheel(scenario: str) -> None:
    requires_built()
    assert probe(scenario, "built") == probe(scenario, "wheel")


def test_memory_hook_added_late_sees_every_store_and_stops_after_the_third() -> None:
    requires_built()
    result = probe("memory_hook_added_late", "built")
    assert result["seen"] == [[0x2000, 1000], [0x2000, 999], [0x2000, 998]]
    # Unicorn stops right after the hooked store, the PC at the storing instruction.
    assert (result["rip"], result["rcx"], result["data"]) == (STORE_AT, 998, 998)


def test_unmapped_store_stops_at_the_store() -> None:
    requires_built()
    result = probe("unmapped_store_without_hooks", "built")
    assert result == {"error": 7, "rip": 0x1007, "rbx": 0}  # UC_ERR_WRITE_UNMAPPED; `mov rbx, 7` never ran


def test_stops_from_another_thread_resume_at_the_exact_instruction() -> None:
    """200 asynchronous stops of `incq [mem]; inc rcx; jmp`: the counters stay equal."""
    requires_built()
    assert probe("stops_from_another_thread", "built") == {"mismatches": 0, "rip_in_loop": True, "counted": True}


def test_stops_from_another_thread_wait_for_a_block_start_with_a_memory_hook() -> None:
    """With a memory hook installed, Unicorn checks for a stop after every access; a stop from
    another thread must still land between blocks (engine/patches/0005)."""
    requires_built()
    assert probe("stops_from_another_thread_with_a_memory_hook", "built") == {
        "mismatches": 0, "rip_in_loop": True, "counted": True}


@pytest.mark.parametrize("kind", ["built", "wheel"])
def test_block_hook_only_where_the_engine_needs_it(kind: str) -> None:
    """The project's build says it stops between blocks by itself (UC_QUERY_ASYNC_STOP), so the
    machine installs no block hook and its watchdog stops the CPU; the wheel's library gets the
    hook of sandbox/native/stopper.c."""
    if kind == "built":
        requires_built()
    code = ("from sandbox import engine, machine; m = machine.Machine(16 << 20); "
            "print(engine.engine_kind, m.uc.stops_between_blocks(), m._stopper_lib is None)")
    env = {k: v for k, v in os.environ.items() if k != "LIBUNICORN_PATH"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**env, "SANDBOX_ENGINE": kind, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [kind, str(kind == "built"), str(kind == "built")]


def test_translated_code_is_dropped_by_physical_range() -> None:
    """engine/patches/0009: UC_CTL_TB_FLUSH with a guest-physical range drops only the code
    translated from it (the sandbox's exits keep the loader and libc translated); the
    wheel ignores the range and drops everything, which is also correct."""
    requires_built()
    built, wheel = probe("code_dropped_by_physical_range", "built"), probe("code_dropped_by_physical_range", "wheel")
    assert built == {"before": [1, 1], "after": [2, 1], "by_range": True}
    assert wheel == {"before": [1, 1], "after": [2, 2], "by_range": False}

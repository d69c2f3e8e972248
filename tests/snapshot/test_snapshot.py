"""Copy-on-write snapshots (sandbox/snapshot.py): restore cycles end exactly at the snapshot's
frame and page-cache counts, restored runs print byte-identical output (across fork, exec,
pipes, threads, a signal handler, a host file's offset), releasing returns every frame, and
the attacks: restore after close, another Sandbox's snapshot, a released one, 200 MiB mapped
between snapshot and restore. The guest is snapguest.c, next to this file."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sandbox.api import Sandbox
from sandbox.mm.translate import elf_symbol
from sandbox.snapshot import SnapshotError
from tests.conftest import IN_CI, ROOT, require_tool, run_native, run_sandbox

SOURCE = ROOT / "tests" / "snapshot" / "snapguest.c"
MODES = ["write", "pipe", "fork", "exec", "thread", "thread2", "fork2", "signal", "bigmap"]
#: Restore cycles of the long test (measured: about 0.7 ms each on the tiny guest).
CYCLES = 10_000


@pytest.fixture(scope="module")
def prog(tmp_path_factory: pytest.TempPathFactory) -> str:
    gcc = require_tool("gcc")
    out = tmp_path_factory.mktemp("snapshot") / "snapguest"
    subprocess.run([gcc, "-static", "-O2", "-w", "-pthread", "-o", str(out), str(SOURCE)], check=True)
    (out.parent / "data").write_bytes(b"hello-file-content\n")
    return str(out)


def sandbox_for(prog: str) -> Sandbox:
    folder = str(Path(prog).parent)
    return Sandbox(memory=64 << 20, mounts=[f"{folder}:{folder}:ro"])


def snapshot_at_checkpoint(sb: Sandbox, prog: str, argv: list[str]) -> tuple[list, object]:
    """Run `argv`, snapshotting the first time checkpoint() is entered; ([snap], result)."""
    address = elf_symbol(prog, "checkpoint")
    snaps: list = []
    handle = sb.hook_code(address, address + 1, lambda _a, _s: snaps or snaps.append(sb.snapshot()))
    result = sb.run(prog, argv, capture=True)
    sb.unhook_code(handle)
    return snaps, result


def test_restore_cycles_end_at_the_snapshot_counts(prog: str) -> None:
    """CYCLES restores from an exit_group hook; at every return to checkpoint() the frames
    in use and the page cache's pages are exactly those of the snapshot."""
    address = elf_symbol(prog, "checkpoint")
    with sandbox_for(prog) as sb:
        state = {"snap": None, "cycles": 0, "seen": set()}
        cache = lambda: sum(len(f.pages) for k, f in sb.kernel.page_cache.files.items() if k[0] != "snapshots")  # noqa: E731

        def at_checkpoint(_a: int, _s: int) -> None:
            if state["snap"] is None:
                state["snap"] = sb.snapshot()
                state["want"] = (sb.machine.frames.used, cache())
            else:
                state["seen"].add((sb.machine.frames.used, cache()))

        def at_exit(_call: object) -> None:
            if state["cycles"] < CYCLES:
                state["cycles"] += 1
                sb.restore(state["snap"])

        sb.hook_code(address, address + 1, at_checkpoint)
        sb.hook_syscall("exit_group", on_enter=at_exit)
        result = sb.run(prog, [prog, "tiny"])
        assert (result.status, state["cycles"]) == (1, CYCLES)
        assert state["seen"] == {state["want"]}
        sb.kernel.check_invariants()
        state["snap"].release()
        sb.release()
        assert sb.machine.frames.used == sb.baseline_frames


def test_invariants_hold_after_every_restore(prog: str) -> None:
    with sandbox_for(prog) as sb:
        snaps, first = snapshot_at_checkpoint(sb, prog, [prog, "fork2"])
        for _ in range(5):
            sb.restore(snaps[0])
            sb.kernel.check_invariants()
            assert sb.run_from(snaps[0]).stdout == first.stdout
            sb.kernel.check_invariants()


@pytest.mark.parametrize("mode", MODES)
def test_restored_runs_print_the_same(prog: str, mode: str) -> None:
    """The first run, and two runs on from its snapshot: the same bytes, as natively."""
    native = run_native([prog, mode])
    with sandbox_for(prog) as sb:
        snaps, first = snapshot_at_checkpoint(sb, prog, [prog, mode])
        again = [sb.run_from(snaps[0]) for _ in range(2)]
        assert [(r.stdout, r.status) for r in again] == [(first.stdout, first.status)] * 2
        assert (first.stdout, first.status) == (native.stdout, native.returncode)
        snaps[0].release()
        sb.release()
        assert sb.machine.frames.used == sb.baseline_frames


def test_a_host_file_offset_comes_back(prog: str) -> None:
    data = str(Path(prog).parent / "data")
    with sandbox_for(prog) as sb:
        snaps, first = snapshot_at_checkpoint(sb, prog, [prog, "file", data])
        assert first.stdout == b"file 7 o-file-\ndone 1\n"
        assert sb.run_from(snaps[0]).stdout == first.stdout
        assert sb.run_from(snaps[0]).stdout == first.stdout


def test_a_snapshot_from_a_syscall_hook_waits_for_the_call(prog: str) -> None:
    """Taken in write's hook, the snapshot is the state after that write: replays print the
    rest only once more (the captured stream is part of the snapshot)."""
    with sandbox_for(prog) as sb:
        snaps: list = []
        sb.hook_syscall("write", on_exit=lambda call: snaps or snaps.append(sb.snapshot()))
        first = sb.run(prog, [prog, "write"], capture=True)
        sb.unhook_syscall("write")
        assert snaps[0].taken
        assert sb.run_from(snaps[0]).stdout == first.stdout == b"wrote 1\ndone 1\n"


def _replayed_as_natively(prog: str, mode: str, times: int) -> bytes:
    """`run --snapshot-at checkpoint --replay TIMES PROG MODE`: the first run as natively;
    the summary line on stderr."""
    folder = str(Path(prog).parent)
    boxed = run_sandbox(["run", "--timeout", "60", "--mount", f"{folder}:{folder}:ro", "--snapshot-at", "checkpoint",
                         "--replay", str(times), prog, mode])
    native = run_native([prog, mode])
    assert (boxed.stdout, boxed.returncode) == (native.stdout, native.returncode)
    return boxed.stderr


def test_cli_replays_match_the_first_run(prog: str) -> None:
    assert b"output identical to the first run's in 3/3; exit statuses 0 x3" in _replayed_as_natively(prog, "fork", 3)


def test_cli_replays_a_dynamic_program(prog: str) -> None:
    """A position-independent, dynamically linked build: the symbol moves by the load
    address, and ld.so and libc come through the page cache, whose pages the snapshot keeps."""
    gcc = require_tool("gcc")
    dynamic = str(Path(prog).parent / "snapdyn")
    subprocess.run([gcc, "-O2", "-w", "-pthread", "-o", dynamic, str(SOURCE)], check=True)
    assert b"output identical to the first run's in 2/2" in _replayed_as_natively(dynamic, "fork2", 2)


def test_cli_refuses_a_bad_address(prog: str) -> None:
    boxed = run_sandbox(["run", "--snapshot-at", "no_such_symbol", prog])
    assert boxed.returncode == 2 and b"--snapshot-at" in boxed.stderr
    boxed = run_sandbox(["run", "--replay", "3", prog])
    assert boxed.returncode == 2 and b"--snapshot-at" in boxed.stderr


# -- attacks ---------------------------------------------------------------------------------


def test_no_snapshot_outside_a_run(prog: str) -> None:
    with sandbox_for(prog) as sb:
        with pytest.raises(SnapshotError):
            sb.snapshot()


def test_restore_after_close(prog: str) -> None:
    sb = sandbox_for(prog)
    snaps, _ = snapshot_at_checkpoint(sb, prog, [prog, "write"])
    sb.close()
    with pytest.raises(SnapshotError, match="closed"):
        sb.restore(snaps[0])


def test_restore_a_snapshot_of_another_sandbox(prog: str) -> None:
    with sandbox_for(prog) as one, sandbox_for(prog) as other:
        snaps, _ = snapshot_at_checkpoint(one, prog, [prog, "write"])
        with pytest.raises(SnapshotError, match="another"):
            other.restore(snaps[0])
        snapshot_at_checkpoint(other, prog, [prog, "write"])  # the other one has its own now
        with pytest.raises(SnapshotError, match="another"):
            other.restore(snaps[0])


def test_a_released_snapshot_is_refused_and_frees_everything(prog: str) -> None:
    with sandbox_for(prog) as sb:
        snaps, _ = snapshot_at_checkpoint(sb, prog, [prog, "bigmap"])
        held = sb.machine.frames.used
        snaps[0].release()
        snaps[0].release()  # twice is harmless
        assert sb.machine.frames.used < held
        with pytest.raises(SnapshotError, match="released"):
            sb.restore(snaps[0])
        sb.release()
        assert sb.machine.frames.used == sb.baseline_frames


def test_200_mib_mapped_between_snapshot_and_restore(prog: str) -> None:
    """The guest maps and touches 200 MiB after the snapshot (in 64 MiB of RAM: one page a
    MiB); each restore gives every one of those frames back."""
    with sandbox_for(prog) as sb:
        snaps, first = snapshot_at_checkpoint(sb, prog, [prog, "bigmap"])
        sb.restore(snaps[0])
        at_snapshot = sb.machine.frames.used
        for _ in range(3):
            assert sb.run_from(snaps[0]).stdout == first.stdout == b"mapped 1\ndone 1\n"
            sb.restore(snaps[0])
            assert sb.machine.frames.used == at_snapshot


# -- the examples -----------------------------------------------------------------------------


def _fuzz(*args: str) -> dict:
    """examples/fuzz_snapshot.py with `args` and --json: its figures. (Without the
    invariant check at every switch the tests turn on: thousands of restores are the
    point here, and other tests check the invariants after restores.)"""
    import json
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if k != "SANDBOX_CHECK_INVARIANTS"}
    run = subprocess.run([sys.executable, str(ROOT / "examples" / "fuzz_snapshot.py"), *args, "--json"],
                         capture_output=True, timeout=300, cwd=ROOT, env=env)
    assert run.returncode == 0, run.stderr.decode()
    return json.loads(run.stdout.splitlines()[-1])


def test_the_fuzzing_harness_finds_the_null_write() -> None:
    """examples/fuzz_snapshot.py, briefly (plain loop, fixed seed): it runs, counts, and the
    planted null write is among the crashes within 2,000 inputs (about a second)."""
    require_tool("gcc")
    figures = _fuzz("--plain", "--runs", "2000", "--seconds", "60", "--seed", "1")
    assert figures["executions"] == 2000 and figures["per_second"] > 0
    assert any("write at 0x0" in message for message in figures["crashes"])


def test_coverage_finds_the_nested_magic_where_blind_does_not() -> None:
    """fuzz_magic.c crashes only on "FUZZ", a branch per byte. With the guest's edges as
    feedback (seed 1) the plain loop climbs it within 2,500 inputs; the same loop without
    feedback (its corpus stays the seed) does not. Deterministic: the seed fixes the inputs,
    and the edges never depend on when the CPU was stopped."""
    require_tool("gcc")
    guided = _fuzz("--target", "magic", "--plain", "--runs", "2500", "--seconds", "120", "--seed", "1")
    blind = _fuzz("--target", "magic", "--blind", "--runs", "2500", "--seconds", "120", "--seed", "1")
    assert guided["first_crash"] is not None and guided["first_crash"] < 2500
    assert bytes.fromhex(next(iter(guided["crashes"].values()))).startswith(b"FUZZ")
    assert guided["corpus"] > 1
    assert (blind["executions"], blind["first_crash"], blind["corpus"], blind["crashes"]) == (2500, None, 1, {})


def test_atheris_sees_the_guest_edges() -> None:
    """With atheris (optional), libFuzzer is fed the guest's edges as its counters: a short
    run ends normally and reports its executions. `make` installs atheris (a dev dependency);
    in CI its absence fails the test."""
    if not IN_CI:
        pytest.importorskip("atheris")
    require_tool("gcc")
    figures = _fuzz("--target", "magic", "--runs", "300", "--seconds", "60")
    assert figures["driver"] == "atheris" and figures["executions"] == 300


def test_the_snapshot_cow_demo(tmp_path: Path) -> None:
    """The demo's figures: every frame shared at first, fewer as the guest writes 8, 24, 56
    pages (each one copied, plus the stack's), all shared again after a restore."""
    import io

    from sandbox.demos import DEMOS, run_demo

    gcc = require_tool("gcc")
    guest = ROOT / "guests" / "build" / "demo-snapshot-cow"
    if not guest.exists():
        guest.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([gcc, "-static", "-O2", "-o", str(guest), str(ROOT / "examples" / "snapshot_cow.c")], check=True)
    assert "snapshot-cow" in DEMOS
    figures = run_demo("snapshot-cow", io.StringIO())
    (_, shared, total), *steps = figures["steps"]
    assert shared == total
    assert [written for written, _, _ in steps] == [8, 24, 56]
    assert all(total - s >= w for w, s, _ in steps) and all(total - s <= w + 2 for w, s, _ in steps)
    assert figures["after_restore"] == (total, total)


def test_another_run_while_a_snapshot_lives(prog: str) -> None:
    """A new run tears the last one down; the snapshot stays whole and restores after it."""
    with sandbox_for(prog) as sb:
        snaps, first = snapshot_at_checkpoint(sb, prog, [prog, "pipe"])
        assert sb.run(prog, [prog, "write"], capture=True).stdout == b"wrote 1\ndone 1\n"
        assert sb.run_from(snaps[0]).stdout == first.stdout
        with pytest.raises(SnapshotError, match="no process"):
            sb.resume()

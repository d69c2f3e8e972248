"""--deterministic counts a task's instructions while another lives and lets a lone task run
uncounted. Dropping Unicorn's counting hook used to leave a page fault "in flight" (it
invalidated code of the other process through page tables that no longer map it), so the
lone parent's next copy-on-write store became a double and then a triple fault, and every
later run returned at once: procs.c hung after its fork+exec test. engine/patches/0008 makes
that lookup quiet; a library without it keeps counting even a lone task."""

from __future__ import annotations

import pytest

from sandbox import engine
from tests.conftest import IN_CI, guest, run_native, run_sandbox

BUSYBOX = "/bin/busybox"


@pytest.mark.parametrize("kind", ["built", "wheel"])
def test_a_parent_left_alone_runs_on(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if kind == "built" and engine.find_built_library() is None:
        if IN_CI:
            pytest.fail("the project's engine is not built: `make compile` must build it in CI")
        pytest.skip("the project's engine is not built (make compile)")
    monkeypatch.setenv("SANDBOX_ENGINE", kind)
    prog = guest("procs-glibc")
    native = run_native([prog])
    boxed = run_sandbox(["run", "--deterministic", "--timeout", "60", "--mount", f"{BUSYBOX}:{BUSYBOX}:ro", prog])
    assert (boxed.stdout, boxed.returncode) == (native.stdout, native.returncode)


def test_only_the_project_build_says_its_counting_hook_leaves_quietly() -> None:
    assert engine.Engine().invalidates_quietly() == (engine.engine_kind == "built")

"""Which libunicorn runs: the project's own build (engine/build.py, `make compile`) when it is
there, the PyPI wheel's when $SANDBOX_ENGINE=wheel forces it or no build exists; `sandbox
--version` and the stats say which. In CI the build must exist: the Makefile builds it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox import engine
from tests.conftest import IN_CI, ROOT, guest, run_sandbox

BUILT = ROOT / "build" / "engine" / engine.LIBRARY_NAME
PATCHES = sorted(p.name for p in (ROOT / "engine" / "patches").glob("[0-9][0-9][0-9][0-9]-*.patch"))


def requires_built() -> None:
    """Skip without the project's build, except in CI, where its absence is a failure."""
    if not BUILT.exists():
        if IN_CI:
            pytest.fail(f"{BUILT} is missing: `make compile` must build it in CI")
        pytest.skip("the project's engine is not built (make compile)")


def engine_env(kind: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SANDBOX_ENGINE", "LIBUNICORN_PATH")}
    return env if kind is None else {**env, "SANDBOX_ENGINE": kind}


def loaded(kind: str | None) -> subprocess.CompletedProcess:
    """Import the binding in a fresh interpreter: its kind, description and library path."""
    code = ("from sandbox import engine as e; import ctypes; "
            "print(e.engine_kind); print(e.describe()); print(e.lib._name)")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=engine_env(kind),
                          cwd=ROOT)


def test_built_engine_is_preferred_when_present() -> None:
    requires_built()
    done = loaded(None)
    assert done.returncode == 0, done.stderr
    kind, description, path = done.stdout.splitlines()
    assert kind == "built"
    assert Path(path).samefile(BUILT)
    assert description == f"unicorn 2.1.4 (project build, {len(PATCHES)} patches)"


def test_wheel_forced_by_environment() -> None:
    done = loaded("wheel")
    assert done.returncode == 0, done.stderr
    kind, description, path = done.stdout.splitlines()
    assert (kind, description) == ("wheel", "unicorn 2.1.4 (PyPI wheel)")
    assert Path(path).samefile(engine.find_library())


def test_built_forced_without_a_build_is_a_clear_error(tmp_path: Path) -> None:
    """$SANDBOX_ENGINE=built with no library: an ImportError naming the file and the fix."""
    code = f"from pathlib import Path; import sandbox.engine as e; e.BUILT_DIR = Path({str(tmp_path)!r}); e._choose()"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=engine_env("built"), cwd=ROOT)
    assert done.returncode != 0
    assert "make compile" in done.stderr


def test_unknown_engine_name_is_refused() -> None:
    done = loaded("fastest")
    assert done.returncode != 0
    assert "SANDBOX_ENGINE is 'fastest'" in done.stderr


def test_the_command_refuses_an_unknown_engine_in_one_line() -> None:
    """The CLI turns the binding's refusal into one line and exit 69 (EX_UNAVAILABLE)."""
    done = subprocess.run([sys.executable, "-m", "sandbox", "run", str(ROOT / "guests/build/hello")],
                          capture_output=True, text=True, env=engine_env("fastest"), cwd=ROOT)
    assert (done.returncode, done.stdout) == (69, "")
    assert done.stderr == "sandbox: no CPU engine: $SANDBOX_ENGINE is 'fastest': use built, wheel or leave it unset\n"


def test_an_empty_engine_variable_is_unset() -> None:
    """SANDBOX_ENGINE= (set, empty), as a shell's `VAR= cmd` leaves it, chooses as unset does."""
    assert loaded("").stdout == loaded(None).stdout


def test_broken_build_falls_back_to_the_wheel(tmp_path: Path) -> None:
    """A built library that does not load (here: not a library at all) is passed over."""
    (tmp_path / engine.LIBRARY_NAME).write_bytes(b"not an ELF file")
    code = (f"from pathlib import Path; import sandbox.engine as e; e.BUILT_DIR = Path({str(tmp_path)!r}); "
            "lib, kind, note = e._choose(); print(kind); print(note)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=engine_env(None),
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
    kind, note = done.stdout.splitlines()
    assert kind == "wheel"
    assert note.startswith("project build not loadable:")


def test_built_library_is_the_pinned_version_with_every_patch() -> None:
    requires_built()
    info = json.loads((BUILT.parent / "engine.json").read_text())
    assert info["version"] == "2.1.4"
    assert info["patches"] == PATCHES
    assert len(PATCHES) >= 3


@pytest.mark.parametrize("kind", [None, "wheel"])
def test_version_and_stats_name_the_engine(kind: str | None, tmp_path: Path) -> None:
    if kind is None:
        requires_built()
    expected = "unicorn 2.1.4 (PyPI wheel)" if kind else f"unicorn 2.1.4 (project build, {len(PATCHES)} patches)"
    version = run_sandbox(["--version"], env=engine_env(kind))
    assert version.returncode == 0, version.stderr
    assert f"engine: {expected}" in version.stdout.decode().splitlines()
    out = tmp_path / "stats.json"
    run = run_sandbox(["run", "--stats", "--stats-json", str(out), guest("hello")], env=engine_env(kind))
    assert run.returncode == 0, run.stderr
    assert json.loads(out.read_text())["engine"] == expected
    lines = (run.stdout + run.stderr).decode().splitlines()
    assert ["engine", expected] in [line.split(None, 1) for line in lines]  # the --stats block

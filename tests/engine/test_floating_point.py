"""Floating point as the hardware does it, on the project's engine build
(engine/patches/0006): the exception flags that C's <fenv.h> reads from the x87 status word
and MXCSR, and the x87's exact operations (FPREM, FPREM1 and their condition codes,
FXTRACT); both with glibc and musl, compared with the native run. QEMU 5.0's TCG, which the
PyPI wheel carries, leaves every flag clear and computes remainders in host doubles, so
these run only on the project's build (which CI always uses)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from sandbox import engine
from tests.conftest import assert_as_natively, require_tool, run_native, run_sandbox

SOURCES = Path(__file__).with_name("fp")
PROGRAMS = ("fpflags", "x87exact", "x87transcendental")
COMPILERS = ("gcc", "musl-gcc")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    if engine.engine_kind == "wheel":
        pytest.skip("SANDBOX_ENGINE=wheel: QEMU 5.0's floating point, without engine/patches/0006")
    out = tmp_path_factory.mktemp("fp")
    programs = {}
    for compiler in COMPILERS:
        for name in PROGRAMS:
            program = out / f"{name}-{compiler}"
            subprocess.run([require_tool(compiler), "-static", "-O2", "-w", "-o", str(program),
                            str(SOURCES / f"{name}.c"), "-lm"], check=True)
            programs[name, compiler] = program
    return programs


@pytest.mark.parametrize("compiler", COMPILERS)
@pytest.mark.parametrize("name", PROGRAMS)
def test_as_natively(built: dict[tuple[str, str], Path], name: str, compiler: str) -> None:
    program = built[name, compiler]
    native = run_native([str(program)])
    assert native.returncode == 0 and native.stdout
    boxed = run_sandbox(["run", "--timeout", "60", "--mount", f"{program.parent}:{program.parent}:ro", str(program)])
    assert_as_natively(native, boxed)


def test_unmasked_exceptions_trap_the_guest_not_the_host(built: dict[tuple[str, str], Path], tmp_path: Path) -> None:
    program = tmp_path / "x87trap"
    subprocess.run([require_tool("gcc"), "-static", "-O2", "-w", "-o", str(program), str(SOURCES / "x87trap.c"),
                    "-lm"], check=True)
    native = run_native([str(program)])
    boxed = run_sandbox(["run", "--timeout", "60", "--mount", f"{tmp_path}:{tmp_path}:ro", str(program)])
    assert native.returncode == -signal.SIGFPE and native.stdout == b"armed\n"
    assert (boxed.returncode, boxed.stdout) == (128 + signal.SIGFPE, native.stdout)
    assert boxed.stderr.decode().startswith("sandbox: ") and "killed by SIGFPE" in boxed.stderr.decode()

"""The emulated CPU advertises only features it executes (glibc's ifuncs depend on it)."""

from __future__ import annotations

from tests.conftest import guest, run_sandbox


def test_every_advertised_feature_executes_and_no_avx() -> None:
    result = run_sandbox(["run", guest("cpufeatures")])
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()
    assert "no AVX-class feature advertised" in out
    for feature in ("sse4.2", "ssse3", "popcnt"):
        assert feature in out.split(), "glibc's SSE paths need these"


def test_fpu_starts_as_the_abi_says() -> None:
    """x87 control word 0x37F: long double printf keeps full precision (musl relies on it)."""
    result = run_sandbox(["run", guest("basics-musl")])
    assert b"3.1415926536" in result.stdout and b"1.414213562373" in result.stdout

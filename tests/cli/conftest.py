"""The guest the CLI tests run (writer.c, built once per session)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_tool

SOURCE = Path(__file__).resolve().parent / "writer.c"


@pytest.fixture(scope="session")
def writer(tmp_path_factory: pytest.TempPathFactory) -> str:
    """`writer N` writes N files in /tmp; `writer random` prints getrandom bytes."""
    gcc = require_tool("gcc")
    out = tmp_path_factory.mktemp("cli") / "writer"
    subprocess.run([gcc, "-static", "-O2", "-w", "-o", str(out), str(SOURCE)], check=True)
    return str(out)

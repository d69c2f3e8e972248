"""Fixtures for the batch tests: the test guest built once, manifests written on the fly,
records read back."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, build_c, run_sandbox

HERE = Path(__file__).resolve().parent
AUTOGRADER = ROOT / "examples" / "autograder"


@pytest.fixture(scope="session")
def tool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/batch/guests/tool.c, built statically (one guest, many modes)."""
    return build_c(HERE / "guests" / "tool.c", tmp_path_factory.mktemp("batch-guests"))


def write_jsonl(path: Path, entries: list[dict]) -> Path:
    path.write_text("".join(json.dumps(entry) + "\n" for entry in entries))
    return path


def read_records(path: Path) -> dict[str, dict]:
    """The records of an output file by id (every line must be a whole record)."""
    lines = path.read_bytes().splitlines()
    return {record["id"]: record for record in map(json.loads, lines)}


def batch(*args: str) -> subprocess.CompletedProcess:
    """`sandbox batch ARGS...`, output captured."""
    return run_sandbox(["batch", *map(str, args)])

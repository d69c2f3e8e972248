"""examples/autograder end to end, as its README says: build the submissions with its
Makefile, grade them with `sandbox batch`, check each verdict."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.batch.conftest import AUTOGRADER, batch, read_records
from tests.conftest import require_tool

VERDICTS = {"correct/1": None, "correct/2": None, "wrong/1": None, "wrong/2": "wrong-output",
            "loop/1": "timeout", "loop/2": "timeout"}


def test_autograder(tmp_path: Path) -> None:
    require_tool("gcc")
    example = tmp_path / "autograder"
    shutil.copytree(AUTOGRADER, example, ignore=shutil.ignore_patterns("build", "results.jsonl"))
    subprocess.run([require_tool("make"), "-s", "-C", str(example)], check=True)
    result = batch(example / "manifest.toml", "-o", example / "results.jsonl", "-j", "2")
    records = read_records(example / "results.jsonl")
    assert result.returncode == 1, result.stderr
    assert {key: record["failure"] for key, record in records.items()} == VERDICTS
    assert records["wrong/2"]["stdout"]["head"] == "sum -22\nmax 0\n"
    assert result.stdout.decode().startswith("sandbox batch: 6 of 6 runs recorded: 3 passed, 3 failed\n")

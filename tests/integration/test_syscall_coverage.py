"""Every differential case runs without a system call the sandbox does not implement,
except rseq (-ENOSYS is what Linux without rseq answers, which glibc accepts)."""

from __future__ import annotations

import os
import re
import tempfile
import tomllib
from pathlib import Path

import pytest

from tests.conftest import guest, run_sandbox

CASES = tomllib.loads((Path(__file__).parents[1] / "differential" / "cases.toml").read_text())["case"]
ACCEPTED_ENOSYS = {"rseq"}
DELIBERATE = {"sysinfo"}  # calls syscall 1000 on purpose


@pytest.mark.parametrize("case", [c for c in CASES if c["prog"] not in DELIBERATE],
                         ids=lambda c: " ".join([os.path.basename(c["prog"]), *c.get("args", [])])[:50])
def test_no_unimplemented_calls(case: dict) -> None:
    prog = case["prog"] if case["prog"].startswith("/") else guest(case["prog"])
    with tempfile.TemporaryDirectory() as scratch:
        for name, content in case.get("files", {}).items():
            path = Path(scratch, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        result = run_sandbox(["run", "--trace-syscalls", "--mount", f"{scratch}:{scratch}", "--cwd", scratch,
                              prog, *case.get("args", [])], case.get("stdin", "").encode())
    missing = {re.match(r"(?:\[pid +\d+\] )?(\w+)\(", line).group(1)
               for line in result.stderr.decode(errors="replace").splitlines() if line.endswith("[not implemented]")}
    assert missing <= ACCEPTED_ENOSYS

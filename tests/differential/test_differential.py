"""Run every case of cases.toml natively and in the sandbox; compare what a user sees.

A case may create files in a scratch directory. Both runs see it at the same absolute path
(natively as the working directory; in the sandbox through `--mount D:D --cwd D`), one run
after the other, and the directory trees they leave are compared too.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import tempfile
import tomllib
from pathlib import Path

import pytest

from sandbox.kernel.options import DEFAULT_ENV
from tests.conftest import guest, run_native, run_sandbox

CASES = tomllib.loads((Path(__file__).parent / "cases.toml").read_text())["case"]
#: The environment the sandbox gives a guest by default; the native run gets the same.
GUEST_ENV = dict(e.decode().split("=", 1) for e in DEFAULT_ENV)
FIXED_MTIME = 1_600_000_000  # files a case creates get this mtime, so listings agree


def case_id(case: dict) -> str:
    return " ".join([os.path.basename(case["prog"]), *case.get("args", [])])[:60]


def case_stdin(case: dict) -> bytes:
    if "stdin_bytes" in case:
        rng = random.Random(case["stdin_bytes"])
        return bytes(rng.randrange(256) for _ in range(case["stdin_bytes"]))
    return case.get("stdin", "").encode()


def populate(scratch: Path, files: dict[str, str]) -> None:
    for entry in scratch.iterdir():
        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    for name, content in files.items():
        path = scratch / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        os.utime(path, (FIXED_MTIME, FIXED_MTIME))
    os.utime(scratch, (FIXED_MTIME, FIXED_MTIME))


def tree(scratch: Path) -> dict[str, tuple]:
    """Every path below `scratch`: type, permission bits, size and content digest."""
    out = {}
    for path in sorted(scratch.rglob("*")):
        st = path.lstat()
        kind = "link" if path.is_symlink() else "dir" if path.is_dir() else "file"
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if kind == "file" else \
            os.readlink(path) if kind == "link" else ""
        out[str(path.relative_to(scratch))] = (kind, st.st_mode & 0o7777, st.st_size if kind == "file" else 0, digest)
    return out


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_same_as_native(case: dict) -> None:
    path = case["prog"] if case["prog"].startswith("/") else guest(case["prog"])
    argv = [path, *case.get("args", [])]
    stdin = case_stdin(case)
    options = list(case.get("options", []))
    if case.get("etc"):
        options += ["--mount", "/etc:/etc:ro"]
    with tempfile.TemporaryDirectory(prefix="sandbox-diff-") as tmp:
        scratch = Path(tmp).resolve()
        populate(scratch, case.get("files", {}))
        native = run_native(argv, stdin, env=GUEST_ENV, cwd=scratch)
        native_tree = tree(scratch)
        populate(scratch, case.get("files", {}))
        boxed = run_sandbox(["run", "--mount", f"{scratch}:{scratch}", "--cwd", str(scratch), *options, *argv],
                            stdin)
        boxed_tree = tree(scratch)
    if not case.get("ignore_stdout"):
        assert boxed.stdout == native.stdout
    assert boxed_tree == native_tree
    if native.returncode < 0:
        signo = -native.returncode
        assert boxed.returncode == 128 + signo, boxed.stderr.decode()
        *guest_err, last = boxed.stderr.decode().splitlines(keepends=True) or [""]
        assert last.startswith(f"sandbox: {path}: killed by "), boxed.stderr
        assert "Traceback" not in boxed.stderr.decode()
        assert "".join(guest_err).encode() == native.stderr
    else:
        assert boxed.returncode == native.returncode, boxed.stderr.decode()
        assert boxed.stderr == native.stderr

"""Hostile manifests and records files, parsed in this process: each mistake is one
ManifestError (or RecordsError) line, never a traceback; the bounds on a manifest's size;
option checks memoized; --manifest-root confinement against .., absolute paths and
symlinks; the deterministic order kept across an interrupted batch."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.batch import manifest as manifest_module
from sandbox.batch.manifest import ManifestError, parse_manifest
from sandbox.batch.pool import run_batch
from sandbox.batch.record import RecordsError, load_records
from tests.batch.conftest import write_jsonl

DEPTH = 100_000
BIG = "9" * 5000


def unparseable(tool: Path) -> dict[str, str]:
    """File name -> a manifest Python's parsers choke on (recursion, a 5000-digit int)."""
    return {
        "deep.jsonl": "[" * DEPTH + "]" * DEPTH + "\n",
        "bigint.jsonl": f'{{"id": "a", "program": "{tool}", "limits": {{"timeout": {BIG}}}}}\n',
        "deep.toml": f"[[run]]\nid = 'a'\nprogram = '{tool}'\nargs = " + "[" * DEPTH + "]" * DEPTH + "\n",
        "bigint.toml": f"[[run]]\nid = 'a'\nprogram = '{tool}'\nlimits = {{timeout = {BIG}}}\n",
        "bigmemory.jsonl": f'{{"id": "a", "program": "{tool}", "limits": {{"memory": {"9" * 100}}}}}\n',
    }


@pytest.mark.parametrize("name", ["deep.jsonl", "bigint.jsonl", "deep.toml", "bigint.toml", "bigmemory.jsonl"])
def test_unparseable_manifest_is_one_line(tmp_path: Path, tool: Path, name: str) -> None:
    (tmp_path / name).write_text(unparseable(tool)[name])
    with pytest.raises(ManifestError) as caught:
        parse_manifest(str(tmp_path / name))
    assert str(caught.value).startswith(f"{tmp_path / name}:") and "\n" not in str(caught.value)


def test_option_checks_are_memoized(tmp_path: Path, tool: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """3000 entries with the same limits cost one click parse, not 3000 (10^6 entries
    cost ~1.4 ms each before)."""
    from sandbox.commands import run

    calls = []
    real = run.make_context
    monkeypatch.setattr(run, "make_context", lambda *a, **k: calls.append(a) or real(*a, **k))
    manifest_module._run_options_problem.cache_clear()
    write_jsonl(tmp_path / "m.jsonl", [{"id": f"e{i}", "program": str(tool), "limits": {"memory": "64M"}}
                                       for i in range(3000)])
    assert len(parse_manifest(str(tmp_path / "m.jsonl"))) == 3000
    assert len(calls) == 1


@pytest.mark.parametrize(("bound", "value", "lines", "message"), [
    ("MAX_ENTRIES", 10, 11, "more than 10 entries; split the batch"),
    ("MAX_MANIFEST", 1000, 40, "is over 0 MiB; split the batch"),
    ("MAX_INLINE_TOTAL", 100, 3, "inline stdin totals over 0 MiB"),
])
def test_manifest_bounds(tmp_path: Path, tool: Path, monkeypatch: pytest.MonkeyPatch, bound: str, value: int,
                         lines: int, message: str) -> None:
    monkeypatch.setattr(manifest_module, bound, value)
    write_jsonl(tmp_path / "m.jsonl", [{"id": f"e{i}", "program": str(tool), "stdin": "x" * 60}
                                       for i in range(lines)])
    with pytest.raises(ManifestError, match=message):
        parse_manifest(str(tmp_path / "m.jsonl"))


def test_toml_entry_count_bounded(tmp_path: Path, tool: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manifest_module, "MAX_ENTRIES", 2)
    (tmp_path / "m.toml").write_text("".join(f"[[run]]\nid = 'e{i}'\nprogram = '{tool}'\n" for i in range(3)))
    with pytest.raises(ManifestError, match="more than 2 entries"):
        parse_manifest(str(tmp_path / "m.toml"))


@pytest.mark.parametrize(("fields", "message"), [
    ({"stdin": "x" * ((16 << 20) + 1)}, "stdin is over 16 MiB inline"),
    ({"files": {"/a/../../etc/x": "TOOL"}}, "not an absolute guest path (other than /, without ..)"),
    ({"files": {"/..": "TOOL"}}, "not an absolute guest path"),
    ({"options": ["--timeout", "nan"]}, "option --timeout is not allowed"),
    ({"limits": {"timeout": float("nan")}}, "limit timeout must be seconds"),
    ({"limits": {"timeout": float("inf")}}, "limit timeout must be seconds"),
])
def test_hostile_fields(tmp_path: Path, tool: Path, fields: dict, message: str) -> None:
    text = json.dumps({"id": "a", "program": str(tool), **fields}).replace("TOOL", str(tool))
    (tmp_path / "m.jsonl").write_text(text + "\n")
    with pytest.raises(ManifestError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_manifest(str(tmp_path / "m.jsonl"))


@pytest.fixture
def confined(tmp_path: Path, tool: Path) -> Path:
    """DIR with the tool and a data file inside, a secret and links out of it."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "tool").write_bytes(tool.read_bytes())
    (root / "data.txt").write_text("in\n")
    (tmp_path / "secret.txt").write_text("secret\n")
    (root / "out-link").symlink_to(tmp_path / "secret.txt")
    (root / "dir-link").symlink_to(tmp_path)
    (root / "in-link").symlink_to(root / "data.txt")
    return root


ESCAPES = [
    {"program": "../secret.txt"},
    {"program": "/bin/true"},
    {"program": "dir-link/secret.txt"},
    {"stdin": {"file": "/etc/passwd"}},
    {"stdin": {"file": "out-link"}},
    {"expect": {"stdout": {"file": "sub/../../secret.txt"}}},
    {"files": {"/x": "out-link"}},
    {"files": {"/x": "dir-link/secret.txt"}},
    {"mounts": ["/:/host"]},
    {"mounts": ["..:/up"]},
    {"mounts": ["dir-link:/up:ro"]},
    {"options": ["--mount", "/:/host"]},
    {"options": ["--mount=/:/host"]},
    {"options": ["--sysroot", "/"]},
]


@pytest.mark.parametrize("fields", ESCAPES, ids=lambda f: json.dumps(f))
def test_manifest_root_refuses_escapes(confined: Path, fields: dict) -> None:
    write_jsonl(confined / "m.jsonl", [{"id": "a", "program": "tool", **fields}])
    with pytest.raises(ManifestError, match="outside --manifest-root|not allowed under"):
        parse_manifest(str(confined / "m.jsonl"), root=str(confined))
    parse_manifest(str(confined / "m.jsonl"))  # unconfined, a manifest is trusted as a command line


def test_manifest_root_accepts_what_is_inside(confined: Path) -> None:
    """Paths inside DIR (a symlink to a file inside included) are taken, resolved."""
    write_jsonl(confined / "m.jsonl", [{"id": "a", "program": "tool", "stdin": {"file": "in-link"},
                                        "files": {"/d": "sub/../data.txt"}, "mounts": ["sub:/s:ro"]}])
    entry, = parse_manifest(str(confined / "m.jsonl"), root=str(confined))
    real = os.path.realpath(confined)
    assert entry.program == f"{real}/tool" and entry.stdin.path == f"{real}/data.txt"
    assert entry.files == (("/d", f"{real}/data.txt"),) and f"{real}/sub:/s:ro" in entry.options


@pytest.mark.parametrize("line", [
    '{"id": "a"}',  # no passed: a KeyError after the summary before
    '{"id": "a", "passed": "yes", "failure": null, "status": 0, "timing": null}',
    '{"id": "a", "passed": true, "failure": null, "status": "0", "timing": null}',
    '{"id": "a", "passed": true, "failure": null, "status": 0, "timing": {"wall_s": "1"}}',
    '{"id": 3, "passed": true, "failure": null, "status": 0, "timing": null}',
])
def test_records_of_the_wrong_shape(tmp_path: Path, line: str) -> None:
    (tmp_path / "out.jsonl").write_text(line + "\n")
    with pytest.raises(RecordsError, match="out.jsonl:1: not a batch record"):
        load_records(str(tmp_path / "out.jsonl"))


class Scripted:
    """A backend that yields fixed records in a fixed order, then (optionally) Ctrl-C."""

    def __init__(self, order: list[str], interrupt: bool) -> None:
        self.order, self.interrupt = order, interrupt

    def run(self, entries: list) -> Iterator[dict]:
        wanted = {e.id for e in entries}
        for entry_id in self.order:
            if entry_id in wanted:
                yield {"id": entry_id, "passed": True, "failure": None, "status": 0, "timing": None}
        if self.interrupt:
            raise KeyboardInterrupt


def test_deterministic_resume_writes_the_uninterrupted_order(tmp_path: Path, tool: Path) -> None:
    """e2 finishes before e1, then Ctrl-C: e2 is dropped (it runs again on resume), so the
    resumed file is line for line the uninterrupted one."""
    entries = parse_manifest(str(write_jsonl(tmp_path / "m.jsonl", [{"id": f"e{i}", "program": str(tool)}
                                                                    for i in range(4)])))
    cut = run_batch(entries, str(tmp_path / "a.jsonl"), Scripted(["e0", "e2"], True), ordered=True)
    assert cut.interrupted and list(cut.records) == ["e0"] and cut.ran == 1
    run_batch(entries, str(tmp_path / "a.jsonl"), Scripted(["e3", "e2", "e1"], False), ordered=True)
    run_batch(entries, str(tmp_path / "b.jsonl"), Scripted(["e1", "e3", "e0", "e2"], False), ordered=True)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert [json.loads(line)["id"] for line in (tmp_path / "a.jsonl").read_text().splitlines()] == \
           ["e0", "e1", "e2", "e3"]

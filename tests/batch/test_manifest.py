"""Manifest parsing: what an entry becomes, and every kind of mistake said in one line
naming file:line, with exit status 2 before anything runs."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from sandbox.batch.manifest import ManifestError, parse_manifest
from tests.batch.conftest import batch, write_jsonl


def test_jsonl_entry_resolved(tmp_path: Path, tool: Path) -> None:
    (tmp_path / "in.txt").write_bytes(b"1 2 3\n")
    (tmp_path / "want.txt").write_bytes(b"6\n")
    manifest = write_jsonl(tmp_path / "m.jsonl", [
        {"defaults": {"limits": {"timeout": 3, "memory": "64M"}, "env": {"A": "1"}}},
        {"id": "sum", "program": str(tool), "args": ["sum"], "stdin": {"file": "in.txt"},
         "env": {"B": "2"}, "limits": {"instructions": 1000},
         "expect": {"stdout": {"file": "want.txt"}, "status": 0}},
    ])
    (entry,) = parse_manifest(str(manifest))
    assert entry.id == "sum" and entry.args == ("sum",) and entry.timeout == 3
    assert entry.stdin.path == str(tmp_path / "in.txt")
    assert entry.expect_stdout == (hashlib.sha256(b"6\n").hexdigest(), 2) and entry.expect_status == 0
    assert entry.options == ("--timeout", "3", "--memory", "64M", "--max-instructions", "1000",
                             "--env", "A=1", "--env", "B=2")
    assert entry.needs() == (str(tool), str(tmp_path / "in.txt"))


def test_toml_entry_with_inline_inputs(tmp_path: Path, tool: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "tool").write_bytes(tool.read_bytes())
    (tmp_path / "data").mkdir()
    (tmp_path / "m.toml").write_text(f"""
[defaults]
limits = {{ timeout = 9 }}

[[run]]
id = "a"
program = "bin/tool"
stdin = "text in"
expect = {{ stdout = {{ base64 = "{base64.b64encode(b'out').decode()}" }} }}
mounts = ["data:/data:ro"]
files = {{ "/etc/x" = "bin/tool" }}
options = ["--no-system"]
""")
    (entry,) = parse_manifest(str(tmp_path / "m.toml"), deterministic=True)
    assert entry.where.endswith("m.toml:5") and entry.program == str(tmp_path / "bin" / "tool")
    assert entry.stdin.data == b"text in" and entry.expect_stdout[1] == 3
    assert f"{tmp_path}/data:/data:ro" in entry.options and "--deterministic" in entry.options
    assert entry.files == (("/etc/x", str(tmp_path / "bin" / "tool")),)


BAD_JSONL = [
    ('{"id": "a", "program": "TOOL"', "m.jsonl:1: not JSON"),
    ('["a"]', "m.jsonl:1: expected a JSON object, not list"),
    ('{"program": "TOOL"}', "m.jsonl:1: every entry needs an id"),
    ('{"id": "a\\nb", "program": "TOOL"}', "m.jsonl:1: id 'a\\nb' has control characters"),
    ('{"id": "a", "program": "TOOL"}\n{"id": "a", "program": "TOOL"}', "m.jsonl:2: id 'a' is used twice"),
    ('{"id": "a", "program": "nope"}', "m.jsonl:1: program nope: no such file"),
    ('{"id": "a", "program": "."}', "m.jsonl:1: program .: not a regular file"),
    ('{"id": "a", "program": "TOOL", "argz": []}', "m.jsonl:1: unknown key 'argz'"),
    ('{"id": "a", "program": "TOOL", "args": "x"}', "m.jsonl:1: args must be a list of strings"),
    ('{"id": "a", "program": "TOOL", "limits": {"memory": "12Q"}}', "m.jsonl:1: Invalid value for '--memory'"),
    ('{"id": "a", "program": "TOOL", "limits": {"timeout": -1}}', "m.jsonl:1: limit timeout must be seconds"),
    ('{"id": "a", "program": "TOOL", "limits": {"speed": 1}}', "m.jsonl:1: unknown limit 'speed'"),
    ('{"id": "a", "program": "TOOL", "limits": {"cpus": true}}', "m.jsonl:1: limit cpus must be a number"),
    ('{"id": "a", "program": "TOOL", "limits": {"max_processes": 0}}', "m.jsonl:1: Invalid value for '--max-proc"),
    ('{"id": "a", "program": "TOOL", "stdin": {"base64": "!!"}}', "m.jsonl:1: stdin.base64 is not base64"),
    ('{"id": "a", "program": "TOOL", "stdin": {"file": "x", "text": "y"}}', "m.jsonl:1: stdin must be a string or"),
    ('{"id": "a", "program": "TOOL", "expect": {"status": 300}}', "m.jsonl:1: expect.status must be an exit status"),
    ('{"id": "a", "program": "TOOL", "expect": {"stderr": ""}}', "m.jsonl:1: unknown key 'stderr' in expect"),
    ('{"id": "a", "program": "TOOL", "mounts": ["nowhere:/x"]}', "m.jsonl:1: Invalid value for '--mount'"),
    ('{"id": "a", "program": "TOOL", "options": ["--stats-json=x"]}', "m.jsonl:1: option --stats-json is not allowed"),
    ('{"id": "a", "program": "TOOL", "options": ["--root", "/"]}', "m.jsonl:1: option --root is not allowed"),
    ('{"id": "a", "program": "TOOL", "options": ["--frobnicate"]}', "m.jsonl:1: No such option"),
    ('{"id": "a", "program": "TOOL", "env": ["NOEQUALS"]}', "m.jsonl:1: env entries must be K=V"),
    ('{"id": "a", "program": "TOOL", "files": {"rel": "TOOL"}}', "m.jsonl:1: files: 'rel' is not an absolute"),
    ('\n\n{"defaults": 3}', "m.jsonl:3: defaults must be a table"),
]


BAD_TOML = [
    ("[[run]]\nid = 'a'\nprogram = \n", "m.toml:3: not TOML"),
    ("[runs]\n", "m.toml:1: unknown top-level key 'runs'"),
    ("run = 3\n", "m.toml:1: run must be an array of tables"),
    ("[[run]]\nid = 'a'\nprogram = 'TOOL'\n\n[[run]]\nprogram = 'TOOL'\n", "m.toml:5: every entry needs an id"),
]


@pytest.mark.parametrize(("name", "text", "message"),
                         [("m.jsonl", *case) for case in BAD_JSONL] + [("m.toml", *case) for case in BAD_TOML])
def test_a_bad_manifest_is_one_line_naming_where(tmp_path: Path, tool: Path, name: str, text: str,
                                                 message: str) -> None:
    (tmp_path / name).write_text(text.replace("TOOL", str(tool)))
    with pytest.raises(ManifestError) as caught:
        parse_manifest(str(tmp_path / name))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_cli_says_one_line_and_exits_2(tmp_path: Path, tool: Path) -> None:
    manifest = write_jsonl(tmp_path / "m.jsonl", [{"id": "a", "program": str(tool)}, {"id": "b"}])
    result = batch(manifest, "-o", tmp_path / "out.jsonl")
    assert result.returncode == 2 and result.stdout == b""
    assert result.stderr.decode().splitlines() == [
        f"sandbox batch: {manifest}:2: program must be a file name (a non-empty string)"]
    assert not (tmp_path / "out.jsonl").exists()


def test_cli_usage_errors(tmp_path: Path, tool: Path) -> None:
    manifest = write_jsonl(tmp_path / "m.jsonl", [{"id": "a", "program": str(tool)}])
    for args, where in ((["-o", tmp_path], "is a directory"), (["-o", "x", "-j", "0"], "'-j'"),
                        ([], "Missing option '-o'")):
        result = batch(manifest, *args)
        assert result.returncode == 2 and where in result.stderr.decode(), result.stderr
        assert len(result.stderr.decode().splitlines()) == 1


def test_records_file_that_is_not_ours(tmp_path: Path, tool: Path) -> None:
    manifest = write_jsonl(tmp_path / "m.jsonl", [{"id": "a", "program": str(tool)}])
    (tmp_path / "out.jsonl").write_text("hello\n{}\n")
    result = batch(manifest, "-o", tmp_path / "out.jsonl")
    assert result.returncode == 2
    assert result.stderr.decode() == f"sandbox batch: {tmp_path}/out.jsonl:1: not a batch record; use another -o " \
                                     f"or remove the file\n"


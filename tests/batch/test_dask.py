"""`--dask`: the same runs on a real `distributed.LocalCluster` (two worker processes)
give the same records as the local pool, timing apart; files reach the workers as bytes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.batch.manifest import parse_manifest
from sandbox.batch.pool import LocalPool, run_batch
from sandbox.batch.record import without_timing
from tests.batch.conftest import batch, read_records, write_jsonl
from tests.conftest import run_sandbox

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    """One LocalCluster for the module (its start costs seconds)."""
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address="127.0.0.1:0") as c:  # None would take port 8787
        yield c


def mixed_manifest(where: Path, tool: Path) -> Path:
    (where / "in.txt").write_text("5 6 7\n")
    (where / "data.txt").write_text("shipped\n")
    return write_jsonl(where / "m.jsonl", [
        {"id": "sum", "program": str(tool), "args": ["sum"], "stdin": {"file": "in.txt"}, "expect": {"stdout": "18\n"}},
        {"id": "inline", "program": str(tool), "args": ["cat"], "stdin": {"base64": "AAEC"}},
        {"id": "files", "program": str(tool), "args": ["file", "/d"], "files": {"/d": "data.txt"}},
        {"id": "random", "program": str(tool), "args": ["random"]},
        {"id": "crash", "program": str(tool), "args": ["crash"]},
        {"id": "loop", "program": str(tool), "args": ["loop"], "limits": {"timeout": 0.5}},
        {"id": "wrong", "program": str(tool), "args": ["exit", "1"], "expect": {"status": 0}},
    ])


def test_dask_equals_local_pool(tmp_path: Path, tool: Path, cluster: object) -> None:
    from sandbox.batch.dask_backend import DaskPool

    entries = parse_manifest(str(mixed_manifest(tmp_path, tool)), deterministic=True)
    with distributed.Client(cluster) as client:
        remote = run_batch(entries, str(tmp_path / "dask.jsonl"), DaskPool(client), ordered=True)
    local = run_batch(entries, str(tmp_path / "local.jsonl"), LocalPool(2), ordered=True)
    assert remote.ran == local.ran == len(entries)
    assert [without_timing(r) for r in read_records(tmp_path / "dask.jsonl").values()] == \
           [without_timing(r) for r in read_records(tmp_path / "local.jsonl").values()]
    assert read_records(tmp_path / "dask.jsonl")["files"]["stdout"]["head"] == "shipped\n"
    assert read_records(tmp_path / "dask.jsonl")["loop"]["failure"] == "timeout"


def test_dask_command_line(tmp_path: Path, tool: Path, cluster: object) -> None:
    """`sandbox batch --dask ADDRESS` connects to the scheduler and runs there."""
    manifest = write_jsonl(tmp_path / "m.jsonl", [
        {"id": f"e{i}", "program": str(tool), "args": ["echo", str(i)], "expect": {"stdout": f"{i}\n"}}
        for i in range(2)])
    out = tmp_path / "out.jsonl"
    result = batch(manifest, "-o", out, "--dask", cluster.scheduler_address)
    assert result.returncode == 0, result.stderr
    assert sorted(read_records(out)) == ["e0", "e1"]


def test_dask_unreachable(tmp_path: Path, tool: Path) -> None:
    manifest = write_jsonl(tmp_path / "m.jsonl", [{"id": "a", "program": str(tool)}])
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "1s"}
    result = run_sandbox(["batch", str(manifest), "-o", str(tmp_path / "out.jsonl"), "--dask", "tcp://127.0.0.1:9"],
                         env=env)
    assert result.returncode == 2 and result.stderr.startswith(b"sandbox batch: --dask tcp://127.0.0.1:9: cannot")
    assert len(result.stderr.splitlines()) == 1


def test_cluster_dashboard_is_not_on_8787(cluster: object) -> None:
    """dashboard_address=None would still take port 8787; the tests ask for a free one."""
    assert not cluster.dashboard_link.split("/")[2].endswith(":8787")


def test_dask_unreachable_is_said_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT the wait is CONNECT_TIMEOUT, not
    Dask's 30 s, and the one line names the setting that waits longer."""
    from sandbox.batch import dask_backend
    from sandbox.batch.command import _dask

    monkeypatch.delenv(dask_backend.CONNECT_SETTING, raising=False)
    monkeypatch.setattr(dask_backend, "CONNECT_TIMEOUT", 1)
    with pytest.raises(OSError) as caught:
        _dask("tcp://127.0.0.1:9")
    assert "cannot reach the scheduler" in str(caught.value) and dask_backend.CONNECT_SETTING in str(caught.value)
    assert "\n" not in str(caught.value)


def test_dask_ships_bounded_files(tmp_path: Path, tool: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file over MAX_SHIPPED is refused before anything is sent, naming `mounts`."""
    from sandbox.batch import dask_backend

    monkeypatch.setattr(dask_backend, "MAX_SHIPPED", 1000)
    entries = parse_manifest(str(write_jsonl(tmp_path / "m.jsonl", [{"id": "a", "program": str(tool)}])))
    with pytest.raises(OSError, match="over the 0 MiB --dask ships as bytes; put it on a path every worker sees"):
        dask_backend.DaskPool.check(object.__new__(dask_backend.DaskPool), entries)

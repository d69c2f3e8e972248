"""Snapshots bring files back (sandbox/kernel/fsjournal.py): a guest that writes, truncates,
unlinks, renames, creates and maps files after the snapshot finds the old ones after a
restore, on the host too; restore cycles leak no host files or descriptors; a guest past the
snapshots' file budget gets EDQUOT and the host disk stays bounded. The guest is fsguest.c,
next to this file."""

from __future__ import annotations

import gc
import os
import stat
import subprocess
from pathlib import Path

import pytest

from sandbox.api import Sandbox
from sandbox.mm.translate import elf_symbol
from tests.conftest import ROOT, require_tool, run_native

SOURCE = ROOT / "tests" / "snapshot" / "fsguest.c"
#: The files the guest finds in its directory: name -> contents (a str: a symlink's text;
#: None: an empty directory; a dict: a directory's files).
TEMPLATE = {
    "keep.txt": b"keep: the original", "keep2.txt": b"keep2: replaced by a rename",
    "over.txt": b"over: renamed over keep2", "trunc.txt": b"trunc: to be truncated",
    "grow.txt": b"grow", "gone.txt": b"gone: to be unlinked", "old.txt": b"old: to be renamed",
    "mode.txt": b"mode 0644", "shared.txt": b"s" * 4096, "link": "keep.txt", "empty": None,
    "sub": {"inner.txt": b"inner"},
}


@pytest.fixture(scope="module")
def prog(tmp_path_factory: pytest.TempPathFactory) -> str:
    gcc = require_tool("gcc")
    out = tmp_path_factory.mktemp("fsguest") / "fsguest"
    subprocess.run([gcc, "-static", "-O2", "-w", "-o", str(out), str(SOURCE)], check=True)
    return str(out)


def make_tree(where: Path, template: dict = TEMPLATE) -> Path:
    where.mkdir()
    for name, content in template.items():
        path = where / name
        if isinstance(content, str):
            path.symlink_to(content)
        elif content is None:
            path.mkdir()
        elif isinstance(content, dict):
            make_tree(path, content)
        else:
            path.write_bytes(content)
            path.chmod(0o644)
    return where


def tree(where: Path) -> dict[str, tuple]:
    """Every entry under `where`: its kind, mode and contents (a symlink's text)."""
    found = {}
    for root, dirs, files in os.walk(where):
        for name in dirs + files:
            path = Path(root, name)
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                found[str(path.relative_to(where))] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                found[str(path.relative_to(where))] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                found[str(path.relative_to(where))] = ("file", stat.S_IMODE(st.st_mode), path.read_bytes())
    return found


def at_checkpoint(data: Path) -> dict[str, tuple]:
    """The tree as the guest left it at checkpoint(): its shared mapping's first byte
    written (the snapshot stores a shared mapping's dirty pages, as an msync would)."""
    found = tree(data)
    found["shared.txt"] = ("file", 0o644, b"M" + TEMPLATE["shared.txt"][1:])
    return found


def open_fds() -> int:
    """This process's descriptors, once garbage (earlier tests' sandboxes) is collected."""
    gc.collect()
    return len(os.listdir("/proc/self/fd"))


def first_run(sb: Sandbox, prog: str, argv: list[str]) -> tuple[object, object]:
    """Run `argv`, snapshotting the first time checkpoint() is entered: (snapshot, result)."""
    address = elf_symbol(prog, "checkpoint")
    snaps: list = []
    handle = sb.hook_code(address, address + 1, lambda _a, _s: snaps or snaps.append(sb.snapshot()))
    result = sb.run(prog, argv, capture=True)
    sb.unhook_code(handle)
    return snaps[0], result


def test_restored_files_read_as_at_the_snapshot(prog: str, tmp_path: Path) -> None:
    """The first run prints the files as natively; each run from the snapshot prints the
    same again, the host directory is as it was, and the guest's /tmp too."""
    native_dir = make_tree(tmp_path / "native")
    (tmp_path / "scratch").mkdir()
    native = run_native([prog, "all", str(native_dir), str(tmp_path / "scratch")])
    data = make_tree(tmp_path / "data")
    before = at_checkpoint(data)
    with Sandbox(memory=64 << 20, mounts=[f"{tmp_path}:{tmp_path}:rw"]) as sb:
        snap, first = first_run(sb, prog, [prog, "all", str(data), "/tmp"])
        assert (first.stdout, first.status) == (native.stdout.replace(b"native", b"data"), native.returncode)
        assert b"changed\n" in first.stdout and tree(data) != before
        for _ in range(3):
            again = sb.run_from(snap)
            assert (again.stdout, again.status) == (first.stdout, first.status)
        sb.restore(snap)
        assert tree(data) == before
        sb.kernel.check_invariants()
        snap.release()


def test_ten_restore_cycles_leak_nothing(prog: str, tmp_path: Path) -> None:
    """After each cycle the host directory is the snapshot's, no file is left aside, and
    the journal holds the same copies and descriptors; release gives them all back."""
    data = make_tree(tmp_path / "data")
    before = at_checkpoint(data)
    with Sandbox(memory=64 << 20, mounts=[f"{tmp_path}:{tmp_path}:rw"]) as sb:
        warm = make_tree(tmp_path / "warm")  # a run without snapshots: what the view keeps open
        sb.run(prog, [prog, "all", str(warm), "/tmp"], capture=True)
        sb.release()
        fds_before = open_fds()
        snap, first = first_run(sb, prog, [prog, "all", str(data), "/tmp"])
        sb.restore(snap)
        journal = snap.journal
        held = (open_fds(), journal.held_files(), sorted(os.listdir(journal.dir)), journal.charged)
        for _ in range(10):
            assert sb.run_from(snap).stdout == first.stdout
            sb.restore(snap)
            assert tree(data) == before
            assert (open_fds(), journal.held_files(), sorted(os.listdir(journal.dir)), journal.charged) == held
        directory = journal.dir
        snap.release()
        assert not os.path.exists(directory)
        assert sb._keeper.file_budget.used == 0
        sb.release()
        assert open_fds() == fds_before


def test_past_the_budget_the_guest_gets_edquot(prog: str, tmp_path: Path) -> None:
    """A 4 MiB file the guest may write, a 1 MiB budget (--disk): its write and its O_TRUNC
    open after the snapshot fail with EDQUOT and change nothing; an entry within the budget
    is still recorded, and restore removes it."""
    data = make_tree(tmp_path / "data", {"big.bin": os.urandom(4 << 20)})
    before = tree(data)
    with Sandbox(memory=64 << 20, disk=1 << 20, mounts=[f"{tmp_path}:{tmp_path}:rw"]) as sb:
        snap, first = first_run(sb, prog, [prog, "budget", str(data), "/tmp"])
        assert first.stdout.startswith(b"write -1 errno 122\nopen -1 errno 122\n")
        assert b"small.txt 5" in first.stdout
        assert tree(data)["big.bin"] == before["big.bin"]
        sb.restore(snap)
        assert tree(data) == before
        assert os.stat(snap.journal.dir).st_nlink == 2 and not os.listdir(snap.journal.dir)
        assert sb._keeper.file_budget.used <= 1 << 20


def test_thousands_of_new_files_cost_records_only(prog: str, tmp_path: Path) -> None:
    """3000 files made after the snapshot, in a directory then moved: each is a small
    record (no copy, no descriptor), and a restore removes them all."""
    data = make_tree(tmp_path / "data")
    before = tree(data)
    with Sandbox(memory=64 << 20, mounts=[f"{tmp_path}:{tmp_path}:rw"]) as sb:
        snap, first = first_run(sb, prog, [prog, "many", str(data), "/tmp"])
        assert first.stdout == b"renamed 0\n" and len(tree(data)) == len(before) + 3001
        sb.restore(snap)
        assert tree(data) == before
        assert snap.journal.held_files() == 0
        assert snap.journal.charged < 3002 * 400
        snap.release()


def test_two_snapshots_restore_each_other(prog: str, tmp_path: Path) -> None:
    """A snapshot before the guest's changes and one after: restoring either, in any
    order, gives that snapshot's files (a restore's own changes are the other's to record)."""
    data = make_tree(tmp_path / "data")
    before = at_checkpoint(data)
    with Sandbox(memory=64 << 20, mounts=[f"{tmp_path}:{tmp_path}:rw"]) as sb:
        early, _ = first_run(sb, prog, [prog, "all", str(data), "/tmp"])
        exit_group: list = []
        sb.hook_syscall("exit_group", on_enter=lambda _c: exit_group or exit_group.append(sb.snapshot()))
        sb.run_from(early)
        sb.unhook_syscall("exit_group")
        late = exit_group[0]
        after = tree(data)
        assert after != before
        for snap, want in [(early, before), (late, after), (early, before), (late, after)]:
            sb.restore(snap)
            assert tree(data) == want
        late.release()
        early.release()


def test_a_journal_released_twice_leaves_nothing() -> None:
    """Release removes the journal's directory, once; a second release is harmless."""
    from sandbox.kernel.accounting import Budget
    from sandbox.kernel.fsjournal import FileJournal

    journal = FileJournal(Budget("copies", 1 << 20, 122), Budget("files", 10, 23))
    path = journal.dir
    journal.release()
    journal.release()
    assert not os.path.exists(path)

"""Start-up, round two (issue 17: "start-up <= 25 ms"): what a plain run no longer imports,
and the pieces that replaced those imports.

- The private root is made by `hostfs.make_private_dir` (os.mkdir 0700 with a random name),
  not `tempfile.mkdtemp`, whose import pulls in shutil (with bz2, lzma, zlib, fnmatch) and
  random.
- The VMA tree is a sorted list of starts searched with bisect, not sortedcontainers (whose
  sortedlist imports traceback, linecache, tokenize and textwrap).
- `random` is imported only for --deterministic.
"""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path

import pytest

from sandbox import hostfs
from sandbox.mm.vma import PROT_READ, PROT_WRITE, Region, RegionOverlap, VmaTree
from tests.conftest import guest, run_sandbox
from tests.startup.test_lazy_syscalls import modules_after_run

P = 4096

#: Standard-library and third-party modules a plain run of hello must not load, and why
#: each was there: tempfile (the private root) with what it imports, sortedcontainers (the
#: VMA tree) with what its sortedlist imports, random (only --deterministic needs it), and
#: hashlib, pathlib, uuid, dataclasses and click, left out in earlier rounds. (json is still
#: imported as the run ends: the stats' engine description reads build/engine/engine.json.)
NOT_FOR_A_PLAIN_RUN = {
    "tempfile", "shutil", "bz2", "lzma", "fnmatch", "random",
    "sortedcontainers", "traceback", "linecache", "tokenize", "textwrap",
    "hashlib", "pathlib", "uuid", "dataclasses", "click",
    "sandbox.mm.dump",  # --dump-pagetables only
}


def test_plain_hello_leaves_out_the_modules_start_up_no_longer_needs(tmp_path: Path) -> None:
    result, modules = modules_after_run(tmp_path, "run", guest("hello"))
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.startswith(b"Hello")
    assert "sandbox.mm.vma" in modules and "sandbox.hostfs" in modules
    assert not modules & NOT_FOR_A_PLAIN_RUN, sorted(modules & NOT_FOR_A_PLAIN_RUN)


def test_deterministic_runs_still_draw_the_same_bytes() -> None:
    """--deterministic imports random on demand; two runs read the same /dev/urandom bytes."""
    argv = ["run", "--deterministic", "/bin/busybox", "sh", "-c", "od -An -tx1 -N16 /dev/urandom"]
    first, second = run_sandbox(argv), run_sandbox(argv)
    assert first.returncode == 0, first.stderr.decode()
    assert first.stdout == second.stdout and len(first.stdout.split()) == 16


# -- hostfs.make_private_dir ------------------------------------------------------------------


@pytest.fixture
def fresh_tempdir(monkeypatch: pytest.MonkeyPatch) -> None:
    """tempfile's cached choice (pytest's own use of tempfile fills it) cleared, as in a
    program that never asked tempfile: the environment decides."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)


@pytest.mark.usefixtures("fresh_tempdir")
def test_private_dir_is_new_owner_only_and_in_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    path = hostfs.make_private_dir("sandbox-root-")
    assert os.path.dirname(path) == str(tmp_path)
    name = os.path.basename(path)
    assert name.startswith("sandbox-root-") and len(name) == len("sandbox-root-") + 8
    st = os.lstat(path)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700 & ~_umask()
    assert os.listdir(path) == []
    assert hostfs.make_private_dir("sandbox-root-") != path  # a fresh name each time


@pytest.mark.usefixtures("fresh_tempdir")
def test_private_dir_falls_back_as_tempfile_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """$TMPDIR and $TEMP naming no directory: the next candidate, $TMP, takes it."""
    monkeypatch.setenv("TMPDIR", str(tmp_path / "missing"))
    monkeypatch.setenv("TEMP", str(tmp_path / "also-missing"))
    monkeypatch.setenv("TMP", str(tmp_path))
    assert os.path.dirname(hostfs.make_private_dir("x-")) == str(tmp_path)


@pytest.mark.usefixtures("fresh_tempdir")
def test_a_taken_name_is_never_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A directory, a file or a symlink already at the drawn name (another process's, or
    one planted to redirect the sandbox) is left alone: another name is drawn."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    (tmp_path / "p-aaaaaaaa").mkdir()
    (tmp_path / "p-bbbbbbbb").write_text("someone's")
    (tmp_path / "p-cccccccc").symlink_to("/etc")
    names = iter(["aaaaaaaa", "bbbbbbbb", "cccccccc", "dddddddd"])
    monkeypatch.setattr(hostfs, "_random_name", lambda: next(names))
    assert hostfs.make_private_dir("p-") == str(tmp_path / "p-dddddddd")
    assert (tmp_path / "p-bbbbbbbb").read_text() == "someone's" and os.readlink(tmp_path / "p-cccccccc") == "/etc"


def test_no_usable_directory_is_file_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostfs, "_temp_dir_candidates", lambda: iter([str(tmp_path / "gone")]))
    with pytest.raises(FileNotFoundError):
        hostfs.make_private_dir("x-")


def test_random_names_use_the_whole_alphabet() -> None:
    names = {hostfs._random_name() for _ in range(200)}
    assert len(names) == 200 and all(len(n) == 8 for n in names)
    assert set("".join(names)) == set(hostfs.NAME_ALPHABET)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- the VMA tree without sortedcontainers ---------------------------------------------------


def test_vma_tree_of_thousands_of_regions_against_a_model() -> None:
    """4,000 one-page regions with holes between them, inserted in random order: every
    lookup agrees with a plain list, a copy is independent, and removal empties the tree."""
    rng = random.Random(17)
    starts = [(2 * i + 1) * P for i in range(4000)]
    order = starts[:]
    rng.shuffle(order)
    tree = VmaTree()
    for start in order:
        tree.insert(Region(start, start + P, PROT_READ if start % (4 * P) else PROT_READ | PROT_WRITE))
    tree.check_invariants()
    assert [r.start for r in tree] == starts and len(tree) == len(starts)
    for va in rng.sample(range(0, 8002 * P, 512), 2000):
        inside = (va // P) % 2 == 1 and va < 8001 * P
        assert (tree.find(va) is not None) == inside
        after = [s for s in starts if s >= va]
        assert (tree.next_after(va).start if after else None) == (after[0] if after else None)
        before = [s for s in starts if s < va]
        assert (tree.prev_before(va).start if before else None) == (before[-1] if before else None)
        assert [r.start for r in tree.overlapping(va, va + 3 * P)] == [s for s in starts if va - P < s < va + 3 * P]
    twin = tree.copy()
    for start in order:
        assert [r.start for r in tree.remove_range(start, start + P)] == [start]
    assert len(tree) == 0 and list(tree) == [] and tree.find(P) is None
    twin.check_invariants()
    assert len(twin) == len(starts)


def test_vma_tree_resize_into_a_neighbour_changes_nothing() -> None:
    tree = VmaTree()
    low, high = Region(P, 3 * P, PROT_READ), Region(4 * P, 5 * P, PROT_READ)
    tree.insert(low)
    tree.insert(high)
    with pytest.raises(RegionOverlap):
        tree.resize(low, P, 5 * P)
    assert list(tree) == [low, high] and tree.by_start(P) is low
    tree.check_invariants()
    grown = tree.resize(low, P, 4 * P)
    assert tree.coalesce() == 1 and [(r.start, r.end) for r in tree] == [(P, 5 * P)] and grown.end == 4 * P
    tree.check_invariants()


def test_private_dir_honours_tempfiles_choice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A program that set tempfile.tempdir (or let gettempdir() settle it) gets its private
    roots there, as mkdtemp would put them."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("TMPDIR", "/nonexistent")
    made = hostfs.make_private_dir("p-")
    assert os.path.dirname(made) == str(tmp_path)
    os.rmdir(made)

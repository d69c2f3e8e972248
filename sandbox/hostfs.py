"""Removing a host directory tree the sandbox made, safely and at any depth (and making
its private directories: `make_private_dir`, and sweeping those killed sandboxes left).

The private root is the guest's to shape: it can be deeper than any path (a tree built by
renames has no PATH_MAX), hold directories the guest made unreadable (mode 000) or
unwritable, and symlinks whose text names host files. `shutil.rmtree` recurses once per
level (RecursionError past ~1000) and gives up on mode 000. `remove_tree` instead:

- walks with an explicit stack of names, never with recursion or path strings: every step is
  one component relative to an open directory descriptor (openat(2), unlinkat(2), and
  `..` to climb back, checked against the device and inode recorded on the way down);
- holds one directory descriptor at a time, so depth never runs into RLIMIT_NOFILE;
- never follows a symlink (O_NOFOLLOW; a symlink is unlinked, as any non-directory) and never
  leaves the tree's file system (a directory on another device is not entered);
- makes a directory the guest chmod-ed to 000 or 0500 searchable and writable first
  (fchmodat(2) with AT_SYMLINK_NOFOLLOW, fchmod(2));
- removes everything it can, then raises the first error (OSError) it met.

A sandbox killed by SIGKILL (or the OOM killer, or a power cut) cannot remove what it made.
So every directory `make_private_dir` makes is locked (flock(2)) by its maker for as long
as it is in use, and the first `make_private_dir` of a process sweeps the temporary
directory once: a directory named as sandboxes name theirs, owned by the same user,
unchanged for `LEFTOVER_AGE` and locked by no one is a leftover, removed as above (at most
`SWEEP_LIMIT` per sweep). A kept root (--keep-root) is renamed out of the swept names.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import sys
import time
from collections.abc import Iterator

#: How a directory in the tree is opened: never through a symlink, never inherited.
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: What the owner needs to list a directory and remove its entries.
OWNER_ALL = stat.S_IRWXU
#: The errors of opening a name that is not (any more) a directory: a symlink (ELOOP, with
#: O_NOFOLLOW), another kind of file (ENOTDIR).
NOT_A_DIRECTORY = (errno.ELOOP, errno.ENOTDIR)
#: The environment variables naming the temporary directory, then the fixed places tried,
#: as tempfile._candidate_tempdir_list() lists them on POSIX.
TEMP_DIR_VARIABLES = ("TMPDIR", "TEMP", "TMP")
TEMP_DIR_DEFAULTS = ("/tmp", "/var/tmp", "/usr/tmp")
#: Names drawn in one directory before it is given up (tempfile's TMP_MAX is 10,000; with 40
#: random bits a clash is already one in a trillion per existing entry).
TEMP_NAME_ATTEMPTS = 100
#: The characters of a drawn name: 32, so a random byte maps onto them evenly.
NAME_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
#: The prefixes of the directories sandboxes make with `make_private_dir`, which a sweep
#: may remove once their makers are gone.
SWEPT_PREFIXES = ("sandbox-root-", "sandbox-etc-", "sandbox-snapshot-")
#: What the random part of a swept name may hold: NAME_ALPHABET's, or tempfile.mkdtemp's
#: (which earlier versions used), eight characters either way.
SWEPT_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")
RANDOM_NAME_LENGTH = 8
#: Seconds a leftover must have been unchanged: its maker locks it a moment after mkdir(2),
#: and a sweep must not take a directory in that moment for a dead sandbox's.
LEFTOVER_AGE = 60.0
#: The most leftovers one sweep removes, and the most candidates it looks at closely (an
#: lstat from the listing, then an open), so that a start-up pays for a few at most however
#: many look-alike names another user put in a shared /tmp.
SWEEP_LIMIT = 8
SWEEP_LOOKS = 64

#: The locks this process holds on the directories it made and still uses: path -> the
#: descriptor holding the flock (closing it releases the lock).
_held: dict[str, int] = {}
#: The temporary directories this process has swept (once each).
_swept: set[str] = set()


class CleanupError(Exception):
    """Something the sandbox made on the host could not be removed (one line, for stderr)."""


class _Level:
    """One directory on the way down: its name in its parent, its identity, and the names
    of its subdirectories still to remove."""

    __slots__ = ("name", "identity", "subdirs")

    def __init__(self, name: str, identity: tuple[int, int], subdirs: list[str]) -> None:
        self.name = name
        self.identity = identity
        self.subdirs = subdirs


def make_private_dir(prefix: str) -> str:
    """A new directory only its owner can use (mode 0700), `prefix` and eight random
    characters in the host's temporary directory, as `tempfile.mkdtemp(prefix=prefix)` makes
    it and without its imports (shutil, random: ~2.5 ms of a run's start-up).

    The temporary directory is tempfile's: the first of $TMPDIR, $TEMP, $TMP, /tmp, /var/tmp,
    /usr/tmp and the working directory where the directory can be made. mkdir(2) is what
    makes it private: it fails with EEXIST on any existing name (another process's
    directory, or a symlink planted there, which it never follows), and a fresh name is
    drawn instead. Raises FileNotFoundError when no candidate directory can take it, as
    tempfile does.
    """
    for parent in _temp_dir_candidates():
        for _ in range(TEMP_NAME_ATTEMPTS):
            path = os.path.join(parent, prefix + _random_name())
            try:
                os.mkdir(path, OWNER_ALL)
            except FileExistsError:
                continue  # taken: draw another name
            except OSError:
                break  # this parent cannot take it (missing, read-only, not ours): the next
            _lock(path)
            sweep_leftovers(parent)
            return path
    raise FileNotFoundError(errno.ENOENT, "No usable temporary directory found", prefix)


def release_private_dir(path: str) -> None:
    """Stop holding `path`'s lock (it was removed, or is kept for the user)."""
    fd = _held.pop(path, None)
    if fd is not None:
        os.close(fd)


def _lock(path: str) -> None:
    """Lock the directory just made at `path` for this process (see the module doc). A file
    system without flock leaves it unlocked: a sweep, which removes only what it could lock
    itself, passes it over there too."""
    fd = os.open(path, DIR_FLAGS)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return
    _held[path] = fd


def sweep_leftovers(parent: str) -> int:
    """Remove the directories killed sandboxes left in `parent` (see the module doc), once
    per process; how many were removed. Errors are passed over: another sweep removing
    the same leftover, a tree that will not go (the next sweep tries again)."""
    if parent in _swept:
        return 0
    _swept.add(parent)
    try:
        parent_fd = os.open(parent, DIR_FLAGS & ~os.O_NOFOLLOW)
    except OSError:
        return 0
    removed, now, uid = 0, time.time(), os.geteuid()
    try:
        with os.scandir(parent_fd) as listing:
            names = [entry.name for entry in listing if _swept_name(entry.name)]
        for name in names[:SWEEP_LOOKS]:
            if removed == SWEEP_LIMIT:
                break
            try:
                st = os.lstat(name, dir_fd=parent_fd)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode) and st.st_uid == uid and now - st.st_ctime >= LEFTOVER_AGE:
                removed += _remove_leftover(parent_fd, name)
    except OSError:
        pass
    finally:
        os.close(parent_fd)
    return removed


def _swept_name(name: str) -> bool:
    """Whether `name` is one `make_private_dir` (or tempfile.mkdtemp) gives a sandbox's directory."""
    for prefix in SWEPT_PREFIXES:
        if name.startswith(prefix):
            rest = name[len(prefix):]
            return len(rest) == RANDOM_NAME_LENGTH and set(rest) <= SWEPT_NAME_CHARS
    return False


def _remove_leftover(parent_fd: int, name: str) -> int:
    """Remove `name`, a directory of ours unchanged for LEFTOVER_AGE by its lstat, if it still
    is once opened and no live sandbox holds it locked (the lock is taken here for the
    removal). 1 if removed."""
    try:
        fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    except OSError:
        return 0  # gone, a symlink, not a directory, not ours to read
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or time.time() - st.st_ctime < LEFTOVER_AGE:
            return 0
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return 0  # its sandbox still runs (or another sweep has it)
        remove_tree(parent_fd, name, identity_of(st))
        return 1
    except OSError:
        return 0
    finally:
        os.close(fd)


def _temp_dir_candidates() -> Iterator[str]:
    """Where tempfile.gettempdir() looks, in its order, as absolute paths (the working
    directory last, `.` if it is gone): first `tempfile.tempdir` when a program that
    imported tempfile set it, as gettempdir() honours it."""
    chosen = getattr(sys.modules.get("tempfile"), "tempdir", None)
    if chosen:
        yield os.path.abspath(chosen)
    for name in TEMP_DIR_VARIABLES:
        if path := os.environ.get(name):
            yield os.path.abspath(path)
    yield from TEMP_DIR_DEFAULTS
    try:
        yield os.getcwd()
    except OSError:
        yield os.curdir


def _random_name() -> str:
    """Eight characters from the host's CSPRNG (40 bits: each byte picks one of 32, unbiased)."""
    return "".join(NAME_ALPHABET[byte % len(NAME_ALPHABET)] for byte in os.urandom(8))


def identity_of(st: os.stat_result) -> tuple[int, int]:
    """(device, inode): what a directory is, whatever its name."""
    return st.st_dev, st.st_ino


def remove_tree(parent_fd: int, name: str, identity: tuple[int, int] | None = None) -> None:
    """Remove `name` (relative to the directory `parent_fd`) and everything under it.

    `identity` (device, inode), if given, is the directory the caller made: anything else
    found under that name is left alone (OSError ESTALE). A non-directory is just unlinked.
    Nothing is followed, nothing recursed; the first OSError is raised after all the rest
    was removed. A name that does not exist raises FileNotFoundError.
    """
    top = _open_dir(parent_fd, name)
    if top is None:
        if identity is not None:
            raise OSError(errno.ESTALE, "not the directory the sandbox made", name)
        os.unlink(name, dir_fd=parent_fd)
        return
    top_identity = identity_of(os.fstat(top))
    if identity is not None and top_identity != identity:
        os.close(top)
        raise OSError(errno.ESTALE, "not the directory the sandbox made", name)
    errors: list[OSError] = []
    try:
        _empty_tree(top, name, top_identity, errors)  # closes `top`
        os.rmdir(name, dir_fd=parent_fd)
    except OSError as error:
        errors.append(error)
    if errors:
        raise errors[0]


def remove_path(path: str, identity: tuple[int, int] | None = None) -> None:
    """`remove_tree` for an absolute host path: its parent is opened once, the last
    component removed relative to it."""
    parent, name = os.path.split(os.path.abspath(path))
    parent_fd = os.open(parent, DIR_FLAGS & ~os.O_NOFOLLOW)  # the parent is the caller's (e.g. $TMPDIR)
    try:
        remove_tree(parent_fd, name, identity)
    finally:
        os.close(parent_fd)
        release_private_dir(os.path.join(parent, name))


def _empty_tree(fd: int, name: str, identity: tuple[int, int], errors: list[OSError]) -> None:
    """Remove everything under the open directory `fd`, depth first with an explicit stack;
    `fd` (and every descriptor opened on the way) is closed at the end."""
    device = identity[0]
    try:
        stack = [_Level(name, identity, _empty_files(fd, errors))]
        while stack:
            level = stack[-1]
            if level.subdirs:
                child = level.subdirs.pop()
                child_fd = _enter(fd, child, device, errors)
                if child_fd is not None:
                    os.close(fd)
                    fd = child_fd
                    stack.append(_Level(child, identity_of(os.fstat(fd)), _empty_files(fd, errors)))
                continue
            stack.pop()
            if not stack:
                break
            below, fd = fd, -1  # _climb closes it, whatever happens
            fd = _climb(below, stack[-1].identity)
            try:
                os.rmdir(level.name, dir_fd=fd)
            except OSError as error:
                errors.append(error)
    finally:
        if fd >= 0:
            os.close(fd)


def _enter(parent_fd: int, name: str, device: int, errors: list[OSError]) -> int | None:
    """Open the subdirectory `name` to empty it, or None (a non-directory now: unlinked; a
    directory on another file system: left, as an error)."""
    try:
        fd = _open_dir(parent_fd, name)
        if fd is None:
            os.unlink(name, dir_fd=parent_fd)
            return None
    except OSError as error:
        errors.append(error)
        return None
    if os.fstat(fd).st_dev != device:
        os.close(fd)
        errors.append(OSError(errno.EXDEV, "another file system is mounted here; not entered", name))
        return None
    return fd


def _open_dir(parent_fd: int, name: str) -> int | None:
    """A descriptor for the directory `name`, made listable and writable by its owner first
    if need be; None if `name` is a symlink or not a directory."""
    try:
        fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    except OSError as error:
        if error.errno in NOT_A_DIRECTORY:
            return None
        if error.errno != errno.EACCES:
            raise
        # Mode 000 (or no read bit): fchmodat with AT_SYMLINK_NOFOLLOW acts on the entry
        # itself, never on what a symlink names (glibc refuses symlinks with EOPNOTSUPP).
        os.chmod(name, OWNER_ALL, dir_fd=parent_fd, follow_symlinks=False)
        fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    mode = os.fstat(fd).st_mode
    if mode & OWNER_ALL != OWNER_ALL:  # e.g. 0500: its entries could not be unlinked
        os.chmod(fd, stat.S_IMODE(mode) | OWNER_ALL)
    return fd


def _empty_files(fd: int, errors: list[OSError]) -> list[str]:
    """Unlink every non-directory in the open directory `fd` (symlinks included, never
    followed); return the names of its subdirectories."""
    try:
        with os.scandir(fd) as listing:
            entries = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in listing]
    except OSError as error:
        errors.append(error)
        return []
    subdirs = []
    for name, is_dir in entries:
        if is_dir:
            subdirs.append(name)
            continue
        try:
            os.unlink(name, dir_fd=fd)
        except FileNotFoundError:
            pass
        except OSError as error:
            errors.append(error)
    return subdirs


def _climb(fd: int, parent_identity: tuple[int, int]) -> int:
    """From the open directory `fd` to its parent (`..`, one component), which must be the
    directory recorded on the way down: a tree moved meanwhile is not followed elsewhere.
    Closes `fd`; returns the parent's descriptor."""
    try:
        parent = os.open("..", DIR_FLAGS, dir_fd=fd)
    finally:
        os.close(fd)
    if identity_of(os.fstat(parent)) != parent_identity:
        os.close(parent)
        raise OSError(errno.ESTALE, "the tree moved while it was being removed", "..")
    return parent

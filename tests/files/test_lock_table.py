"""The lock table on plain data: random lock and unlock operations by a few owners,
checked against a byte-by-byte model and the table's own invariants."""

from __future__ import annotations

import random

import pytest

from sandbox.errors import SyscallError
from sandbox.kernel.locks import F_RDLCK, F_UNLCK, F_WRLCK, LOCK_EX, LOCK_SH, LOCK_UN, OFFSET_MAX, LockTable

SPAN = 64  # bytes the model follows; byte SPAN stands for all those past it (to OFFSET_MAX)


class Owner:
    """A lock owner (the kernel's are descriptor tables and open files)."""


OWNERS = {name: Owner() for name in ("a", "b", "c", "probe", "f1", "f2")}


def model_apply(model: dict, owner: str, start: int, end: int, type: int) -> None:
    for byte in range(start, min(end, SPAN) + 1):
        if type == F_UNLCK:
            model.get(byte, {}).pop(owner, None)
        else:
            model.setdefault(byte, {})[owner] = type


def model_conflict(model: dict, owner: str, start: int, end: int, type: int) -> bool:
    return any(other != owner and (held == F_WRLCK or type == F_WRLCK)
               for byte in range(start, min(end, SPAN) + 1) for other, held in model.get(byte, {}).items())


@pytest.mark.parametrize("seed", range(20))
def test_random_operations_match_the_model(seed: int) -> None:
    rng = random.Random(seed)
    table, model, key = LockTable(), {}, ("host", 1, 2)
    for _ in range(300):
        owner = rng.choice("abc")
        start = rng.randrange(SPAN)
        end = OFFSET_MAX if rng.random() < 0.1 else min(SPAN - 1, start + rng.randrange(8))
        type = rng.choice((F_RDLCK, F_WRLCK, F_UNLCK))
        conflict = type != F_UNLCK and model_conflict(model, owner, start, end, type)
        assert (table.set(key, OWNERS[owner], start, end, type, 1) is not None) == conflict
        if not conflict:
            model_apply(model, owner, start, end, type)
        table.check_invariants()
        probe = rng.randrange(SPAN)
        held = table.test(key, OWNERS["probe"], probe, probe, F_WRLCK)
        assert (held is not None) == bool(model.get(probe))
    for owner in "abc":
        table.release(OWNERS[owner], key)
    table.check_invariants()
    assert table.inodes == {} and table.budget.used == 0


def test_budget_refuses_and_changes_nothing() -> None:
    table, key = LockTable(limit=3), ("host", 1, 2)
    for start in (0, 2, 4):
        assert table.set(key, OWNERS["a"], start, start, F_WRLCK, 1) is None
    with pytest.raises(SyscallError):
        table.set(key, OWNERS["a"], 6, 6, F_WRLCK, 1)
    table.check_invariants()
    assert table.set(key, OWNERS["a"], 0, 4, F_UNLCK, 1) is None  # one lock split in none: fine
    table.check_invariants()


def test_flock_conversion_and_release() -> None:
    table, key = LockTable(), ("host", 1, 2)
    assert table.flock(key, OWNERS["f1"], LOCK_SH) and table.flock(key, OWNERS["f2"], LOCK_SH)
    assert not table.flock(key, OWNERS["f1"], LOCK_EX)  # converting dropped f1's shared lock first
    assert table.flock(key, OWNERS["f2"], LOCK_EX)
    table.release_all(OWNERS["f2"])
    assert table.flock(key, OWNERS["f1"], LOCK_EX) and table.flock(key, OWNERS["f1"], LOCK_UN)
    table.check_invariants()
    assert table.budget.used == 0

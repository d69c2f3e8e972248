"""The IPC objects on plain Python (no Unicorn, no guest): id allocation, message search,
and semop's all-or-nothing arithmetic, each checked against Linux's rules."""

from __future__ import annotations

import errno
from array import array

import pytest

from sandbox.errors import SyscallError
from sandbox.kernel import ipc_msg, ipc_sem
from sandbox.kernel.ipc import IPC_NOWAIT, IPCMNI, IpcIds, IpcObject, IpcPerm


def made(ids: IpcIds, key: int = 0) -> IpcObject:
    obj = IpcObject(IpcPerm(key, 1000, 1000, 0o600), 0)
    ids.add(obj)
    ids.check_invariants()
    return obj


def test_ids_take_the_lowest_free_index_and_a_new_sequence_number() -> None:
    ids: IpcIds = IpcIds("things", 3)
    a, b, c = made(ids), made(ids, key=7), made(ids)
    assert [a.id, b.id, c.id] == [0, IPCMNI + 1, 2 * IPCMNI + 2]
    with pytest.raises(SyscallError) as full:
        made(ids)
    assert full.value.errno == errno.ENOSPC
    ids.remove(b)
    ids.check_invariants()
    assert b.perm.deleted and ids.find_key(7) is None and ids.lookup(b.id) is None
    d = made(ids)
    assert d.id == 3 * IPCMNI + 1 and ids.max_index() == 2
    for stale in (b.id, -1, 5):
        with pytest.raises(SyscallError) as missing:
            ids.get(stale)
        assert missing.value.errno == errno.EINVAL


def queue(*types: int) -> ipc_msg.MsgQueue:
    q = ipc_msg.MsgQueue(IpcPerm(0, 0, 0, 0o600), 0)
    q.messages = [(t, b"") for t in types]
    return q


@pytest.mark.parametrize(("msgtyp", "flag", "index"), [
    (0, 0, 0),  # the first
    (1, 0, 1),  # the first of type 1
    (3, ipc_msg.MSG_EXCEPT, 1),  # the first not of type 3
    (-2, 0, 1),  # the lowest type up to 2, first of its type
    (-9, 0, 1),
    (-(2**63), 0, 1),  # LONG_MIN: every type
    (4, 0, None),
    (2, ipc_msg.MSG_COPY, 2),  # the third message
    (7, ipc_msg.MSG_COPY, None),
])
def test_msgrcv_finds_the_message_linux_finds(msgtyp: int, flag: int, index: int | None) -> None:
    mode, wanted = ipc_msg.search_mode(msgtyp, flag)
    assert ipc_msg.find_message(queue(3, 1, 2, 1), mode, wanted) == index


def sem_set(*values: int) -> ipc_sem.SemSet:
    sset = ipc_sem.SemSet(IpcPerm(0, 0, 0, 0o600), 0, len(values))
    sset.values[:] = array("H", values)
    return sset


def test_semop_applies_all_or_nothing() -> None:
    sset, undo = sem_set(2, 0, 5), array("h", [0, 0, 0])
    assert ipc_sem.apply_ops(sset, [(0, -1, ipc_sem.SEM_UNDO), (1, -1, 0)], undo, 9) == (1, -1, 0)
    assert list(sset.values) == [2, 0, 5] and list(undo) == [0, 0, 0]
    assert ipc_sem.apply_ops(sset, [(0, -1, ipc_sem.SEM_UNDO), (0, -1, 0), (0, 0, IPC_NOWAIT)], undo, 9) is None
    assert list(sset.values) == [0, 0, 5] and list(undo) == [1, 0, 0] and list(sset.pids) == [9, 0, 0]
    with pytest.raises(SyscallError) as past:
        ipc_sem.apply_ops(sset, [(2, 1, 0), (1, ipc_sem.SEMVMX + 1, 0)], undo, 9)
    assert past.value.errno == errno.ERANGE and list(sset.values) == [0, 0, 5]
    undo[2] = -ipc_sem.SEMAEM - 1
    with pytest.raises(SyscallError) as adjustment:
        ipc_sem.apply_ops(sset, [(2, 1, ipc_sem.SEM_UNDO)], undo, 9)
    assert adjustment.value.errno == errno.ERANGE and list(sset.values) == [0, 0, 5]

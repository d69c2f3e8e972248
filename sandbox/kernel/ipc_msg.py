"""System V message queues (man 2 msgget, msgsnd, msgrcv, msgctl; Linux ipc/msg.c).

A queue holds (type, text) messages in arrival order, at most `qbytes` bytes of text and
at most `qbytes` messages (msg_fits_inqueue). msgsnd copies the text in once, at the call,
and sleeps while the queue is full; msgrcv takes the first message that its type asks for
(0: any; > 0: that type, or any other with MSG_EXCEPT; < 0: the lowest type up to its
absolute value) and sleeps while there is none. MSG_COPY reads the n-th message without
taking it. Both sleeps are retried on every scheduler pass (ipc.wait_for), end with EIDRM
when the queue is removed, and with EINTR on a signal.

Limits: Linux's MSGMAX, MSGMNB, MSGMNI; the text and a header per message queued in all
queues together are a host-memory Budget (ENOMEM past it, as load_msg's allocation
failing), whatever IPC_SET does to a queue's qbytes.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from sandbox.errors import InvariantError
from sandbox.kernel.accounting import Budget
from sandbox.kernel.ipc import IpcIds, IpcObject, IpcPerm, namespace

if TYPE_CHECKING:
    from sandbox.kernel.kernel import Kernel

# include/uapi/linux/msg.h
MSG_NOERROR, MSG_EXCEPT, MSG_COPY = 0o10000, 0o20000, 0o40000
MSG_STAT, MSG_INFO, MSG_STAT_ANY = 11, 12, 13
MSGMAX, MSGMNB, MSGMNI = 8192, 16384, 32000
MSGSSZ, MSGSEG = 16, 0xFFFF
MSGPOOL = MSGMNI * MSGMNB // 1024  # what IPC_INFO reports (Linux's MSGPOOL)
#: What one queued message costs the host besides its text (Linux's struct msg_msg is 48
#: bytes; here a tuple, a bytes object and a list slot).
MSG_HEADER = 128
#: Bytes of queued messages, headers included, all queues together.
MSG_BYTES_MAX = 32 << 20

#: struct msqid64_ds after its ipc64_perm: stime, rtime, ctime, cbytes, qnum, qbytes,
#: lspid, lrpid, two unused longs (120 bytes in all).
MSQID_DS_TAIL = struct.Struct("<qqqQQQiiQQ")
MSQID_DS_SIZE = 120
QBYTES_OFFSET = 48 + 5 * 8  # msg_qbytes in struct msqid64_ds
#: struct msginfo: msgpool, msgmap, msgmax, msgmnb, msgmni, msgssz, msgtql, msgseg.
MSGINFO = struct.Struct("<7iH2x")

# find_msg's search modes (convert_mode)
SEARCH_ANY, SEARCH_EQUAL, SEARCH_NOTEQUAL, SEARCH_LESSEQUAL, SEARCH_NUMBER = range(5)
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1


class MsgQueue(IpcObject):
    """One queue: its messages, their byte total, its bound, and its history."""

    __slots__ = ("messages", "cbytes", "qbytes", "lspid", "lrpid", "stime", "rtime")

    def __init__(self, perm: IpcPerm, now: int) -> None:
        super().__init__(perm, now)
        self.messages: list[tuple[int, bytes]] = []
        self.cbytes, self.qbytes = 0, MSGMNB
        self.lspid = self.lrpid = self.stime = self.rtime = 0

    def fits(self, size: int) -> bool:
        """Room for one message more of `size` bytes (msg_fits_inqueue)."""
        return self.cbytes + size <= self.qbytes and len(self.messages) + 1 <= self.qbytes

    def stat_tail(self) -> bytes:
        return MSQID_DS_TAIL.pack(self.stime, self.rtime, self.ctime, self.cbytes, len(self.messages),
                                  self.qbytes, self.lspid, self.lrpid, 0, 0)


class MsgState:
    """The namespace's queues and the host memory their messages hold."""

    def __init__(self) -> None:
        self.ids: IpcIds[MsgQueue] = IpcIds("message queues", MSGMNI)
        self.bytes = Budget("queued message bytes", MSG_BYTES_MAX, errno.ENOMEM)

    def check_invariants(self) -> None:
        self.ids.check_invariants()
        held = 0
        for queue in self.ids:
            if queue.cbytes != sum(len(text) for _, text in queue.messages):
                raise InvariantError(f"msg: queue {queue.id}'s byte count is wrong")
            held += queue.cbytes + MSG_HEADER * len(queue.messages)
        if held != self.bytes.used:
            raise InvariantError(f"msg: {held} bytes queued, {self.bytes.used} charged")

    def enqueue(self, queue: MsgQueue, mtype: int, text: bytes, pid: int, now: int) -> None:
        """Queue a message (ENOMEM past the budget, nothing queued)."""
        self.bytes.charge(len(text) + MSG_HEADER)
        queue.messages.append((mtype, text))
        queue.cbytes += len(text)
        queue.lspid, queue.stime = pid, now

    def take(self, queue: MsgQueue, index: int, pid: int, now: int) -> tuple[int, bytes]:
        """Remove and return the message at `index`."""
        mtype, text = queue.messages.pop(index)
        queue.cbytes -= len(text)
        queue.lrpid, queue.rtime = pid, now
        self.bytes.release(len(text) + MSG_HEADER)
        return mtype, text

    def forget_queue(self, queue: MsgQueue) -> None:
        """IPC_RMID: the queue and its messages go (freeque)."""
        self.ids.remove(queue)
        self.bytes.release(queue.cbytes + MSG_HEADER * len(queue.messages))
        queue.messages, queue.cbytes = [], 0


def state(kernel: Kernel) -> MsgState:
    return namespace(kernel).msg


def search_mode(msgtyp: int, flag: int) -> tuple[int, int]:
    """(mode, type) of a msgrcv's search, as Linux's convert_mode."""
    if flag & MSG_COPY:
        return SEARCH_NUMBER, msgtyp
    if msgtyp == 0:
        return SEARCH_ANY, 0
    if msgtyp < 0:
        return SEARCH_LESSEQUAL, LONG_MAX if msgtyp == LONG_MIN else -msgtyp
    return (SEARCH_NOTEQUAL if flag & MSG_EXCEPT else SEARCH_EQUAL), msgtyp


def find_message(queue: MsgQueue, mode: int, msgtyp: int) -> int | None:
    """The index of the message a msgrcv takes (find_msg): the first that matches, the
    lowest type (first of its type) for SEARCH_LESSEQUAL, the `msgtyp`-th for MSG_COPY."""
    if mode == SEARCH_NUMBER:
        return msgtyp if 0 <= msgtyp < len(queue.messages) else None
    found = None
    for index, (mtype, _) in enumerate(queue.messages):
        if mode == SEARCH_ANY or (mode == SEARCH_EQUAL and mtype == msgtyp) or \
                (mode == SEARCH_NOTEQUAL and mtype != msgtyp):
            return index
        if mode == SEARCH_LESSEQUAL and mtype <= msgtyp:
            if mtype == 1:
                return index
            found, msgtyp = index, mtype - 1
    return found


def info_bytes(kernel: Kernel, cmd: int) -> bytes:
    """IPC_INFO's or MSG_INFO's struct msginfo (MSG_INFO: queues, messages and bytes in use)."""
    msg = state(kernel)
    if cmd == MSG_INFO:
        messages = sum(len(q.messages) for q in msg.ids)
        queued = sum(q.cbytes for q in msg.ids)
        return MSGINFO.pack(len(msg.ids), messages, MSGMAX, MSGMNB, MSGMNI, MSGSSZ, queued, MSGSEG)
    return MSGINFO.pack(MSGPOOL, MSGMNB, MSGMAX, MSGMNB, MSGMNI, MSGSSZ, MSGMNB, MSGSEG)

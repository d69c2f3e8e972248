"""epoll instances (man 7 epoll; Linux fs/eventpoll.c).

An `Epoll` is a file holding an interest list: items keyed, as Linux keys them, by the
descriptor number *and* the open file it named when added, each with its event mask and the
64-bit `data` the caller gets back. Readiness is asked of each file's own `poll`, so pipes,
sockets, event files, host streams and other epolls are watched alike.

- Level-triggered items are reported while ready.
- Edge-triggered items (EPOLLET) are reported when something happened to the file since the
  item was last looked at: its wake-up count moved (data came in, room was made, an end
  closed: `File.wakeups`) while it is ready, or, for files that count none, a ready bit
  rose. A file that stays ready with nothing new is not reported again (epoll(7)).
- EPOLLONESHOT items are disarmed after one report until EPOLL_CTL_MOD re-arms them.
- An item goes away with the last descriptor of its file (Linux's eventpoll_release at the
  final fput), or by EPOLL_CTL_DEL.

Watches are charged to a sandbox-wide budget (Linux's max_user_watches: ENOSPC past it).
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from sandbox.errors import SyscallError
from sandbox.kernel.eventfiles import AnonFile
from sandbox.kernel.files import POLLERR, POLLHUP, POLLIN, File

if TYPE_CHECKING:
    from sandbox.kernel.accounting import Budget

EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD = 1, 2, 3
EPOLLEXCLUSIVE, EPOLLWAKEUP, EPOLLONESHOT, EPOLLET = 1 << 28, 1 << 29, 1 << 30, 1 << 31
#: Bits EPOLL_CTL_MOD may not carry with EPOLLEXCLUSIVE, nor ADD alongside it (ep_op_has_event).
EPOLLEXCLUSIVE_OK = 0x1 | 0x4 | 0x8 | 0x10 | EPOLLWAKEUP | EPOLLET | EPOLLEXCLUSIVE  # IN OUT ERR HUP
#: Input bits a caller may ask for; EPOLLERR and EPOLLHUP are always reported (ep_item_poll).
ALWAYS = POLLERR | POLLHUP
EPOLL_EVENT = struct.Struct("<IQ")  # struct epoll_event is packed on x86-64: 12 bytes
EP_MAX_NESTS = 4  # how deep epolls may watch epolls (fs/eventpoll.c)
#: Most events one epoll_wait may ask for (EP_MAX_EVENTS: INT_MAX / sizeof(struct epoll_event)).
EP_MAX_EVENTS = 0x7FFF_FFFF // EPOLL_EVENT.size


class Item:
    """One watched (descriptor, file) pair."""

    __slots__ = ("fd", "file", "events", "data", "seen", "seen_wakeups", "armed")

    def __init__(self, fd: int, file: File, events: int, data: int) -> None:
        self.fd, self.file, self.events, self.data = fd, file, events, data
        self.seen = 0  # edge-triggered: the bits ready when last looked at
        self.seen_wakeups: int | None = None  # and the file's wake-up count then
        self.armed = True  # EPOLLONESHOT: false after one report, until EPOLL_CTL_MOD


class Epoll(AnonFile):
    """An epoll instance: its interest list and what each wait reports."""

    kind = "eventpoll"

    def __init__(self, flags: int, watches: Budget) -> None:
        super().__init__(flags)
        self.items: dict[tuple[int, File], Item] = {}
        self.watches = watches

    # -- the interest list ----------------------------------------------------------------

    def control(self, op: int, fd: int, file: File, events: int, data: int) -> None:
        """EPOLL_CTL_ADD, _MOD or _DEL of the item (fd, file), with epoll_ctl(2)'s errors."""
        key = (fd, file)
        item = self.items.get(key)
        if op == EPOLL_CTL_ADD:
            if item is not None:
                raise SyscallError(errno.EEXIST, f"fd {fd} is already watched")
            if events & EPOLLEXCLUSIVE and events & ~EPOLLEXCLUSIVE_OK:
                raise SyscallError(errno.EINVAL, f"EPOLLEXCLUSIVE with events {events:#x}")
            if isinstance(file, Epoll):
                file.refuse_loop(self)
            self.watches.charge(1)
            self.items[key] = Item(fd, file, events, data)
        elif op == EPOLL_CTL_MOD:
            if item is None:
                raise SyscallError(errno.ENOENT, f"fd {fd} is not watched")
            if events & EPOLLEXCLUSIVE or item.events & EPOLLEXCLUSIVE:
                raise SyscallError(errno.EINVAL, "EPOLL_CTL_MOD with EPOLLEXCLUSIVE")
            item.events, item.data, item.seen, item.seen_wakeups, item.armed = events, data, 0, None, True
        elif op == EPOLL_CTL_DEL:
            if item is None:
                raise SyscallError(errno.ENOENT, f"fd {fd} is not watched")
            self._drop(key)
        else:
            raise SyscallError(errno.EINVAL, f"epoll_ctl op {op}")

    def refuse_loop(self, outer: Epoll) -> None:
        """ELOOP if watching this epoll from `outer` would close a cycle or nest too deep."""
        if outer is self:
            raise SyscallError(errno.EINVAL, "an epoll cannot watch itself")
        if self._reaches(outer) or self._depth() + 1 > EP_MAX_NESTS:
            raise SyscallError(errno.ELOOP, "epolls would watch each other in a loop, or too deeply")

    def _reaches(self, target: Epoll, depth: int = 0) -> bool:
        inner = [i.file for i in self.items.values() if isinstance(i.file, Epoll)]
        return depth <= EP_MAX_NESTS and any(e is target or e._reaches(target, depth + 1) for e in inner)

    def _depth(self, depth: int = 0) -> int:
        """How many levels of epolls this one watches below itself."""
        inner = [i.file for i in self.items.values() if isinstance(i.file, Epoll)]
        if not inner or depth > EP_MAX_NESTS:
            return 0
        return 1 + max(e._depth(depth + 1) for e in inner)

    def _drop(self, key: tuple[int, File]) -> None:
        del self.items[key]
        self.watches.release(1)

    def _live_items(self) -> list[Item]:
        """The items whose files are still open (closing the last descriptor removes one)."""
        for key in [k for k, item in self.items.items() if item.file.refs == 0]:
            self._drop(key)
        return list(self.items.values())

    # -- readiness ------------------------------------------------------------------------

    def collect(self, most: int) -> list[tuple[int, int]]:
        """Up to `most` (events, data) pairs ready now, updating edge and one-shot state."""
        ready = []
        for item in self._live_items():
            if len(ready) >= most:
                break
            events = self._item_events(item)
            if events:
                ready.append((events, item.data))
                if item.events & EPOLLONESHOT:
                    item.armed = False
        return ready

    def _item_events(self, item: Item) -> int:
        """What a wait reports for `item` now (and, edge-triggered, what it has now seen)."""
        now, news = self._look(item)
        if item.events & EPOLLET:
            item.seen, item.seen_wakeups = now, item.file.wakeups()
        return now if news else 0

    def _look(self, item: Item) -> tuple[int, bool]:
        """(the item's ready events, whether a wait would report them), changing nothing."""
        if not item.armed:
            return 0, False
        mask = (item.events & 0xFFFF) | ALWAYS
        now = item.file.poll(mask) & mask
        if not now or not item.events & EPOLLET:
            return now, bool(now)
        wakeups = item.file.wakeups()
        return now, bool(now & ~item.seen) or (wakeups is not None and wakeups != item.seen_wakeups)

    def _peek(self) -> bool:
        """Whether a wait would report something now, changing nothing."""
        return any(self._look(item)[1] for item in self._live_items())

    def poll(self, events: int) -> int:
        """An epoll is readable while a wait on it would report something (nested epolls)."""
        return POLLIN & events if self._peek() else 0

    def host_waits(self) -> tuple[tuple[int, int], ...]:
        """The host streams among the items, for the scheduler's idle wait."""
        return tuple((i.file.host_fd, i.events & 0xFFFF) for i in self._live_items() if i.file.host_fd is not None)

    def next_event(self) -> float | None:
        """The earliest time an item may become ready by itself (a timer's expiry)."""
        times = [t for i in self._live_items() if isinstance(i.file, AnonFile) for t in (i.file.next_event(),)
                 if t is not None]
        return min(times, default=None)

    def close(self) -> None:
        for key in list(self.items):
            self._drop(key)

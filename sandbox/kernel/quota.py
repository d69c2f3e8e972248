"""The disk quota: how much host disk the guest may fill (`--disk`), counted as the host does.

Every host file the guest writes through the sandbox -- in the private root, in writable
mounts, memfds and shared memory -- is charged for the blocks it gains (st_blocks, measured
before and after each write, so sparse files cost what they really use), and every entry it
creates for one block (an inode is disk too) plus what its directory grew by (directories
keep their blocks when entries go, until they are removed themselves). A write that would
pass the quota is cut short, and one that cannot write a byte fails with ENOSPC (write(2)),
as on a full file system.
Blocks come back when a file's last link goes and no descriptor holds it any more.
"""

from __future__ import annotations

import errno
import os
import stat

from sandbox.abi import ST_BLOCK_SIZE
from sandbox.errors import SyscallError

ENTRY_COST = 4096  # what one created directory entry is charged


class DiskQuota:
    """Bytes of host disk the guest holds, against `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._open: dict[tuple[int, int], int] = {}  # (dev, ino) -> open descriptions
        self._orphans: set[tuple[int, int]] = set()  # unlinked while open: freed at last close

    @property
    def free(self) -> int:
        return max(0, self.limit - self.used)

    def room(self, wanted: int) -> int:
        """How many of `wanted` new bytes may be written; ENOSPC if none."""
        if wanted > 0 and self.free == 0:
            raise SyscallError(errno.ENOSPC, f"disk quota of {self.limit} bytes reached")
        return min(wanted, self.free)

    def charge(self, nbytes: int) -> None:
        """Count a change in use (negative for space given back)."""
        self.used = max(0, self.used + nbytes)

    def charge_blocks(self, nblocks: int) -> None:
        """Count a change in st_blocks (negative for blocks given back)."""
        self.charge(nblocks * ST_BLOCK_SIZE)

    def charge_entry(self) -> None:
        """A new directory entry: ENOSPC beyond the quota."""
        self.room(ENTRY_COST)
        self.charge(ENTRY_COST)

    def opened(self, st: os.stat_result) -> None:
        key = (st.st_dev, st.st_ino)
        self._open[key] = self._open.get(key, 0) + 1

    def closed(self, st: os.stat_result) -> None:
        """The last holder of a file with no link left frees its blocks: one unlinked while
        open, a memfd, shared anonymous memory's backing file."""
        key = (st.st_dev, st.st_ino)
        count = self._open.get(key, 0) - 1
        if count > 0:
            self._open[key] = count
            return
        self._open.pop(key, None)
        self._orphans.discard(key)
        if st.st_nlink == 0:
            self.charge_blocks(-st.st_blocks)

    def removed(self, st: os.stat_result) -> None:
        """An entry was unlinked (or replaced by a rename): give back its entry, and its
        blocks if that was the last link and nothing holds it open."""
        self.charge(-ENTRY_COST)
        if stat.S_ISDIR(st.st_mode):  # its blocks: its own, and what its entries grew it by
            self.charge_blocks(-st.st_blocks)
            return
        if st.st_nlink > 1:
            return
        key = (st.st_dev, st.st_ino)
        if key in self._open:
            self._orphans.add(key)
        else:
            self.charge_blocks(-st.st_blocks)

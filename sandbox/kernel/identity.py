"""The guest's identity and what it sees of host files' identity: virtual, never the host's.

Whatever the guest believes it is (`--uid`, `--gid`; by default the invoking user's ids, as
qemu-user shows them), it never gets the sandbox process's powers. On the host, files the
guest makes belong to the sandbox's user and never carry setuid, setgid or sticky bits or
group/other write permission (a rootless container's `nosuid`); ownership is never changed
on the host. The owners and modes the guest sets are kept here, per (device, inode), for the
session, so that `chown` then `stat` agree inside.

What the guest reads of a host file is translated as a user namespace would
(user_namespaces(7)): the sandbox's own host uid and gid appear as the guest's, every other
id as the overflow id 65534; device numbers are small virtual ones; inode numbers are a
keyed hash of the host's (stable for the session, distinct, revealing nothing).
"""

from __future__ import annotations

import errno
import os
import stat

from sandbox.errors import SyscallError
from sandbox.kernel.files import Stat

OVERFLOW_ID = 65534  # /proc/sys/kernel/overflowuid
#: What of a guest-chosen mode the host file may carry: permission bits, never setuid,
#: setgid or sticky, never writable by group or others.
HOST_MODE_MASK = 0o755
#: Owners and modes the guest may set on distinct files before chown/chmod answer ENOSPC:
#: each costs the sandbox host memory.
MAX_OVERRIDES = 65536
VIRTUAL_DEV_BASE = 0x30  # minor numbers of the virtual devices (major 0, as tmpfs's)


class Identity:
    """The guest's ids, and the translation of host files' ids, modes and numbers."""

    def __init__(self, uid: int, gid: int, secret: bytes) -> None:
        self.uid, self.gid = uid, gid
        self.host_uid, self.host_gid = os.geteuid(), os.getegid()
        self._secret = secret
        self._devices: dict[int, int] = {}
        #: (host dev, host ino) -> [uid, gid, mode] the guest set (mode None: the host's).
        self._overrides: dict[tuple[int, int], list] = {}

    # -- numbers --------------------------------------------------------------------------

    def dev(self, host_dev: int) -> int:
        """A small virtual device number per host file system."""
        minor = self._devices.setdefault(host_dev, VIRTUAL_DEV_BASE + len(self._devices))
        return os.makedev(0, minor)

    def ino(self, host_dev: int, host_ino: int) -> int:
        """The inode number the guest sees: a keyed hash, stable for the session."""
        import hashlib  # here: its import loads OpenSSL, 2.5 ms of a start-up that may not stat

        digest = hashlib.blake2b(host_dev.to_bytes(8, "little") + host_ino.to_bytes(8, "little"),
                                 key=self._secret, digest_size=8).digest()
        return int.from_bytes(digest, "little") >> 2 or 1

    def _guest_id(self, host_id: int, own: int, guest: int) -> int:
        return guest if host_id == own else OVERFLOW_ID

    def present(self, st: Stat) -> Stat:
        """What stat(2) shows the guest of a host file's `st` (made-up stats pass as they are)."""
        if not st.host:
            return st
        override = self._overrides.get((st.dev, st.ino))
        uid = self._guest_id(st.uid, self.host_uid, self.uid)
        gid = self._guest_id(st.gid, self.host_gid, self.gid)
        mode = st.mode
        if override is not None:
            uid, gid = override[0], override[1]
            if override[2] is not None:
                mode = stat.S_IFMT(st.mode) | override[2]
        return st._replace(dev=self.dev(st.dev), ino=self.ino(st.dev, st.ino), mode=mode, uid=uid, gid=gid,
                           host=False)

    def permits(self, st: Stat, want: int) -> bool:
        """May the guest read (4), write (2) or execute/search (1) what `st` (as `present`
        shows it) describes? The owner's, group's or others' bits, as Linux's
        generic_permission; guest root may read and write anything, and execute what has
        an execute bit (a directory: always)."""
        if self.uid == 0:
            return not want & 1 or stat.S_ISDIR(st.mode) or bool(st.mode & 0o111)
        if st.uid == self.uid:
            bits = st.mode >> 6
        elif st.gid == self.gid:
            bits = st.mode >> 3
        else:
            bits = st.mode
        return bits & want == want

    # -- what the guest sets --------------------------------------------------------------

    def _override(self, st: os.stat_result) -> list:
        key = (st.st_dev, st.st_ino)
        entry = self._overrides.get(key)
        if entry is None:
            if len(self._overrides) >= MAX_OVERRIDES:
                raise SyscallError(errno.ENOSPC, "too many owners and modes set")
            entry = [self._guest_id(st.st_uid, self.host_uid, self.uid),
                     self._guest_id(st.st_gid, self.host_gid, self.gid), None]
            self._overrides[key] = entry
        return entry

    def chown(self, st: os.stat_result, uid: int, gid: int) -> None:
        """Record new owners (-1 keeps one). Only guest root may give a file away or pick
        any group; others may set their own ids only (chown(2), EPERM)."""
        entry = self._override(st)
        for index, (new, own) in enumerate(((uid, self.uid), (gid, self.gid))):
            if new == -1 or new == entry[index]:
                continue
            if self.uid != 0 and new != own:
                raise SyscallError(errno.EPERM, "chown")
            entry[index] = new
        if self.uid != 0 and entry[2] is not None:
            entry[2] &= ~(stat.S_ISUID | stat.S_ISGID)  # as chown by a non-root user does

    def chmod(self, st: os.stat_result, mode: int) -> int:
        """Record the mode the guest set; the host file's mode to apply (HOST_MODE_MASK)."""
        override = self._overrides.get((st.st_dev, st.st_ino))
        owner = override[0] if override else self._guest_id(st.st_uid, self.host_uid, self.uid)
        if self.uid != 0 and owner != self.uid:
            raise SyscallError(errno.EPERM, "chmod of a file the guest does not own")
        mode &= 0o7777
        host_mode = mode & HOST_MODE_MASK
        if mode != host_mode or (st.st_dev, st.st_ino) in self._overrides:
            self._override(st)[2] = mode
        return host_mode

    def created(self, st: os.stat_result, mode: int) -> None:
        """A file the guest made with `mode` (after the umask); record it if the host
        could not carry it."""
        if mode & 0o7777 != mode & HOST_MODE_MASK:
            self._override(st)[2] = mode & 0o7777

    def show_as(self, st: os.stat_result, mode: int, uid: int | None = None, gid: int | None = None) -> None:
        """Show the guest `mode` (and owners, if given) for the host file `st` whatever its
        host mode and owners: the private root is 0700 on the host, against other host
        users, and 0755 in the guest; the generated /etc/passwd is root's."""
        entry = self._override(st)
        entry[2] = mode & 0o7777
        if uid is not None:
            entry[0] = uid
        if gid is not None:
            entry[1] = gid

    def forget(self, st: os.stat_result) -> None:
        """An entry was removed (`st` its status before): if that was the inode's last link,
        its number may be reused, so what was recorded for it goes. A directory's last name
        leaves with it whatever its link count (2: its name and its own `.`)."""
        if st.st_nlink <= 1 or stat.S_ISDIR(st.st_mode):
            self._overrides.pop((st.st_dev, st.st_ino), None)

"""System V shared memory segments (man 2 shmget, shmat, shmdt, shmctl; Linux ipc/shm.c).

A segment is backed exactly as MAP_SHARED|MAP_ANONYMOUS memory is (Kernel.shmem_file,
Linux's shmem): an unlinked host file in the page cache, whose frames every attach in every
process maps. An attach is a shared file region naming that `CachedFile`, so fork copies it,
exec and exit drop it, and faults, mprotect, munmap and /proc/PID/maps treat it as they
treat any shared file mapping; its name is Linux's "/SYSV<key> (deleted)".

The number of attaches (shm_nattch) is counted from the regions themselves, as Linux counts
the vmas (a region split by mprotect counts twice there too). While a segment exists its
cached pages are pinned (`pinned_files`, asked by the kernel's page-cache trim), so what a
process wrote survives every detach; a segment removed while attached (SHM_DEST) is
destroyed at the first trim that finds no region mapping it: after the last shmdt, munmap,
exit or exec.

Limits: Linux's SHMMNI; SHMMAX and SHMALL are bounded by the sandbox's RAM (a segment's
pages are guest frames); each segment holds one page-cache file (ENFILE past its bound).
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from sandbox.errors import InvariantError, SyscallError
from sandbox.kernel.ipc import (
    S_IRUGO,
    S_IWUGO,
    IpcIds,
    IpcObject,
    ipcget,
    namespace,
    new_perm,
    now_seconds,
    require_access,
)
from sandbox.mm import PAGE_SHIFT, PAGE_SIZE, USER_END, page_up
from sandbox.mm.pagecache import CachedFile
from sandbox.mm.vma import PROT_ALL, PROT_EXEC, PROT_READ, PROT_WRITE, Region, RegionFlag

if TYPE_CHECKING:
    from sandbox.kernel.kernel import Kernel
    from sandbox.kernel.process import ThreadGroup
    from sandbox.kernel.task import Task
    from sandbox.mm.aspace import AddressSpace

# include/uapi/linux/shm.h
SHM_RDONLY, SHM_RND, SHM_REMAP, SHM_EXEC = 0o10000, 0o20000, 0o40000, 0o100000
SHM_DEST, SHM_LOCKED = 0o1000, 0o2000  # state bits kept in the mode
SHM_LOCK, SHM_UNLOCK, SHM_STAT, SHM_INFO, SHM_STAT_ANY = 11, 12, 13, 14, 15
SHMMIN = 1
SHMMNI = 4096
SHMMAX = 2**64 - 1 - (1 << 24)  # Linux's default (ULONG_MAX - 2^24), bounded below by RAM
SHMLBA = PAGE_SIZE  # x86: attaches are page-aligned

#: struct shmid64_ds after its ipc64_perm: segsz, atime, dtime, ctime, cpid, lpid, nattch,
#: two unused longs (112 bytes in all on x86-64).
SHMID_DS_TAIL = struct.Struct("<QqqqiiQQQ")
SHMID_DS_SIZE = 112
#: struct shminfo64: shmmax, shmmin, shmmni, shmseg, shmall, four unused longs.
SHMINFO64 = struct.Struct("<9Q")
#: struct shm_info: used_ids, then shm_tot, shm_rss, shm_swp, swap_attempts, swap_successes.
SHM_INFO_STRUCT = struct.Struct("<i4x5Q")


class Segment(IpcObject):
    """One segment: its size, its pages (a page-cache file) and its history."""

    __slots__ = ("size", "name", "file", "cpid", "lpid", "atime", "dtime", "locked", "dest")

    def __init__(self, perm, now: int, size: int, cpid: int) -> None:
        super().__init__(perm, now)
        self.size, self.cpid = size, cpid
        self.name = f"/SYSV{perm.key & 0xFFFF_FFFF:08x} (deleted)"  # as Linux names its file
        #: The pages: a page-cache file, made at the first attach (a segment never
        #: attached costs no host file).
        self.file: CachedFile | None = None
        self.lpid = self.atime = self.dtime = 0
        self.locked = self.dest = False

    @property
    def npages(self) -> int:
        return page_up(self.size) >> PAGE_SHIFT

    def mode_flags(self) -> int:
        return (SHM_DEST if self.dest else 0) | (SHM_LOCKED if self.locked else 0)


class ShmState:
    """The namespace's segments and their total size in pages (Linux's shm_tot).

    Invariants: `total_pages` is the sum of the segments' pages; `by_file` maps exactly the
    segments that have pages to their page-cache file, and the page cache holds each."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.ids: IpcIds[Segment] = IpcIds("shared memory segments", SHMMNI)
        self.total_pages = 0
        ram = kernel.options.memory
        self.max_size = min(SHMMAX, ram)  # shm_ctlmax
        self.max_pages = ram >> PAGE_SHIFT  # shm_ctlall
        self.by_file: dict[int, Segment] = {}  # id(CachedFile) -> its segment

    def segment_of(self, region: Region) -> Segment | None:
        """The segment whose attach `region` is, if it is one."""
        return self.by_file.get(id(region.file)) if region.file is not None else None

    def check_invariants(self) -> None:
        self.ids.check_invariants()
        backed = [seg for seg in self.ids if seg.file is not None]
        if sum(seg.npages for seg in self.ids) != self.total_pages or \
                sorted(map(id, self.by_file.values())) != sorted(map(id, backed)):
            raise InvariantError("shm: page total or file map disagrees with the segments")
        cached = {id(file) for file in self.kernel.page_cache.files.values()}
        if any(id(seg.file) not in cached for seg in backed):
            raise InvariantError("shm: a live segment's pages left the page cache")


def state(kernel: Kernel) -> ShmState:
    return namespace(kernel).shm


# -- shmget --------------------------------------------------------------------------------


def shm_get(task: Task, key: int, size: int, flag: int) -> int:
    """shmget(2): the id of the segment with `key`, made if need be (see ipc.ipcget)."""
    shm = state(task.kernel)

    def too_small(seg: Segment) -> None:
        if seg.size < size:  # shm_more_checks
            raise SyscallError(errno.EINVAL, f"segment {seg.id} has {seg.size} bytes, not {size}")

    return ipcget(task, shm.ids, key, flag, lambda: _new_segment(task, shm, key, size, flag), too_small)


def _new_segment(task: Task, shm: ShmState, key: int, size: int, flag: int) -> int:
    """newseg: EINVAL outside [SHMMIN, SHMMAX], ENOSPC past SHMALL pages or SHMMNI ids."""
    if size < SHMMIN or size > shm.max_size:
        raise SyscallError(errno.EINVAL, f"segment size {size} is outside [{SHMMIN}, {shm.max_size}]")
    npages = page_up(size) >> PAGE_SHIFT
    if shm.total_pages + npages > shm.max_pages:
        raise SyscallError(errno.ENOSPC, f"{npages} pages more pass SHMALL ({shm.max_pages})")
    ident = shm.ids.add(Segment(new_perm(task, key, flag), now_seconds(task), size, task.pid))
    shm.total_pages += npages
    return ident


def _backing(kernel: Kernel, shm: ShmState, seg: Segment) -> CachedFile:
    """The segment's page-cache file, made at its first attach: an unlinked, sparse host
    file of its pages, named as Linux names shm files. ENFILE when no host descriptor or
    cache slot is left."""
    if seg.file is not None:
        return seg.file
    seg.file = kernel.shmem_file(seg.npages << PAGE_SHIFT, seg.name, "shared memory segment")
    shm.by_file[id(seg.file)] = seg
    return seg.file


# -- shmat and shmdt -----------------------------------------------------------------------


def shm_attach(task: Task, shmid: int, addr: int, flag: int) -> int:
    """shmat(2): map the segment at `addr` (0: where mmap would put it); its address.

    As do_shmat: an unaligned address is EINVAL unless SHM_RND rounds it down; SHM_REMAP
    needs an address; an address whose range is taken is EINVAL, unless SHM_REMAP asks to
    replace what is there; SHM_RDONLY maps it read-only for good (mprotect cannot add
    PROT_WRITE: EACCES).
    """
    fixed = bool(addr)
    if addr:
        if addr & (SHMLBA - 1):
            if not flag & SHM_RND:
                raise SyscallError(errno.EINVAL, f"shmat address {addr:#x} is not aligned")
            addr &= ~(SHMLBA - 1)
            if addr == 0 and flag & SHM_REMAP:
                raise SyscallError(errno.EINVAL, "SHM_REMAP at address 0")
    elif flag & SHM_REMAP:
        raise SyscallError(errno.EINVAL, "SHM_REMAP without an address")
    prot, access = (PROT_READ, S_IRUGO) if flag & SHM_RDONLY else (PROT_READ | PROT_WRITE, S_IRUGO | S_IWUGO)
    if flag & SHM_EXEC:
        prot, access = prot | PROT_EXEC, access | 0o111
    shm = state(task.kernel)
    seg = shm.ids.get(shmid)
    require_access(task, seg.perm, access)
    size = page_up(seg.size)
    start = _attach_address(task, addr, size, flag) if fixed else _free_address(task, size)
    file = _backing(task.kernel, shm, seg)
    max_prot = PROT_ALL if prot & PROT_WRITE else PROT_ALL & ~PROT_WRITE
    flags = RegionFlag.SHARED | (RegionFlag.FIXED if fixed else RegionFlag.NONE)
    task.space.reserve_region(start, size >> PAGE_SHIFT, prot, flags=flags, file=file, offset=0,
                              name=file.name, max_prot=max_prot)
    seg.atime, seg.lpid = now_seconds(task), task.pid
    if flag & SHM_REMAP:
        task.kernel.trim_page_cache()  # a segment it replaced may have been its last attach
    return start


def _free_address(task: Task, size: int) -> int:
    """A free range for an attach at no given address, found as mmap finds one."""
    start = task.space.find_free_vma_range(0, size >> PAGE_SHIFT)
    if start is None:
        raise SyscallError(errno.ENOMEM, "no free range for the segment")
    return start


def _attach_address(task: Task, addr: int, size: int, flag: int) -> int:
    """The attach goes at `addr` itself: checked as do_shmat does, then as a MAP_FIXED
    mmap (an address rounded down to 0 by SHM_RND is EPERM)."""
    space = task.space
    if addr + size >= 1 << 64:
        raise SyscallError(errno.EINVAL, f"{addr:#x} + {size:#x} wraps around")
    if not flag & SHM_REMAP and addr + size <= USER_END and space.has_mapping_in_range(addr, size):
        raise SyscallError(errno.EINVAL, f"[{addr:#x}, {addr + size:#x}) is mapped (no SHM_REMAP)")
    if addr + size > USER_END:
        raise SyscallError(errno.ENOMEM, f"{addr:#x} + {size:#x} is not in user space")
    if addr < PAGE_SIZE:
        raise SyscallError(errno.EPERM, f"{addr:#x} is below the lowest mappable address")
    return addr


def shm_detach(task: Task, addr: int) -> int:
    """shmdt(2): unmap the attach that begins at `addr`, every piece of it (an mprotect
    may have split it), as Linux's shmdt looks for them; EINVAL if none begins there."""
    if addr & (PAGE_SIZE - 1):
        raise SyscallError(errno.EINVAL, f"shmdt address {addr:#x} is not aligned")
    shm = state(task.kernel)
    space = task.space
    regions = [r for r in space.regions.overlapping(addr, USER_END) if r.start >= addr]
    first = next((r for r in regions if _piece_of_attach_at(shm, r, addr)), None)
    if first is None:
        raise SyscallError(errno.EINVAL, f"no segment is attached at {addr:#x}")
    limit = first.file.size
    for region in regions[regions.index(first):]:
        if region.end - addr > limit:
            break
        if region.file is first.file and _piece_of_attach_at(shm, region, addr):
            space.unmap_range(region.start, region.size)
    seg = shm.by_file[id(first.file)]
    seg.dtime, seg.lpid = now_seconds(task), task.pid
    task.kernel.trim_page_cache()  # destroys a removed segment this was the last attach of
    return 0


def _piece_of_attach_at(shm: ShmState, region: Region, addr: int) -> bool:
    """Is `region` a piece of a segment attached at `addr`: its offset into the segment
    equals its distance from `addr`?"""
    return shm.segment_of(region) is not None and region.start - addr == region.offset


# -- shmctl --------------------------------------------------------------------------------


def attach_count(kernel: Kernel, seg: Segment) -> int:
    """shm_nattch: the regions of live processes that map the segment (each space once)."""
    if seg.file is None:
        return 0
    spaces = {id(g.space): g.space for g in kernel.processes.values() if g.alive and g.space is not None}
    return sum(1 for space in spaces.values() for region in space.regions if region.file is seg.file)


def stat_bytes(kernel: Kernel, seg: Segment) -> bytes:
    """The struct shmid64_ds IPC_STAT copies out."""
    tail = SHMID_DS_TAIL.pack(seg.size, seg.atime, seg.dtime, seg.ctime, seg.cpid, seg.lpid,
                              attach_count(kernel, seg), 0, 0)
    return seg.perm.pack(seg.mode_flags()) + tail


def info_bytes(kernel: Kernel, cmd: int) -> bytes:
    """IPC_INFO's struct shminfo64, or SHM_INFO's struct shm_info (pages in use, resident)."""
    shm = state(kernel)
    if cmd == SHM_INFO:
        resident = sum(len(seg.file.pages) for seg in shm.ids if seg.file is not None)
        return SHM_INFO_STRUCT.pack(len(shm.ids), shm.total_pages, resident, 0, 0, 0)
    return SHMINFO64.pack(shm.max_size, SHMMIN, SHMMNI, SHMMNI, shm.max_pages, 0, 0, 0, 0)


def remove(task: Task, seg: Segment) -> None:
    """IPC_RMID: the key is forgotten at once; the segment goes with its last attach."""
    shm = state(task.kernel)
    seg.dest = True
    shm.ids.make_private(seg)
    task.kernel.trim_page_cache()


def set_locked(task: Task, seg: Segment, locked: bool) -> None:
    """SHM_LOCK, SHM_UNLOCK: recorded (guest frames are never swapped); root, the owner or
    the creator only (EPERM), as shmctl_do_lock without CAP_IPC_LOCK."""
    uid = task.kernel.identity.uid
    if uid != 0 and uid not in (seg.perm.uid, seg.perm.cuid):
        raise SyscallError(errno.EPERM, f"uid {uid} may not lock segment {seg.id}")
    seg.locked = locked


def note_detaches(kernel: Kernel, group: ThreadGroup, space: AddressSpace | None) -> None:
    """`group` lets go of `space` (exit, execve): each attach in it is a detach, for
    shm_dtime and shm_lpid (shm_close), unless another live process shares the space."""
    shm = kernel.__dict__.get("ipc")
    if shm is None or space is None or any(g is not group and g.alive and g.space is space
                                           for g in kernel.processes.values()):
        return
    for region in space.regions:
        seg = shm.shm.segment_of(region)
        if seg is not None:
            seg.dtime, seg.lpid = now_seconds(group), group.pid


def pinned_files(kernel: Kernel, mapped: set[int]) -> set[int]:
    """The page-cache trim asks which files to keep besides those regions map (`mapped`,
    ids of CachedFile objects): every live segment's. A removed segment nothing maps any
    more is destroyed here; once no process lives, every segment is (nobody can attach)."""
    shm = kernel.__dict__.get("ipc")
    if shm is None:
        return set()
    shm = shm.shm
    everyone_gone = not any(g.alive for g in kernel.processes.values())
    for seg in shm.ids:
        if everyone_gone or (seg.dest and id(seg.file) not in mapped):
            _destroy(shm, seg)
    return set(shm.by_file)


def _destroy(shm: ShmState, seg: Segment) -> None:
    """shm_destroy: the id and the page total go now; the caller's trim frees the pages."""
    shm.ids.remove(seg)
    shm.by_file.pop(id(seg.file), None)
    shm.total_pages -= seg.npages

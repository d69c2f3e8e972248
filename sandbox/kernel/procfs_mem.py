"""Memory as /proc reports it, computed from the page tables and the frames' reference counts.

A teaching tool in itself: `/proc/PID/smaps` walks every present leaf of every region (the
same tables the emulated CPU walks, sandbox/mm/pagetable.py) and asks the frame allocator
how many references the frame has. A frame of the page cache holds one reference for the
cache itself (pagecache.py `CachedFile.frame`), so the number of *mappings* of a frame --
Linux's page_mapcount -- is its reference count less that one. Then, as Linux's
fs/proc/task_mmu.c `smaps_account`:

- Rss counts every mapped page; Pss divides each page by its mapcount (fork shares every
  page copy-on-write: parent and child each show half);
- Shared_* counts pages mapped more than once, Private_* the others; *_Dirty are anonymous
  pages (written the moment they exist) and file pages whose leaf has the CPU's dirty bit;
- Anonymous counts the frames that belong to no file (private copies included).

/proc/meminfo counts the machine's frames the same way: free frames from the buddy
allocator, page-cache frames (Cached, of which Shmem and Mapped), anonymous frames, page
tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sandbox.mm import PAGE_SHIFT, PAGE_SIZE
from sandbox.mm.pagetable import PTE_DIRTY
from sandbox.mm.vma import PROT_EXEC, PROT_READ, PROT_WRITE, Region, RegionFlag

if TYPE_CHECKING:
    from sandbox.kernel.kernel import Kernel
    from sandbox.mm.aspace import AddressSpace

PSS_SHIFT = 12  # fixed-point Pss, as Linux's (fs/proc/task_mmu.c)
#: Names of the page-cache files that are shared memory (Linux's shmem): MAP_SHARED
#: anonymous memory (sys_mm.py), memfds and SysV segments.
SHMEM_PREFIXES = ("/dev/zero", "/memfd:", "/SYSV")
#: The counters of one smaps block, in the order Linux prints them (bytes; Pss fixed-point).
SMAPS_FIELDS = ("Rss", "Pss", "Pss_Dirty", "Pss_Anon", "Pss_File", "Pss_Shmem", "Shared_Clean", "Shared_Dirty",
                "Private_Clean", "Private_Dirty", "Referenced", "Anonymous")
ZERO_FIELDS = ("KSM", "LazyFree", "AnonHugePages", "ShmemPmdMapped", "FilePmdMapped", "Shared_Hugetlb",
               "Private_Hugetlb", "Swap", "SwapPss", "Locked")


class FrameKinds:
    """Which frames the page cache holds: every cached frame, and those of shared memory."""

    __slots__ = ("cached", "shmem")

    def __init__(self, cached: set[int], shmem: set[int]) -> None:
        self.cached = cached
        self.shmem = shmem


def frame_kinds(kernel: Kernel) -> FrameKinds:
    """The page cache's frames now (one reference each is the cache's own)."""
    cached: set[int] = set()
    shmem: set[int] = set()
    for entry in kernel.page_cache.files.values():
        pfns = entry.pages.values()
        cached.update(pfns)
        if entry.name.startswith(SHMEM_PREFIXES):
            shmem.update(pfns)
    return FrameKinds(cached, shmem)


def kb_line(name: str, value: int, unit: str = " kB") -> str:
    """"Name:" padded to 16 columns, the value right-aligned in 8 (seq_put_decimal_ull_width)."""
    return f"{name + ':':<16}{value:>8}{unit}\n"


class Usage:
    """The smaps counters of some pages (bytes; `Pss*` in PSS_SHIFT fixed point)."""

    def __init__(self) -> None:
        self.counts = dict.fromkeys(SMAPS_FIELDS, 0)

    def add_page(self, size: int, mapcount: int, anonymous: bool, shmem: bool, dirty: bool) -> None:
        """One mapped page of `size` bytes, mapped `mapcount` times (Linux smaps_page_accumulate)."""
        c = self.counts
        pss = (size << PSS_SHIFT) // max(mapcount, 1)
        c["Rss"] += size
        c["Referenced"] += size
        c["Pss"] += pss
        c["Pss_Anon" if anonymous else "Pss_Shmem" if shmem else "Pss_File"] += pss
        if dirty:
            c["Pss_Dirty"] += pss
        sharing = "Shared" if mapcount > 1 else "Private"
        c[f"{sharing}_{'Dirty' if dirty else 'Clean'}"] += size
        if anonymous:
            c["Anonymous"] += size

    def merge(self, other: Usage) -> None:
        for name, value in other.counts.items():
            self.counts[name] += value

    def lines(self, rollup: bool) -> list[str]:
        """The counter lines of an smaps block (`rollup`: smaps_rollup's, with Pss_Anon...)."""
        out = []
        for name, value in self.counts.items():
            if name.startswith("Pss_") and name != "Pss_Dirty" and not rollup:
                continue
            if name.startswith("Pss"):
                value >>= PSS_SHIFT
            out.append(kb_line(name, value >> 10))
        return out + [kb_line(name, 0) for name in ZERO_FIELDS]


def region_usage(space: AddressSpace, region: Region, kinds: FrameKinds) -> Usage:
    """Walk the leaves of `region` and count them (the heart of smaps)."""
    usage = Usage()
    frames = space.frames
    for _, mapping in space.pagetable.iter_leaves(region.start, region.end):
        pfn = mapping.pa >> PAGE_SHIFT
        in_cache = pfn in kinds.cached
        mapcount = frames.refcount(pfn) - (1 if in_cache else 0)
        dirty = not in_cache or bool(mapping.entry & PTE_DIRTY)
        usage.add_page(mapping.size, mapcount, not in_cache, pfn in kinds.shmem, dirty)
    return usage


def vm_flags(region: Region) -> str:
    """smaps' VmFlags (show_smap_vma_flags): two letters per flag, in Linux's bit order."""
    prot, most = region.prot, region.max_prot
    flags = [("rd", prot & PROT_READ), ("wr", prot & PROT_WRITE), ("ex", prot & PROT_EXEC), ("sh", region.shared),
             ("mr", most & PROT_READ), ("mw", most & PROT_WRITE), ("me", most & PROT_EXEC), ("ms", region.shared),
             ("gd", region.flags & RegionFlag.GROWSDOWN),
             ("ac", prot & PROT_WRITE and not region.shared and region.file is None)]
    return "VmFlags: " + "".join(f"{name} " for name, on in flags if on) + "\n"


def smaps(space: AddressSpace, kernel: Kernel, header) -> str:
    """/proc/PID/smaps: each region's maps line (`header(region)`), then its counters."""
    kinds = frame_kinds(kernel)
    blocks = []
    for region in space.regions:
        usage = region_usage(space, region, kinds)
        page_kb = region.page_size >> 10
        blocks.append("".join([header(region), kb_line("Size", region.size >> 10), kb_line("KernelPageSize", page_kb),
                               kb_line("MMUPageSize", page_kb), *usage.lines(rollup=False),
                               kb_line("THPeligible", 0, ""), vm_flags(region)]))
    return "".join(blocks)


def smaps_rollup(space: AddressSpace, kernel: Kernel, header) -> str:
    """/proc/PID/smaps_rollup: the counters of every region added up, under one line
    spanning them all (`header(start, end)`)."""
    kinds = frame_kinds(kernel)
    total = Usage()
    regions = list(space.regions)
    for region in regions:
        total.merge(region_usage(space, region, kinds))
    if not regions:
        return ""
    return header(regions[0].start, regions[-1].end) + "".join(total.lines(rollup=True))


def statm(space: AddressSpace | None, kernel: Kernel) -> str:
    """/proc/PID/statm in pages: size, resident, shared (file-backed resident), text,
    lib (0 since Linux 2.6), data (+ stack), dt (0)."""
    if space is None:
        return "0 0 0 0 0 0 0\n"
    kinds = frame_kinds(kernel)
    resident = shared = 0
    for _, mapping in space.pagetable.iter_leaves():
        pages = mapping.size >> PAGE_SHIFT
        resident += pages
        if mapping.pa >> PAGE_SHIFT in kinds.cached:
            shared += pages
    size = sum(r.size for r in space.regions) // PAGE_SIZE
    text = sum(r.size for r in space.regions if r.prot & PROT_EXEC and r.file is not None) // PAGE_SIZE
    data = sum(r.size for r in space.regions if r.prot & PROT_WRITE and not r.shared) // PAGE_SIZE
    return f"{size} {resident} {shared} {text} 0 {data} 0\n"


def _spaces(kernel: Kernel) -> list[AddressSpace]:
    """Every address space a process holds, each once (CLONE_VM shares them)."""
    return list({id(p.space): p.space for p in kernel.processes.values() if p.space is not None}.values())


def _mapped_frames(kernel: Kernel) -> set[int]:
    """Every frame some process maps (each space once)."""
    mapped: set[int] = set()
    for space in _spaces(kernel):
        mapped.update(m.pa >> PAGE_SHIFT for _, m in space.pagetable.iter_leaves())
    return mapped


def meminfo(kernel: Kernel) -> str:
    """/proc/meminfo (fs/proc/meminfo.c) for the sandbox's RAM: MemTotal is --memory."""
    frames = kernel.machine.frames
    kinds = frame_kinds(kernel)
    mapped = _mapped_frames(kernel)
    kb = PAGE_SIZE >> 10
    total, free = frames.nframes * kb, frames.free * kb
    cached = len(kinds.cached) * kb
    unmapped_cache = len(kinds.cached - mapped - kinds.shmem) * kb
    anon = len(mapped - kinds.cached) * kb
    tables = sum(space.pagetable.table_pages for space in _spaces(kernel)) * kb
    committed = sum(r.size for s in _spaces(kernel) for r in s.regions if r.prot & PROT_WRITE and not r.shared)
    rows = [("MemTotal", total), ("MemFree", free), ("MemAvailable", free + unmapped_cache), ("Buffers", 0),
            ("Cached", cached), ("SwapCached", 0), ("Active", anon + cached - unmapped_cache),
            ("Inactive", unmapped_cache), ("Active(anon)", anon), ("Inactive(anon)", 0),
            ("Active(file)", cached - unmapped_cache), ("Inactive(file)", unmapped_cache), ("Unevictable", 0),
            ("Mlocked", 0), ("SwapTotal", 0), ("SwapFree", 0), ("Dirty", 0), ("Writeback", 0),
            ("AnonPages", anon), ("Mapped", len(kinds.cached & mapped) * kb), ("Shmem", len(kinds.shmem) * kb),
            ("KReclaimable", 0), ("Slab", 0), ("SReclaimable", 0), ("SUnreclaim", 0), ("KernelStack", 0),
            ("PageTables", tables), ("NFS_Unstable", 0), ("Bounce", 0), ("WritebackTmp", 0),
            ("CommitLimit", total // 2), ("Committed_AS", committed >> 10), ("VmallocTotal", 34359738367),
            ("VmallocUsed", 0), ("VmallocChunk", 0), ("Percpu", 0), ("AnonHugePages", 0), ("ShmemHugePages", 0),
            ("ShmemPmdMapped", 0), ("FileHugePages", 0), ("FilePmdMapped", 0)]
    text = [kb_line(name, value) for name, value in rows]
    text += [kb_line(name, 0, "") for name in ("HugePages_Total", "HugePages_Free", "HugePages_Rsvd",
                                               "HugePages_Surp")]
    text += [kb_line("Hugepagesize", 2048), kb_line("Hugetlb", 0)]
    return "".join(text)

"""Guest memory as gdb reads and writes it: by virtual address, through the process's own
page tables, as Linux's ptrace does (access_process_vm with FOLL_FORCE).

- A read of a page that is present is a copy from its frame. A page of a readable region
  that was never touched is faulted in first, by the kernel's own fault ladder, as
  get_user_pages would; anything else (no region, PROT_NONE, the kernel half, beyond the
  user half) ends the read there. The stub never lets the CPU fault.
- A write into a writable region is the kernel's copy_out (copy-on-write included). A write
  into a private read-only region (program text: a breakpoint gdb plants itself, `set var`
  on a constant) goes to the frame, but first the page gets a frame of its own (the
  copy-on-write case, forced, and left read-only), so a write into text that a forked
  child or the page cache shares never shows through in them. A shared read-only mapping is
  refused, as it would write the file. Translated code is flushed after any write into
  executable memory.
"""

from __future__ import annotations

from sandbox.errors import GuestFault, OutOfMemory, SyscallError
from sandbox.mm import USER_END
from sandbox.mm.aspace import AddressSpace
from sandbox.mm.fault import copy_on_write
from sandbox.mm.pagetable import PTE_WRITABLE, Mapping
from sandbox.mm.uaccess import user_pa
from sandbox.mm.vma import PROT_EXEC, PROT_READ, PROT_WRITE, Access


def _present(space: AddressSpace, va: int) -> Mapping | None:
    """The leaf mapping `va` has, faulting a page of a readable region in; None if none."""
    m = space.pagetable.lookup(va)
    if m is not None:
        return m
    region = space.find_region(va)
    if region is None or not region.prot & PROT_READ:
        return None
    try:
        space.handle_page_fault(va, Access.READ)
    except (GuestFault, OutOfMemory):
        return None
    return space.pagetable.lookup(va)


def read_memory(space: AddressSpace, va: int, n: int) -> bytes:
    """Up to `n` bytes at `va`: fewer (maybe none) where the readable memory ends."""
    out = bytearray()
    while len(out) < n:
        here = va + len(out)
        if not 0 <= here < USER_END:
            break
        region = space.find_region(here)
        m = _present(space, here) if region is not None and region.prot & PROT_READ else None
        if m is None:
            break
        offset = here & (m.size - 1)
        take = min(m.size - offset, n - len(out))
        out += space.mem.read(m.pa + offset, take)
    return bytes(out)


def _forced_pa(space: AddressSpace, va: int) -> int | None:
    """Where a debugger's write of byte `va` goes (see the module doc); None if refused."""
    region = space.find_region(va)
    if region is None:
        return None
    if region.prot & PROT_WRITE:
        try:
            return user_pa(space, va, Access.WRITE)[0]
        except (SyscallError, OutOfMemory):
            return None
    if region.shared:
        return None
    m = _present(space, va)
    if m is None:
        return None
    copy_on_write(space, region, m)  # a frame of its own (or the one it had, if only it held it)
    m = space.pagetable.lookup(va)
    space.pagetable.set_entry(m.slot, m.entry & ~PTE_WRITABLE)  # the guest still may not write
    space.flush_tlb()
    return m.pa + (va & (m.size - 1))


def write_memory(space: AddressSpace, va: int, data: bytes) -> bool:
    """Write `data` at `va`; False if some byte could not be written (those before it were)."""
    if va < 0 or va + len(data) > USER_END:
        return False
    done = 0
    code = False
    while done < len(data):
        here = va + done
        pa = _forced_pa(space, here)
        if pa is None:
            return False
        region = space.find_region(here)
        code = code or bool(region.prot & PROT_EXEC)
        take = min(len(data) - done, 4096 - (here & 4095))
        space.mem.write(pa, data[done : done + take])
        done += take
    if code:
        space.mmu.code_changed()
    return True

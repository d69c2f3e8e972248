"""Copy-in and copy-out of guest virtual memory on behalf of system calls.

Like Linux's `copy_from_user`/`copy_to_user`, every access goes through this address space's
page tables and faults missing pages in through the same ladder the CPU's faults take (so a
`read()` into fresh bss is one demand fault, and a write into a copy-on-write page copies it).
Any address the guest could not touch itself (unmapped, kernel half, non-canonical, wrong
protection) raises `SyscallError(EFAULT)`: the host never follows a wild guest pointer.
"""

from __future__ import annotations

import errno

from sandbox.errors import GuestFault, SyscallError
from sandbox.mm import USER_END
from sandbox.mm.aspace import AddressSpace
from sandbox.mm.pagetable import PTE_USER, PTE_WRITABLE
from sandbox.mm.vma import PROT_EXEC, Access


def _check_span(va: int, n: int) -> None:
    """EFAULT unless `[va, va + n)` lies in the user half."""
    if n < 0 or va < 0 or va + n > USER_END:
        raise SyscallError(errno.EFAULT, f"{va:#x}+{n} is outside user space")


def access_ok(va: int, n: int) -> None:
    """EFAULT unless `[va, va + n)` lies in the user half: what Linux checks of a buffer
    before a transfer (access_ok), whatever part of it the call then touches."""
    _check_span(va, n)


def user_pa(space: AddressSpace, va: int, access: Access) -> tuple[int, int]:
    """Physical address of user byte `va` for `access`, faulting the page in if needed.

    Returns (pa, bytes left in that page). Raises SyscallError(EFAULT).
    """
    m = space.pagetable.lookup(va)
    need = PTE_USER | (PTE_WRITABLE if access & Access.WRITE else 0)
    if m is None or m.entry & need != need:
        try:
            space.handle_page_fault(va, access)
        except GuestFault as fault:
            raise SyscallError(errno.EFAULT, f"{va:#x}: {fault.why}") from None
        m = space.pagetable.lookup(va)
    offset = va & (m.size - 1)
    return m.pa + offset, m.size - offset


def copy_in(space: AddressSpace, va: int, n: int) -> bytes:
    """Read `n` bytes of guest memory at `va`."""
    _check_span(va, n)
    mem = space.mem.bytes
    if n == 0:
        return b""
    pa, room = user_pa(space, va, Access.READ)
    if n <= room:
        return bytes(mem[pa : pa + n])
    parts = []
    while n > 0:
        pa, room = user_pa(space, va, Access.READ)
        take = min(room, n)
        parts.append(mem[pa : pa + take])
        va += take
        n -= take
    return b"".join(parts)


def copy_out(space: AddressSpace, va: int, data: bytes | bytearray | memoryview) -> None:
    """Write `data` into guest memory at `va`."""
    n = len(data)
    _check_span(va, n)
    mem = space.mem.bytes
    region = space.regions.find(va)
    if region is not None and region.prot & PROT_EXEC:
        space.mmu.code_changed()  # e.g. read() into a JIT's buffer: translated code goes stale
    done = 0
    while done < n:
        pa, room = user_pa(space, va + done, Access.WRITE)
        take = min(room, n - done)
        mem[pa : pa + take] = data[done : done + take]
        done += take


def read_cstring(space: AddressSpace, va: int, limit: int = 4096) -> bytes:
    """A NUL-terminated string at `va` (without the NUL); ENAMETOOLONG past `limit` bytes.
    No byte past the string's `limit + 1` is read (strncpy_from_user): a string that runs
    on into an unmapped page is too long, not a fault, when its bytes up to there are."""
    _check_span(va, 1)
    mem = space.mem.bytes
    out = bytearray()
    while len(out) <= limit:
        pa, room = user_pa(space, va, Access.READ)
        room = min(room, limit + 1 - len(out))
        chunk = mem[pa : pa + room]
        end = bytes(chunk).find(b"\0")
        if end >= 0:
            out += chunk[:end]
            break
        out += chunk
        va += room
        _check_span(va, 1)
    if len(out) > limit:
        raise SyscallError(errno.ENAMETOOLONG, f"string at {va:#x} is longer than {limit}")
    return bytes(out)

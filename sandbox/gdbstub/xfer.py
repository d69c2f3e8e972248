"""The objects gdb reads with qXfer: the process's auxv, its executable's path, and the
dynamic linker's list of loaded libraries (GDB manual, "qXfer:object:read:annex:offset,length").

The library list is what gdbserver builds (gdbserver/linux-low.cc, qXfer:libraries-svr4):
the program's PT_DYNAMIC (found from AT_PHDR) holds DT_DEBUG, the address of the dynamic
linker's `struct r_debug` (glibc's <link.h>), whose `r_map` heads a list of `struct
link_map`, one per loaded object, the program's own first. Every read goes through the
guest's page tables and is bounded: the guest wrote those structures, and may have written
anything.
"""

from __future__ import annotations

import struct
from html import escape

from sandbox import abi
from sandbox.gdbstub.memory import read_memory
from sandbox.mm.aspace import AddressSpace

#: The auxv entries read from the initial stack, at most (Linux has about 25).
AUXV_MAX = 64
#: Environment strings skipped on the initial stack, at most (ARG_MAX allows ~128 Ki pointers).
ENV_MAX = 1 << 17
#: link_map entries listed, at most (a corrupted list may be circular).
LIBRARIES_MAX = 1024
#: Dynamic-section entries scanned, at most.
DYNAMIC_MAX = 512
PATH_MAX = 4096

PT_DYNAMIC, PT_PHDR = 2, 6  # elf.h
DT_NULL, DT_DEBUG = 0, 21
PHDR = struct.Struct("<IIQQQQQQ")  # Elf64_Phdr: type, flags, offset, vaddr, paddr, filesz, memsz, align
LINK_MAP = struct.Struct("<QQQQ")  # l_addr, l_name, l_ld, l_next
R_MAP_OFFSET = 8  # struct r_debug: int r_version (padded), struct link_map *r_map


def _word(space: AddressSpace, va: int) -> int | None:
    data = read_memory(space, va, 8)
    return struct.unpack("<Q", data)[0] if len(data) == 8 else None


def read_auxv(space: AddressSpace, rsp: int) -> bytes:
    """The auxv a new image's stack holds at `rsp` (argc, argv, envp, then the pairs), as
    /proc/PID/auxv gives it, up to and including AT_NULL; b"" if it cannot be read."""
    argc = _word(space, rsp)
    if argc is None:
        return b""
    va = rsp + 8 * (argc + 2)  # past argc, argv[] and its NULL
    for _ in range(ENV_MAX):
        word = _word(space, va)
        va += 8
        if word is None:
            return b""
        if word == 0:
            break
    auxv = read_memory(space, va, 16 * AUXV_MAX)
    for i in range(0, len(auxv) - 15, 16):
        if struct.unpack_from("<Q", auxv, i)[0] == abi.AT_NULL:
            return auxv[: i + 16]
    return b""


def auxv_entry(auxv: bytes, kind: int) -> int | None:
    """The value of auxv entry `kind`, or None."""
    for i in range(0, len(auxv) - 15, 16):
        key, value = struct.unpack_from("<QQ", auxv, i)
        if key == kind:
            return value
    return None


def _dynamic_address(space: AddressSpace, auxv: bytes) -> int | None:
    """The program's PT_DYNAMIC address (relocated by where PT_PHDR landed), or None."""
    phdr, phnum = auxv_entry(auxv, abi.AT_PHDR), auxv_entry(auxv, abi.AT_PHNUM)
    if phdr is None or phnum is None or phnum > 256:
        return None
    table = read_memory(space, phdr, PHDR.size * phnum)
    headers = [PHDR.unpack_from(table, i) for i in range(0, len(table) - PHDR.size + 1, PHDR.size)]
    base = next((phdr - h[3] for h in headers if h[0] == PT_PHDR), None)
    dynamic = next((h[3] for h in headers if h[0] == PT_DYNAMIC), None)
    if dynamic is None:
        return None
    return dynamic + (base or 0)


def r_debug_address(space: AddressSpace, auxv: bytes) -> int | None:
    """DT_DEBUG's value (the dynamic linker's r_debug), or None if not set (yet)."""
    dynamic = _dynamic_address(space, auxv)
    if dynamic is None:
        return None
    entries = read_memory(space, dynamic, 16 * DYNAMIC_MAX)
    for i in range(0, len(entries) - 15, 16):
        tag, value = struct.unpack_from("<qQ", entries, i)
        if tag == DT_NULL:
            break
        if tag == DT_DEBUG:
            return value or None
    return None


def _cstring(space: AddressSpace, va: int) -> str:
    data = read_memory(space, va, PATH_MAX) if va else b""
    return data.split(b"\0", 1)[0].decode(errors="replace")


def libraries_svr4(space: AddressSpace, auxv: bytes) -> bytes:
    """The <library-list-svr4> document: every link_map but the program's own."""
    r_debug = r_debug_address(space, auxv)
    lm = _word(space, r_debug + R_MAP_OFFSET) if r_debug else None
    if not lm:
        return b'<library-list-svr4 version="1.0"/>'
    head, entries, seen = lm, [], set()
    while lm and lm not in seen and len(seen) < LIBRARIES_MAX:
        seen.add(lm)
        raw = read_memory(space, lm, LINK_MAP.size)
        if len(raw) < LINK_MAP.size:
            break
        l_addr, l_name, l_ld, l_next = LINK_MAP.unpack(raw)
        name = _cstring(space, l_name)
        if lm != head and name:
            entries.append(f'<library name="{escape(name)}" lm="{lm:#x}" l_addr="{l_addr:#x}" '
                           f'l_ld="{l_ld:#x}" lmid="0x0"/>')
        lm = l_next
    body = "".join(entries)
    return f'<library-list-svr4 version="1.0" main-lm="{head:#x}">{body}</library-list-svr4>'.encode()

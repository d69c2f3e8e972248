"""Trace the instructions a program runs in an address range (sandbox.api hook_code)."""

import struct

from sandbox import api

PROGRAM = "/bin/busybox"  # static, not position-independent: its entry point is its address
E_ENTRY = 24  # offset of e_entry in the ELF64 header (elf(5))

with open(PROGRAM, "rb") as f:
    entry = struct.unpack_from("<Q", f.read(64), E_ENTRY)[0]

with api.Sandbox(memory=64 << 20, timeout=30) as sb:
    seen = []
    sb.hook_code(entry, entry + 16, lambda address, size: seen.append((address, size)))
    sb.run(PROGRAM, ["true"])
    print(f"entry: {entry:#x}")
    for address, size in seen:
        print(f"  {address:#x} +{address - entry:2} size {size}")

"""Hostile inputs, generated deterministically from a seed: malformed ELF files and random
machine code. Shared by the robustness tests and the soak test."""

from __future__ import annotations

import random
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "guests"))

import build  # noqa: E402 - guests/build.py: the ELF writer

EHDR = build.EHDR
PHDR = build.PHDR
PT_LOAD = 1


def _ehdr_fields(data: bytes) -> dict[str, int]:
    names = ("ident", "type", "machine", "version", "entry", "phoff", "shoff", "flags", "ehsize",
             "phentsize", "phnum", "shentsize", "shnum", "shstrndx")
    return dict(zip(names, EHDR.unpack_from(data), strict=True))


def _with_ehdr(data: bytes, **changes: int) -> bytes:
    fields = _ehdr_fields(data)
    fields.update(changes)
    out = bytearray(data)
    EHDR.pack_into(out, 0, *fields.values())
    return bytes(out)


def _load_headers(data: bytes) -> list[int]:
    """Offsets of the PT_LOAD program headers."""
    fields = _ehdr_fields(data)
    offsets = [fields["phoff"] + i * fields["phentsize"] for i in range(fields["phnum"])]
    return [o for o in offsets if o + PHDR.size <= len(data) and struct.unpack_from("<I", data, o)[0] == PT_LOAD]


def _with_phdr(data: bytes, at: int, **changes: int) -> bytes:
    names = ("type", "flags", "offset", "vaddr", "paddr", "filesz", "memsz", "align")
    fields = dict(zip(names, PHDR.unpack_from(data, at), strict=True))
    fields.update(changes)
    out = bytearray(data)
    PHDR.pack_into(out, at, *fields.values())
    return bytes(out)


def header_mutations(data: bytes) -> Iterator[tuple[str, bytes]]:
    """Each header field the loader checks, set to values a loader must refuse or survive."""
    for index, value, name in ((4, 1, "class 32-bit"), (4, 0, "class none"), (5, 2, "big-endian"),
                               (0, 0, "bad magic"), (6, 9, "version")):
        mutated = bytearray(data)
        mutated[index] = value
        yield name, bytes(mutated)
    for name, change in (("machine aarch64", {"machine": 183}), ("machine i386", {"machine": 3}),
                         ("type REL", {"type": 1}), ("type CORE", {"type": 4}), ("phoff past end", {"phoff": 1 << 40}),
                         ("phoff inside", {"phoff": 7}), ("phnum 0", {"phnum": 0}), ("phnum huge", {"phnum": 0xFFFF}),
                         ("phentsize 0", {"phentsize": 0}), ("phentsize 57", {"phentsize": 57}),
                         ("entry 0", {"entry": 0}), ("entry kernel", {"entry": 0xFFFF_FFFF_8000_0000}),
                         ("entry non-canonical", {"entry": 1 << 63})):
        yield name, _with_ehdr(data, **change)
    for index, offset in enumerate(_load_headers(data)):
        for name, change in (("offset past end", {"offset": 1 << 40}), ("filesz past end", {"filesz": 1 << 40}),
                             ("memsz < filesz", {"memsz": 1, "filesz": 4096}),
                             ("vaddr kernel", {"vaddr": 0xFFFF_8000_0000_0000}),
                             ("vaddr non-canonical", {"vaddr": 0x0000_8000_0000_0000}),
                             ("vaddr misaligned", {"vaddr": 0x400123}),
                             ("memsz huge", {"memsz": 1 << 62}), ("vaddr 0", {"vaddr": 0, "offset": 0}),
                             ("overlap", {"vaddr": 0x400000, "offset": 0}), ("flags none", {"flags": 0})):
            yield f"segment {index} {name}", _with_phdr(data, offset, **change)


def truncations(data: bytes, rng: random.Random, count: int) -> Iterator[tuple[str, bytes]]:
    for _ in range(count):
        cut = rng.randrange(0, len(data))
        yield f"truncated at {cut}", data[:cut]


def bit_flips(data: bytes, rng: random.Random, count: int) -> Iterator[tuple[str, bytes]]:
    """Flips in the headers (where they matter most) and anywhere."""
    for i in range(count):
        mutated = bytearray(data)
        span = 64 + 56 * 8 if i % 2 == 0 else len(data)
        for _ in range(rng.randrange(1, 4)):
            position = rng.randrange(0, min(span, len(data)))
            mutated[position] ^= 1 << rng.randrange(8)
        yield f"bit flips #{i}", bytes(mutated)


def random_code_elf(path: Path, code: bytes) -> None:
    """A valid static ELF whose text is `code` (a page of random bytes) at the entry point."""
    build.write_elf(path, build.BASE + build.PAGE, code, {})

"""Build the guest programs into guests/build/ (run by `make guests`).

- `guests/asm/*.s`: Intel-syntax assembly, assembled with keystone and wrapped into a static
  ET_EXEC ELF by `write_elf` below; no system toolchain is needed. A source is split into
  `.section .text/.rodata/.data/.bss` parts; `_start` must open `.text`. Labels in data
  sections are visible to the text (resolved through keystone's symbol resolver).
- `guests/c/*.c`: freestanding C (`#include "sys.h"`) built with `gcc -static -nostdlib`;
  `*.pie.c` names are built as static-PIE too.
- `examples/*.c`: the demos' guests (`sandbox demo`), built with glibc as demo-NAME
  (statically, but for `DYNAMIC_EXAMPLES`).
- `guests/libc/*.c`: ordinary C programs built three ways by real toolchains: glibc
  (`gcc -static -O2`, NAME-glibc), musl (`musl-gcc -static -O2`, NAME-musl) and glibc
  static-PIE (`gcc -static-pie -O2`, NAME-pie).
- `guests/dynamic/`: dynamically linked programs and the shared libraries they load, built
  as `gcc` and `g++` build by default (`DYNAMIC_BUILDS`): dyn-NAME and libNAME.so.

Every guest is a real Linux program: the tests run each natively and under the sandbox.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "build"
BASE = 0x400000
PAGE = 0x1000
SECTIONS = (".text", ".rodata", ".data", ".bss")
PF_X, PF_W, PF_R = 1, 2, 4
PT_LOAD, PT_PHDR, PT_GNU_STACK = 1, 6, 0x6474E551
EHDR = struct.Struct("<16sHHIQQQIHHHHHH")  # Elf64_Ehdr, System V gABI
PHDR = struct.Struct("<IIQQQQQQ")  # Elf64_Phdr
LABEL = re.compile(r"^\s*([A-Za-z_.$][\w.$]*):(.*)$")


def split_sections(source: str) -> dict[str, list[str]]:
    """Lines of each section, comments (#, ;) removed."""
    parts: dict[str, list[str]] = {name: [] for name in SECTIONS}
    current = ".text"
    for raw in source.splitlines():
        line = re.sub(r"\s[#;].*$|^[#;].*$", "", raw).rstrip()
        match = re.match(r"^\s*\.section\s+(\S+)", line)
        if match:
            if match.group(1) not in parts:
                raise SystemExit(f"unknown section {match.group(1)}")
            current = match.group(1)
        elif line.strip():
            parts[current].append(line)
    return parts


def assemble(ks, lines: list[str], address: int) -> bytes:
    """Keystone output for `lines` placed at `address` (b'' for nothing)."""
    if not lines:
        return b""
    encoding, _ = ks.asm("\n".join(lines), address)
    return bytes(encoding or b"")


def data_labels(ks, lines: list[str], address: int) -> dict[str, int]:
    """Address of every label in a data section: assemble the lines before each one."""
    labels = {}
    for i, line in enumerate(lines):
        match = LABEL.match(line)
        if match:
            labels[match.group(1)] = address + len(assemble(ks, lines[:i], address))
    return labels


def build_asm(source: Path, target: Path) -> None:
    """Assemble one .s guest into a static ELF."""
    from keystone import KS_ARCH_X86, KS_MODE_64, Ks

    ks = Ks(KS_ARCH_X86, KS_MODE_64)
    parts = split_sections(source.read_text())
    text_lines = parts[".text"]
    if not text_lines or not (LABEL.match(text_lines[0]) and LABEL.match(text_lines[0]).group(1) == "_start"):
        raise SystemExit(f"{source}: .text must begin with _start:")
    text_at = BASE + PAGE
    # Pass 1 sizes the text with placeholder data addresses (absolute operands are always
    # imm32/disp32, so sizes do not depend on the values); pass 2 uses the real ones.
    names = [m.group(1) for sec in (".rodata", ".data", ".bss") for line in parts[sec]
             if (m := LABEL.match(line))]
    text_size = len(assemble_text(text_lines, text_at, dict.fromkeys(names, 0x7FFF_0000)))
    address = align(text_at + text_size, PAGE)
    symbols: dict[str, int] = {}
    placed = {}
    for name in (".rodata", ".data", ".bss"):
        if parts[name]:
            symbols.update(data_labels(ks, parts[name], address))
            blob = assemble(ks, parts[name], address)
            placed[name] = (address, blob)
            address = align(address + len(blob), PAGE) if name != ".data" else address + len(blob)
    text = assemble_text(text_lines, text_at, symbols)
    if len(text) != text_size:
        raise SystemExit(f"{source}: text size changed between passes")
    write_elf(target, text_at, text, placed)


def assemble_text(lines: list[str], address: int, symbols: dict[str, int]) -> bytes:
    """Assemble .text with the data labels defined as absolute symbols (`.set`).

    Data is addressed absolutely (`mov esi, msg`, `[msg]`): with `.set` symbols keystone
    would read `[rip + msg]` as a displacement of msg's address, so that form is refused.
    (Keystone's symbol-resolver option is avoided: setting it switches the radix to 16.)
    """
    from keystone import KS_ARCH_X86, KS_MODE_64, Ks

    for line in lines:
        for name in symbols:
            if re.search(rf"rip\s*\+\s*{re.escape(name)}\b", line):
                raise SystemExit(f"use absolute addressing for data label {name}: {line.strip()}")
    header = [f".set {name}, {value:#x}" for name, value in symbols.items()]
    return assemble(Ks(KS_ARCH_X86, KS_MODE_64), header + lines, address)


def align(value: int, to: int) -> int:
    return (value + to - 1) & ~(to - 1)


def write_elf(target: Path, text_at: int, text: bytes, placed: dict[str, tuple[int, bytes]]) -> None:
    """An ET_EXEC x86-64 ELF: headers page (R), .text (R-X), .rodata (R), .data+.bss (RW-)."""
    segments = [(PF_R, BASE, b"", 0)]  # headers; filled below
    segments.append((PF_R | PF_X, text_at, text, len(text)))
    if ".rodata" in placed:
        addr, blob = placed[".rodata"]
        segments.append((PF_R, addr, blob, len(blob)))
    if ".data" in placed or ".bss" in placed:
        start = placed.get(".data", placed.get(".bss"))[0]
        data = placed.get(".data", (start, b""))[1]
        end = placed[".bss"][0] + len(placed[".bss"][1]) if ".bss" in placed else start + len(data)
        segments.append((PF_R | PF_W, start, data, end - start))
    phnum = len(segments) + 2  # + PT_PHDR + PT_GNU_STACK
    header_size = EHDR.size + phnum * PHDR.size
    phdrs = [PHDR.pack(PT_PHDR, PF_R, EHDR.size, BASE + EHDR.size, BASE + EHDR.size,
                       phnum * PHDR.size, phnum * PHDR.size, 8)]
    image = bytearray(header_size)
    for flags, vaddr, blob, memsz in segments:
        offset = vaddr - BASE
        if vaddr == BASE:
            blob, memsz = bytes(header_size), header_size
        else:
            image[len(image):] = bytes(offset - len(image)) if offset > len(image) else b""
            image[offset : offset + len(blob)] = blob
        phdrs.append(PHDR.pack(PT_LOAD, flags, offset, vaddr, vaddr, len(blob), memsz, PAGE))
    phdrs.append(PHDR.pack(PT_GNU_STACK, PF_R | PF_W, 0, 0, 0, 0, 0, 16))
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # ELFCLASS64, LSB, EV_CURRENT, SYSV
    ehdr = EHDR.pack(ident, 2, 62, 1, text_at, EHDR.size, 0, 0, EHDR.size, PHDR.size, phnum, 64, 0, 0)
    image[: len(ehdr)] = ehdr
    image[EHDR.size : header_size] = b"".join(phdrs)
    target.write_bytes(bytes(image))
    target.chmod(0o755)


C_FLAGS = ["-static", "-nostdlib", "-O2", "-fno-stack-protector", "-fno-builtin", "-ffreestanding",
           "-fcf-protection=none", "-Wall", "-Werror", "-I", str(HERE / "c")]


def build_c(source: Path, target: Path, pie: bool = False) -> None:
    """gcc -static -nostdlib (or -static-pie) for one freestanding C guest."""
    cc = shutil.which("gcc")
    if cc is None:
        raise SystemExit("gcc not found: install it (make system-deps)")
    mode = ["-static-pie", "-fPIE"] if pie else ["-no-pie", "-fno-pie"]
    subprocess.run([cc, *C_FLAGS, *mode, "-o", str(target), str(source)], check=True)


LIBC_BUILDS = {
    "glibc": ["gcc", "-static", "-O2"],
    "musl": ["musl-gcc", "-static", "-O2"],
    "pie": ["gcc", "-static-pie", "-fPIE", "-O2"],
}


def build_libc(source: Path, stem: str) -> list[str]:
    """One libc guest, once per toolchain; a missing toolchain is an error, not a skip."""
    built = []
    for variant, command in LIBC_BUILDS.items():
        if shutil.which(command[0]) is None:
            raise SystemExit(f"{command[0]} not found: install it (make system-deps)")
        target = OUT / f"{stem}-{variant}"
        subprocess.run([*command, "-Wall", "-o", str(target), str(source), "-lm"], check=True)
        built.append(target.name)
    return built


#: guests/dynamic and guests/threads: target -> (compiler and flags, sources under guests/).
#: Default builds are dynamically
#: linked PIEs; -no-pie gives a dynamic ET_EXEC. uselib is linked against libgreet.so with
#: no rpath, so only LD_LIBRARY_PATH finds it.
DYNAMIC_BUILDS = {
    "dyn-hello": (["gcc", "-O2"], ["dynamic/hello.c"]),
    "dyn-hello-nopie": (["gcc", "-O2", "-no-pie"], ["dynamic/hello.c"]),
    "dyn-hello-musl": (["musl-gcc", "-O2"], ["dynamic/hello.c"]),
    "dyn-auxv": (["gcc", "-O2"], ["dynamic/auxv.c"]),
    "libplugin.so": (["gcc", "-O2", "-shared", "-fPIC"], ["dynamic/plugin.c"]),
    "dyn-dlopen": (["gcc", "-O2"], ["dynamic/dlopen.c"]),
    "libgreet.so": (["gcc", "-O2", "-shared", "-fPIC"], ["dynamic/greet.c"]),
    "dyn-uselib": (["gcc", "-O2", f"-L{OUT}", "-lgreet"], ["dynamic/uselib.c"]),
    "libpreload.so": (["gcc", "-O2", "-shared", "-fPIC"], ["dynamic/preload.c"]),
    "dyn-getpid": (["gcc", "-O2"], ["dynamic/getpid.c"]),
    "dyn-cxx": (["g++", "-O2", "-std=c++17"], ["dynamic/cxx.cpp"]),
    "thr-cxx": (["g++", "-O2", "-std=c++17", "-pthread"], ["threads/cxx_threads.cpp"]),
}


#: Demos whose story is dynamic linking: built as gcc builds by default, not -static.
DYNAMIC_EXAMPLES = {"shared_libraries"}


def build_dynamic() -> list[str]:
    """The dynamically linked guests and their libraries (in order: libraries first)."""
    for target, (command, sources) in DYNAMIC_BUILDS.items():
        if shutil.which(command[0]) is None:
            raise SystemExit(f"{command[0]} not found: install it (make system-deps)")
        inputs = [str(HERE / name) for name in sources]
        libraries = [flag for flag in command if flag.startswith(("-l", "-L"))]
        flags = [flag for flag in command if flag not in libraries]
        subprocess.run([*flags, "-Wall", "-Werror", "-o", str(OUT / target), *inputs, *libraries], check=True)
    return list(DYNAMIC_BUILDS)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    built = []
    for source in sorted((HERE / "asm").glob("*.s")):
        build_asm(source, OUT / source.stem)
        built.append(source.stem)
    for source in sorted((HERE / "c").glob("*.c")):
        stem = source.name.removesuffix(".c").removesuffix(".pie")
        build_c(source, OUT / stem)
        built.append(stem)
        if source.name.endswith(".pie.c"):
            build_c(source, OUT / f"{stem}-pie", pie=True)
            built.append(f"{stem}-pie")
    for source in sorted((HERE / "libc").glob("*.c")):
        built += build_libc(source, source.stem)
    built += build_dynamic()
    for source in sorted((HERE.parent / "examples").glob("*.c")):
        target = OUT / f"demo-{source.stem.replace('_', '-')}"
        linking = [] if source.stem in DYNAMIC_EXAMPLES else ["-static"]
        subprocess.run(["gcc", *linking, "-O2", "-Wall", "-o", str(target), str(source)], check=True)
        built.append(target.name)
    print(f"built {len(built)} guests in {OUT}: {' '.join(built)}")


if __name__ == "__main__":
    sys.exit(main())

"""ELF loading (ET_EXEC and ET_DYN x86-64, with or without an interpreter) and the initial
process stack.

`parse_elf` validates an open file and refuses, with one line naming the bad value, anything
this sandbox cannot run. A run needs only two fixed-layout records, the ELF header and the
program headers, so only they are read (with `struct`), and no more of them than Linux's
`elf_read_phdrs` accepts: the file may be any size, even a sparse 4 GiB one, and costs the
host the same. Importing pyelftools costs a sixth of start-up (its construct package pulls
in pdb); it still names refused values (its enum tables), imported only on that path.
`load_elf` turns the PT_LOAD segments into demand-paged mappings of the file through the
page cache, as mmap maps any file (pages arrive on first touch through the fault handler),
and `build_stack` builds the stack that the SysV x86-64 ABI (§3.4.1, "Initial Stack and
Register State") promises at `_start`.

A dynamically linked program names its interpreter (PT_INTERP, e.g. ld-linux-x86-64.so.2);
as Linux's `load_elf_binary` does, the kernel then loads both: the program at its own
addresses (ET_EXEC) or at ELF_ET_DYN_BASE (a PIE), the interpreter where a top-down mmap
of its whole span lands, and enters the interpreter, telling it where the program is
through the auxiliary vector (AT_PHDR, AT_ENTRY, AT_BASE).
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from typing import NamedTuple

from sandbox import abi
from sandbox.errors import ElfError, LoadError, SandboxError, SyscallError
from sandbox.mm import PAGE_SIZE, USER_END, page_down, page_up
from sandbox.mm.aspace import MMAP_MIN_ADDR, AddressSpace
from sandbox.mm.uaccess import copy_out
from sandbox.mm.vma import PROT_EXEC, PROT_READ, PROT_WRITE, FileSource, RegionFlag, RegionKind

# ELF constants (System V gABI, "ELF Header" and "Program Header").
ET_EXEC, ET_DYN = 2, 3
EM_X86_64 = 62
PT_LOAD, PT_INTERP, PT_GNU_STACK = 1, 3, 0x6474E551
PF_X, PF_W, PF_R = 1, 2, 4
#: Elf64_Ehdr after e_ident: e_type, e_machine, e_version, e_entry, e_phoff, e_shoff, e_flags,
#: e_ehsize, e_phentsize, e_phnum (gABI "ELF Header"; the section fields are not needed).
ELF64_EHDR = struct.Struct("<HHIQQQIHHH")
ELF64_EHDR_SIZE = 64
#: Elf64_Phdr: p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align.
ELF64_PHDR = struct.Struct("<IIQQQQQQ")
ELF64_PHDR_SIZE = ELF64_PHDR.size
#: The most program-header bytes Linux reads (fs/binfmt_elf.c `elf_read_phdrs`: ELF_MIN_ALIGN).
MAX_PHDR_BYTES = PAGE_SIZE
PATH_MAX = 4096  # a PT_INTERP name is at most this long (binfmt_elf.c checks p_filesz)

#: Where Linux puts a PIE without address randomization (arch/x86/include/asm/elf.h
#: ELF_ET_DYN_BASE: 2/3 of the 47-bit user window, page-aligned).
PIE_LOAD_BIAS = 0x5555_5555_4000
#: Top of the initial stack, as Linux without address randomization (TASK_SIZE - 1 page).
STACK_TOP = 0x7FFF_FFFF_F000
#: Room the initial stack region has below its contents (Linux's `stack_expand`, 128 KiB).
STACK_EXPAND = 128 << 10
#: AT_HWCAP: CPUID.1:EDX of the emulated CPU (qemu64: fpu..sse2 as Linux reports them).
HWCAP = 0x078BFBFF
CLOCK_TICKS = 100  # AT_CLKTCK, USER_HZ
#: AT_MINSIGSTKSZ: the signal frame this kernel builds (sigframe.py) with room for a handler
#: to start, as Linux reports for a CPU without AVX (arch/x86/kernel/signal.c).
MIN_SIGNAL_STACK = 2048


class Segment:
    """One PT_LOAD program header, before the load bias is applied."""

    __slots__ = ("vaddr", "memsz", "offset", "filesz", "flags")

    def __init__(self, vaddr: int, memsz: int, offset: int, filesz: int, flags: int) -> None:
        self.vaddr = vaddr
        self.memsz = memsz
        self.offset = offset
        self.filesz = filesz
        self.flags = flags

    @property
    def prot(self) -> int:
        """mmap protection for this segment's p_flags."""
        return ((PROT_READ if self.flags & PF_R else 0) | (PROT_WRITE if self.flags & PF_W else 0)
                | (PROT_EXEC if self.flags & PF_X else 0))


class ElfImage:
    """A validated executable, ready to load: its headers' facts, never its contents."""

    __slots__ = ("path", "type", "entry", "phoff", "phnum", "segments", "stack_exec", "interpreter")

    def __init__(self, path: str, type: int, entry: int, phoff: int, phnum: int, segments: list[Segment],
                 stack_exec: bool, interpreter: str | None) -> None:
        self.path = path
        self.type = type
        self.entry = entry
        self.phoff = phoff
        self.phnum = phnum
        self.segments = segments
        self.stack_exec = stack_exec
        self.interpreter = interpreter

    @property
    def span(self) -> tuple[int, int]:
        """The page-aligned [low, high) the PT_LOAD segments cover, before the load bias."""
        return (page_down(min(s.vaddr for s in self.segments)),
                page_up(max(s.vaddr + s.memsz for s in self.segments)))


class TailPage(NamedTuple):
    """The file bytes of a segment's last, partial page (at most one page, kept by value).

    Linux's loader zeroes the rest of that page when bss follows (`padzero` in
    fs/binfmt_elf.c), so it cannot map the shared page-cache frame: it is a private page
    filled from these bytes (FileSource protocol: `name`, `size`, `read`).
    """

    name: str
    offset: int  # file offset of `data[0]`
    data: bytes
    size: int  # the file's size

    def read(self, offset: int, n: int) -> bytes:
        """File bytes `[offset, offset + n)`, as far as this page holds them."""
        start = offset - self.offset
        return self.data[start : start + n] if start >= 0 else b""


class LoadedImage:
    """Where an image landed: what the stack's auxv and the brk need to know."""

    __slots__ = ("entry", "phdr", "phnum", "brk_start", "bias")

    def __init__(self, entry: int, phdr: int, phnum: int, brk_start: int, bias: int) -> None:
        self.entry = entry
        self.phdr = phdr
        self.phnum = phnum
        self.brk_start = brk_start
        self.bias = bias


def read_elf(path: str) -> ElfImage:
    """Open and validate the executable at `path`; raise SandboxError/ElfError with one line."""
    fd = open_elf(path)
    try:
        return parse_elf(fd, path)
    finally:
        os.close(fd)


def open_elf(path: str) -> int:
    """A read-only host descriptor for the regular file at `path` (the program a user named);
    SandboxError if there is none. Opened without blocking: a FIFO must not hang the run."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise LoadError(errno.ENOENT, f"{path}: no such file") from None
    except OSError as error:
        raise SandboxError(f"{path}: {error.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise SandboxError(f"{path}: is a directory" if stat.S_ISDIR(mode) else f"{path}: not a regular file")
    return fd


def parse_elf(fd: int, path: str) -> ElfImage:
    """Validate the ELF file open at `fd` by its headers alone (bounded reads)."""
    size = os.fstat(fd).st_size
    header = _pread(fd, path, ELF64_EHDR_SIZE, 0)
    _check_ident(path, header)
    return _parse(fd, path, header, size)


def _pread(fd: int, path: str, n: int, offset: int) -> bytes:
    """Up to `n` file bytes at `offset`; SandboxError for a host read error or an offset
    no file has (kernel_read: EINVAL for a negative position)."""
    try:
        return os.pread(fd, n, offset)
    except OSError as error:
        raise SandboxError(f"{path}: {error.strerror}") from None
    except OverflowError:
        raise ElfError(f"{path}: file offset {offset:#x} is out of range") from None


def _check_ident(path: str, data: bytes) -> None:
    """e_ident: magic, 64-bit class, little-endian (gABI "ELF Identification")."""
    if data[:4] != b"\x7fELF":
        raise ElfError(f"{path}: not an ELF file or a #! script ({_describe_start(data)})")
    if len(data) < ELF64_EHDR_SIZE:
        raise ElfError(f"{path}: truncated ELF header ({len(data)} bytes)")
    if data[4] != 2:
        raise ElfError(f"{path}: {_architecture(data)}: only x86-64 runs here")
    if data[5] != 1:
        raise ElfError(f"{path}: ELF data encoding {data[5]} is not little-endian")


#: How many of a file's first bytes a message shows.
SHOWN_START = 16


def _describe_start(data: bytes) -> str:
    """What a file that is no program starts with, for a message: its first line's start as
    text when it is printable, else its first bytes in hex."""
    if not data:
        return "it is empty"
    start = data[:SHOWN_START].split(b"\n", 1)[0]
    if start and all(0x20 <= byte < 0x7F for byte in start):
        return f"it starts with '{start.decode('ascii')}'"
    return f"it starts with bytes {data[:4].hex(' ')}"


#: The names users know for the e_machine values they meet (gABI; pyelftools names the rest).
ARCHITECTURES = {3: "x86", 8: "MIPS", 20: "PowerPC", 21: "PowerPC", 22: "s390", 40: "ARM", 62: "x86-64",
                 183: "ARM (AArch64)", 243: "RISC-V", 258: "LoongArch"}


def _architecture(ident: bytes) -> str:
    """What the header says the program is, as 'a 32-bit x86 program': e_ident's class
    and e_machine, which is at offset 18 in both classes, in e_ident's byte order."""
    bits = {1: "32-bit", 2: "64-bit"}.get(ident[4], f"ELF class {ident[4]}")
    if len(ident) < 20:
        return f"a {bits} program"
    machine = struct.unpack_from(">H" if ident[5] == 2 else "<H", ident, 18)[0]
    name = ARCHITECTURES.get(machine) or f"e_machine {_enum_name('ENUM_E_MACHINE', machine)}"
    if machine == EM_X86_64 and ident[4] == 1:
        name = "x86-64 x32-ABI"
    return f"a {bits} {name} program"


def _enum_name(table: str, value: int) -> str:
    """pyelftools' name for an ELF enum value (e.g. EM_AARCH64), or the number."""
    from elftools.elf import enums

    names = {v: k for k, v in getattr(enums, table).items() if isinstance(v, int)}
    return names.get(value, str(value))


def _parse(fd: int, path: str, header: bytes, size: int) -> ElfImage:
    """Check the header and program headers, collect the PT_LOAD segments."""
    (e_type, e_machine, _version, e_entry, e_phoff, _shoff, _flags, _ehsize, e_phentsize,
     e_phnum) = ELF64_EHDR.unpack_from(header, 16)
    if e_machine != EM_X86_64:
        raise ElfError(f"{path}: {_architecture(header)}: only x86-64 runs here")
    if e_type not in (ET_EXEC, ET_DYN):
        raise ElfError(f"{path}: ELF type {_enum_name('ENUM_E_TYPE', e_type)} is not an executable")
    if e_phnum and e_phentsize != ELF64_PHDR_SIZE:
        raise ElfError(f"{path}: e_phentsize {e_phentsize}, expected {ELF64_PHDR_SIZE}")
    if e_phnum * ELF64_PHDR_SIZE > MAX_PHDR_BYTES:
        raise ElfError(f"{path}: {e_phnum} program headers are more than one page holds")
    if e_phoff + e_phnum * ELF64_PHDR_SIZE > size:
        raise ElfError(f"{path}: program headers at {e_phoff:#x} run past end of file")
    table = _pread(fd, path, e_phnum * ELF64_PHDR_SIZE, e_phoff)
    if len(table) < e_phnum * ELF64_PHDR_SIZE:
        raise ElfError(f"{path}: program headers at {e_phoff:#x} run past end of file")
    bias = PIE_LOAD_BIAS if e_type == ET_DYN else 0
    segments, stack_exec, interpreter = [], False, None
    for index, (p_type, p_flags, p_offset, p_vaddr, _paddr, p_filesz, p_memsz, _align) in enumerate(
            ELF64_PHDR.iter_unpack(table)):
        if p_type == PT_INTERP and interpreter is None:
            interpreter = _interpreter_name(fd, path, p_offset, p_filesz, size)
        if p_type == PT_GNU_STACK:
            stack_exec = bool(p_flags & PF_X)
        if p_type == PT_LOAD and p_memsz:
            segment = Segment(p_vaddr, p_memsz, p_offset, p_filesz, p_flags)
            segments.append(_check_segment(path, index, size, segment, bias))
    image = ElfImage(path, e_type, e_entry, e_phoff, e_phnum, segments, stack_exec, interpreter)
    _check_layout(image)
    return image


def _interpreter_name(fd: int, path: str, offset: int, size: int, file_size: int) -> str:
    """PT_INTERP's contents: a NUL-terminated path, checked as binfmt_elf.c does (at least
    two bytes, at most PATH_MAX, a NUL as the last byte, nothing past end of file); as a C
    string, it ends at its first NUL."""
    if size < 2 or size > PATH_MAX:
        raise ElfError(f"{path}: PT_INTERP of {size} bytes is not a path")
    if offset + size > file_size:
        raise ElfError(f"{path}: PT_INTERP at {offset:#x} runs past end of file")
    data = _pread(fd, path, size, offset)
    if len(data) < size or data[-1] != 0:
        raise ElfError(f"{path}: PT_INTERP is not a NUL-terminated path")
    return data.split(b"\0", 1)[0].decode(errors="surrogateescape")


def _check_segment(path: str, index: int, file_size: int, s: Segment, bias: int) -> Segment:
    """One PT_LOAD: within the file, memsz >= filesz, congruent offset/vaddr, and in user
    space where it will be loaded (after the static-PIE bias)."""
    where = f"{path}: segment {index}"
    if s.offset + s.filesz > file_size:
        raise ElfError(f"{where}: file range {s.offset:#x}+{s.filesz:#x} is past end of file ({file_size:#x})")
    if s.memsz < s.filesz:
        raise ElfError(f"{where}: p_memsz {s.memsz:#x} is smaller than p_filesz {s.filesz:#x}")
    if (s.vaddr - s.offset) % PAGE_SIZE:
        raise ElfError(f"{where}: p_vaddr {s.vaddr:#x} and p_offset {s.offset:#x} differ modulo the page size")
    if bias + s.vaddr + s.memsz > USER_END - PAGE_SIZE:
        raise ElfError(f"{where}: {s.vaddr:#x}+{s.memsz:#x} reaches the kernel half or is non-canonical")
    if bias + s.vaddr < MMAP_MIN_ADDR:  # Linux's mmap refuses it (vm.mmap_min_addr): no page 0
        raise ElfError(f"{where}: {bias + s.vaddr:#x} is below mmap_min_addr ({MMAP_MIN_ADDR:#x})")
    return s


def _check_layout(image: ElfImage) -> None:
    """At least one PT_LOAD, no two overlapping, and the entry point in an executable one."""
    if not image.segments:
        raise ElfError(f"{image.path}: no PT_LOAD segment")
    ordered = sorted(image.segments, key=lambda s: s.vaddr)
    for a, b in zip(ordered, ordered[1:], strict=False):
        if a.vaddr + a.memsz > b.vaddr:
            raise ElfError(f"{image.path}: segments at {a.vaddr:#x} and {b.vaddr:#x} overlap")
    if not any(s.flags & PF_X and s.vaddr <= image.entry < s.vaddr + s.memsz for s in image.segments):
        raise ElfError(f"{image.path}: entry point {image.entry:#x} is not in an executable segment")


def load_bias(space: AddressSpace, image: ElfImage, interpreter: bool) -> int:
    """Where `image` goes (binfmt_elf.c `load_elf_binary`, without randomization): ET_EXEC
    at its own addresses; a program that is ET_DYN at ELF_ET_DYN_BASE; an interpreter where
    a top-down mmap of its whole span lands (below the mmap base, as ld.so is natively).
    ENOMEM (SyscallError) if the span fits nowhere."""
    if image.type == ET_EXEC:
        return 0
    if not interpreter:
        return PIE_LOAD_BIAS
    low, high = image.span
    base = space.find_free_vma_range(0, (high - low) // PAGE_SIZE)
    if base is None:
        raise SyscallError(errno.ENOMEM, f"no room for the interpreter's {high - low:#x} bytes")
    return base - low


def load_elf(space: AddressSpace, image: ElfImage, file: FileSource, name: str, bias: int) -> LoadedImage:
    """Map each PT_LOAD of `file` (the image's page-cache entry), moved by `bias`, as a
    private file mapping; return where things are. Nothing is read here: pages arrive on
    first touch.

    As Linux's `elf_map` + `padzero`: a segment's file pages map the file; when bss follows
    (p_memsz > p_filesz), the last partial file page becomes a private page whose bytes past
    p_filesz are zero (`TailPage`), and the pages wholly past the file bytes a separate
    anonymous bss region, as in Linux's /proc/PID/maps. A later segment may share its first
    page with the previous one: as with Linux's MAP_FIXED, the later mapping wins that page
    (offset/vaddr congruence makes the file bytes agree).
    """
    end = 0
    for seg in image.segments:
        start = page_down(seg.vaddr + bias)
        file_end = seg.vaddr + bias + seg.filesz
        seg_end = page_up(seg.vaddr + bias + seg.memsz)
        bss_start = max(page_up(file_end), start) if seg.filesz else start
        offset = seg.offset - (seg.vaddr + bias - start)
        kind = RegionKind.CODE if seg.flags & PF_X else RegionKind.DATA
        shared_end = page_down(file_end) if seg.memsz > seg.filesz else bss_start
        if shared_end > start:
            space.reserve_region(start, (shared_end - start) // PAGE_SIZE, seg.prot, flags=RegionFlag.FIXED,
                                 kind=kind, file=file, offset=offset, name=name)
        if bss_start > max(shared_end, start):
            tail_offset = offset + (shared_end - start)
            tail = TailPage(name, tail_offset, file.read(tail_offset, file_end - shared_end), file.size)
            space.reserve_region(shared_end, 1, seg.prot, flags=RegionFlag.FIXED, kind=kind, file=tail,
                                 offset=tail_offset, file_end=file_end, name=name)
        if seg_end > bss_start:
            space.reserve_region(bss_start, (seg_end - bss_start) // PAGE_SIZE, seg.prot,
                                 flags=RegionFlag.FIXED, kind=RegionKind.BSS)
        end = max(end, seg_end)
    return LoadedImage(image.entry + bias, _phdr_address(image) + bias, image.phnum, end, bias)


def _phdr_address(image: ElfImage) -> int:
    """Virtual address of the program headers: inside the PT_LOAD that maps e_phoff."""
    for seg in image.segments:
        if seg.offset <= image.phoff < seg.offset + seg.filesz:
            return seg.vaddr + (image.phoff - seg.offset)
    return 0


#: The ids a stack's auxv reports when the caller names none: the sandbox's own.
HOST_UID, HOST_GID = os.getuid(), os.getgid()


class StackSpec:
    """What goes on the initial stack besides the image's own facts."""

    __slots__ = ("argv", "envp", "execfn", "random", "executable", "uid", "gid", "interpreter_base")

    def __init__(self, argv: list[bytes], envp: list[bytes], execfn: bytes, random: bytes, executable: bool = False,
                 uid: int = HOST_UID, gid: int = HOST_GID, interpreter_base: int = 0) -> None:
        self.argv = argv
        self.envp = envp
        self.execfn = execfn
        self.random = random
        self.executable = executable  # PT_GNU_STACK asked for PF_X
        self.uid = uid
        self.gid = gid
        self.interpreter_base = interpreter_base  # AT_BASE: where the interpreter was loaded (0: none)


class StackLayout:
    """Where `build_stack` put things: the new RSP and the argv and envp strings (Linux's
    mm->arg_start/arg_end and env_start/env_end, which /proc/PID/cmdline and environ read),
    and the auxv pairs as bytes (Linux's mm->saved_auxv, which /proc/PID/auxv reads)."""

    __slots__ = ("rsp", "arg_start", "arg_end", "env_start", "env_end", "auxv")

    def __init__(self, rsp: int, arg_start: int, arg_end: int, env_start: int, env_end: int,
                 auxv: bytes = b"") -> None:
        self.rsp = rsp
        self.arg_start = arg_start
        self.arg_end = arg_end
        self.env_start = env_start
        self.env_end = env_end
        self.auxv = auxv


def build_stack(space: AddressSpace, loaded: LoadedImage, spec: StackSpec) -> StackLayout:
    """Create the stack region and write argc/argv/envp/auxv and strings; say where they are.

    Layout, high to low (as Linux's `create_elf_tables`): an 8-byte end marker, argv and envp
    strings, the execfn string, the platform string, 16 random bytes, padding, then auxv,
    envp[], argv[] and argc at a 16-byte aligned RSP.
    """
    top = STACK_TOP - 8
    pieces: list[bytes] = []  # high to low; joined once (prepending would copy per string)
    low = top

    def push(data: bytes) -> int:
        nonlocal low
        pieces.append(data)
        low -= len(data)
        return low

    execfn = push(spec.execfn + b"\0")
    env_end = low
    env_ptrs = [push(s + b"\0") for s in reversed(spec.envp)][::-1]
    arg_end = low
    arg_ptrs = [push(s + b"\0") for s in reversed(spec.argv)][::-1]
    arg_start = low
    platform = push(b"x86_64\0")
    random = push(spec.random)
    auxv = [
        (abi.AT_PHDR, loaded.phdr), (abi.AT_PHENT, ELF64_PHDR_SIZE), (abi.AT_PHNUM, loaded.phnum),
        (abi.AT_PAGESZ, PAGE_SIZE), (abi.AT_BASE, spec.interpreter_base), (abi.AT_FLAGS, 0),
        (abi.AT_ENTRY, loaded.entry),
        (abi.AT_UID, spec.uid), (abi.AT_EUID, spec.uid), (abi.AT_GID, spec.gid), (abi.AT_EGID, spec.gid),
        (abi.AT_SECURE, 0), (abi.AT_RANDOM, random), (abi.AT_HWCAP, HWCAP), (abi.AT_HWCAP2, 0),
        (abi.AT_CLKTCK, CLOCK_TICKS), (abi.AT_PLATFORM, platform), (abi.AT_EXECFN, execfn),
        (abi.AT_MINSIGSTKSZ, MIN_SIGNAL_STACK), (abi.AT_NULL, 0),
    ]
    words = [len(spec.argv), *arg_ptrs, 0, *env_ptrs, 0, *[x for pair in auxv for x in pair]]
    table = struct.pack(f"<{len(words)}Q", *words)
    rsp = (low - len(table)) & ~15
    stack_low = page_down(rsp) - STACK_EXPAND
    prot = PROT_READ | PROT_WRITE | (PROT_EXEC if spec.executable else 0)
    space.reserve_region(stack_low, (STACK_TOP - stack_low) // PAGE_SIZE, prot,
                         flags=RegionFlag.GROWSDOWN, kind=RegionKind.STACK, name="[stack]")
    copy_out(space, rsp, table)
    copy_out(space, low, b"".join(reversed(pieces)))
    saved_auxv = struct.pack(f"<{2 * len(auxv)}Q", *[x for pair in auxv for x in pair])
    return StackLayout(rsp, arg_start, arg_end, arg_end, env_end, saved_auxv)

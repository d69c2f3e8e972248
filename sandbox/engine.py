"""A lean ctypes binding to libunicorn: the dozen calls the machine makes, nothing else.

The library is the project's own build when there is one (`build/engine/libunicorn.so.2`,
made by engine/build.py from the pinned Unicorn sdist with engine/patches/ applied: x86
only, faster translated code), else the one the `unicorn` package ships
(`unicorn/lib/libunicorn.so.2`); $SANDBOX_ENGINE=wheel or =built forces one, and
$LIBUNICORN_PATH, as Unicorn's own module honours it, names a directory to use instead.
`describe()` says which loaded (`sandbox --version`, the stats). Only Unicorn's Python
module is bypassed. Importing that module costs about 45 ms on the benchmark
machine, most of `sandbox run hello` beyond the interpreter itself (it imports typing,
inspect, importlib.resources, pathlib and every architecture's constants to load the same
file). Loading the library through ctypes costs about 7 ms. See bench/RESULTS.md.

Constants are the C enum values of Unicorn 2's public headers (unicorn/unicorn.h,
unicorn/x86.h), named as there; tests/unit/test_engine.py checks each one against the
`unicorn` package's own constant modules, so a version that renumbers them fails the tests.
"""

from __future__ import annotations

import ctypes
import os
import sys

from sandbox.errors import EngineUnavailable

# unicorn/unicorn.h
UC_ARCH_X86 = 4
UC_MODE_64 = 8
UC_PROT_READ, UC_PROT_WRITE, UC_PROT_EXEC = 1, 2, 4
UC_PROT_ALL = UC_PROT_READ | UC_PROT_WRITE | UC_PROT_EXEC
UC_HOOK_INTR, UC_HOOK_INSN, UC_HOOK_BLOCK = 1, 2, 8
UC_ERR_OK = 0
UC_ERR_INSN_INVALID = 10
# uc_control_type and its I/O encoding (UC_CTL_IO_*, the UC_CTL macro).
UC_CTL_IO_WRITE = 1
UC_CTL_UC_USE_EXITS = 4
UC_CTL_UC_EXITS = 6
UC_CTL_CPU_MODEL = 7
UC_CTL_TB_FLUSH = 10
UC_CTL_TCG_BUFFER_SIZE = 13
# uc_query_type: the project's build answers 1 (engine/patches/0005); other libraries UC_ERR_ARG.
UC_QUERY_ASYNC_STOP = 5
# and 1 when dropping translated code by address leaves no guest exception behind (0008).
UC_QUERY_QUIET_INVALIDATE = 6
# and 1 when UC_CTL_TB_FLUSH takes a guest-physical range (0009).
UC_QUERY_PHYS_INVALIDATE = 7
#: Constants only the project's build knows, appended after Unicorn's own uc_query_type.
PROJECT_QUERIES = ("UC_QUERY_ASYNC_STOP", "UC_QUERY_QUIET_INVALIDATE", "UC_QUERY_PHYS_INVALIDATE")

# unicorn/x86.h: uc_cpu_x86, uc_x86_insn, uc_x86_reg (the ones the sandbox uses).
UC_CPU_X86_HASWELL = 19
UC_X86_INS_SYSCALL = 699
UC_X86_REG_CS = 11
UC_X86_REG_EFLAGS = 25
UC_X86_REG_FPSW = 31
UC_X86_REG_RAX = 35
UC_X86_REG_RBP = 36
UC_X86_REG_RBX = 37
UC_X86_REG_RCX = 38
UC_X86_REG_RDI = 39
UC_X86_REG_RDX = 40
UC_X86_REG_RIP = 41
UC_X86_REG_RSI = 43
UC_X86_REG_RSP = 44
UC_X86_REG_SS = 49
UC_X86_REG_CR0 = 50
UC_X86_REG_CR3 = 53
UC_X86_REG_CR4 = 54
UC_X86_REG_FP0 = 82  # FP0..FP7 are consecutive
UC_X86_REG_R8 = 106  # R8..R15 are consecutive
UC_X86_REG_R9 = 107
UC_X86_REG_R10 = 108
UC_X86_REG_R11 = 109
UC_X86_REG_R12 = 110
UC_X86_REG_R13 = 111
UC_X86_REG_R14 = 112
UC_X86_REG_R15 = 113
UC_X86_REG_XMM0 = 122  # XMM0..XMM15 are consecutive
UC_X86_REG_GDTR = 243
UC_X86_REG_FPCW = 246
UC_X86_REG_FPTAG = 247
UC_X86_REG_MSR = 248
UC_X86_REG_MXCSR = 249
UC_X86_REG_FS_BASE = 250
UC_X86_REG_GS_BASE = 251
UC_X86_REG_FIP = 254
UC_X86_REG_FDP = 256
UC_X86_REG_FOP = 258

LIBRARY_NAME = "libunicorn.so.2"
_u64 = ctypes.c_uint64


class EngineError(Exception):
    """A libunicorn call failed; `errno` is its uc_err value."""

    def __init__(self, errno: int) -> None:
        super().__init__(errno)
        self.errno = errno

    def __str__(self) -> str:
        return f"{_lib.uc_strerror(self.errno).decode()} (UC_ERR {self.errno})"


class _MMR(ctypes.Structure):
    """uc_x86_mmr: a descriptor-table register (GDTR, IDTR, LDTR, TR)."""

    _fields_ = (("selector", ctypes.c_uint16), ("base", _u64), ("limit", ctypes.c_uint32), ("flags", ctypes.c_uint32))


class _MSR(ctypes.Structure):
    """uc_x86_msr: a model-specific register by number."""

    _fields_ = (("rid", ctypes.c_uint32), ("value", _u64))


class _Float80(ctypes.Structure):
    """uc_x86_float80: an x87 stack register."""

    _fields_ = (("mantissa", _u64), ("exponent", ctypes.c_uint16))


def find_library() -> str:
    """The libunicorn the `unicorn` package installed (or $LIBUNICORN_PATH's, as its module honours)."""
    dirs = [os.environ["LIBUNICORN_PATH"]] if os.environ.get("LIBUNICORN_PATH") else []
    dirs += [os.path.join(entry or ".", "unicorn", "lib") for entry in sys.path]
    for directory in dirs:
        path = os.path.join(directory, LIBRARY_NAME)
        if os.path.exists(path):
            return path
    raise EngineUnavailable(f"{LIBRARY_NAME} not found: is the unicorn package installed?")


#: The project's own build (engine/build.py; `make compile` runs it), beside its engine.json.
#: (os.path, not pathlib: pathlib's import, with urllib.parse and ipaddress, is ~3 ms of start-up.)
BUILT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))), "build", "engine")
#: $SANDBOX_ENGINE: "built" or "wheel" forces that library; unset (or "auto"), the built one
#: is preferred when it exists and loads, unless $LIBUNICORN_PATH names a directory.
ENGINE_VARIABLE = "SANDBOX_ENGINE"
#: The Unicorn API the binding is written against: uc_version's major and minor must match.
API_VERSION = (2, 1)


def find_built_library() -> str | None:
    """The project's own libunicorn, if it has been built."""
    path = os.path.join(BUILT_DIR, LIBRARY_NAME)
    return path if os.path.exists(path) else None


def unicorn_version(lib: ctypes.CDLL) -> tuple[int, int, int]:
    """uc_version's (major, minor, patch): (major << 24) | (minor << 16) | (patch << 8) | extra."""
    lib.uc_version.restype = ctypes.c_uint32
    lib.uc_version.argtypes = (ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(ctypes.c_uint))
    combined = lib.uc_version(None, None)
    return combined >> 24, (combined >> 16) & 0xFF, (combined >> 8) & 0xFF


def _open(path: str) -> ctypes.CDLL:
    """Load one libunicorn and check its API version; ImportError if it cannot serve."""
    try:
        lib = ctypes.CDLL(path)
    except OSError as error:
        raise EngineUnavailable(f"{path}: {error}") from None
    version = unicorn_version(lib)
    if version[:2] != API_VERSION:
        raise EngineUnavailable(f"{path} is Unicorn {'.'.join(map(str, version))}; the sandbox needs "
                                f"{'.'.join(map(str, API_VERSION))}.x")
    return lib


def _choose() -> tuple[ctypes.CDLL, str, str]:
    """The library to use: (library, kind, note). `kind` is "built", "wheel" or "path"
    ($LIBUNICORN_PATH's); `note` says why a built library present was not used."""
    wanted = os.environ.get(ENGINE_VARIABLE) or "auto"  # set but empty is unset, as in a shell's VAR= cmd
    if wanted not in ("auto", "built", "wheel"):
        raise EngineUnavailable(f"${ENGINE_VARIABLE} is {wanted!r}: use built, wheel or leave it unset")
    built = find_built_library()
    if wanted == "built":
        if built is None:
            path = os.path.join(BUILT_DIR, LIBRARY_NAME)
            raise EngineUnavailable(f"${ENGINE_VARIABLE}=built but {path} does not exist (`make compile` builds it)")
        return _open(built), "built", ""
    note = ""
    if wanted == "auto" and built is not None and not os.environ.get("LIBUNICORN_PATH"):
        try:
            return _open(built), "built", ""
        except ImportError as error:
            note = f"project build not loadable: {error}"
    kind = "path" if os.environ.get("LIBUNICORN_PATH") else "wheel"
    return _open(find_library()), kind, note


def _load() -> ctypes.CDLL:
    """Load the library and declare the prototypes used here (unicorn/unicorn.h)."""
    global engine_kind, engine_note
    lib, engine_kind, engine_note = _choose()
    err, h, ctx, ptr, i32, u32, size = ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, \
        ctypes.c_int32, ctypes.c_uint32, ctypes.c_size_t
    prototypes = {
        "uc_version": (u32, ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(ctypes.c_uint)),
        "uc_strerror": (ctypes.c_char_p, err),
        "uc_open": (err, u32, u32, ctypes.POINTER(h)),
        "uc_close": (err, h),
        "uc_ctl": (err, h, i32),  # variadic: the control's own arguments follow
        "uc_mem_map_ptr": (err, h, _u64, size, u32, ptr),
        "uc_vmem_translate": (err, h, _u64, u32, ctypes.POINTER(_u64)),
        "uc_reg_read": (err, h, i32, ptr),
        "uc_reg_write": (err, h, i32, ptr),
        "uc_reg_read_batch": (err, h, ctypes.POINTER(i32), ctypes.POINTER(ptr), i32),
        "uc_reg_write_batch": (err, h, ctypes.POINTER(i32), ctypes.POINTER(ptr), i32),
        "uc_hook_add": (err, h, ctypes.POINTER(size), i32, ptr, ptr, _u64, _u64),  # variadic, as uc_ctl
        "uc_hook_del": (err, h, size),
        "uc_emu_start": (err, h, _u64, _u64, _u64, size),
        "uc_emu_stop": (err, h),
        "uc_query": (err, h, i32, ctypes.POINTER(size)),
        "uc_context_alloc": (err, h, ctypes.POINTER(ctx)),
        "uc_context_free": (err, ctx),
        "uc_context_size": (size, h),
        "uc_context_save": (err, h, ctx),
        "uc_context_restore": (err, h, ctx),
        "uc_context_reg_read": (err, ctx, i32, ptr),
        "uc_context_reg_write": (err, ctx, i32, ptr),
    }
    for name, (restype, *argtypes) in prototypes.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    return lib


#: Which library loaded: "built" (the project's), "wheel" (the unicorn package's) or "path"
#: ($LIBUNICORN_PATH's); and why a built library present was passed over ("" if it was not).
engine_kind, engine_note = "", ""


_lib = _load()
#: The raw library, for hot paths that call it directly (one ctypes call, no wrapper).
lib = _lib


def describe() -> str:
    """Which engine runs, for `sandbox --version` and the stats: e.g. "unicorn 2.1.4
    (project build, 3 patches)" or "unicorn 2.1.4 (PyPI wheel)"."""
    version = ".".join(map(str, unicorn_version(_lib)))
    if engine_kind == "built":
        return f"unicorn {version} (project build, {_built_patch_count()} patches)"
    where = "PyPI wheel" if engine_kind == "wheel" else f"LIBUNICORN_PATH={os.environ.get('LIBUNICORN_PATH', '')}"
    return f"unicorn {version} ({where}{'; ' + engine_note if engine_note else ''})"


def _built_patch_count() -> int | str:
    """How many patches engine/build.py applied (its engine.json), or "?" if unreadable."""
    import json  # only here: json stays off the start-up path

    try:
        with open(os.path.join(BUILT_DIR, "engine.json")) as f:
            return len(json.load(f)["patches"])
    except (OSError, ValueError, KeyError, TypeError):
        return "?"


def check(status: int) -> None:
    """Raise EngineError for a failed libunicorn call."""
    if status != UC_ERR_OK:
        raise EngineError(status)


def value_pointers(values: ctypes.Array) -> ctypes.Array:
    """A void* to each u64 of `values`: the value array uc_reg_read_batch/write_batch take."""
    base = ctypes.addressof(values)
    return (ctypes.c_void_p * len(values))(*[base + 8 * i for i in range(len(values))])


class Context:
    """A saved CPU state (uc_context): registers only, as uc_context_save takes by default."""

    def __init__(self, engine: Engine) -> None:
        self.pointer = ctypes.c_void_p()
        check(_lib.uc_context_alloc(engine.handle, ctypes.byref(self.pointer)))
        self.size = _lib.uc_context_size(engine.handle)
        self._free = _lib.uc_context_free

    def reg_read(self, reg: int) -> int:
        """A 64-bit (or narrower) register of the saved state."""
        value = _u64()
        check(_lib.uc_context_reg_read(self.pointer, reg, ctypes.byref(value)))
        return value.value

    def reg_write(self, reg: int, value: int) -> None:
        check(_lib.uc_context_reg_write(self.pointer, reg, ctypes.byref(_u64(value & 0xFFFF_FFFF_FFFF_FFFF))))

    def __bytes__(self) -> bytes:
        return ctypes.string_at(self.pointer, self.size)

    def __del__(self) -> None:
        if self.pointer:
            self._free(self.pointer)


class Engine:
    """One Unicorn x86-64 CPU. Raises EngineError where a call fails."""

    def __init__(self) -> None:
        self.handle = ctypes.c_void_p()
        check(_lib.uc_open(UC_ARCH_X86, UC_MODE_64, ctypes.byref(self.handle)))
        self._callbacks: list[object] = []  # ctypes callbacks must outlive the engine's use of them

    def __del__(self) -> None:
        """Free the engine (its TCG caches, its memory map; never the RAM it was lent) once
        nothing can call it any more: not the machine, nor a watchdog thread holding it."""
        if self.handle:
            _lib.uc_close(self.handle)

    # -- uc_ctl ----------------------------------------------------------------------------

    def _ctl_write(self, control: int, *args: object) -> None:
        """uc_ctl with UC_CTL_IO_WRITE: bits 31-30 the I/O direction, 29-26 the argument count."""
        check(_lib.uc_ctl(self.handle, (UC_CTL_IO_WRITE << 30) | (len(args) << 26) | control, *args))

    def ctl_set_cpu_model(self, model: int) -> None:
        self._ctl_write(UC_CTL_CPU_MODEL, ctypes.c_int(model))

    def ctl_exits_enabled(self, enabled: bool) -> None:
        self._ctl_write(UC_CTL_UC_USE_EXITS, ctypes.c_int(int(enabled)))

    def ctl_set_exits(self, exits: list[int]) -> None:
        array = (_u64 * len(exits))(*exits)
        self._ctl_write(UC_CTL_UC_EXITS, ctypes.cast(array, ctypes.c_void_p), ctypes.c_size_t(len(exits)))

    def ctl_flush_tb(self) -> None:
        self._ctl_write(UC_CTL_TB_FLUSH)

    def ctl_flush_tb_range(self, start: int, end: int) -> None:
        """Drop the code translated from guest-physical [start, end) (engine/patches/0009;
        a library without it flushes every block, see `invalidates_by_physical_range`)."""
        self._ctl_write(UC_CTL_TB_FLUSH, _u64(start), _u64(end))

    def ctl_set_tcg_buffer_size(self, size: int) -> None:
        """Cap QEMU's translated-code buffer at `size` bytes (a uint32_t). Only a write made
        before the engine's first real use counts (uc.c reads it once, in uc_init's
        tcg_exec_init); when the buffer fills, QEMU flushes every block and starts over."""
        self._ctl_write(UC_CTL_TCG_BUFFER_SIZE, ctypes.c_uint32(size))

    # -- memory, hooks, running ------------------------------------------------------------

    def mem_map_ptr(self, address: int, size: int, perms: int, host_address: int) -> None:
        """Map `size` bytes of host memory at guest-physical `address` (the caller keeps it alive)."""
        check(_lib.uc_mem_map_ptr(self.handle, address, size, perms, host_address))

    def vmem_translate(self, va: int, prot: int) -> int | None:
        """The physical address `va` maps to for access `prot`, through the guest's page tables."""
        pa = _u64()
        if _lib.uc_vmem_translate(self.handle, va, prot, ctypes.byref(pa)) != UC_ERR_OK:
            return None
        return pa.value

    def hook_add(self, kind: int, callback: object, *extra: int) -> int:
        """Register a ctypes callback for every address; `extra` are the hook kind's own
        arguments (the instruction for UC_HOOK_INSN). Returns the hook handle."""
        handle = ctypes.c_size_t()
        check(_lib.uc_hook_add(self.handle, ctypes.byref(handle), kind, callback, None, 1, 0,
                               *[ctypes.c_int(e) for e in extra]))
        self._callbacks.append(callback)
        return handle.value

    def hook_add_native(self, kind: int, function: ctypes.c_void_p, user_data: int) -> int:
        """Register a C function (not a Python callback) for every address, with a pointer
        to its own data. Returns the hook handle."""
        handle = ctypes.c_size_t()
        check(_lib.uc_hook_add(self.handle, ctypes.byref(handle), kind, function, ctypes.c_void_p(user_data), 1, 0))
        return handle.value

    def hook_del(self, handle: int, callback: object) -> None:
        """Remove a hook (Unicorn frees it, and everything it recorded, once no run is using it)."""
        check(_lib.uc_hook_del(self.handle, handle))
        self._callbacks.remove(callback)

    def emu_start(self, begin: int, until: int, timeout: int = 0, count: int = 0) -> None:
        check(_lib.uc_emu_start(self.handle, begin, until, timeout, count))

    def emu_stop(self) -> None:
        check(_lib.uc_emu_stop(self.handle))

    def stops_between_blocks(self) -> bool:
        """Whether uc_emu_stop from another thread takes effect only at a block start, with the
        PC exact (the project's build, engine/patches/0005), so that a watchdog thread may
        stop the CPU itself. Other libraries may stop right after the store of a
        read-modify-write instruction and run it again on the next start."""
        return self._says_yes(UC_QUERY_ASYNC_STOP)

    def invalidates_quietly(self) -> bool:
        """Whether dropping translated code by virtual address (deleting a ranged hook, or
        the counting hook when a run has no count) leaves no guest exception behind (the
        project's build, engine/patches/0008). Other libraries may leave a page fault "in
        flight", so that the guest's next page fault becomes a double fault, then a triple
        fault that ends every later run at once."""
        return self._says_yes(UC_QUERY_QUIET_INVALIDATE)

    def invalidates_by_physical_range(self) -> bool:
        """Whether `ctl_flush_tb_range` drops only the code translated from that physical
        range (the project's build, engine/patches/0009); other libraries drop it all."""
        return self._says_yes(UC_QUERY_PHYS_INVALIDATE)

    def _says_yes(self, query: int) -> bool:
        """uc_query answered 1: one of PROJECT_QUERIES, which other libraries refuse."""
        answer = ctypes.c_size_t()
        return _lib.uc_query(self.handle, query, ctypes.byref(answer)) == UC_ERR_OK and answer.value == 1

    # -- registers -------------------------------------------------------------------------

    def _read(self, reg: int, value):
        """Read `reg` into the ctypes object `value` (its type is the register's layout)."""
        check(_lib.uc_reg_read(self.handle, reg, ctypes.byref(value)))
        return value

    def _write(self, reg: int, value) -> None:
        check(_lib.uc_reg_write(self.handle, reg, ctypes.byref(value)))

    def reg_read(self, reg: int) -> int:
        """A general, control, segment or flag register (64 bits or narrower)."""
        return self._read(reg, _u64()).value

    def reg_write(self, reg: int, value: int) -> None:
        self._write(reg, _u64(value & 0xFFFF_FFFF_FFFF_FFFF))

    def reg_read_batch(self, regs: tuple[int, ...] | list[int]) -> tuple[int, ...]:
        """Several 64-bit registers in one call."""
        n = len(regs)
        values = (_u64 * n)()
        check(_lib.uc_reg_read_batch(self.handle, (ctypes.c_int32 * n)(*regs), value_pointers(values), n))
        return tuple(values)

    def reg_write_batch(self, pairs: list[tuple[int, int]]) -> None:
        """Several 64-bit registers in one call: (register, value) pairs."""
        n = len(pairs)
        values = (_u64 * n)(*[value & 0xFFFF_FFFF_FFFF_FFFF for _, value in pairs])
        regs = (ctypes.c_int32 * n)(*[reg for reg, _ in pairs])
        check(_lib.uc_reg_write_batch(self.handle, regs, value_pointers(values), n))

    def write_gdtr(self, base: int, limit: int) -> None:
        self._write(UC_X86_REG_GDTR, _MMR(0, base, limit, 0))

    def msr_write(self, msr: int, value: int) -> None:
        self._write(UC_X86_REG_MSR, _MSR(msr, value))

    def read_fp(self, index: int) -> tuple[int, int]:
        """x87 register ST-relative slot `index` (FP0..FP7): (mantissa, sign and exponent)."""
        value = self._read(UC_X86_REG_FP0 + index, _Float80())
        return value.mantissa, value.exponent

    def write_fp(self, index: int, mantissa: int, exponent: int) -> None:
        self._write(UC_X86_REG_FP0 + index, _Float80(mantissa, exponent))

    def read_xmm(self, index: int) -> bytes:
        """XMM`index` as its 16 little-endian bytes."""
        return bytes(self._read(UC_X86_REG_XMM0 + index, (ctypes.c_uint8 * 16)()))

    def write_xmm(self, index: int, data: bytes) -> None:
        self._write(UC_X86_REG_XMM0 + index, (ctypes.c_uint8 * 16).from_buffer_copy(data))

    # -- contexts --------------------------------------------------------------------------

    def context_save(self) -> Context:
        """A new context holding the CPU's registers now."""
        context = Context(self)
        self.context_update(context)
        return context

    def context_update(self, context: Context) -> None:
        check(_lib.uc_context_save(self.handle, context.pointer))

    def context_restore(self, context: Context) -> None:
        check(_lib.uc_context_restore(self.handle, context.pointer))

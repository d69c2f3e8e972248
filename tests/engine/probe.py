"""Scenarios on a bare engine (no sandbox around it) whose outcome must not depend on which
libunicorn runs: run as `python probe.py SCENARIO` with $SANDBOX_ENGINE set, it prints the
engine's kind and the scenario's outcome as one JSON line, so a test compares the project's
build with the PyPI wheel.

The patches (engine/patches/) drop the exit check after each guest load and store while no
memory hook is installed and check at block starts inline; these scenarios are where that
could show: a memory hook added after the code was translated, a stop requested from inside
it, a store to unmapped memory with no hook at all, and stops from another thread.
"""

from __future__ import annotations

import ctypes
import json
import sys
import threading

import unicorn

from sandbox import engine
from sandbox.engine import Engine, EngineError

CODE, DATA, UNMAPPED = 0x1000, 0x2000, 0x90_0000
LOOPS = 1000
# mov rcx, LOOPS; loop: mov [DATA], rcx; dec rcx; jnz loop; (end)
STORE_LOOP = bytes.fromhex("48c7c1e8030000" "48890c2500200000" "48ffc9" "75f3")
STORE_AT = CODE + 7  # the `mov [DATA], rcx`
STORE_LOOP_END = CODE + len(STORE_LOOP)
# mov rax, 5; mov [UNMAPPED], rax; mov rbx, 7; (end)
UNMAPPED_STORE = bytes.fromhex("48c7c005000000" "48890425" + UNMAPPED.to_bytes(4, "little").hex() + "48c7c307000000")
# loop: incq [DATA]; inc rcx; jmp loop: [DATA] == rcx at every instruction boundary
COUNT_LOOP = bytes.fromhex("48ff042500200000" "48ffc1" "ebf3")
RCX, RBX, RIP = engine.UC_X86_REG_RCX, engine.UC_X86_REG_RBX, engine.UC_X86_REG_RIP
_MEM_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64, ctypes.c_int, ctypes.c_int64,
                           ctypes.c_void_p)


def flat_engine(code: bytes) -> tuple[Engine, ctypes.Array]:
    """An engine with paging off: `code` at CODE, a zeroed page at DATA, nothing at UNMAPPED."""
    uc = Engine()
    memory = (ctypes.c_char * 0x2000)()
    uc.mem_map_ptr(CODE, 0x2000, engine.UC_PROT_ALL, ctypes.addressof(memory))
    ctypes.memmove(memory, code, len(code))
    return uc, memory


def data_word(memory: ctypes.Array) -> int:
    return int.from_bytes(bytes(memory[DATA - CODE:DATA - CODE + 8]), "little")


def memory_hook_added_late() -> dict:
    """The loop runs once unhooked (translated then), then again with a write hook that
    stops the CPU at the third store: every store is seen, the stop is right after it."""
    uc, memory = flat_engine(STORE_LOOP)
    uc.emu_start(CODE, STORE_LOOP_END)
    seen: list[tuple[int, int]] = []

    @_MEM_CB
    def on_write(_handle, _kind, address, _size, value, _data) -> None:
        seen.append((address, value))
        if len(seen) == 3:
            uc.emu_stop()

    handle = ctypes.c_size_t()
    engine.check(engine.lib.uc_hook_add(uc.handle, ctypes.byref(handle), unicorn.UC_HOOK_MEM_WRITE, on_write,
                                        None, ctypes.c_uint64(1), ctypes.c_uint64(0)))
    uc.emu_start(CODE, STORE_LOOP_END)
    return {"seen": seen, "rcx": uc.reg_read(RCX), "rip": uc.reg_read(RIP), "data": data_word(memory)}


def unmapped_store_without_hooks() -> dict:
    """A store to unmapped memory ends the run at that store: the next instruction never runs."""
    uc, _ = flat_engine(UNMAPPED_STORE)
    try:
        uc.emu_start(CODE, CODE + len(UNMAPPED_STORE))
    except EngineError as error:
        return {"error": error.errno, "rip": uc.reg_read(RIP), "rbx": uc.reg_read(RBX)}
    return {"error": 0, "rip": uc.reg_read(RIP), "rbx": uc.reg_read(RBX)}


def stop_until(uc: Engine, done: threading.Event) -> None:
    """Stop the CPU every half millisecond until `done`: a stop made before the run began
    is lost (uc_emu_start clears it), so one is not enough."""
    while not done.wait(0.0005):
        uc.emu_stop()


def stops_from_another_thread(stops: int = 200, memory_hook: bool = False) -> dict:
    """uc_emu_stop from another thread, as the sandbox's watchdog stops the CPU (here with no
    block hook to turn it into a stop between blocks); after each, the run resumes at RIP.
    Each instruction runs once: the counter in memory equals RCX. With `memory_hook`, a read
    hook on a page the loop never touches makes Unicorn check for a stop after every access."""
    uc, memory = flat_engine(COUNT_LOOP)
    if memory_hook:
        hook = _MEM_CB(lambda *_: None)
        handle = ctypes.c_size_t()
        engine.check(engine.lib.uc_hook_add(uc.handle, ctypes.byref(handle), unicorn.UC_HOOK_MEM_READ, hook,
                                            None, ctypes.c_uint64(UNMAPPED), ctypes.c_uint64(UNMAPPED + 0xfff)))
    rip, mismatches = CODE, 0
    for _ in range(stops):
        done = threading.Event()
        stopper = threading.Thread(target=stop_until, args=(uc, done))
        stopper.start()
        uc.emu_start(rip, 0)
        done.set()
        stopper.join()
        rip = uc.reg_read(RIP)
        mismatches += data_word(memory) != uc.reg_read(RCX)
    return {"mismatches": mismatches, "rip_in_loop": CODE <= rip < CODE + len(COUNT_LOOP),
            "counted": uc.reg_read(RCX) > 0}


def stops_from_another_thread_with_a_memory_hook() -> dict:
    """The same with a memory hook installed: the exit check after each access must leave a
    stop from another thread to the next block start (engine/patches/0005)."""
    return stops_from_another_thread(memory_hook=True)


def code_dropped_by_physical_range() -> dict:
    """Two pages of code run (translated), then both change behind the engine's back (as
    the sandbox reuses a freed frame); dropping the code of the first page's physical range
    retranslates that one: the project's build (patch 0009) keeps the second's stale
    translation, which shows the range was honoured; another library drops everything."""
    uc = Engine()
    uc.ctl_exits_enabled(True)  # no exit addresses (the sandbox's way): each run ends at a hlt
    uc.ctl_set_exits([])
    memory = (ctypes.c_char * 0x2000)()
    uc.mem_map_ptr(CODE, 0x2000, engine.UC_PROT_ALL, ctypes.addressof(memory))
    rax, rbx = engine.UC_X86_REG_RAX, engine.UC_X86_REG_RBX

    def load(value: int) -> None:  # mov rax, value; hlt at CODE; mov rbx, value; hlt a page above
        for offset, opcode in ((0, "48c7c0"), (0x1000, "48c7c3")):
            code = bytes.fromhex(opcode) + value.to_bytes(4, "little") + b"\xf4"
            ctypes.memmove(ctypes.addressof(memory) + offset, code, len(code))

    def run() -> tuple[int, int]:
        uc.emu_start(CODE, 0)
        uc.emu_start(CODE + 0x1000, 0)
        return uc.reg_read(rax), uc.reg_read(rbx)

    load(1)
    first = run()
    load(2)
    uc.ctl_flush_tb_range(CODE, CODE + 0x1000)
    return {"before": first, "after": run(), "by_range": uc.invalidates_by_physical_range()}


SCENARIOS = {f.__name__: f for f in (memory_hook_added_late, unmapped_store_without_hooks, stops_from_another_thread,
                                     stops_from_another_thread_with_a_memory_hook, code_dropped_by_physical_range)}

if __name__ == "__main__":
    print(json.dumps({"engine": engine.engine_kind, **SCENARIOS[sys.argv[1]]()}))

"""The lean libunicorn binding: its constants are Unicorn's, and each call does what the
machine relies on, checked on a bare engine (no sandbox around it)."""

from __future__ import annotations

import ctypes
import os

import pytest
import unicorn
from unicorn import x86_const

from sandbox import engine
from sandbox.engine import Engine, EngineError

CODE = 0x1000
MOV_RAX_42_SYSCALL = bytes.fromhex("48c7c02a000000" "0f05")  # mov rax, 42; syscall


@pytest.mark.parametrize("name", [n for n in dir(engine) if n.startswith("UC_") and n not in engine.PROJECT_QUERIES])
def test_constant_matches_unicorns_own(name: str) -> None:
    """Every number the binding hard-codes is the one Unicorn's Python package ships."""
    theirs = getattr(x86_const, name, getattr(unicorn, name, None))
    assert theirs is not None, f"{name} is not a Unicorn constant"
    assert getattr(engine, name) == theirs


def test_project_queries_follow_unicorns_own() -> None:
    """The queries engine/patches add are numbered after Unicorn's last, which it lacks."""
    numbers = [getattr(engine, name) for name in engine.PROJECT_QUERIES]
    assert numbers == list(range(unicorn.UC_QUERY_TIMEOUT + 1, unicorn.UC_QUERY_TIMEOUT + 1 + len(numbers)))
    assert not any(hasattr(unicorn, name) for name in engine.PROJECT_QUERIES)


def test_library_is_the_unicorn_packages() -> None:
    package_lib = os.path.join(os.path.dirname(unicorn.__file__), "lib", engine.LIBRARY_NAME)
    assert os.path.samefile(engine.find_library(), package_lib)


def test_library_path_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    (tmp_path / engine.LIBRARY_NAME).write_bytes(b"")
    monkeypatch.setenv("LIBUNICORN_PATH", str(tmp_path))
    assert engine.find_library() == str(tmp_path / engine.LIBRARY_NAME)


def test_missing_library_is_a_clear_import_error(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("LIBUNICORN_PATH", raising=False)
    monkeypatch.setattr("sys.path", [str(tmp_path)])
    with pytest.raises(ImportError, match="unicorn package"):
        engine.find_library()


@pytest.fixture
def cpu() -> tuple[Engine, ctypes.Array]:
    """An engine with one page of host memory at CODE (flat, paging off)."""
    uc = Engine()
    page = (ctypes.c_char * 4096)()
    uc.mem_map_ptr(CODE, 4096, engine.UC_PROT_ALL, ctypes.addressof(page))
    return uc, page


def test_registers_round_trip(cpu) -> None:
    uc, _ = cpu
    uc.reg_write(engine.UC_X86_REG_RAX, -1)
    assert uc.reg_read(engine.UC_X86_REG_RAX) == 0xFFFF_FFFF_FFFF_FFFF
    uc.reg_write_batch([(engine.UC_X86_REG_R8, 8), (engine.UC_X86_REG_R15, 15), (engine.UC_X86_REG_RSP, 0x7000)])
    assert uc.reg_read_batch([engine.UC_X86_REG_R8, engine.UC_X86_REG_R15, engine.UC_X86_REG_RSP]) == (8, 15, 0x7000)
    uc.write_fp(3, 0x8000_0000_0000_0001, 0x3FFF)
    assert uc.read_fp(3) == (0x8000_0000_0000_0001, 0x3FFF)
    uc.write_xmm(15, bytes(range(16)))
    assert uc.read_xmm(15) == bytes(range(16))
    uc.msr_write(0xC000_0100, 0x1234_5000)  # IA32_FS_BASE
    assert uc.reg_read(engine.UC_X86_REG_FS_BASE) == 0x1234_5000


def test_syscall_hook_runs_and_stops(cpu) -> None:
    uc, page = cpu
    ctypes.memmove(page, MOV_RAX_42_SYSCALL, len(MOV_RAX_42_SYSCALL))
    seen: list[int] = []

    @ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
    def on_syscall(_handle, _data) -> None:
        seen.append(uc.reg_read(engine.UC_X86_REG_RAX))
        uc.emu_stop()

    assert uc.hook_add(engine.UC_HOOK_INSN, on_syscall, engine.UC_X86_INS_SYSCALL)
    uc.emu_start(CODE, 0, 0, 10)
    assert seen == [42]
    assert uc.reg_read(engine.UC_X86_REG_RIP) == CODE + len(MOV_RAX_42_SYSCALL)


def test_context_save_restore_and_edit(cpu) -> None:
    uc, _ = cpu
    uc.reg_write(engine.UC_X86_REG_RBX, 7)
    context = uc.context_save()
    assert len(bytes(context)) == context.size > 0
    uc.reg_write(engine.UC_X86_REG_RBX, 9)
    assert context.reg_read(engine.UC_X86_REG_RBX) == 7
    context.reg_write(engine.UC_X86_REG_RCX, 5)
    uc.context_restore(context)
    assert (uc.reg_read(engine.UC_X86_REG_RBX), uc.reg_read(engine.UC_X86_REG_RCX)) == (7, 5)
    uc.reg_write(engine.UC_X86_REG_RBX, 11)
    uc.context_update(context)
    assert context.reg_read(engine.UC_X86_REG_RBX) == 11


def test_failure_raises_engine_error_naming_the_cause(cpu) -> None:
    uc, _ = cpu
    with pytest.raises(EngineError) as caught:
        uc.emu_start(0x9000_0000, 0, 0, 1)  # nothing mapped there
    assert caught.value.errno == unicorn.UC_ERR_FETCH_UNMAPPED
    assert "unmapped" in str(caught.value).lower()


def test_controls_are_accepted() -> None:
    uc = Engine()
    uc.ctl_set_cpu_model(engine.UC_CPU_X86_HASWELL)
    uc.ctl_exits_enabled(True)
    uc.ctl_set_exits([])
    uc.ctl_flush_tb()
    with pytest.raises(EngineError):
        uc.ctl_set_cpu_model(10_000)  # no such model

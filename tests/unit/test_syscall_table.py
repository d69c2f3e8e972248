"""The system-call table: names match numbers, and the README's list is generated from it."""

from __future__ import annotations

from pathlib import Path

from sandbox.kernel import kernel  # noqa: F401 - registers every handler
from sandbox.kernel.syscall_names import SYSCALL_NUMBERS
from sandbox.kernel.syscalls import TABLE
from tools.gen_readme_syscalls import syscall_block

README = Path(__file__).resolve().parents[2] / "README.md"


def test_numbers_follow_the_x86_64_table() -> None:
    assert (SYSCALL_NUMBERS["read"], SYSCALL_NUMBERS["mmap"], SYSCALL_NUMBERS["exit_group"]) == (0, 9, 231)
    assert all(SYSCALL_NUMBERS[entry.name] == nr for nr, entry in TABLE.items())


def test_readme_list_is_generated_from_the_table() -> None:
    assert syscall_block() in README.read_text(), "run: python tools/gen_readme_syscalls.py"

"""The C gate's contract on a bare machine (no kernel): which calls reach Python, what RAX
holds after an answer given in C, and the counts it keeps. Each program is a row of
`mov rax, NR; syscall; add r12, rax`, so R12 ends as the sum of every call's result.
"""

from __future__ import annotations

import struct

import pytest

from sandbox import engine as X
from sandbox import fastpath
from sandbox.machine import Machine
from sandbox.mm.aspace import AddressSpace
from sandbox.mm.vma import PROT_EXEC, PROT_READ

pytestmark = pytest.mark.skipif(fastpath.state() != "on", reason=f"the C gate is {fastpath.state()}")

CODE_VA = 0x40_0000
GETPID, GETPPID, EXIT = 39, 110, 60
SYSCALL = b"\x0f\x05"
ADD_R12_RAX = b"\x49\x01\xc4"
#: What the fake kernel below answers.
ANSWERS = {GETPID: 5, GETPPID: 7}


def program(numbers: list[int]) -> bytes:
    """`mov rax, nr; syscall; add r12, rax` for each number (movabs: any 64-bit value)."""
    return b"".join(b"\x48\xb8" + struct.pack("<Q", nr & (2**64 - 1)) + SYSCALL + ADD_R12_RAX for nr in numbers)


@pytest.fixture(scope="module")
def machine():
    machine = Machine(16 << 20)
    yield machine
    machine.close()


def run(machine: Machine, numbers: list[int], publish: bool = True) -> tuple[list[int], int]:
    """Run `numbers` as system calls; (the numbers Python saw, R12). Python answers from
    ANSWERS (0 for others), publishes the getters' answers, and stops at exit."""
    seen: list[int] = []

    def on_syscall() -> None:
        nr = machine.syscall_args()[0]
        seen.append(nr)
        if nr == EXIT:
            machine.stop()
            return
        machine.set_return(ANSWERS.get(nr, 0))
        if publish and nr in ANSWERS:
            machine.publish_answer(nr, ANSWERS[nr])

    space = AddressSpace.new_user(machine.kernel_space)
    try:
        space.map_region(CODE_VA, 1, PROT_READ | PROT_EXEC)
        machine.mem.write(space.translate(CODE_VA), program([*numbers, EXIT]))
        machine.enter_user(space, CODE_VA, 0)
        machine.reg_write(X.UC_X86_REG_R12, 0)
        machine.forget_answers()
        machine.on_syscall = on_syscall
        machine.run(count=10_000)
        return seen, machine.reg_read(X.UC_X86_REG_R12)
    finally:
        machine.on_syscall = lambda: None
        space.destroy()


def test_published_getters_skip_python_until_another_call_reaches_it(machine: Machine) -> None:
    machine.take_answered_counts()
    seen, total = run(machine, [GETPPID, GETPPID, 0, GETPPID, GETPPID, GETPID, GETPPID])
    # the read withdraws every answer; a getter reaching Python withdraws none
    assert seen == [GETPPID, 0, GETPPID, GETPID, EXIT]
    assert total == 5 * ANSWERS[GETPPID] + ANSWERS[GETPID]
    counts = dict(zip(fastpath.GETTERS.values(), machine.take_answered_counts(), strict=True))
    assert counts["getppid"] == 3 and sum(counts.values()) == 3
    assert machine.take_answered_counts() == (0,) * len(fastpath.GETTERS)


def test_nothing_published_means_everything_reaches_python(machine: Machine) -> None:
    seen, total = run(machine, [GETPPID] * 5, publish=False)
    assert seen == [GETPPID] * 5 + [EXIT] and total == 5 * ANSWERS[GETPPID]


def test_a_disabled_gate_answers_nothing(machine: Machine) -> None:
    machine._gate.enabled = 0
    try:
        seen, _ = run(machine, [GETPPID] * 4)
    finally:
        machine._gate.enabled = 1
    assert seen == [GETPPID] * 4 + [EXIT]


@pytest.mark.parametrize("nr", [GETPPID | 1 << 32, -GETPPID, 1 << 63, 2**64 - 1, 511, 512])
def test_numbers_beside_a_getters_always_reach_python(machine: Machine, nr: int) -> None:
    seen, _ = run(machine, [GETPPID, nr, GETPPID, nr])
    expected = nr & (2**64 - 1)
    assert seen == [GETPPID, expected, GETPPID, expected, EXIT]


def test_python_sees_all_seven_registers(machine: Machine) -> None:
    got = []

    def on_syscall() -> None:
        got.append(machine.syscall_args())
        machine.stop()

    regs = fastpath.SYSCALL_REGS
    code = b"".join(b"\x49" + bytes([0xB8 + i]) + struct.pack("<Q", 0x1111 * (i + 1)) for i in range(8)) \
        + b"\x48\xc7\xc0\x00\x00\x00\x00"  # r8..r15 = 0x1111 * k; rax = 0 (then rdi.. below)
    code += b"".join(b"\x48" + bytes([0xB8 + r]) + struct.pack("<Q", v) for r, v in
                     ((7, 0xA), (6, 0xB), (2, 0xC)))  # rdi, rsi, rdx
    space = AddressSpace.new_user(machine.kernel_space)
    try:
        space.map_region(CODE_VA, 1, PROT_READ | PROT_EXEC)
        machine.mem.write(space.translate(CODE_VA), code + SYSCALL)
        machine.enter_user(space, CODE_VA, 0)
        machine.on_syscall = on_syscall
        machine.run(count=100)
    finally:
        machine.on_syscall = lambda: None
        space.destroy()
    assert len(regs) == 7
    assert got == [(0, 0xA, 0xB, 0xC, 0x1111 * 3, 0x1111 * 1, 0x1111 * 2)]  # rax rdi rsi rdx r10 r8 r9


def test_answered_calls_are_reported_before_python_runs_again(machine: Machine) -> None:
    reports = []
    getppid = list(fastpath.GETTERS).index(GETPPID)
    machine.report_answered_to(lambda: reports.append(machine.take_answered_counts()[getppid]))
    try:
        seen, _ = run(machine, [GETPPID, GETPPID, GETPPID, 0, GETPPID, GETPPID])
        assert seen == [GETPPID, 0, GETPPID, EXIT]
        assert reports == [2, 1]  # before the read, and before the exit
        machine.forget_answers()
        assert reports == [2, 1]  # nothing waited: no report
    finally:
        machine.report_answered_to(None)

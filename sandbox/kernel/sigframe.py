"""The signal frame Linux builds on the user stack, and its undoing by rt_sigreturn.

Layout (arch/x86/include/asm/sigframe.h, uapi/asm/sigcontext.h, uapi/asm-generic/ucontext.h):

    struct rt_sigframe { char *pretcode; struct ucontext uc; struct siginfo info; }
    struct ucontext    { u64 uc_flags; ucontext *uc_link; stack_t uc_stack;
                         struct sigcontext uc_mcontext; sigset_t uc_sigmask; }
    struct sigcontext  { r8..r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags;
                         u16 cs, gs, fs, ss; err, trapno, oldmask, cr2, fpstate; reserved[8] }

The FPU state (FXSAVE layout) sits above the frame, 64-byte aligned; `fpstate` points at it.
The handler is entered with rdi = signo, rsi = &info, rdx = &uc and rsp = the frame, whose
first word (`pretcode`) is the restorer, so the handler's `ret` lands there.
"""

from __future__ import annotations

import struct

from sandbox.kernel.syscalls import MASK64
from sandbox.machine import FXSAVE_SIZE, USER_CS, USER_DS

SIGINFO_SIZE = 128
UCONTEXT_HEAD = struct.Struct("<QQQi4xQ")  # uc_flags, uc_link, ss_sp, ss_flags, ss_size
GREGS = struct.Struct("<18Q")
SIGCONTEXT_TAIL = struct.Struct("<HHHHQQQQQ64x")  # cs gs fs ss err trapno oldmask cr2 fpstate reserved
SIGMASK = struct.Struct("<Q")
UCONTEXT_SIZE = UCONTEXT_HEAD.size + GREGS.size + SIGCONTEXT_TAIL.size + SIGMASK.size  # 304
FRAME_SIZE = 8 + UCONTEXT_SIZE + SIGINFO_SIZE  # 440
RED_ZONE = 128  # SysV x86-64 ABI §3.2.2: below rsp, the red zone is the function's
UC_SIGCONTEXT_SS, UC_STRICT_RESTORE_SS = 0x2, 0x4
SS_ONSTACK, SS_DISABLE = 1, 2
TRAPNO_PF = 14
REG_RSP, REG_RIP, REG_EFLAGS = 15, 16, 17  # indexes in the sigcontext order
EFLAGS_CLEARED_FOR_HANDLER = (1 << 8) | (1 << 10) | (1 << 16)  # TF, DF, RF


class SigAction:
    """struct kernel_sigaction (x86-64): handler, flags, restorer, mask."""

    LAYOUT = struct.Struct("<QQQQ")

    __slots__ = ("handler", "flags", "restorer", "mask")

    def __init__(self, handler: int, flags: int, restorer: int, mask: int) -> None:
        self.handler = handler
        self.flags = flags
        self.restorer = restorer
        self.mask = mask

    @classmethod
    def parse(cls, raw: bytes) -> SigAction:
        return cls(*cls.LAYOUT.unpack(raw))


class FramePlan:
    """Where a frame goes: its address, the fpstate's, and the pointers the handler gets."""

    __slots__ = ("frame", "fpstate", "info", "ucontext")

    def __init__(self, frame: int, fpstate: int, info: int, ucontext: int) -> None:
        self.frame = frame
        self.fpstate = fpstate
        self.info = info
        self.ucontext = ucontext


def plan_frame(rsp: int, use_altstack: bool, altstack_top: int) -> FramePlan:
    """Linux's get_sigframe: below the red zone (or at the top of the alternate stack),
    FPU state 64-byte aligned, then the frame so that rsp + 8 is 16-byte aligned at entry."""
    sp = altstack_top if use_altstack else rsp - RED_ZONE
    fpstate = (sp - FXSAVE_SIZE) & ~63 & MASK64  # unsigned, as the kernel computes it: a wild
    frame = (((fpstate - FRAME_SIZE) & ~15) - 8) & MASK64  # rsp wraps, and the copy then faults
    ucontext = frame + 8
    return FramePlan(frame, fpstate, (ucontext + UCONTEXT_SIZE) & MASK64, ucontext & MASK64)


def pack_frame(plan: FramePlan, restorer: int, regs: list[int], saved_mask: int, info: bytes,
               altstack: tuple[int, int, int], cr2: int, trapno: int) -> bytes:
    """The bytes of struct rt_sigframe for `plan`."""
    ss_sp, ss_flags, ss_size = altstack
    head = UCONTEXT_HEAD.pack(UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS, 0, ss_sp, ss_flags, ss_size)
    tail = SIGCONTEXT_TAIL.pack(USER_CS, 0, 0, USER_DS, 0, trapno, saved_mask, cr2, plan.fpstate)
    ucontext = head + GREGS.pack(*regs) + tail + SIGMASK.pack(saved_mask)
    return struct.pack("<Q", restorer) + ucontext + info.ljust(SIGINFO_SIZE, b"\0")


class Restored:
    """What rt_sigreturn takes back from a frame."""

    __slots__ = ("regs", "mask", "fpstate", "altstack")

    def __init__(self, regs: list[int], mask: int, fpstate: int, altstack: tuple[int, int, int]) -> None:
        self.regs = regs
        self.mask = mask
        self.fpstate = fpstate
        self.altstack = altstack


def unpack_ucontext(raw: bytes) -> Restored:
    """Parse struct ucontext (as rt_sigreturn finds it at rsp - 8 + 8)."""
    _, _, ss_sp, ss_flags, ss_size = UCONTEXT_HEAD.unpack_from(raw)
    regs = list(GREGS.unpack_from(raw, UCONTEXT_HEAD.size))
    tail = SIGCONTEXT_TAIL.unpack_from(raw, UCONTEXT_HEAD.size + GREGS.size)
    (mask,) = SIGMASK.unpack_from(raw, UCONTEXT_SIZE - SIGMASK.size)
    return Restored(regs, mask, tail[8], (ss_sp, ss_flags, ss_size))


def pack_siginfo(signo: int, code: int, addr: int = 0, pid: int = 0, uid: int = 0, status: int = 0) -> bytes:
    """siginfo_t: si_signo, si_errno, si_code, then the union: for faults si_addr; for kill
    and SIGCHLD si_pid, si_uid (and si_status)."""
    if addr:
        body = struct.pack("<iii4xQ", signo, 0, code, addr)
    else:
        body = struct.pack("<iii4xiIi", signo, 0, code, pid, uid, status)
    return body.ljust(SIGINFO_SIZE, b"\0")

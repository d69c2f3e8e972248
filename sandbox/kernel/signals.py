"""Signal facts: names, si_code names, and the exit status of a death by signal; and the
set of pending signals, which queues real-time ones."""

from __future__ import annotations

import signal
from collections import deque

from sandbox import abi

_CODE_NAMES = {
    signal.SIGSEGV: {abi.SEGV_MAPERR: "SEGV_MAPERR", abi.SEGV_ACCERR: "SEGV_ACCERR", abi.SI_KERNEL: "SI_KERNEL"},
    signal.SIGBUS: {abi.BUS_ADRERR: "BUS_ADRERR"},
    signal.SIGFPE: {abi.FPE_INTDIV: "FPE_INTDIV"},
    signal.SIGILL: {abi.ILL_ILLOPN: "ILL_ILLOPN"},
    signal.SIGTRAP: {abi.TRAP_BRKPT: "TRAP_BRKPT", abi.SI_KERNEL: "SI_KERNEL"},
}


def signal_name(signo: int) -> str:
    """'SIGSEGV' for 11; 'signal 99' for numbers without a name."""
    try:
        return signal.Signals(signo).name
    except ValueError:
        return f"signal {signo}"


def code_name(signo: int, code: int) -> str:
    """The si_code's name for this signal ('SEGV_MAPERR'), or its number."""
    return _CODE_NAMES.get(signo, {}).get(code, str(code))


SIGRTMIN = 32  # the kernel's first real-time signal (glibc reserves two and starts at 34)
#: Real-time instances queued per signal number past the first: more are dropped (a bound on
#: what a guest can make the sandbox hold; Linux bounds them by RLIMIT_SIGPENDING).
RT_QUEUE_MAX = 1024


class PendingSignals(dict):
    """Pending signals, number -> siginfo of the instance delivered next. A standard signal
    is pending at most once (a second is merged); real-time signals queue, each with its own
    siginfo, and `pop` brings the next instance forward (man 7 signal, "Real-time signals")."""

    def __init__(self) -> None:
        super().__init__()
        self._queued: dict[int, deque[bytes]] = {}

    def add(self, signo: int, info: bytes) -> None:
        """One more instance of `signo` pending."""
        if signo not in self:
            self[signo] = info
        elif signo >= SIGRTMIN:
            queue = self._queued.setdefault(signo, deque())
            if len(queue) < RT_QUEUE_MAX:
                queue.append(info)

    def pop(self, signo: int, *default):
        """Take the next instance of `signo`; a queued one (if any) becomes pending."""
        if signo not in self:
            return super().pop(signo, *default)
        info = super().pop(signo)
        queue = self._queued.get(signo)
        if queue:
            self[signo] = queue.popleft()
            if not queue:
                del self._queued[signo]
        return info

    def discard(self, signo: int) -> None:
        """Drop every instance of `signo` (its action became SIG_IGN)."""
        super().pop(signo, None)
        self._queued.pop(signo, None)

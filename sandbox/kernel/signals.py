"""Signal facts: names, si_code names, and the exit status of a death by signal."""

from __future__ import annotations

import signal

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

"""Run one static x86-64 program under Qiling (the benchmark's Python-on-Unicorn peer).

    .venv-peers/bin/python bench/qiling_run.py PROG [ARGS...]

The rootfs is / so the program sees the same paths as the native and qemu runs.
"""

import sys

from qiling import Qiling
from qiling.const import QL_VERBOSE

if __name__ == "__main__":
    ql = Qiling(sys.argv[1:], rootfs="/", verbose=QL_VERBOSE.DISABLED, console=True)
    ql.run()
    sys.exit(getattr(ql.os, "exit_code", 0) or 0)

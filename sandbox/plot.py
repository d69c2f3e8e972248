"""`sandbox plot`: a --fault-log drawn as fault address against time, one colour per kind.

matplotlib is an optional extra (`pip install sandbox[plot]`), imported only here.
"""

from __future__ import annotations

import json

from sandbox.errors import SandboxError


def plot_fault_log(log: str, output: str) -> int:
    """Write the picture; return how many faults it shows. SandboxError if it cannot."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SandboxError("sandbox plot needs matplotlib: pip install 'sandbox[plot]'") from None
    faults = []
    with open(log) as f:
        for number, line in enumerate(f, 1):
            try:
                faults.append(json.loads(line))
            except json.JSONDecodeError:
                raise SandboxError(f"{log}:{number}: not a fault-log line") from None
    clusters = _clusters(sorted({f["address"] for f in faults}))
    figure, panels = plt.subplots(len(clusters), 1, sharex=True, squeeze=False,
                                  figsize=(10, 2.5 + 2 * len(clusters)))
    kinds = sorted({f["kind"] for f in faults})
    for (low, high), (axes,) in zip(reversed(clusters), panels, strict=True):
        for kind in kinds:
            points = [f for f in faults if f["kind"] == kind and low <= f["address"] <= high]
            axes.scatter([f["t"] for f in points], [f["address"] for f in points], s=4, label=kind)
        axes.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{int(v):#x}"))
        axes.set_ylabel("address")
    panels[0][0].set_title(f"{len(faults)} page faults (one panel per address range)")
    panels[-1][0].set_xlabel("time (s)")
    if faults:
        panels[0][0].legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(output, dpi=100)
    plt.close(figure)
    return len(faults)


def _clusters(addresses: list[int], gap: int = 1 << 30, most: int = 6) -> list[tuple[int, int]]:
    """Address ranges separated by more than `gap` (the text, the heap, the stack ...)."""
    if not addresses:
        return [(0, 1)]
    ranges = [[addresses[0], addresses[0]]]
    for address in addresses[1:]:
        if address - ranges[-1][1] > gap:
            ranges.append([address, address])
        else:
            ranges[-1][1] = address
    while len(ranges) > most:
        smallest = min(range(len(ranges) - 1), key=lambda i: ranges[i + 1][0] - ranges[i][1])
        ranges[smallest][1] = ranges.pop(smallest + 1)[1]
    return [(low, high) for low, high in ranges]

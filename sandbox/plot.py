"""`sandbox plot`: a --fault-log drawn as the program's working set.

The upper panel has one dot per fault: x is the fault's number in the log (or its time, with
`time=True`), y the region it hit, one horizontal band per region named as `sandbox maps`
names it (lowest address at the bottom); inside a band, the pages the log touched there in
address order, so a sweep through memory is a slanted line. One colour per process, one
marker per fault kind. The lower panel is each process's resident pages after each fault,
one line per process in its colour and its own line style (LINE_STYLES: a forked child's
line lies on its parent's, and the parent shows through).

Logs written before the region and resident keys existed still plot: their bands are
address ranges (addresses clustered by gaps) and the lower panel is left out.

matplotlib is an optional extra (`pip install sandbox[plot]`), imported only here.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any, NamedTuple

from sandbox.errors import SandboxError

PAGE_SHIFT = 12
ADDRESS_END = 1 << 64  # addresses are 64-bit
#: Bands drawn at most; the regions with fewest faults beyond it share one "other" band.
MAX_BANDS = 16
#: Processes named in the legend at most (the rest are counted in one more entry).
MAX_LEGEND_PIDS = 12
#: Tick labels longer than this show a path's last component only.
MAX_LABEL = 24
#: Faults above which the dots are drawn as one image even in SVG or PDF output.
RASTERIZE_ABOVE = 5000
#: One marker per fault kind (sandbox/mm/fault.py names them); others take MARKERS in turn.
KIND_MARKERS = {"demand-zero": "o", "file": "s", "copy-on-write": "^", "cow-reuse": "v", "spurious": "x",
                "huge-page": "D", "supplied": "P"}
MARKERS = ("*", "h", "<", ">", "p", "d")
#: The resident-pages line of each process, in order of first fault: a style and a width. A
#: child's line lies on its parent's wherever their counts agree (fork copies the count), so
#: each later line is thinner and broken (dashes, dots) and the earlier ones show through its
#: gaps and on both its sides. Styles repeat beyond the last; widths stop at the least.
LINE_STYLES = ("-", (0, (6, 3)), (0, (1, 2)), (0, (6, 2, 1, 2)), (0, (3, 1, 1, 1, 1, 1)), (0, (10, 2)))
LINE_WIDTH, LINE_WIDTH_STEP, LINE_WIDTH_LEAST = 3.0, 0.6, 1.0
FIGURE_INCHES, DPI = (10.0, 6.4), 100  # 1000 pixels wide


class Fault(NamedTuple):
    """One line of a fault log; `region` and `resident` are None in logs older than them."""

    t: float
    pid: int
    address: int
    kind: str
    region: str | None
    resident: int | None


@dataclass(frozen=True)
class Band:
    """One horizontal band of the upper panel: its tick label and the pages it holds."""

    label: str
    pages: int


@dataclass(frozen=True)
class PlotSummary:
    """What a picture shows: faults, processes, and the band labels from bottom to top."""

    faults: int
    processes: int
    regions: tuple[str, ...]


def plot_fault_log(log: str, output: str, time: bool = False, title: str | None = None) -> PlotSummary:
    """Draw the fault log `log` into `output` (its extension names the format); x is the
    fault number, or the time in seconds with `time`; `title` goes before the counts in the
    title. SandboxError if matplotlib is missing or the log cannot be read or is not a
    fault log (naming the line)."""
    plt = _pyplot()
    faults = read_fault_log(log)
    bands, heights = place_faults(faults)
    xs = [f.t for f in faults] if time else list(range(1, len(faults) + 1))
    pids = list(dict.fromkeys(f.pid for f in faults))
    colours = _colours(plt, len(pids))
    colour = dict(zip(pids, colours, strict=True))
    with_resident = bool(faults) and all(f.resident is not None for f in faults)
    figure, axes = plt.subplots(2 if with_resident else 1, 1, sharex=True, squeeze=False, figsize=FIGURE_INCHES,
                                gridspec_kw={"height_ratios": [3, 1] if with_resident else [1]})
    upper = axes[0][0]
    _draw_faults(upper, faults, xs, heights, colour)
    _label_bands(upper, bands)
    counts = f"{_count(len(faults), 'page fault')} in {_count(len(pids), 'process', 'processes')}"
    upper.set_title(f"{title}: {counts}" if title else counts)
    if with_resident:
        _draw_resident(axes[1][0], faults, xs, colour)
    axes[-1][0].set_xlabel("time (s)" if time else "fault number")
    _add_legends(upper, pids, colours, faults, with_resident)
    figure.tight_layout()
    try:
        figure.savefig(output, dpi=DPI)
    finally:
        plt.close(figure)
    return PlotSummary(len(faults), len(pids), tuple(band.label for band in bands))


def _pyplot() -> Any:
    """matplotlib.pyplot on the file-only Agg backend, or SandboxError saying how to install it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SandboxError("sandbox plot needs matplotlib: pip install 'sandbox[plot]'") from None
    return plt


# -- reading --------------------------------------------------------------------------------


def read_fault_log(log: str) -> list[Fault]:
    """The faults of a --fault-log, in order; blank lines are skipped. SandboxError naming
    the file (and line) if it cannot be read or a line is not a fault."""
    faults = []
    try:
        with open(log, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    faults.append(_parse_line(line, f"{log}:{number}"))
    except OSError as error:
        raise SandboxError(f"{log}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise SandboxError(f"{log}: not a fault log (not UTF-8 text)") from None
    return faults


def _parse_line(line: str, where: str) -> Fault:
    """One fault from one JSON line; SandboxError naming `where` and what is wrong."""
    try:
        fields = json.loads(line)
    except (json.JSONDecodeError, RecursionError):
        raise SandboxError(f"{where}: not a fault-log line (not JSON)") from None
    if not isinstance(fields, dict):
        raise SandboxError(f"{where}: not a fault-log line (not a JSON object)")
    for key, kinds in (("t", (int, float)), ("pid", int), ("address", int), ("kind", str)):
        if not isinstance(fields.get(key), kinds) or isinstance(fields[key], bool):
            raise SandboxError(f"{where}: not a fault-log line ({key!r} missing or not a {_kind_name(kinds)})")
    if not math.isfinite(fields["t"]):
        raise SandboxError(f"{where}: not a fault-log line (time {fields['t']} is not finite)")
    if not 0 <= fields["address"] < ADDRESS_END:
        raise SandboxError(f"{where}: not a fault-log line (address {fields['address']} is not 64-bit)")
    region, resident = fields.get("region"), fields.get("resident")
    if region is not None and not isinstance(region, str):
        raise SandboxError(f"{where}: not a fault-log line ('region' is not a string)")
    if resident is not None and (not isinstance(resident, int) or isinstance(resident, bool) or resident < 0):
        raise SandboxError(f"{where}: not a fault-log line ('resident' is not a count: {resident!r})")
    return Fault(float(fields["t"]), fields["pid"], fields["address"], fields["kind"], region, resident)


def _kind_name(kinds: type | tuple[type, ...]) -> str:
    return "number" if kinds in (int, (int, float)) else "string"


# -- placing --------------------------------------------------------------------------------


def place_faults(faults: list[Fault]) -> tuple[list[Band], list[float]]:
    """The bands (bottom to top) and each fault's height: band i spans [i, i + 1); inside
    it the band's distinct pages are spread evenly in address order."""
    keys = _band_keys(faults)
    members: dict[str, set[int]] = {}
    lowest: dict[str, int] = {}
    for fault, key in zip(faults, keys, strict=True):
        members.setdefault(key, set()).add(fault.address >> PAGE_SHIFT)
        lowest[key] = min(lowest.get(key, fault.address), fault.address)
    order = sorted(members, key=lambda key: lowest[key])
    rank = {}
    for index, key in enumerate(order):
        pages = sorted(members[key])
        step = 0.8 / (len(pages) - 1) if len(pages) > 1 else 0.0
        first = index + (0.1 if len(pages) > 1 else 0.5)
        rank.update({(key, page): first + step * n for n, page in enumerate(pages)})
    heights = [rank[key, fault.address >> PAGE_SHIFT] for fault, key in zip(faults, keys, strict=True)]
    return [Band(_short(key), len(members[key])) for key in order], heights


def _band_keys(faults: list[Fault]) -> list[str]:
    """Each fault's band: its region's name, or (in an old log) its address cluster; at
    most MAX_BANDS of them, the rarest merged into one."""
    if all(f.region is not None for f in faults):
        keys = [f.region for f in faults]
    else:
        clusters = _clusters(sorted({f.address for f in faults}))
        keys = [_cluster_name(clusters, f.address) for f in faults]
    counts: dict[str, int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    if len(counts) <= MAX_BANDS:
        return keys
    kept = set(sorted(counts, key=lambda key: -counts[key])[:MAX_BANDS - 1])
    other = f"other ({len(counts) - len(kept)} regions)"
    return [key if key in kept else other for key in keys]


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


def _cluster_name(clusters: list[tuple[int, int]], address: int) -> str:
    """The label of the cluster holding `address`: where it starts and how far it spans."""
    low, high = next((low, high) for low, high in clusters if low <= address <= high)
    start, end = low >> PAGE_SHIFT << PAGE_SHIFT, (high >> PAGE_SHIFT) + 1 << PAGE_SHIFT
    return f"{start:#x} +{_size(end - start)}"


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n} {unit}"
        n //= 1024
    return f"{n} TiB"


def _short(name: str) -> str:
    """A region name short enough for a tick label: a long path's last component."""
    if len(name) > MAX_LABEL and "/" in name:
        return os.path.basename(name.rstrip("/")) or name
    return name


# -- drawing --------------------------------------------------------------------------------


def _colours(plt: Any, n: int) -> list:
    """`n` distinguishable colours: tab10, tab20, then evenly spaced along a colour map."""
    if n <= 10:
        return [plt.get_cmap("tab10")(i) for i in range(n)]
    if n <= 20:
        return [plt.get_cmap("tab20")(i) for i in range(n)]
    return [plt.get_cmap("turbo")(i / (n - 1)) for i in range(n)]


def _marker(kind: str, kinds: list[str]) -> str:
    if kind in KIND_MARKERS:
        return KIND_MARKERS[kind]
    others = [k for k in kinds if k not in KIND_MARKERS]
    return MARKERS[others.index(kind) % len(MARKERS)]


def _dot_size(n: int) -> float:
    """Marker area in points²: large for a few faults, small for many."""
    return 30.0 if n < 300 else 14.0 if n < 3000 else 6.0 if n < 30000 else 2.0


def _draw_faults(axes: Any, faults: list[Fault], xs: list[float], heights: list[float], colour: dict) -> None:
    """One scatter per (process, kind): the process's colour, the kind's marker."""
    import numpy  # matplotlib's own dependency
    kinds = sorted({f.kind for f in faults})
    groups: dict[tuple[int, str], list[int]] = {}
    for index, fault in enumerate(faults):
        groups.setdefault((fault.pid, fault.kind), []).append(index)
    size, raster = _dot_size(len(faults)), len(faults) > RASTERIZE_ABOVE
    x_of, y_of = numpy.asarray(xs, dtype=float), numpy.asarray(heights, dtype=float)  # lists convert slowly
    for (pid, kind), indices in groups.items():
        axes.scatter(x_of[indices], y_of[indices], s=size, color=colour[pid],
                     marker=_marker(kind, kinds), linewidths=0.8 if _marker(kind, kinds) == "x" else 0,
                     alpha=0.8, rasterized=raster)


def _label_bands(axes: Any, bands: list[Band]) -> None:
    """Band names as tick labels at the bands' middles, a light rule between bands."""
    axes.set_ylim(0, max(len(bands), 1))
    axes.set_yticks([i + 0.5 for i in range(len(bands))])
    axes.set_yticklabels([f"{band.label}\n{_count(band.pages, 'page')}" for band in bands], fontsize=8)
    axes.tick_params(axis="y", length=0)
    for boundary in range(1, len(bands)):
        axes.axhline(boundary, color="0.85", linewidth=0.8, zorder=0)
    axes.set_ylabel("region (pages in address order)")


def _draw_resident(axes: Any, faults: list[Fault], xs: list[float], colour: dict) -> None:
    """Each process's resident pages after each of its faults, as a step line labelled
    "pid N", in the process's colour and its own style (see LINE_STYLES)."""
    lines: dict[int, tuple[list[float], list[int]]] = {}
    for x, fault in zip(xs, faults, strict=True):
        line = lines.setdefault(fault.pid, ([], []))
        line[0].append(x)
        line[1].append(fault.resident)
    import numpy

    for order, (pid, (x, y)) in enumerate(lines.items()):
        style, width = line_style(order)
        axes.step(numpy.asarray(x), numpy.asarray(y), where="post", color=colour[pid], linewidth=width,
                  linestyle=style, label=f"pid {pid}")
    axes.set_ylabel("resident pages")
    axes.set_ylim(bottom=0)
    axes.grid(axis="y", color="0.9")


def line_style(order: int) -> tuple[Any, float]:
    """The line style and width of the `order`th process's resident-pages line."""
    return LINE_STYLES[order % len(LINE_STYLES)], max(LINE_WIDTH_LEAST, LINE_WIDTH - LINE_WIDTH_STEP * order)


def _add_legends(axes: Any, pids: list[int], colours: list, faults: list[Fault], lines: bool) -> None:
    """Two legends right of the dots: processes by colour (and, with the resident-pages
    panel, by their line there), fault kinds by marker."""
    from matplotlib.lines import Line2D

    shown = pids if len(pids) <= MAX_LEGEND_PIDS else pids[:MAX_LEGEND_PIDS - 1]
    handles = [Line2D([], [], color=colours[i], marker="o", label=f"pid {pid}",
                      **_legend_line(i) if lines else {"linestyle": ""}) for i, pid in enumerate(shown)]
    if len(shown) < len(pids):
        handles.append(Line2D([], [], linestyle="", label=f"+{len(pids) - len(shown)} more"))
    processes = axes.legend(handles=handles, title="process", loc="upper left", bbox_to_anchor=(1.01, 1.0),
                            fontsize=8, title_fontsize=8, frameon=False)
    axes.add_artist(processes)
    kinds = sorted({f.kind for f in faults})
    handles = [Line2D([], [], color="0.3", marker=_marker(k, kinds), linestyle="", label=k) for k in kinds]
    axes.legend(handles=handles, title="fault kind", loc="lower left", bbox_to_anchor=(1.01, 0.0),
                fontsize=8, title_fontsize=8, frameon=False)


def _legend_line(order: int) -> dict[str, Any]:
    """A legend handle's line as the `order`th process's resident-pages line (narrower)."""
    style, width = line_style(order)
    return {"linestyle": style, "linewidth": min(width, 2.0)}


def _count(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


def summary_line(output: str, summary: PlotSummary) -> str:
    """What `sandbox plot` prints: the picture and what it shows."""
    return (f"{output}: {_count(summary.faults, 'fault')}, {_count(summary.processes, 'process', 'processes')}, "
            f"{_count(len(summary.regions), 'region')}")

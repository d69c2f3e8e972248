"""The table `sandbox batch` prints on stdout at the end: how many passed, the failures by
kind, the slowest runs. Plain text, the same on a terminal or in a file."""

from __future__ import annotations

from collections import Counter

#: Slowest runs the summary lists.
SLOWEST = 5


def summarize(records: dict[str, dict], total: int, interrupted: bool, slowest: int = SLOWEST) -> str:
    """The summary of `records` (those of a manifest of `total` entries)."""
    passed = sum(1 for r in records.values() if r.get("passed"))
    failed = len(records) - passed
    lines = [f"sandbox batch: {len(records)} of {total} runs recorded: {passed} passed, {failed} failed"]
    kinds = Counter(r.get("failure") or "?" for r in records.values() if not r.get("passed"))
    if kinds:
        width = max(map(len, kinds))
        lines += ["", "failed by kind:", *(f"  {kind:<{width}}  {count:>5}" for kind, count in sorted(kinds.items()))]
    lines += _slowest(records, slowest)
    if interrupted or len(records) < total:
        lines += ["", f"{total - len(records)} runs have no record yet: run the same command again to resume"]
    return "\n".join(lines)


def _slowest(records: dict[str, dict], count: int) -> list[str]:
    """The `count` runs that took longest, wall time first."""
    timed = [r for r in records.values() if r.get("timing")]
    timed.sort(key=lambda r: (-r["timing"]["wall_s"], r["id"]))
    if not timed or count <= 0:
        return []
    width = max(4, *(len(r["id"]) for r in timed[:count]))
    lines = ["", "slowest runs:", f"  {'id':<{width}}  {'wall s':>8}  {'cpu s':>8}  {'status':>6}  outcome"]
    for r in timed[:count]:
        status = "-" if r["status"] is None else str(r["status"])
        outcome = "passed" if r["passed"] else r["failure"]
        lines.append(f"  {r['id']:<{width}}  {r['timing']['wall_s']:>8.2f}  {r['timing']['cpu_s']:>8.2f}"
                     f"  {status:>6}  {outcome}")
    return lines

"""Make docs/report.png, the README's picture of `sandbox report`: the page for the
copy-on-write demo's guest (examples/cow_fork.c, built by `make guests` as
guests/build/demo-cow-fork), drawn by headless Chromium (Debian's `chromium`).

Run: python tools/report_screenshot.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUEST = ROOT / "guests" / "build" / "demo-cow-fork"
OUTPUT = ROOT / "docs" / "report.png"
WINDOW = "1200,900"
#: The largest picture the README should carry.
MAX_BYTES = 200 << 10


def make_page(page: Path) -> None:
    """`sandbox report` of the demo (--deterministic: the same page every time)."""
    if not GUEST.exists():
        raise SystemExit(f"{GUEST} is missing: run `make guests` first")
    argv = [sys.executable, "-m", "sandbox", "report", "--deterministic", "-o", str(page), str(GUEST.relative_to(ROOT))]
    run = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"sandbox report failed ({run.returncode}): {run.stderr.strip()}")
    print(run.stdout.strip())


def screenshot(page: Path, output: Path, profile: Path) -> None:
    """Chromium's picture of the page as it loads (the PML4 level open)."""
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("chromium is not installed (apt-get install chromium)")
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--user-data-dir={profile}", f"--screenshot={output}", f"--window-size={WINDOW}",
                    page.as_uri()], capture_output=True, check=True, timeout=120)


def main() -> None:
    OUTPUT.parent.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        page = Path(scratch) / "report.html"
        make_page(page)
        screenshot(page, OUTPUT, Path(scratch) / "profile")
    size = OUTPUT.stat().st_size
    if size > MAX_BYTES:
        raise SystemExit(f"{OUTPUT}: {size} bytes, more than {MAX_BYTES} for the README")
    print(f"{OUTPUT.relative_to(ROOT)}: {size // 1024} KiB")


if __name__ == "__main__":
    main()

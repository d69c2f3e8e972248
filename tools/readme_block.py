"""Replace a generated block of README.md between its two marker comments."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def write_block(begin: str, end: str, block: str) -> None:
    """Put `block` (which starts with `begin` and ends with `end`) in place of the old one."""
    text = README.read_text()
    new = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    README.write_text(new)
    print("README.md is current" if new == text else "README.md updated")

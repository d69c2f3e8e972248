"""The README's sample sessions, run for real: every `$ command` in a ```console block is run
with bash from the repository's root (`sandbox` is .venv/bin/sandbox) and its output, stdout
and stderr together as a terminal shows them, must match the lines below it.

Matching is doctest's ELLIPSIS: a line that is just `...` stands for any number of lines, and
`...` inside a line for any text, so a session can leave out what varies (dates, hashes) or
what is too long to show. tests/readme/ checks every session; `python tools/readme_sessions.py`
reports the stale ones, and with `--update` rewrites those that have no `...` in them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PROMPT = "$ "
ELLIPSIS = "..."
#: The width demos wrap their prose to, as a terminal of this many columns would.
COLUMNS = "100"


@dataclass
class Session:
    """One `$ command` of the README and the lines shown under it."""

    command: str
    expected: list[str]
    line: int  # of the command, 1-based, for messages


def sessions(text: str) -> list[Session]:
    """Every command of every ```console block, in order."""
    found: list[Session] = []
    inside = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            inside = line.strip() == "```console"
            continue
        if not inside:
            continue
        if line.startswith(PROMPT):
            found.append(Session(line[len(PROMPT):], [], number))
        elif found and found[-1].line < number:
            found[-1].expected.append(line)
    for session in found:
        while session.expected and not session.expected[-1].strip():
            session.expected.pop()  # the blank line between two commands
    return found


def run(command: str) -> str:
    """The command's output as a terminal would show it (trailing blank lines dropped)."""
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
           "COLUMNS": COLUMNS}
    done = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    return done.stdout.decode(errors="replace").rstrip("\n")


def pattern(expected: list[str]) -> re.Pattern[str]:
    """The expected lines as one regular expression over the whole output."""
    parts = []
    for line in expected:
        if line.strip() == ELLIPSIS:
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(".*?".join(re.escape(piece) for piece in line.split(ELLIPSIS)) + r"\n")
    return re.compile("".join(parts))


def matches(expected: list[str], output: str) -> bool:
    """Whether `output` is what the session shows, ellipses allowed."""
    return pattern(expected).fullmatch(output + "\n" if output else "") is not None


def stale(text: str) -> list[tuple[Session, str]]:
    """The sessions whose command no longer prints what the README shows, with the output."""
    wrong = []
    for session in sessions(text):
        output = run(session.command)
        if not matches(session.expected, output):
            wrong.append((session, output))
    return wrong


def main() -> int:
    update = "--update" in sys.argv[1:]
    text = README.read_text()
    lines = text.splitlines()
    wrong = stale(text)
    for session, output in reversed(wrong):  # from the end, so earlier line numbers hold
        if update and not any(ELLIPSIS in line for line in session.expected):
            start = session.line  # the command's index + 1 is its first output line
            lines[start:start + len(session.expected)] = output.splitlines()
            print(f"README.md:{session.line}: updated `{session.command}`")
        else:
            print(f"README.md:{session.line}: `{session.command}` now prints:\n{output}\n")
    if update:
        README.write_text("\n".join(lines) + "\n")
    return 1 if wrong and not update else 0


if __name__ == "__main__":
    sys.exit(main())

"""The README's sample sessions are real: each `$ command` runs and prints what is shown
(tools/readme_sessions.py; `python tools/readme_sessions.py --update` refreshes them)."""

from __future__ import annotations

import pytest

from tools.readme_sessions import README, matches, run, sessions

SESSIONS = sessions(README.read_text())


def test_the_readme_has_sessions_to_check() -> None:
    assert len(SESSIONS) >= 12
    assert all("sandbox " in session.command for session in SESSIONS)


@pytest.mark.parametrize("session", SESSIONS, ids=[f"line{s.line}" for s in SESSIONS])
def test_session_prints_what_the_readme_shows(session) -> None:
    output = run(session.command)
    assert matches(session.expected, output), (
        f"README.md:{session.line} `{session.command}` now prints:\n{output}\n"
        "(python tools/readme_sessions.py --update rewrites sessions without '...')")


def test_an_ellipsis_line_stands_for_any_lines_and_inside_a_line_for_any_text() -> None:
    assert matches(["a", "...", "d"], "a\nb\nc\nd")
    assert matches(["a", "...", "b"], "a\nb")
    assert matches(["x ... z"], "x yyy z")
    assert not matches(["a", "d"], "a\nb\nd")
    assert not matches(["x ... z"], "x y\nz")  # inside a line it never spans lines
    assert not matches(["a"], "a\nextra")
    assert matches([], "")


def test_sessions_are_read_from_console_blocks_only() -> None:
    text = "```sh\n$ not this\n```\n```console\n$ sandbox one\nout\n\n$ sandbox two\n```\n"
    found = sessions(text)
    assert [(s.command, s.expected) for s in found] == [("sandbox one", ["out"]), ("sandbox two", [])]

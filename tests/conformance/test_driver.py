"""tools/conformance.py on a fake libc-test tree: two tests (one passes, one fails) built,
run natively and in the sandbox, and reported; the .mk recipes and the report's list of
cases that pass natively and fail in the sandbox, on made-up results. libc-test itself is
not needed (`make conformance` runs the real suite)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tools import conformance
from tools.conformance import Case, Outcome

TEST_H = """extern volatile int t_status;
#define T_LOC2(l) __FILE__ ":" #l
#define T_LOC1(l) T_LOC2(l)
#define t_error(...) t_printf(T_LOC1(__LINE__) ": " __VA_ARGS__)
int t_printf(const char *s, ...);
"""
PRINT_C = """#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>
#include "test.h"
volatile int t_status = 0;
int t_printf(const char *s, ...)
{
	char buf[512];
	va_list ap;
	int n;
	t_status = 1;
	va_start(ap, s);
	n = vsnprintf(buf, sizeof buf, s, ap);
	va_end(ap);
	return write(1, buf, n);
}
"""
PASSES = '#include "test.h"\nint main(void) { return t_status; }\n'
FAILS = '#include "test.h"\nint main(void) { t_error("2 + 2 != %d\\n", 5); return t_status; }\n'


def fake_tree(root: Path) -> Path:
    """A libc-test tree with src/common and two functional tests, plus a shared-object
    helper and a dynamic-only test that must not be built."""
    for folder in ("common", "functional"):
        (root / "src" / folder).mkdir(parents=True)
    (root / "src" / "common" / "test.h").write_text(TEST_H)
    (root / "src" / "common" / "print.c").write_text(PRINT_C)
    (root / "src" / "common" / "runtest.c").write_text("#error runtest.c is not part of libtest.a\n")
    functional = root / "src" / "functional"
    (functional / "passes.c").write_text(PASSES)
    (functional / "fails.c").write_text(FAILS)
    (functional / "loader_dso.c").write_text("int x;\n")
    (functional / "loader_dso.mk").write_text("$(N).BINS:=\n$(N).LIBS:=$(B)/$(N).so\n")
    (functional / "loader.c").write_text(PASSES)
    (functional / "loader.mk").write_text("$(N).BINS:=$(B)/$(N).exe\n$(N).LDFLAGS:=-rdynamic\n")
    return root


def test_a_fake_tree_is_built_run_and_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_tool("gcc")
    tree = fake_tree(tmp_path / "libc-test")
    out = tmp_path / "out"
    assert conformance.main(["--src", str(tree), "--out", str(out), "--libc", "glibc", "--suite", "functional"]) == 0
    report = json.loads((out / "report.json").read_text())
    verdicts = {case["name"]: case["verdict"] for case in report["cases"]}
    assert verdicts == {"fails": "fail", "loader": "not built", "passes": "pass"}
    failed = next(case for case in report["cases"] if case["name"] == "fails")
    assert failed["native"]["stdout"] == failed["sandbox"]["stdout"] == f"{tree}/src/functional/fails.c:2: 2 + 2 != 5\n"
    assert (failed["native"]["status"], failed["sandbox"]["status"]) == (1, 1)
    counts = {"tests": 3, "built": 2, "native": 1, "sandbox": 1, "both": 1}
    assert report["summary"]["glibc"]["functional"] == report["summary"]["all"]["all"] == counts
    shown = capsys.readouterr().out
    assert "| glibc | functional | 3 | 2 | 1 | 1 | 1 | 100.0% |" in shown
    assert "- `glibc:functional/fails`: native status 1, sandbox status 1" in shown
    assert "- `glibc:functional/loader`: dynamic only" in shown


def test_recipes_follow_the_mk_fragments(tmp_path: Path) -> None:
    folder = tmp_path / "functional"
    folder.mkdir()
    fragments = {"helper_dso": "$(N).BINS:=\n$(N).LIBS:=$(B)/$(N).so\n",
                 "dynamic": "$(N).BINS:=$(B)/$(N).exe\n$(B)/$(N).err: $(B)/$(D)/helper_dso.so\n",
                 "linked": "$(N).LDLIBS := $(B)/$(D)/helper_dso.so\n$(N)-static.LDLIBS := $(B)/$(D)/helper_dso.o\n",
                 "quiet": "$(N).CFLAGS := -w\n"}
    for name, text in fragments.items():
        (folder / f"{name}.mk").write_text(text)
    recipes = {name: conformance.read_recipe(folder / f"{name}.c") for name in [*fragments, "plain"]}
    assert {name: r.kind for name, r in recipes.items()} == {
        "helper_dso": "helper", "dynamic": "dynamic", "linked": "test", "quiet": "test", "plain": "test"}
    assert recipes["linked"].extra_sources == ["functional/helper_dso.c"]
    assert recipes["quiet"].cflags == ["-w"]


def outcome(passed: bool, status: int, stdout: str = "", timed_out: bool = False) -> Outcome:
    return Outcome(passed, status, timed_out, 0.1, stdout, "")


def test_the_report_lists_what_only_the_sandbox_fails() -> None:
    cases = [Case("musl", "functional", "good", exe="x", native=outcome(True, 0), sandbox=outcome(True, 0)),
             Case("musl", "functional", "sock", exe="x", native=outcome(True, 0),
                  sandbox=outcome(False, 1, "socket.c:20: failed\n"), enosys=["socket", "bind"]),
             Case("musl", "regression", "slow", exe="x", native=outcome(True, 0),
                  sandbox=outcome(False, 137, timed_out=True)),
             Case("musl", "regression", "odd", exe="x", native=outcome(False, -11), sandbox=outcome(True, 0)),
             Case("musl", "regression", "dl", not_built="dynamic only")]
    assert [c.verdict for c in cases] == ["pass", "regression", "regression", "sandbox only", "not built"]
    text = conformance.markdown(cases, "abc123")
    assert "- `musl:functional/sock`: status 1; ENOSYS: socket, bind\n```\nsocket.c:20: failed\n```" in text
    assert "- `musl:regression/slow`: timed out" in text
    assert "- `musl:regression/odd`: native signal 11, sandbox pass" in text
    assert "The sandbox passes 1 of the 3 cases that pass natively (33.3%; target 98%); without math" in text
    assert conformance.summarise(cases)["musl"]["regression"] == {
        "tests": 3, "built": 2, "native": 1, "sandbox": 1, "both": 0}

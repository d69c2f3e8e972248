"""Build the project's own libunicorn: x86 only, from the pinned PyPI sdist, with engine/patches/.

    python engine/build.py [--out DIR] [--jobs N]

Steps: fetch unicorn-VERSION.tar.gz (pip's cache first, files.pythonhosted.org otherwise),
check its sha256 against the pin below, unpack it afresh under build/engine/, apply every
engine/patches/NNNN-*.patch in order (`patch -p1` in the sdist's `src/`, Unicorn's own source
root), configure with cmake (Release, UNICORN_ARCH=x86, no tests, no install) and build with
ninja, then copy the library to OUT/libunicorn.so.2 and write OUT/engine.json: version, sha256
and the patches applied, which `sandbox --version` and the stats report.

The result replaces the output only once it is complete, so a failed build leaves the
previous library (or none) in place; sandbox/engine.py then uses the PyPI wheel's. Exit
status 0 on success, 1 with one line on stderr naming the step that failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATCHES = ROOT / "engine" / "patches"
#: Unicorn's version: the one pyproject.toml pins for the wheel (the API the binding targets).
VERSION = "2.1.4"
#: sha256 of unicorn-2.1.4.tar.gz as PyPI publishes it (https://pypi.org/simple/unicorn/).
SDIST_SHA256 = "00567a70e323f749b419cd86bee4f9115beab7ebba32194581c090cbb7c59cff"
SDIST_URL = ("https://files.pythonhosted.org/packages/b2/1b/b4248aa8422e86de690cf8e85cf8feae4c"
             "33405a097d1ebe71570bdaa6f5/unicorn-2.1.4.tar.gz")
SDIST_NAME = f"unicorn-{VERSION}.tar.gz"
CMAKE_OPTIONS = ["-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release", "-DUNICORN_ARCH=x86", "-DUNICORN_BUILD_TESTS=OFF",
                 "-DUNICORN_INSTALL=OFF", "-DUNICORN_LEGACY_STATIC_ARCHIVE=OFF", "-DUNICORN_LOGGING=OFF"]
LIBRARY = "libunicorn.so.2"


class BuildError(Exception):
    """One step failed; the message names it."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_sdist(work: Path) -> Path:
    """The pinned sdist in `work`, downloaded if absent or wrong; raises BuildError if its
    sha256 is not the pinned one."""
    path = work / SDIST_NAME
    if not path.exists() or sha256_of(path) != SDIST_SHA256:
        pip = [sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:", "--no-deps",
               "--no-build-isolation", "-d", str(work), f"unicorn=={VERSION}"]
        if subprocess.run(pip, capture_output=True).returncode != 0 or not path.exists():
            try:
                with urllib.request.urlopen(SDIST_URL, timeout=60) as response, open(path, "wb") as f:
                    shutil.copyfileobj(response, f)
            except OSError as exc:
                raise BuildError(f"cannot download {SDIST_NAME}: {exc}") from exc
    if sha256_of(path) != SDIST_SHA256:
        raise BuildError(f"{path}: sha256 {sha256_of(path)} is not the pinned {SDIST_SHA256}")
    return path


def unpack(sdist: Path, work: Path) -> Path:
    """A fresh copy of the sdist's Unicorn source tree (its `src/`)."""
    tree = work / f"unicorn-{VERSION}"
    shutil.rmtree(tree, ignore_errors=True)
    with tarfile.open(sdist) as archive:
        archive.extractall(work, filter="data")
    return tree / "src"


def patch_files() -> list[Path]:
    return sorted(PATCHES.glob("[0-9][0-9][0-9][0-9]-*.patch"))


def apply_patches(source: Path) -> list[str]:
    """Apply engine/patches/ in order; their names."""
    if shutil.which("patch") is None:
        raise BuildError("patch is not installed")
    names = []
    for patch in patch_files():
        done = subprocess.run(["patch", "-p1", "--forward", "--batch", "-s", "-d", str(source), "-i", str(patch)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise BuildError(f"{patch.name} does not apply: {(done.stdout + done.stderr).strip()[:300]}")
        names.append(patch.name)
    return names


def compile_library(source: Path, work: Path, jobs: int) -> Path:
    """cmake + ninja; the built library's path."""
    build = work / "cmake"
    shutil.rmtree(build, ignore_errors=True)
    for step in (["cmake", "-S", str(source), "-B", str(build), *CMAKE_OPTIONS],
                 ["ninja", "-C", str(build), "-j", str(jobs), "unicorn"]):
        if shutil.which(step[0]) is None:
            raise BuildError(f"{step[0]} is not installed")
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            raise BuildError(f"{step[0]} failed: {(done.stdout + done.stderr).strip()[-400:]}")
    return build / LIBRARY


def install(library: Path, out: Path, patches: list[str]) -> None:
    """Copy the library and its description into `out`, each by rename (never half-written)."""
    out.mkdir(parents=True, exist_ok=True)
    info = {"version": VERSION, "sdist_sha256": SDIST_SHA256, "patches": patches}
    for name, write in ((LIBRARY, lambda tmp: shutil.copyfile(library, tmp)),
                        ("engine.json", lambda tmp: tmp.write_text(json.dumps(info, indent=2) + "\n"))):
        tmp = out / f".{name}.tmp"
        write(tmp)
        os.replace(tmp, out / name)


def build(out: Path, jobs: int) -> None:
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    source = unpack(fetch_sdist(work), work)
    patches = apply_patches(source)
    install(compile_library(source, work, jobs), out, patches)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "engine")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    try:
        build(args.out, args.jobs)
    except (BuildError, OSError, tarfile.TarError) as exc:
        fallback = "its previous build" if (args.out / LIBRARY).exists() else "the PyPI wheel's libunicorn"
        print(f"engine build failed, so the sandbox will use {fallback}: {exc}", file=sys.stderr)
        return 1
    print(f"built {args.out / LIBRARY} (unicorn {VERSION}, {len(patch_files())} patches)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

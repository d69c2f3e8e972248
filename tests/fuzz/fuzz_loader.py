"""Coverage-guided fuzzing of the ELF loader (atheris): any input is refused with ElfError or
SandboxError, or parses into an image; anything else is a bug. Run by `make fuzz`."""

import os
import sys
import tempfile

import atheris

with atheris.instrument_imports():
    from sandbox.errors import SandboxError
    from sandbox.loader import read_elf

PATH = os.path.join(tempfile.mkdtemp(prefix="sandbox-fuzz-"), "input.elf")


def test_one(data: bytes) -> None:
    with open(PATH, "wb") as f:
        f.write(data)
    try:
        image = read_elf(PATH)
    except SandboxError as error:
        assert "\n" not in str(error)
        return
    assert image.segments and all(s.memsz >= s.filesz for s in image.segments)


if __name__ == "__main__":
    seeds = [a for a in sys.argv[1:] if not a.startswith("-")]
    atheris.Setup([sys.argv[0], *[a for a in sys.argv[1:] if a.startswith("-")], *seeds], test_one)
    atheris.Fuzz()

# `make demo` and `make test` each do all set-up on a fresh machine: Debian packages the
# guests and tests need (apt-get, as root), a virtualenv with the package, the guests.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Debian packages: gcc, g++ and musl-tools build the guests; busybox-static, dash and python3
# are guests (Debian's own dynamic programs, run through the system view); golang-go builds the
# Go guest; gdb, strace and chromium are what tests compare with or drive (the gdb stub, the
# trace, the report page); qemu-user is the benchmark's peer. No recommends: chromium's would
# pull in avahi-daemon, whose set-up fails in a container.
DEBIAN_PACKAGES := gcc g++ libc6-dev musl-tools busybox-static dash python3 make util-linux chromium golang-go gdb strace
# Tools that may come from elsewhere (rustup's rustc): installed from Debian only if absent.
DEBIAN_TOOLS := rustc:rustc
BENCH_PACKAGES := qemu-user

.PHONY: demo test guests compile bench bench-peers soak fuzz lint system-deps clean conformance

# compat editable mode: a plain path entry, not an import hook that every start pays for;
# bytecode compiled once, since PYTHONDONTWRITEBYTECODE may keep Python from caching it.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --retries 1 -e '.[dev]' --config-settings editable_mode=compat
	touch $@

# The machine's block hook in C (sandbox/native/stopper.c says why it exists).
NATIVE := sandbox/native/libstopper.so
$(NATIVE): sandbox/native/stopper.c
	gcc -O2 -shared -fPIC -Wall -Werror -o $@ $<

# The system-call and page-fault entries in C, a CPython extension (sandbox/native/fastpath.c and
# faultpath.c say why); optional: without it the sandbox takes the pure-Python path
# (sandbox/fastpath.py). Debian's Python keeps its headers in python3-dev.
FASTPATH := sandbox/native/_fastpath.so
FASTPATH_SOURCES := sandbox/native/fastpath.c sandbox/native/faultpath.c
$(FASTPATH): $(FASTPATH_SOURCES) sandbox/native/faultpath.h | $(STAMP)
	@include="$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"; \
	[ -f "$$include/Python.h" ] || $(MAKE) -s system-deps DEBIAN_PACKAGES=python3-dev DEBIAN_TOOLS= >/dev/null 2>&1; \
	gcc -O2 -shared -fPIC -Wall -Werror -I"$$include" -o $@ $(FASTPATH_SOURCES) \
	  || echo "$@ not built: system calls and page faults take the pure-Python path"

# The project's own libunicorn: x86 only, from the pinned sdist, with engine/patches/ (engine/build.py
# says how, each patch what and why). If it cannot be built, the sandbox runs on the PyPI wheel's.
ENGINE := build/engine/libunicorn.so.2
ENGINE_PACKAGES := cmake ninja-build patch
$(ENGINE): engine/build.py $(wildcard engine/patches/*.patch) | $(STAMP)
	@$(MAKE) -s system-deps DEBIAN_PACKAGES="$(ENGINE_PACKAGES)" DEBIAN_TOOLS= >/dev/null 2>&1 || true
	@$(PY) engine/build.py || true

compile: $(STAMP) $(NATIVE) $(FASTPATH) $(ENGINE)
	$(PY) -m compileall -q sandbox

system-deps:
	@missing=""; for p in $(DEBIAN_PACKAGES) $(EXTRA_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	for t in $(DEBIAN_TOOLS); do \
	  command -v $${t#*:} >/dev/null 2>&1 || missing="$$missing $${t%%:*}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; fi

guests: $(STAMP) system-deps compile
	$(PY) guests/build.py

demo: guests
	$(VENV)/bin/sandbox run /bin/ls -la /
	$(VENV)/bin/sandbox run --stats guests/build/hello

test: guests
	$(PY) -m pytest -q -n auto

bench: $(STAMP) compile
	$(MAKE) system-deps EXTRA_PACKAGES="$(BENCH_PACKAGES)"
	$(PY) guests/build.py
	$(PY) bench/run.py
	$(PY) bench/batch.py
	$(PY) bench/snapshot.py

fuzz: guests
	cd tests/fuzz && ../../$(PY) fuzz_loader.py -max_total_time=$${FUZZ_SECONDS:-120} ../../guests/build/hello
	cd tests/fuzz && ../../$(PY) fuzz_syscalls.py -max_total_time=$${FUZZ_SECONDS:-120}

bench-peers:
	$(PYTHON) -m venv .venv-peers
	.venv-peers/bin/pip install -q qiling

# musl's libc-test built statically with musl-gcc and glibc, each test run natively and in the
# sandbox: pass counts side by side, and every case only the sandbox fails (build/conformance/).
# Not part of `test`. LIBC_TEST_DIR=DIR uses that tree instead of cloning the pinned commit.
conformance: $(STAMP) compile
	$(MAKE) system-deps EXTRA_PACKAGES=git
	$(PY) tools/conformance.py $(if $(LIBC_TEST_DIR),--src $(LIBC_TEST_DIR))

soak: guests
	$(PY) tests/robustness/soak.py --seconds $${SOAK_SECONDS:-600}

lint: $(STAMP)
	$(VENV)/bin/ruff check sandbox guests tests tools bench

clean:
	rm -rf guests/build .pytest_cache

# The commands a person types. `make run` and `make test` do all the set-up on a fresh machine.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# The interpreter the virtual environment is made from: Debian's CPython 3.11 where present, built with profile-guided
# optimisation, whose interpreter loop runs the Python around the core faster than a plain source build (the backtest
# row of docs/performance.md); else the first python3 on the PATH.
PYTHON ?= $(firstword $(wildcard /usr/bin/python3.11) python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMPS := .build-stamps
# The venv's stamp names the interpreter it is made from: choosing another makes the venv again.
VENV_STAMP := $(STAMPS)/venv$(subst /,-,$(PYTHON))
export PYO3_PYTHON := $(abspath $(BIN)/python)
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(BIN)):$(PATH)

RUST_SOURCES := $(shell find rust/src -name '*.rs') rust/Cargo.toml Cargo.toml pyproject.toml
PY_DIRS      := $(wildcard python tests bench scripts load examples)

.PHONY: help run test bench load soak demo setup build lint check-rust check-python proto proto-check clean pg chromium tmux

help:
	@echo "make run    - set up (venv, pinned deps, release build) and serve on 127.0.0.1:50051"
	@echo "make test   - set up, then every check (fmt, clippy, cargo test, ruff, mypy, stubtest, proto, pytest)"
	@echo "make bench  - release benchmarks against baselines measured in the same run -> docs/performance.md"
	@echo "make load   - release build, production-config server on 127.0.0.1, headless Locust -> load/results/"
	@echo "make soak   - the decision mix at 50 users for 10 minutes: RSS stable, zero errors"
	@echo "make proto  - regenerate python/allsuse/v1 from proto/"

$(VENV_STAMP): requirements.txt
	@mkdir -p $(STAMPS)
	@# A venv made from another interpreter (an older checkout's) is made again, with the extension built into it.
	if test -x $(BIN)/python && [ "$$($(BIN)/python -c 'import sys; print(sys.base_prefix)')" != \
		"$$($(PYTHON) -c 'import sys; print(sys.base_prefix)')" ]; then rm -rf $(VENV) $(STAMPS)/build; fi
	@# Debian's interpreter makes a venv only with its venv package (ensurepip): installed when missing.
	$(PYTHON) -c 'import ensurepip' 2>/dev/null || { sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo -n"; \
		export DEBIAN_FRONTEND=noninteractive; $$sudo apt-get install -y -q python3.11-venv || \
		{ $$sudo apt-get update -q && $$sudo apt-get install -y -q python3.11-venv; }; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(STAMPS)/build: $(VENV_STAMP) $(RUST_SOURCES)
	$(BIN)/maturin develop --release --quiet
	touch $@

# Debian's PostgreSQL server binaries (the store's PostgreSQL tests start a throwaway server); only when missing.
pg:
	@for d in /usr/lib/postgresql/*/bin; do test -x "$$d/initdb" && exit 0; done; \
	command -v initdb >/dev/null && exit 0; \
	sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo -n"; \
	export DEBIAN_FRONTEND=noninteractive; \
	$$sudo apt-get install -y -q postgresql || { $$sudo apt-get update -q && $$sudo apt-get install -y -q postgresql; }

# Debian's Chromium (the report test renders report.html headless and screenshots it); only when missing.
chromium:
	@command -v chromium >/dev/null && exit 0; \
	sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo -n"; \
	export DEBIAN_FRONTEND=noninteractive; \
	$$sudo apt-get install -y -q chromium || { $$sudo apt-get update -q && $$sudo apt-get install -y -q chromium; }

# Debian's tmux (the `allsuse chat` test drives the terminal session with send-keys and capture-pane).
tmux:
	@command -v tmux >/dev/null && exit 0; \
	sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo -n"; \
	export DEBIAN_FRONTEND=noninteractive; \
	$$sudo apt-get install -y -q tmux || { $$sudo apt-get update -q && $$sudo apt-get install -y -q tmux; }

setup: pg chromium tmux $(STAMPS)/build

build: setup

run: setup
	$(BIN)/python -m allsuse.cli serve --config development

check-rust: setup
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p allsuse-core --all-targets --features python -- -D warnings
	cargo test --workspace

check-python: setup
	$(BIN)/ruff check $(PY_DIRS)
	$(BIN)/ruff format --check $(PY_DIRS)
	$(BIN)/mypy
	$(BIN)/python -m mypy.stubtest allsuse._core
	$(BIN)/python scripts/gen_proto.py --check

test: check-rust check-python
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python bench/run.py --write docs/performance.md

# Load tests (load/run.py; durations from LOAD_SECONDS, SOAK_SECONDS...; docs/performance.md, "Load tests").
load: setup
	$(BIN)/python load/run.py

soak: setup
	$(BIN)/python load/run.py --soak

proto: $(VENV_STAMP)
	$(BIN)/python scripts/gen_proto.py

clean:
	rm -rf $(STAMPS) target

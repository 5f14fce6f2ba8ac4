# Set-up and the two commands of the README. Every target installs what it needs first.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
# torch is pinned for the CPU set-up only (a file of this CPU build is on disk here; an
# unpinned torch would pull a multi-GB CUDA build). The gpu extra is its own environment.
TORCH_CPU ?= torch==2.13.0

.PHONY: setup study test lint bench clean-venv

$(STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_CPU)" -e ".[cpu,dev]"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

setup: $(STAMP)

## The main job: run the pipeline (dvc repro) and show what the store holds.
study: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" dvc repro
	$(BIN)/gvstore store stats

## The tests (what CI runs). Heavier tests: `make test PYTEST_ARGS="-m slow"`.
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check gvstore stages tests benchmarks
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/store_bench.py

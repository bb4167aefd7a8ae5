# Alpha Forge — one-command set-up. `make demo` runs the sample pipeline; `make test` the suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# PyTorch is pinned to its CPU build (torch==2.13.0 in pyproject.toml): its wheel lies in
# TORCH_WHEELS on these machines, and pip prefers that local 2.13.0+cpu over the multi-GB CUDA
# build of an index. Elsewhere, point TORCH_WHEELS at a folder holding the CPU wheel (from
# https://download.pytorch.org/whl/cpu).
TORCH_WHEELS ?= /opt/wheels
FIND_LINKS := $(if $(wildcard $(TORCH_WHEELS)/torch-*.whl),--find-links $(TORCH_WHEELS))
# hftbacktest (tick-level simulation, issue 15) pins numpy<2.3 and numba~=0.61 in its metadata;
# its compiled core and numba code run on our numpy 2.4 and numba 0.68 (tests/nodes run it), and
# the plotting and data-conversion helpers that need polars / holoviews are not used, so it is
# installed without its dependencies rather than downgrading numpy for everything else.
HFTBACKTEST := hftbacktest==2.4.4
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1

.PHONY: setup demo test lint bench serve clean

setup: $(STAMP)

# The virtualenv, reinstalled when the dependencies change. `compat` editable mode puts the
# repository root on sys.path so every top-level package is importable as it is in the tree.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(FIND_LINKS) -e '.[dev]' --config-settings editable_mode=compat
	$(PY) -m pip install -q --no-deps $(HFTBACKTEST)
	@touch $@

demo: setup
	$(VENV)/bin/alphaforge run examples/sma_crossover.af

test: setup
	bash scripts/test.sh

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

serve: setup
	bash scripts/build_ui.sh
	$(VENV)/bin/alphaforge serve --with-prefect-ui --with-mlflow-ui

bench: setup
	$(PY) bench/run_all.py

clean:
	rm -rf .alphaforge .pytest_cache

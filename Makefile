# Two entry points for a fresh machine; each installs what is missing first.
#   make demo   generate, pretrain and probe a small comparison; prints a table, writes a chart
#   make test   run the test suite (CI runs exactly this)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Real evaluation data: downloaded on a user's machine; here the shared archives.
export NOISEVISION_DATA ?= $(abspath ../shared/datasets)
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup test test-fast demo bench-generate bench-train bench-probe clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: an unpinned resolver would pull the CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]' torch==2.13.0
	touch $(STAMP)

test: setup
	$(PY) -m ruff check src tests bench
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

demo: setup
	$(PY) -m noisevision compare --profile demo --datasets cifar10 --out results/demo

bench-generate: setup
	$(PY) bench/generate_speed.py

bench-train: setup
	$(PY) bench/train_speed.py

bench-probe: setup
	$(PY) bench/probe_speed.py

clean:
	rm -rf $(VENV) .pytest_cache results/demo

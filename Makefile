# Two entry points (see README): `make demo` runs the main job on embedded demo data, `make test` runs
# ruff and the test suite. Both create or reuse .venv by themselves. `make test-fast` is the same without the
# tests marked slow (real training, DDP, resume, sweeps, export): a few minutes, for use while developing.
# `make measure` regenerates the README's Measured rows that take minutes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint install measure clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch/torchvision first, pinned to the tested pair (pip takes them from the local wheel cache here).
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# One pytest worker per core (pytest-xdist), each test module on one worker (its module fixtures built once); every
# worker and tool process runs one intra-op thread (tests/conftest.py), so the workers never oversubscribe the cores.
PYTEST := $(BIN)/python -m pytest -q -n auto --maxprocesses 8 --dist loadscope

test: lint
	$(PYTEST)

test-fast: lint
	$(PYTEST) -m "not slow"

demo: $(STAMP)
	$(BIN)/python tools/train.py experiment=demo

# The README's Measured rows that take minutes (five demos trained from scratch, export parity, profile, latency),
# printed as the README's table with the machine and the date: about 15 minutes on 2 cores.
measure: $(STAMP)
	$(BIN)/python tools/measure.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache

# The README's whole set-up: `make run` and `make test`. Both create .venv when missing.
# torch is installed first, on its own, so that pip takes the local CPU wheel (2.13.0) instead of
# resolving a CUDA build; the package and its dev extra follow. A stamp file makes re-runs instant.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.algodistill-installed

.PHONY: setup run test lint

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	@touch $(STAMP)

run: setup
	$(BIN)/algodistill run darkroom

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest

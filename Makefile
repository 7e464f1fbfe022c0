# Two commands set everything up on a fresh machine: `make train` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install train lint format test test-fast clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstall only when the project's dependencies change.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

train: install
	$(BIN)/python train.py $(ARGS)

# ruff (configured in pyproject.toml) before the tests: style and lint errors fail the run.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Two workers (pytest-xdist), a test file each at a time (tests/conftest.py: the units and their order).
test: lint
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15 $(ARGS)

test-fast: lint
	$(BIN)/python -m pytest -q -m "not slow" $(ARGS)

clean:
	rm -rf outputs data/synthetic .pytest_cache

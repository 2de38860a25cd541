# Stormdrill: `make demo` runs the main job on embedded defaults; `make test` runs every check.
# Both create or refresh the virtual environment themselves (Python 3.11+, from requirements.lock,
# which pins the dev and sandbox extras too: the demo and the tests need the sandbox).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
STATE_DIR ?= .stormdrill/demo
# Tests run on every core (pytest-xdist), a test file per worker at a time: each worker starts
# its own loopback servers, and moto's state is per process, so files never interleave.
PYTEST_ARGS ?= -n auto --dist loadfile

.PHONY: install demo test lint typecheck layers pytest services clean lock

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check uv 2>&1 | grep -v 'is ignored' || true
	$(BIN)/uv pip install -q --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e '.[sandbox]'
	@touch $(STAMP)

install: $(STAMP)
	@echo 'stormdrill is installed as $(BIN)/stormdrill; to type just "stormdrill": export PATH="$$PWD/$(BIN):$$PATH" (or: . $(BIN)/activate)'

demo: install
	$(BIN)/stormdrill demo --state-dir $(STATE_DIR)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy scenarios orchestrator reports drills sandbox tests benchmarks

layers: install
	$(BIN)/lint-imports

services:
	@bash .ci/services

pytest: install services
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck layers pytest

lock:
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra sandbox -o requirements.lock --python-version 3.11

clean:
	rm -rf $(VENV) .stormdrill .mypy_cache .ruff_cache .pytest_cache

# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test check lint typecheck format system-deps venv bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

## run: the exporter and the receiver on their embedded defaults (Ctrl-C stops both)
run: $(STAMP)
	scripts/run.sh

## test: install what the tests need (venv, Debian packages), lint, then the whole suite
test: system-deps $(STAMP) lint
	$(BIN)/pytest

## check: the fast loop (under a minute): lint, mypy, and every test that starts no real service or process (pytest-xdist)
check: $(STAMP) lint typecheck
	STACKMEDIC_TESTS_NO_SERVICES=1 $(BIN)/pytest -q -n auto -m "not services and not e2e and not slow"

system-deps:
	scripts/install-system-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## bench: every benchmark against its peers; results go to docs/benchmarks.md
bench: system-deps $(STAMP)
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .run

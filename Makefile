# One task runner. `make test` is the project's test command (README, CI).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test keystone lint typecheck unit serve sample clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[postgresql,mysql,test,bench]'
	$(BIN)/pip install -q -e '.[mysqlclient]' || echo "make: mysqlclient not built (it needs libmariadb-dev and pkg-config); its tests fail under CI=true, skip otherwise" >&2
	touch $(STAMP)

## Everything CI runs: lint, types, and the whole suite on SQLite, PostgreSQL and MariaDB
## (plus a real Keystone in .venv-keystone and the local RabbitMQ).
test: $(STAMP) keystone lint typecheck
	$(BIN)/python -m pytest

## A real Keystone for tests/identity, in its own venv (idempotent).
keystone:
	bash tests/identity/make-keystone-venv.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

## Fast loop: pure unit tests plus the SQLite half of the database suite.
unit: $(STAMP)
	ANNALS_TEST_BACKENDS=sqlite $(BIN)/python -m pytest -m "not slow"

serve: $(STAMP)
	$(BIN)/annals serve

## Regenerate etc/annals.conf.sample after changing an option.
sample: $(STAMP)
	$(BIN)/oslo-config-generator --config-file etc/annals-config-generator.conf

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis

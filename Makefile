# Lockgate: `make run` starts the whole system, `make test` runs every check from scratch.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO ?= 1

.PHONY: install services run test lint typecheck pytest asyncapi clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

# Starts local RabbitMQ and PostgreSQL when they are installed but stopped.
services:
	scripts/ensure-services.sh

run: install services
	$(BIN)/lockgate db create
	$(BIN)/lockgate migrate
	PATH="$(CURDIR)/$(BIN):$$PATH" DEMO=$(DEMO) $(BIN)/honcho start -f Procfile

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy libs services tests

asyncapi: install
	$(BIN)/lockgate asyncapi --output docs/asyncapi.yaml

pytest: install services
	$(BIN)/pytest

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# Lockgate: `make run` starts the whole system, `make test` runs every check from scratch.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO ?= 1

.PHONY: install services test-packages run test lint typecheck pytest asyncapi dashboards screenshots screens clean bench

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

# Starts local RabbitMQ and PostgreSQL when they are installed but stopped.
services:
	scripts/ensure-services.sh

# Debian tools the tests use: real Windows installers (MSI with wixl, EXE with MinGW),
# promtool (package prometheus) for the alert rules and the dashboards' PromQL, and the
# browser the console's page tests drive (tests/browser: Playwright cannot download its own
# here, so it runs Debian's /usr/bin/chromium; a font so pages and screenshots have text).
TEST_PACKAGES := wixl gcc-mingw-w64-x86-64 binutils-mingw-w64-x86-64 prometheus \
	chromium fonts-dejavu-core
test-packages:
	scripts/ensure-debian-packages.sh $(TEST_PACKAGES)

# The console's first admin token for this checkout: var/dev-token, made once, never committed.
# Export LOCKGATE_TOKEN=$$(cat var/dev-token) to use the CLI against `make run`.
# The demo compresses time: its computers check in every minute, so "not reporting" can be
# about four minutes (0.003 days) instead of the default 7 days. DEMO=0 keeps the default.
DEMO_NOT_REPORTING_DAYS ?= 0.003
# ... and samples compliance for the overview's chart every 30 s instead of every 5 minutes.
DEMO_SAMPLE_SECONDS ?= 30

run: install services
	$(BIN)/lockgate db create
	$(BIN)/lockgate migrate
	@mkdir -p var && test -s var/dev-token || $(BIN)/python -c 'import secrets; print("lg_" + secrets.token_urlsafe(32))' > var/dev-token
	@echo "console: open http://127.0.0.1:8080/ and sign in with the token in var/dev-token (API: http://127.0.0.1:8080/api/v1/docs)"
	LOCKGATE_BOOTSTRAP_TOKEN="$$(cat var/dev-token)" LOCKGATE_TOKEN="$$(cat var/dev-token)" \
	$(if $(filter 1,$(DEMO)),LOCKGATE_NOT_REPORTING_DAYS=$(DEMO_NOT_REPORTING_DAYS) LOCKGATE_COMPLIANCE_SAMPLE_SECONDS=$(DEMO_SAMPLE_SECONDS)) \
	PATH="$(CURDIR)/$(BIN):$$PATH" DEMO=$(DEMO) $(BIN)/honcho start -f Procfile

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy libs services tests bench

asyncapi: install
	$(BIN)/lockgate asyncapi --output docs/asyncapi.yaml

# deploy/grafana/*.json from libs/observability/dashboards.py (a test fails when they drift).
dashboards: install
	$(BIN)/python -m libs.observability.dashboards

# docs/dashboards/*.png from a running system (start `make run` first, in another terminal):
# a private Prometheus scrapes it for MINUTES, then each dashboard's PromQL is plotted.
MINUTES ?= 8
screenshots: install test-packages
	$(BIN)/pip install --quiet --disable-pip-version-check matplotlib
	$(BIN)/python scripts/render_dashboards.py --minutes $(MINUTES)

# docs/screens/*.png: the console's pages as the browser tests see them (1280x800), from a
# system and simulated fleet the suite starts itself; commit them with the pages they show.
screens: install services test-packages
	mkdir -p docs/screens
	LOCKGATE_SCREENS_DIR="$(CURDIR)/docs/screens" $(BIN)/pytest tests/browser -m browser

# The fast tests first, then the long fault runs (private broker and database nodes killed,
# stopped and failed over); both write docs/RELIABILITY.md from what the fault tests saw.
pytest: install services test-packages
	$(BIN)/pytest -m "not faults"
	$(BIN)/pytest -m faults

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# Every benchmark at the issue's sizes (1,000,000 computers where issue 19 says so), one after
# the other, then bench/RESULTS.md from their JSON (bench/results/*.json, python -m bench.summary).
# Expected time on this 2-core machine: about 40 minutes (bench/RESULTS.md gives each one's).
# A benchmark that fails is listed as "not measured" and `make bench` exits non-zero at the end.
# Each makes its own vhost and database and removes them. Not part of `make test`.
# bench-small: every benchmark with --small (a few minutes on a quiet machine; 13 when other
# work held the cores), to check the harness; its RESULTS.md says it is a small run.
# bench/results/run.txt: each benchmark's seconds and exit code in the last run.
BENCHMARKS := pipeline catalog_import approval_scale reporting_ingest compliance_latency \
	scheduler_timers memory scale
BENCH_RUN = started=$$(date -u +%Y-%m-%dT%H:%M:%SZ); failed=""; \
	mkdir -p bench/results; : > bench/results/run.txt; \
	for name in $(BENCHMARKS); do \
	  echo "== bench_$$name $(BENCH_FLAGS) ($$(date -u +%H:%M:%S))"; t0=$$(date +%s); \
	  $(BIN)/python -m bench.bench_$$name $(BENCH_FLAGS); code=$$?; \
	  [ $$code = 0 ] || failed="$$failed $$name"; \
	  echo "$$name $$(( $$(date +%s) - t0 )) $$code" >> bench/results/run.txt; \
	  echo "== bench_$$name took $$(( $$(date +%s) - t0 )) s, exit $$code"; \
	done; \
	$(BIN)/python -m bench.summary --since $$started $(BENCH_FLAGS); \
	if [ -n "$$failed" ]; then echo "failed:$$failed"; exit 1; fi

.PHONY: bench-small bench-plot-deps
bench-plot-deps: install
	$(BIN)/python -c 'import matplotlib' 2>/dev/null || \
	  $(BIN)/pip install --quiet --disable-pip-version-check matplotlib

bench: install services bench-plot-deps
	$(BENCH_RUN)

bench-small: BENCH_FLAGS = --small
bench-small: install services bench-plot-deps
	$(BENCH_RUN)

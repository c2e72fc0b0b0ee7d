# airflow-provider-amlretrain: every target sets up what it needs on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STACK_DIR ?= .amlretrain
# e.g. BENCH_ARGS="--compare-with /tmp/before-transport" runs the status-poll client on another checkout too
BENCH_ARGS ?=
AIRFLOW_VERSION := 3.3.2

.PHONY: help setup up down status demo test test-unit test-emulator test-integration lint bench soak docs mutants clean

help:
	@echo "make demo   - set up everything, start the local stack and retrain a model end to end"
	@echo "make test   - set up everything and run the whole test suite"
	@echo "make up / make down / make status - the local Azure world (Azurite + AML emulator)"
	@echo "make lint   - ruff (with Airflow AIR rules) and mypy"
	@echo "make bench  - benchmarks, results in benchmarks/results/"
	@echo "make soak   - 100 pipeline runs with 20% of Azure ML calls failing, then a secret scan (about 25 min)"
	@echo "make docs   - the documentation (Sphinx, warnings are errors), in docs/_build/html, links checked"
	@echo "make mutants - break each guard in a scratch copy and check that its tests notice"

# Two distributions: the provider (.) and the local Azure world (emulator/: emulator + dev stack).
$(VENV)/.installed: pyproject.toml emulator/pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ./emulator -e '.[dev]' 'apache-airflow==$(AIRFLOW_VERSION)'
	touch $@

node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: install Node.js 20+"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(VENV)/.installed node_modules/.installed

up: setup
	$(PY) -m amlretrain_devstack up --dir $(STACK_DIR)

down:
	@if [ -x $(PY) ]; then $(PY) -m amlretrain_devstack down --dir $(STACK_DIR); fi

status: setup
	$(PY) -m amlretrain_devstack status --dir $(STACK_DIR)

demo: setup
	$(PY) scripts/demo.py --stack-dir $(STACK_DIR)

# Two workers: one runs the modules on the session's local Airflow (mostly waiting on it), the other the rest;
# each test module stays whole on one worker (tests/conftest.py groups them).
TEST_WORKERS ?= 2
test: setup
	$(PY) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

test-unit: setup
	$(PY) -m pytest -q tests/unit

test-emulator: setup
	$(PY) -m pytest -q emulator/tests

test-integration: setup
	$(PY) -m pytest -q tests/integration

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check airflow_provider_amlretrain emulator dags tests scripts benchmarks
	$(VENV)/bin/mypy

# Each benchmark writes benchmarks/results/<name>.json; report.py turns them into benchmarks/RESULTS.md (Performance
# part) and benchmarks/plots/*.png. Long: about 20 minutes on 2 idle cores (1,000 deferred waits six times: at 5 s
# and at 30 s, three approaches), plus the fan-out (200 endpoints in one run of a real local Airflow;
# FAN_OUT_ARGS="--endpoints 20" for a short one).
FAN_OUT_ARGS ?=
bench: setup node_modules/.installed
	$(PY) benchmarks/run.py --output benchmarks/results/latest.json $(BENCH_ARGS)
	$(PY) benchmarks/parse_cost.py --output benchmarks/results/parse_cost.json
	$(PY) benchmarks/poll_policy.py --output benchmarks/results/poll_policy.json
	$(PY) benchmarks/many_waits.py --output benchmarks/results/many_waits.json
	$(PY) benchmarks/many_waits.py --interval 30 --output benchmarks/results/many_waits_30s.json
	$(PY) benchmarks/tls_polls.py --output benchmarks/results/tls_polls.json
	$(PY) benchmarks/fan_out.py --output benchmarks/results/fan_out.json $(FAN_OUT_ARGS)
	$(PY) benchmarks/fan_out_task_cost.py --output benchmarks/results/fan_out_task_cost.json
	$(PY) benchmarks/fan_out_task_cost.py --no-preload --output benchmarks/results/fan_out_task_cost_no_preload.json
	$(PY) benchmarks/report.py

# SOAK_ARGS="--runs 20" for a shorter soak.
SOAK_ARGS ?=
soak: setup node_modules/.installed
	$(PY) benchmarks/soak.py --output benchmarks/results/soak.json $(SOAK_ARGS)

# -n: every internal reference must resolve; -W --keep-going: all warnings reported, then fail.
docs: setup
	rm -rf docs/_build/html
	$(PY) -m sphinx -W --keep-going -n -q -b html docs docs/_build/html
	$(PY) scripts/check_docs_links.py docs/_build/html

mutants: setup node_modules/.installed
	$(PY) scripts/mutants.py

clean: down
	rm -rf $(STACK_DIR) .pytest_cache .ruff_cache .mypy_cache docs/_build

# --- Airflow deployments on the local stack (issue 10) ----------------------------------------------
.PHONY: airflow distributed setup-distributed
CELERY_VERSION := 5.6.3

airflow: setup
	$(PY) -m amlretrain_devstack up --dir $(STACK_DIR)
	$(PY) -m amlretrain_devstack.deploy_cli local --dir $(STACK_DIR)

# Its own stamp: plain `make test` users need neither PostgreSQL, Redis nor Celery.
$(VENV)/.installed-distributed: $(VENV)/.installed
	@command -v redis-server >/dev/null || { echo "redis-server not found: apt-get install redis-server"; exit 1; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo "PostgreSQL not found: apt-get install postgresql"; exit 1; }
	$(PY) -m pip install -q 'apache-airflow[postgres,celery]==$(AIRFLOW_VERSION)' apache-airflow-providers-celery 'celery==$(CELERY_VERSION)' psycopg2-binary
	touch $@

setup-distributed: $(VENV)/.installed-distributed

distributed: setup-distributed node_modules/.installed
	$(PY) -m amlretrain_devstack up --dir $(STACK_DIR)
	$(PY) -m amlretrain_devstack.deploy_cli distributed --dir $(STACK_DIR)

# Browser tests of the UI: Playwright from PyPI driving Debian's chromium (never a browser download).
$(VENV)/.installed-browser: $(VENV)/.installed
	@test -x /usr/bin/chromium || { echo "chromium not found: apt-get install chromium"; exit 1; }
	$(PY) -m pip install -q playwright
	touch $@

setup-browser: $(VENV)/.installed-browser
.PHONY: setup-browser

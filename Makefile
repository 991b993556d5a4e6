# threadcast — the two commands: `make demo` and `make test`.
SHELL := /bin/bash
# The first interpreter that actually runs and is 3.11+ (a pyenv shim may exist but not run).
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint unit install clean bench

$(VENV)/.installed: pyproject.toml
	@[ -n "$(PYTHON)" ] && $(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || \
	  { echo "threadcast needs Python 3.11 or newer: install it, or set PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(VENV)/.installed

# Three scenarios, one after the other, each with its own simulator and ledger: Graph as the
# seed's page describes it (chatthreads posts), then as it answers today (that segment is
# gone: the deployment switches to v1.0 once), then a card with an image to the 300 channels
# an audience resolves to, edited and recalled (every documented limit enforced).
demo: install
	$(VENV)/bin/threadcast demo --scenario seed
	$(VENV)/bin/threadcast demo --scenario today
	$(VENV)/bin/threadcast demo --scenario announce

# Formatting is the tool's (ruff format), with no per-line exemptions.
LINTED := producer worker threadcast simulator tests bench .ci/imports.py
lint: install
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	@! grep -rnE --include='*.py' '# fmt: (skip|off)' $(LINTED) || \
	  { echo "format exemptions (# fmt: skip/off) are not used here: let ruff format decide"; exit 1; }
	$(VENV)/bin/mypy

unit: install
	$(PY) -m pytest tests/unit -q

# The suite starts its own private redis-server (or uses THREADCAST_TEST_REDIS_URL, whose
# databases 0 and 1 it then owns) and, when PostgreSQL is reachable, runs the ledger on it too.
# Two test processes, a module each at a time (each its own redis-server, simulator and
# databases): the tests mostly wait on workers and the network. One process with an
# external Redis, whose two databases cannot be shared.
PYTEST_PROCESSES := $(if $(THREADCAST_TEST_REDIS_URL),,-n 2 --dist loadfile)
test: lint
	@command -v redis-server >/dev/null || [ -n "$$THREADCAST_TEST_REDIS_URL" ] || \
	  { echo "make test needs redis-server (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) or THREADCAST_TEST_REDIS_URL"; exit 1; }
	$(PY) -m pytest -q $(PYTEST_PROCESSES)

# Benchmarks (docs/PERFORMANCE.md): each starts its own Redis, simulator and workers, and
# prints JSON figures (medians of 3 runs with min and max) and a table. Takes about an hour.
bench: install
	@command -v redis-server >/dev/null || \
	  { echo "make bench needs redis-server (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis)"; exit 1; }
	$(PY) bench/performance.py --runs 3
	$(PY) bench/limits.py --runs 3

clean:
	rm -rf $(VENV) .demo .mypy_cache .ruff_cache .pytest_cache

# `make run`, `make test` and `make bench` do every step of set-up themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test test-unit check bench clean

run: $(VENV)/.runtime
	$(PY) server.py

test: $(VENV)/.dev /usr/bin/chromium /usr/sbin/nginx
	$(PY) -m pytest $(PYTEST_ARGS)

# The unit tier alone: no database, Redis or sockets (tests/unit/conftest.py only).
test-unit: $(VENV)/.dev
	$(PY) -m pytest --confcutdir=tests/unit tests/unit $(PYTEST_ARGS)

# Lint, format and types; CI runs it before the tests.
check: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# QUICK=1: the short run (under two minutes); BENCH_ARGS: any option of python -m bench.run --help.
bench: $(VENV)/.dev
	$(PY) -m bench.run $(if $(QUICK),--quick) $(BENCH_ARGS)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.runtime: requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(VENV)/.runtime $@

# The browser tests drive Debian's Chromium; install it where it is missing.
/usr/bin/chromium:
	apt-get update && apt-get install -y chromium

# tests/test_nginx.py runs Debian's nginx (docs/deployment.md's configuration).
/usr/sbin/nginx:
	apt-get update && apt-get install -y nginx-light

clean:
	rm -rf $(VENV)

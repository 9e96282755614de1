# linepush: `make demo` runs the whole flow against the in-process emulator; `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PGURL ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: demo test lint typecheck pytest bench pgdb alertmanager chromium clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(VENV)/.installed $@

$(VENV)/.installed-bench: pyproject.toml $(VENV)/.installed-dev
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/linepush demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports --cache-dir .import_linter_cache

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy src

pgdb: $(VENV)/.installed-dev
	$(BIN)/python tests/support/pgdb.py

# The alert receivers' end-to-end test runs the real Alertmanager; on a Debian-like system (as root) it is
# installed when missing. Without it that test is skipped, and under CI=true it fails.
alertmanager:
	@command -v prometheus-alertmanager >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      prometheus-alertmanager) >/dev/null; \
	  else \
	    echo "prometheus-alertmanager is not installed (Debian: apt-get install prometheus-alertmanager)"; \
	  fi; }

# The emulator's inbox is tested in headless Chromium, installed likewise when missing (skipped without it,
# a failure under CI=true).
chromium:
	@{ command -v chromium >/dev/null && command -v chromedriver >/dev/null; } || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      chromium chromium-driver fonts-noto-color-emoji) >/dev/null; \
	  else \
	    echo "chromium is not installed (Debian: apt-get install chromium chromium-driver)"; \
	  fi; }

pytest: $(VENV)/.installed-dev pgdb alertmanager chromium
	$(BIN)/python -m pytest

test: lint typecheck pytest

bench: $(VENV)/.installed-bench pgdb
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache

# Two commands for a newcomer: `make run` and `make test`. Everything they need installs here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 5000
# Local runs use the embedded SQLite file and development secrets unless told otherwise.
export APP_ENV ?= development

.PHONY: run serve test unit test-browser browser-deps lint format typecheck bench migrate demo clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@ $(VENV)/.installed

migrate: $(VENV)/.installed
	@mkdir -p instance
	$(BIN)/flask --app app db upgrade

demo: migrate
	$(BIN)/flask --app app demo-data

## make run: install, migrate the SQLite file, load demo data if empty, serve on 127.0.0.1:5000,
## with the SLA scheduler beside it (both stop together)
run: demo
	@trap 'kill $$scheduler 2>/dev/null' EXIT INT TERM; \
	$(BIN)/flask --app app scheduler & scheduler=$$!; \
	$(BIN)/flask --app app run --host $(HOST) --port $(PORT)

## make serve: serve as production does (gunicorn), on the configured database
serve: migrate
	$(BIN)/gunicorn 'app:create_app()' --config gunicorn.conf.py --bind $(HOST):$(PORT) --workers $${WEB_CONCURRENCY:-2}

## make test: install test tools, lint, type-check, run the whole suite
test: $(VENV)/.installed-test lint typecheck
	APP_ENV=test $(BIN)/python -m pytest

## make unit: only the pure tests (core, IVR, policy and settings): no app, no database, seconds
unit: $(VENV)/.installed-test
	APP_ENV=test $(BIN)/python -m pytest -q --confcutdir=tests/unit tests/unit

## make browser-deps: install Debian's chromium for the console's browser tests (needs root)
CHROMIUM ?= /usr/bin/chromium
browser-deps:
	@if [ -x "$(CHROMIUM)" ]; then echo "chromium: $(CHROMIUM)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	  || echo "could not install chromium: browser tests will be skipped"; \
	else echo "chromium is not installed (apt-get install chromium as root): browser tests will be skipped"; fi

## make test-browser: only the console's browser tests (headless chromium; screenshots in tests/artifacts/)
test-browser: $(VENV)/.installed-test browser-deps
	APP_ENV=test $(BIN)/python -m pytest tests/browser

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

format: $(VENV)/.installed-test
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## make bench: benchmarks (not tests); prints figures
bench: $(VENV)/.installed-test
	@for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache .hypothesis

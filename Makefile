# newsletter: `make run` for a working site, `make test` for the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
export FLASK_APP := newsletter

.PHONY: run test install translations browser bench bench-full bench-tools clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $(TEST_STAMP)

install: $(STAMP) translations

translations: $(STAMP)
	$(BIN)/pybabel -q compile -d newsletter/translations

## Web server on http://127.0.0.1:5000 plus the worker (scheduler + sender); mail lands in instance/mail/
run: install
	$(BIN)/flask db upgrade
	$(BIN)/flask releases seed-samples
	$(BIN)/python -m newsletter.devserver

## Everything CI checks: lint, layering, migrations in step with models, the test suite
test: install $(TEST_STAMP) browser
	$(BIN)/ruff check newsletter tests bench
	$(BIN)/lint-imports
	NEWSLETTER_DATABASE_URL=sqlite:///$(CURDIR)/.db-check.sqlite $(BIN)/flask db upgrade >/dev/null
	NEWSLETTER_DATABASE_URL=sqlite:///$(CURDIR)/.db-check.sqlite $(BIN)/flask db check
	rm -f .db-check.sqlite*
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Debian's Chromium for the browser tests (never a downloaded browser); skipped where apt is unavailable
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) \
	  || { echo "chromium not installed: browser tests will skip (and fail under CI)"; [ -z "$$CI" ]; }; }

## Benchmarks (bench/README.md): quick by default, full sizes with bench-full
bench: install $(TEST_STAMP) bench-tools
	$(BIN)/python -m bench

bench-full: install $(TEST_STAMP) bench-tools
	$(BIN)/python -m bench --full

## Debian's wrk drives the subscribe load test; without it a slower Python generator is used
bench-tools:
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null) \
	  || echo "wrk not installed: the subscribe benchmark falls back to a Python load generator"; }

clean:
	rm -rf $(VENV) .pytest_cache .db-check.sqlite*

# Two entry points: `make run` (install into .venv and start the app) and `make test`
# (install everything and run the whole test suite). Both work on a fresh clone.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install browser screenshots bench clean

run: install
	$(BIN)/python serve.py

test: install browser
	$(BIN)/python -m pytest -n 2 --dist loadfile -q

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@PY=$$(scripts/find-python) || exit 1; \
	  [ -x $(BIN)/python ] || "$$PY" -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

# Debian's chromium drives the end-to-end browser test (no browser download).
browser:
	@command -v chromium >/dev/null || [ -x /usr/bin/chromium ] || { \
	  echo "Installing Debian chromium for the browser test..."; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null \
	  || { echo "Could not install chromium: run 'apt-get install chromium' as root." >&2; exit 1; }; }

# Refresh the screenshots in docs/ from the browser test (the only way they change: a plain
# `make test` takes none).
screenshots: install browser
	HINDSIGHT_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest -q tests/e2e -k real_format

bench: install browser
	for b in bench/*_bench.py; do $(BIN)/python $$b; done

clean:
	rm -rf $(VENV) .pytest_cache

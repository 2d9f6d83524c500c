# Everything a fresh machine needs is installed by these targets (Python 3.11+, git, Node.js/npm).
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)

.PHONY: install test test-unit test-e2e lint demo bench reliability clean

install: $(VENV)/.installed

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.installed: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --quiet
	touch $@

lint: install
	$(VENV)/bin/ruff check src emulator tests benchmarks
	$(VENV)/bin/ruff format --check src emulator tests benchmarks

test: install
	$(PY) -m pytest -q -x --durations=15

demo: install
	$(PY) scripts/demo.py

bench: install
	$(PY) benchmarks/run.py

reliability: install
	$(PY) -m pytest -q -m slow tests/reliability

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache

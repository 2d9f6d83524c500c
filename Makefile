# Everything a fresh machine needs is installed by these targets (Python 3.11+, git, Node.js/npm; Debian's
# chromium package for the UI schema test, installed by `make browser` where apt-get can).
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
CHROMIUM ?= /usr/bin/chromium
# apt-get runs as root, or through sudo where that needs no password
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)

.PHONY: lock install browser test test-unit test-e2e lint demo bench reliability clean

install: $(VENV)/.installed node_modules/.installed

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# The lock files pin every package with hashes; regenerate them with `make lock` after editing pyproject.toml.
$(VENV)/.installed: $(UV) requirements-dev.lock
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(VENV)
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(UV) pip sync --quiet requirements-dev.lock
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Chromium for tests/package/test_ui_schemas.py (the UI schemas rendered by json-editor in a real browser), from
# Debian's packages. Where it cannot be installed the target only warns, and the test says why it is skipped.
browser:
	@if [ -x "$(CHROMIUM)" ]; then :; \
	elif command -v apt-get >/dev/null 2>&1 && $(SUDO) true 2>/dev/null; then \
		echo "installing chromium (Debian package) for the UI schema test"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends chromium >/dev/null \
		|| echo "warning: chromium could not be installed; the UI schema test will be skipped" >&2; \
	else echo "warning: no $(CHROMIUM) and no apt-get as root here; the UI schema test will be skipped" >&2; fi

lock: $(UV)
	$(UV) pip compile pyproject.toml --universal --generate-hashes --no-header -q -o requirements.lock
	$(UV) pip compile pyproject.toml --group emulator --group dev --universal --generate-hashes --no-header -q \
		-o requirements-dev.lock

lint: install
	$(VENV)/bin/ruff check src emulator tests benchmarks
	$(VENV)/bin/ruff format --check src emulator tests benchmarks

test: install browser
	$(PY) -m pytest -q -x -m "not slow" --durations=15

demo: install
	$(PY) scripts/demo.py

bench: install
	$(PY) benchmarks/run.py

reliability: install
	$(PY) -m pytest -q --timeout=3600 tests/reliability  # the full (slow) variants and the subset; RELIABILITY_RUNS=100
	$(PY) -m pytest -q -m slow tests/e2e

clean:
	rm -rf $(VENV) $(TOOLS) node_modules .pytest_cache

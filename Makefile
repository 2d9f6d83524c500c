# Everything a fresh machine needs is installed by these targets (Python 3.11+, git, Node.js/npm; Debian's
# chromium package for the UI schema test, installed by `make browser` where apt-get can).
PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
# the kbcstorage reference client's own environment, and the tests that import it (directly, or through the
# benchmark harnesses' workers, tests/unit/test_bench*_smoke.py): they run there, every other test in .venv
KBC_VENV := .venv-kbcstorage
KBC_PY := $(KBC_VENV)/bin/python
KBCSTORAGE_TESTS := emulator/tests/test_kbcstorage_reference.py $(wildcard tests/unit/test_bench*_smoke.py)
CHROMIUM ?= /usr/bin/chromium
# apt-get runs as root, or through sudo where that needs no password
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)

IMAGE ?= keboola-storage-sync

.PHONY: lock install browser test test-run image lint demo bench reliability clean

install: $(VENV)/.installed $(KBC_VENV)/.installed node_modules/.installed

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# The lock files pin every package with hashes; regenerate them with `make lock` after editing pyproject.toml.
# requirements.lock: the component (the production image); requirements-dev.lock: + emulator and test tools, at the
# versions of requirements.lock (-c); requirements-kbcstorage.lock: + the kbcstorage reference client, whose exact pins
# (google-cloud-storage, google-auth) differ from production, for .venv-kbcstorage only.
# $(call venv,folder,lock file)
define venv
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(1)
	VIRTUAL_ENV=$(CURDIR)/$(1) $(UV) pip sync --quiet $(2)
	touch $(1)/.installed
endef

$(VENV)/.installed: $(UV) requirements-dev.lock
	$(call venv,$(VENV),requirements-dev.lock)

$(KBC_VENV)/.installed: $(UV) requirements-kbcstorage.lock
	$(call venv,$(KBC_VENV),requirements-kbcstorage.lock)

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
		-c requirements.lock -o requirements-dev.lock
	@# a new kbcstorage lock starts from the dev lock's versions, so that both environments differ only where they must
	[ -f requirements-kbcstorage.lock ] || cp requirements-dev.lock requirements-kbcstorage.lock
	$(UV) pip compile pyproject.toml --group emulator --group dev --group kbcstorage --universal --generate-hashes \
		--no-header -q -o requirements-kbcstorage.lock

lint: install
	$(VENV)/bin/ruff check src emulator tests benchmarks
	$(VENV)/bin/ruff format --check src emulator tests benchmarks

test: install browser
	@$(MAKE) --no-print-directory test-run

# The test sessions, without installing anything (the test image runs them with its own interpreters). Most of the
# suite waits on emulated jobs and processes rather than on a core, so two sessions run at once: the end-to-end and
# reliability tests, and beside them the rest followed by the kbcstorage session (each with its own temporary
# folder; the side's log is printed after). This keeps `make test` under ten minutes on two cores; the target fails
# when any session fails.
SIDE_TEST_DIR := .pytest-side
MAIN_TESTS := tests/e2e tests/reliability
test-run:
	@rm -rf $(SIDE_TEST_DIR) && mkdir -p $(SIDE_TEST_DIR)
	@( $(PY) -m pytest -q -x -m "not slow" --durations=5 -p no:cacheprovider --basetemp=$(SIDE_TEST_DIR)/tmp \
		$(MAIN_TESTS:%=--ignore=%) $(KBCSTORAGE_TESTS:%=--ignore=%) \
	  && $(KBC_PY) -m pytest -q -x -m "not slow" --durations=5 -p no:cacheprovider \
		--basetemp=$(SIDE_TEST_DIR)/kbcstorage-tmp $(KBCSTORAGE_TESTS) ) > $(SIDE_TEST_DIR)/session.log 2>&1 & side=$$!; \
	$(PY) -m pytest -q -x -m "not slow" --durations=15 $(MAIN_TESTS); main=$$?; \
	wait $$side; side_status=$$?; \
	echo "--- beside: unit, integration, functional, package and emulator tests, then kbcstorage ($(KBC_PY)) ---"; \
	cat $(SIDE_TEST_DIR)/session.log; \
	test $$main -eq 0 && test $$side_status -eq 0

# Both Dockerfile targets: $(IMAGE):latest (production, what deploy.sh pushes) and $(IMAGE):test (runs the suite).
# With docker where a daemon answers, else with buildah or podman (Debian packages: apt-get install -y buildah);
# IMAGE_FLAGS adds flags of the builder (e.g. IMAGE_FLAGS=--pull=never to build on local base images only).
image:
	@if docker info >/dev/null 2>&1; then build="docker build"; \
	elif command -v buildah >/dev/null 2>&1; then build="buildah bud --layers"; \
	elif command -v podman >/dev/null 2>&1; then build="podman build"; \
	else echo "no Docker daemon, buildah or podman here; install one, e.g. apt-get install -y buildah" >&2; exit 1; fi; \
	for target in production:latest test:test; do \
		echo "$$build --target $${target%%:*} -t $(IMAGE):$${target#*:} ."; \
		$$build $(IMAGE_FLAGS) --target "$${target%%:*}" -t "$(IMAGE):$${target#*:}" . || exit 1; \
	done

demo: install
	$(PY) scripts/demo.py

bench: install
	$(KBC_PY) benchmarks/run.py  # its workers run kbcstorage

# issue 13: 1-200 small tables with 1 s / 3 s storage jobs, parallelism 1/4/8/16 vs kbcstorage, peak RSS of 8 big
# tables (hours on 2 cores; MANY_QUICK=1 for a smoke run, knobs in the script's docstring)
.PHONY: bench-tables
bench-tables: install
	$(KBC_PY) benchmarks/many_tables.py

reliability: install
	$(PY) -m pytest -q --timeout=3600 tests/reliability  # the full (slow) variants and the subset; RELIABILITY_RUNS=100
	$(PY) -m pytest -q -m slow tests/e2e

clean:
	rm -rf $(VENV) $(KBC_VENV) $(TOOLS) node_modules .pytest_cache

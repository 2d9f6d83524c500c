"""Reliability campaign: shared emulator, projects, run counts, fault accounting and the final report.

``make test`` runs the ``subset`` variant of every part (a few seeded runs); ``make reliability`` also runs the
``full`` variants (marked ``slow``), whose run counts scale with ``RELIABILITY_RUNS`` (default 100).
Every component run goes through ``tests.e2e.harness.DataDir`` (a real process, token leak check on every run).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from emulator import Emulator
from emulator.engine import WhereFilter
from emulator.models import TableQuery
from tests.e2e.harness import DataDir, sorted_dicts

RUNS = int(os.environ.get("RELIABILITY_RUNS", "100"))
REPORT_PATH = Path(__file__).with_name("last-report.md")  # generated, not committed
_names = itertools.count(1)


def variants(subset: int, full: int):
    """``@pytest.mark.parametrize("runs", variants(2, RUNS))``: a short subset and a slow full campaign."""
    return [pytest.param(subset, id="subset"), pytest.param(full, id="full", marks=pytest.mark.slow)]


class Campaign:
    """Figures of the session, printed by ``pytest_terminal_summary`` and written to last-report.md."""

    def __init__(self):
        self.lock = threading.Lock()
        self.parts: dict[str, Counter] = {}
        self.faults: dict[str, Counter] = {}
        self.started = time.monotonic()

    def add(self, part: str, **figures: int) -> None:
        with self.lock:
            self.parts.setdefault(part, Counter()).update(figures)

    def add_faults(self, part: str, injector) -> None:
        """Count what the emulator injected since its counters were last reset, then reset them."""
        report = injector.report()
        with self.lock:
            self.faults.setdefault(part, Counter()).update(report["by_label"])
        injector.reset_counters()

    def lines(self) -> list[str]:
        out = [f"reliability campaign: RELIABILITY_RUNS={RUNS}, {time.monotonic() - self.started:.0f} s"]
        for part in sorted(self.parts):
            figures = ", ".join(f"{k}={v}" for k, v in sorted(self.parts[part].items()))
            faults = self.faults.get(part)
            if faults:
                figures += f"; faults injected={sum(faults.values())} ({', '.join(f'{k}: {v}' for k, v in sorted(faults.items()))})"
            out.append(f"  {part}: {figures}")
        return out


CAMPAIGN = Campaign()


def pytest_terminal_summary(terminalreporter):
    if not CAMPAIGN.parts:
        return
    lines = CAMPAIGN.lines()
    terminalreporter.section("reliability")
    for line in lines:
        terminalreporter.write_line(line)
    REPORT_PATH.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------------------------
# emulator, projects, secrets


class _Collect(logging.Handler):
    """Every record of the emulator's and werkzeug's loggers (request log included), for the token leak check."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record):
        try:
            self.texts.append(self.format(record))
        except Exception:  # noqa: BLE001
            self.texts.append(str(record.msg))


EMULATOR_LOG = _Collect()
SECRETS: set[str] = set()  # every token created during the session


@pytest.fixture(scope="session")
def emu(tmp_path_factory):
    for name in ("emulator", "werkzeug"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(EMULATOR_LOG)
    with Emulator(provider="aws", seed=20240601, workdir=tmp_path_factory.mktemp("reliability-emulator")) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _reset_emulator(request):
    if "emu" not in request.fixturenames:
        yield
        return
    emulator = request.getfixturevalue("emu")
    emulator.faults.clear()
    emulator.job_delay = 0.0
    yield
    emulator.faults.clear()
    emulator.job_delay = 0.0


def new_project(emu: Emulator, prefix: str):
    project = emu.create_project(f"{prefix}-{next(_names)}")
    SECRETS.add(project.token)
    return project


def new_data_dir(path: Path) -> DataDir:
    data = DataDir(path)
    data.secrets |= SECRETS
    return data


def rows(emu: Emulator, project, table_id: str) -> list[dict]:
    return sorted_dicts(emu.table_rows(project.id, table_id))


def assert_copy_equal(src_emu: Emulator, source, dst_emu: Emulator, destination, table_id: str) -> int:
    """The sync invariant (tests/e2e/test_sync_fidelity.py), across stacks: the destination table has the source's
    columns in order, its primary key and its rows. Returns the rows compared."""
    src, dst = src_emu.table_detail(source.id, table_id), dst_emu.table_detail(destination.id, table_id)
    assert dst["columns"] == src["columns"], f"{table_id}: columns {dst['columns']}, source {src['columns']}"
    assert dst["primaryKey"] == src["primaryKey"], f"{table_id}: key {dst['primaryKey']}, source {src['primaryKey']}"
    expected, actual = rows(src_emu, source, table_id), rows(dst_emu, destination, table_id)
    if actual != expected:
        missing = [r for r in expected if r not in actual]
        extra = [r for r in actual if r not in expected]
        raise AssertionError(
            f"{table_id}: {len(actual)} rows, source {len(expected)}; missing {len(missing)} {missing[:3]}, "
            f"extra {len(extra)} {extra[:3]}"
        )
    return len(expected)


# source changes as another client makes them: the backend's own job path (the job runner, job_delay), without
# HTTP, so that an injected fault meant for the component never hits the test's writes


def _job(emu: Emulator, created: dict) -> dict:
    job = emu.wait_job(created["id"], timeout=120)
    assert job["status"] == "success", job
    return job


def delete_rows(emu: Emulator, project, table_id: str, filters: dict[str, list]) -> int:
    """``DELETE tables/{id}/rows`` with ``eq`` filters (ANDed; several values are an IN list); waits for the job
    and returns ``deletedRows``."""
    query = TableQuery(where_filters=[WhereFilter(c, "eq", [str(v) for v in vs]) for c, vs in filters.items()])
    backend = emu.backend
    job = _job(emu, backend.delete_rows(backend.master_token(project.id), table_id, query))
    return int(job["results"]["deletedRows"])


def add_column(emu: Emulator, project, table_id: str, name: str) -> None:
    """``POST tables/{id}/columns``: the column is appended, every stored row gets '' and keeps its timestamp."""
    _job(emu, emu.backend.add_column(emu.backend.master_token(project.id), table_id, name))


def drop_column(emu: Emulator, project, table_id: str, name: str) -> None:
    """``DELETE tables/{id}/columns/{name}``."""
    _job(emu, emu.backend.delete_column(emu.backend.master_token(project.id), table_id, name))


def csv_text(header: list[str], body: list[list]) -> str:
    """A CSV with a header, every value quoted."""

    def cell(value) -> str:
        return '"' + str(value).replace('"', '""') + '"'

    return "".join(",".join(cell(v) for v in row) + "\n" for row in [header, *body])


def unfinished_jobs(emu: Emulator, *project_ids: int, operation: str | None = None) -> list:
    """Storage jobs of these projects (of ``operation``, if given) still waiting or processing."""
    with emu.backend.lock:
        jobs = list(emu.backend.jobs.values())
    return [
        j
        for j in jobs
        if j.project_id in project_ids
        and j.status in ("waiting", "processing")
        and operation in (None, j.operation_name)
    ]


def tables_in_flight(emu: Emulator, *project_ids: int) -> set[str]:
    """Tables of these projects with a storage job waiting or processing."""
    return {j.table_id for j in unfinished_jobs(emu, *project_ids) if j.table_id}


def wait_idle(emu: Emulator, *project_ids: int, timeout: float = 120) -> None:
    """Until no storage job of these projects is unfinished (a stopped run's jobs go on on the server)."""
    deadline = time.monotonic() + timeout
    while unfinished := unfinished_jobs(emu, *project_ids):
        assert time.monotonic() < deadline, f"jobs still running: {[(j.id, j.operation_name) for j in unfinished]}"
        time.sleep(0.05)


def duplicate_loads(emu: Emulator, project_id: int) -> list[tuple]:
    """(tableId, fileId) pairs imported more than once by successful tableImport/tableCreate jobs of a project."""
    with emu.backend.lock:
        jobs = [j for j in emu.backend.jobs.values() if j.project_id == project_id]
    seen: Counter = Counter()
    for job in jobs:
        if job.operation_name in ("tableImport", "tableCreate") and job.status == "success":
            source = (job.operation_params or {}).get("source") or {}
            file_id = source.get("fileId") if isinstance(source, dict) else None
            if file_id is not None:
                seen[(job.operation_name, job.table_id, str(file_id))] += 1
    return [key for key, count in seen.items() if count > 1]


def env_for(emu: Emulator) -> dict[str, str]:
    return dict(emu.env)


def sync_params(src_emu, source, dst_emu, destination, tables, **extra) -> dict:
    return {
        "mode": "sync",
        "source": {"url": src_emu.url, "#token": source.token},
        "destination": {"url": dst_emu.url, "#token": destination.token},
        "tables": tables,
        **extra,
    }


def dump(obj) -> str:
    return json.dumps(obj, sort_keys=True)

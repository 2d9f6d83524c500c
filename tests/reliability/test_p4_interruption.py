"""Part 4: SIGTERM (how Keboola stops a job).

Storage jobs last >= 0.7 s (job_delay) so a run spans several seconds. The process must exit within 10 s with a
non-zero code (or 0 if it finished first), leave no partial output, never advance the watermark of a table whose
data is not committed, and the next run must complete the work (destination equals source: columns in order,
primary key and rows; export complete). Three ways in:

- at seeded random points of a run, in every mode (tables keyed by one column, by two, and without a key);
- during the delete step of an incremental sync: while the server holds a ``DELETE tables/{id}/rows`` request (a
  ``slow`` fault: the delete is made after the process is gone, while the next run goes on) or while a delete job
  waits or runs;
- with ten tables in flight (the default parallelism, 8), in a first (full) and in an incremental run after row
  deletes, upserts and column changes: every table the run logged as synced is in the state, every entry the run
  changed is a table equal to its source, the others are as before; the next run goes on incrementally from the
  committed tables and converges.
"""

from __future__ import annotations

import json
import logging
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from state import SYNC_OVERLAP_SECONDS
from tests.e2e.harness import COMPONENT, REPO, as_dicts, read_output_table
from tests.reliability.conftest import (
    CAMPAIGN,
    RUNS,
    assert_copy_equal,
    env_for,
    new_data_dir,
    new_project,
    rows,
    sync_params,
    tables_in_flight,
    unfinished_jobs,
    variants,
    wait_idle,
)
from tests.reliability.source_tables import SourceChanges, create_source_tables, source_tables
from workflows.runner import TableRunner

TABLES = ("in.c-int.a", "in.c-int.b", "in.c-int.c")  # keyed by id, no key, keyed by (g, n)


def _source(emu):
    project = new_project(emu, "intsrc")
    emu.create_bucket(project.id, "int")
    emu.create_table(project.id, TABLES[0], "id,v\n" + "".join(f"{i},a{i}\n" for i in range(100)), primary_key=["id"])
    emu.create_table(project.id, TABLES[1], "k,v\n" + "".join(f"{i},b{i}\n" for i in range(80)))
    body = "".join(f"g{i % 4},{i // 4},c{i}\n" for i in range(60))
    emu.create_table(project.id, TABLES[2], "g,n,v\n" + body, primary_key=["g", "n"])
    return project


def _params(emu, mode, source, destination):
    if mode == "export":
        return {
            "mode": "export",
            "source": {"url": emu.url, "#token": source.token},
            "tables": [{"source": "in.c-int", "changedSince": "last"}],
        }
    if mode == "import":
        return {
            "mode": "import",
            "destination": {"url": emu.url, "#token": destination.token, "bucket": "in.c-int"},
            "tables": [
                {"source": "a.csv", "primaryKey": ["id"]},
                {"source": "b.csv"},
                {"source": "c.csv", "primaryKey": ["g", "n"]},
            ],
        }
    return sync_params(emu, source, emu, destination, [{"source": "in.c-int"}])


def _check_export(emu, source, data):
    for table in TABLES:
        columns, body = read_output_table(data.root / "out" / "tables" / f"{table.rsplit('.', 1)[1]}.csv")
        assert as_dicts(columns, body) == rows(emu, source, table)


def assert_stopped(run) -> None:
    """Exit 143 saying so, no traceback (also while a table's key diff runs in DuckDB: see
    ``test_sigterm_while_a_table_is_in_duckdb_exits_143``)."""
    assert "Traceback" not in run.output, run.output
    assert run.returncode == 143, run.output
    assert "stopped (SIGTERM)" in run.output


@pytest.mark.parametrize("mode", ["export", "import", "sync"])
@pytest.mark.parametrize("runs", variants(1, max(3, RUNS // 10)))
def test_sigterm_at_random_points(emu, tmp_path, mode, runs):
    interrupted = 0
    for seed in range(runs):
        rng = random.Random(f"{mode}-{seed}")
        source, destination = _source(emu), new_project(emu, "intdst")
        data = new_data_dir(tmp_path / f"{mode}-{seed}")
        for table in TABLES:
            name = table.rsplit(".", 1)[1]
            header = emu.table_detail(source.id, table)["columns"]
            data.add_input_table(f"{name}.csv", header, [list(r.values()) for r in emu.table_rows(source.id, table)])
        data.write_config(_params(emu, mode, source, destination))
        emu.job_delay = 0.7
        proc = data.start(env_for(emu))
        time.sleep(rng.uniform(0.8, 4.0))  # the component needs ~0.7 s to start
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        run = data.finish(proc, timeout=60)
        took = time.monotonic() - sent
        emu.job_delay = 0.0
        assert took < 10, f"exit took {took:.1f} s"
        if run.returncode == -signal.SIGTERM:  # stopped while Python was still importing: nothing happened yet
            assert not run.stdout.strip(), run.output
            interrupted += 1
        elif run.returncode != 0:
            interrupted += 1
            assert_stopped(run)
        leftovers = [p.name for p in (data.root / "out" / "tables").glob(".*")]
        assert not leftovers, f"partial outputs left: {leftovers}"
        # a watermark in the state means that table's data is committed
        for table in run.state.get("tables") or {}:
            if mode == "sync":
                assert_copy_equal(emu, source, emu, destination, table)
            else:
                name = table.rsplit(".", 1)[1]
                assert (data.root / "out" / "tables" / f"{name}.csv.manifest").exists(), f"{table} advanced"
        if mode == "export":  # a manifest is written only with complete data
            for manifest in (data.root / "out" / "tables").glob("*.manifest"):
                assert manifest.with_suffix("").exists()
        # the next run completes the work
        data.carry_state()
        data.clean_out()
        again = data.run(env_for(emu))
        assert again.returncode == 0, again.output
        if mode == "export":
            _check_export(emu, source, data)
        else:
            for table in TABLES:
                assert_copy_equal(emu, source, emu, destination, table)
    CAMPAIGN.add(f"4 SIGTERM / {mode}", runs=2 * runs, interrupted=interrupted)


# ---------------------------------------------------------------------------------------------------------------
# sync: SIGTERM during the delete step, and with many tables in flight

HELD = 3.0  # seconds the server holds a DELETE rows request before handling it


def _wait_while_running(proc, condition, what: str, timeout: float = 120) -> None:
    """Until ``condition()`` holds; the run must still be running, and get there within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s"
        time.sleep(0.01)


def _stop(data, proc, rng, *, spread: float) -> tuple[object, float]:
    """SIGTERM after up to ``spread`` more seconds; returns the run and how long the exit took."""
    time.sleep(rng.uniform(0, spread))
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    run = data.finish(proc, timeout=60)
    return run, time.monotonic() - sent


def _assert_stopped(run, took) -> None:
    """``assert_stopped`` within 10 s."""
    assert took < 10, f"exit took {took:.1f} s"
    assert_stopped(run)


def _state_tables(data) -> dict:
    path = data.root / "in" / "state.json"
    return json.loads(path.read_text()).get("tables", {}) if path.exists() else {}


def _committed(emu, source, destination, before: dict, run) -> tuple[set[str], int]:
    """Tables whose state entry the run changed (each must equal its source), and the rows compared."""
    after = run.state.get("tables") or {}
    assert set(before) <= set(after), f"entries lost: {set(before) - set(after)}"
    changed = {table for table, entry in after.items() if entry != before.get(table)}
    return changed, sum(assert_copy_equal(emu, source, emu, destination, table) for table in sorted(changed))


def _synced_source(emu, tmp_path, name, tables, prefix):
    """A source (its rows older than the overlap), its destination after a first sync, and the data folder."""
    source, destination = new_project(emu, f"{prefix}src"), new_project(emu, f"{prefix}dst")
    create_source_tables(emu, source, tables, rows=40)
    emu.advance_clock(SYNC_OVERLAP_SECONDS + 60)
    data = new_data_dir(tmp_path / name)
    bucket = tables[0].id.rsplit(".", 1)[0]
    data.write_config(sync_params(emu, source, emu, destination, [{"source": bucket}]))
    return source, destination, data


def _change_source(emu, source, tables, seed, *, steps: int) -> None:
    """A row delete in every keyed table (rows to delete in the destination), an upsert in the others, then
    ``steps`` random changes (columns included); then the clock passes the overlap."""
    changes = SourceChanges(emu, source, tables, seed, rows=40)
    for table in tables:
        if table.primary_key:
            changes.delete(table)
        else:
            changes.upsert(table)
    for _ in range(steps):
        changes.step()
    emu.advance_clock(SYNC_OVERLAP_SECONDS + 60)


DELETE_TABLES = source_tables("in.c-del")


def _stop_in_the_delete_step(emu, tmp_path, seed: int) -> Counter:
    rng = random.Random(f"deletes-{seed}")
    source, destination, data = _synced_source(emu, tmp_path, f"deletes-{seed}", DELETE_TABLES, "del")
    first = data.run(env_for(emu))
    assert first.returncode == 0, first.output
    data.carry_state()
    _change_source(emu, source, DELETE_TABLES, seed, steps=6)
    before = _state_tables(data)
    request_held = seed % 2 == 0
    if request_held:
        rule = emu.faults.add("DELETE /v2/storage/tables/*/rows", kind="slow", delay=HELD, times=1)
        in_delete_step = lambda: rule.fired
    else:
        emu.job_delay = 0.7
        in_delete_step = lambda: unfinished_jobs(emu, destination.id, operation="tableRowsDelete")
    proc = data.start(env_for(emu))
    _wait_while_running(proc, in_delete_step, "its delete step")
    reached = time.monotonic()
    run, took = _stop(data, proc, rng, spread=0.5)
    emu.job_delay = 0.0
    figures = Counter(interrupted_request_held=0, interrupted_job_unfinished=0)
    figures["interrupted_request_held" if request_held else "interrupted_job_unfinished"] += 1
    _assert_stopped(run, took)
    changed, compared = _committed(emu, source, destination, before, run)
    figures.update(tables_committed_before_sigterm=len(changed), rows_compared=compared)
    # the next run (the held delete may land while it runs) leaves destination == source
    data.carry_state()
    again = data.run(env_for(emu))
    assert again.returncode == 0, again.output
    time.sleep(max(0.0, reached + HELD + 0.5 - time.monotonic()))  # the held request has been handled
    wait_idle(emu, destination.id)
    figures["rows_compared"] += sum(assert_copy_equal(emu, source, emu, destination, t.id) for t in DELETE_TABLES)
    return figures


@pytest.mark.parametrize("runs", variants(2, max(4, RUNS // 10)))
def test_sigterm_during_the_delete_step(emu, tmp_path, runs):
    figures = Counter()
    for seed in range(runs):
        figures.update(_stop_in_the_delete_step(emu, tmp_path, seed))
    CAMPAIGN.add("4 SIGTERM / sync delete step", runs=3 * runs, **figures)


MANY_TABLES = source_tables("in.c-many", 10)  # two of each shape


def _stop_with_tables_in_flight(emu, source, destination, data, rng) -> Counter:
    """One run stopped at a random point once two tables are in flight, and the run after it."""
    figures = Counter(interrupted=0, tables_in_flight_at_sigterm=0, resumed_incrementally=0)
    before = _state_tables(data)
    emu.job_delay = 0.7
    proc = data.start(env_for(emu))
    _wait_while_running(proc, lambda: len(tables_in_flight(emu, source.id, destination.id)) >= 2, "two tables")
    time.sleep(rng.uniform(0, 8.0))
    busy = tables_in_flight(emu, source.id, destination.id)
    run, took = _stop(data, proc, rng, spread=0)
    emu.job_delay = 0.0
    if run.returncode == 0:  # it finished first
        assert "Traceback" not in run.output, run.output
    else:
        figures.update(interrupted=1, tables_in_flight_at_sigterm=len(busy))
        _assert_stopped(run, took)
    changed, compared = _committed(emu, source, destination, before, run)
    synced = {t.id for t in MANY_TABLES if f"Table {t.id}: synced (" in run.output}
    assert synced <= changed, f"synced but not in the state: {synced - changed}"
    figures.update(tables_committed_before_sigterm=len(changed), rows_compared=compared)
    # the next run converges, incrementally for the keyed tables committed before the SIGTERM
    wait_idle(emu, source.id, destination.id)
    data.carry_state()
    again = data.run(env_for(emu))
    assert again.returncode == 0, again.output
    for table in MANY_TABLES:
        if table.id in changed and table.primary_key:
            assert f"Table {table.id}: copying rows changed since" in again.output, table.id
            figures["resumed_incrementally"] += 1
        figures["rows_compared"] += assert_copy_equal(emu, source, emu, destination, table.id)
    data.carry_state()
    return figures


@pytest.mark.parametrize("runs", variants(1, max(3, RUNS // 20)))
def test_sigterm_with_tables_in_flight(emu, tmp_path, runs):
    """Per seed: the first (full) run stopped and run again, then an incremental one after changes."""
    figures = Counter()
    for seed in range(runs):
        rng = random.Random(f"many-{seed}")
        source, destination, data = _synced_source(emu, tmp_path, f"many-{seed}", MANY_TABLES, "many")
        figures.update(_stop_with_tables_in_flight(emu, source, destination, data, rng))
        _change_source(emu, source, MANY_TABLES, seed, steps=10)
        figures.update(_stop_with_tables_in_flight(emu, source, destination, data, rng))
    CAMPAIGN.add("4 SIGTERM / sync 10 tables in flight", runs=4 * runs, **figures)


def test_a_table_whose_client_closes_under_a_stop_is_stopped(caplog):
    """In process, what the component does on a SIGTERM with a table in flight: the runner is stopping and the
    table's next transfer finds the client closed (``TransferManager.close`` shut its pool down)."""
    runner = TableRunner(4)

    def work(table):
        runner.stopping.set()  # the SIGTERM reached the main thread, which closes the clients ...
        raise RuntimeError("cannot schedule new futures after shutdown")  # ... under this table's next transfer

    with caplog.at_level(logging.INFO):
        outcomes = runner.run(["in.c-int.a"], work, label=str)
    assert [o.status for o in outcomes] == ["stopped"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


STOPPED_WHILE_IN_DUCKDB = """
import os, runpy, sys, threading
import duckdb

def key_diff():  # what workflows/keys.py does on a table's (daemon) worker thread: DuckDB queries
    con = duckdb.connect()
    while True:
        con.execute("SELECT count(*) FROM range(200000)").fetchall()

for _ in range(4):  # four tables in flight, each in its key diff
    threading.Thread(target=key_diff, daemon=True).start()
sys.argv = [sys.argv[1]]
sys.path.insert(0, os.path.dirname(sys.argv[0]))  # as `python src/component.py` has it
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_sigterm_while_a_table_is_in_duckdb_exits_143(emu, tmp_path):
    """The component's own entry point (src/component.py as __main__) with threads standing for four tables in their
    key diffs; the SIGTERM comes while the sync's first storage job runs (jobs last 3 s)."""
    source = _source(emu)
    destination = new_project(emu, "intdst")
    data = new_data_dir(tmp_path / "duckdb")
    data.write_config(_params(emu, "sync", source, destination))
    script = tmp_path / "stopped_in_duckdb.py"
    script.write_text(STOPPED_WHILE_IN_DUCKDB)
    emu.job_delay = 3.0
    proc = subprocess.Popen(
        [sys.executable, str(script), str(COMPONENT)],
        cwd=REPO,
        env=data.process_env(env_for(emu)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_while_running(proc, lambda: unfinished_jobs(emu, source.id), "its first storage job")
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stdout + stderr
    assert "stopped (SIGTERM)" in stdout + stderr

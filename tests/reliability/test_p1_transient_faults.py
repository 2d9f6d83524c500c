"""Part 1: transient faults. 10 % of Storage API calls fail (500, 502, 503 / 429 with Retry-After, a reset, and the
"late" 500/502/reset whose request was handled before the response was lost). Every run must complete with the
output of a fault-free run (a sync: destination == source, columns, primary key and rows, for tables keyed by one
column, by two and without a key, with row deletes propagated), and no import may be applied twice (duplicate
tableImport jobs of one file; tables without a primary key are loaded by appending, so a replayed load would also
show as extra rows).

The component runs with its production retry policy; Retry-After is 1 s to keep runs short. Runs of one test go
three at a time against the one seeded injector: the seed fixes the fault mix, thread timing the exact positions.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import pytest

from emulator.faults import LATE_KINDS, RANDOM_KINDS
from state import SYNC_OVERLAP_SECONDS
from tests.e2e.harness import as_dicts, read_output_table
from tests.reliability.conftest import (
    CAMPAIGN,
    RUNS,
    assert_copy_equal,
    delete_rows,
    duplicate_loads,
    env_for,
    new_data_dir,
    new_project,
    rows,
    sync_params,
    variants,
)

RATE = 0.10
KINDS = RANDOM_KINDS + LATE_KINDS
PARALLEL = 3
HEADER = ["id", "name", "note"]


def _orders(n: int, start: int = 0, tag: str = "v1") -> list[list[str]]:
    return [[str(i), f"name {i} {tag}", f'quote "{i}", comma, ünïcode ✓'] for i in range(start, start + n)]


def _csv(header, body) -> str:
    def cell(v):
        return '"' + v.replace('"', '""') + '"'

    return "\n".join(",".join(cell(v) for v in row) for row in [header, *body]) + "\n"


SYNC_TABLES = ("in.c-rel.orders", "in.c-rel.events", "in.c-rel.lines")  # keyed by id, no key, keyed by 2 columns
LINES = ["order_id", "line", "sku"]


def _seed_source(emu, prefix="src", *, composite=False):
    project = new_project(emu, prefix)
    emu.create_bucket(project.id, "rel")
    emu.create_table(project.id, "in.c-rel.orders", _csv(HEADER, _orders(300)), primary_key=["id"])
    events = [[f"2024-01-{i % 28 + 1:02d}", f"kind-{i % 7}"] for i in range(150)]
    emu.create_table(project.id, "in.c-rel.events", _csv(["day", "kind"], events))
    if composite:
        lines = [[str(i // 5), str(i % 5), f"sku, {i}"] for i in range(200)]
        emu.create_table(project.id, "in.c-rel.lines", _csv(LINES, lines), primary_key=["order_id", "line"])
        emu.create_typed_table(project.id, TYPED, TYPED_COLUMNS, primary_key=["id"], rows_csv=_prices(range(120)))
    return project


TYPED = "in.c-rel.prices"  # a typed (native types) table: its definition must arrive with its rows
TYPED_COLUMNS = [
    {"name": "id", "definition": {"type": "NUMBER", "length": "38,0", "nullable": False}},
    {"name": "amount", "definition": {"type": "NUMBER", "length": "12,2"}},
    {"name": "ratio", "definition": {"type": "FLOAT"}},
    {"name": "active", "definition": {"type": "BOOLEAN"}},
    {"name": "ts", "definition": {"type": "TIMESTAMP_NTZ", "length": "0"}},
    {"name": "label", "definition": {"type": "VARCHAR", "length": "50"}},
]


def _prices(ids, tag="initial") -> str:
    """Rows of the typed table; every seventh has NULLs (unquoted empty fields) in its nullable columns."""
    body = []
    for i in ids:
        if i % 7 == 0:
            body.append([str(i), "", "", "", "", f'"{tag} {i}"'])
        else:
            ts = f"2024-{i % 12 + 1:02d}-{i % 28 + 1:02d} {i % 24:02d}:{i % 60:02d}:00"
            body.append([str(i), f"{i * 3.25:.2f}", f"{i / 8}", "true" if i % 2 else "false", ts, f'"{tag}, {i}"'])
    return "id,amount,ratio,active,ts,label\n" + "".join(",".join(row) + "\n" for row in body)


def _faults(emu, seed):
    emu.faults.clear()
    emu.faults.reseed(seed)
    emu.faults.random(RATE, kinds=KINDS, retry_after=1)


def _parallel(fn, seeds):
    with ThreadPoolExecutor(PARALLEL) as pool:
        return list(pool.map(fn, seeds))


def _export_output(data_dir):
    out = {}
    for path in sorted((data_dir.root / "out" / "tables").iterdir()):
        if path.name.endswith(".manifest"):
            continue
        manifest = (path.parent / f"{path.name}.manifest").read_text()
        columns, body = read_output_table(path)
        out[path.name] = (manifest, as_dicts(columns, body))
    return out


@pytest.mark.parametrize("runs", variants(2, RUNS))
def test_export_under_transient_faults(emu, tmp_path, runs):
    source = _seed_source(emu)
    params = {
        "mode": "export",
        "source": {"url": emu.url, "#token": source.token},
        "tables": [{"source": "in.c-rel"}],
    }
    baseline_dir = new_data_dir(tmp_path / "baseline")
    baseline_dir.write_config(params)
    assert baseline_dir.run(env_for(emu)).returncode == 0
    expected = _export_output(baseline_dir)
    assert set(expected) == {"orders.csv", "events.csv"}
    emu.faults.reset_counters()
    _faults(emu, seed=1000 + runs)

    def one(seed):
        data = new_data_dir(tmp_path / f"run-{seed}")
        data.write_config(params)
        run = data.run(env_for(emu))
        assert run.returncode == 0, f"seed {seed}: {run.output[-3000:]}"
        assert _export_output(data) == expected, f"seed {seed}: output differs from the fault-free run"
        assert not list((data.root / "out" / "tables").glob(".*")), "partial outputs left"
        return sum(len(rows_) for _, rows_ in expected.values())

    compared = _parallel(one, range(runs))
    CAMPAIGN.add("1 transient faults / export", runs=runs, rows_compared=sum(compared))
    CAMPAIGN.add_faults("1 transient faults / export", emu.faults)


@pytest.mark.parametrize("runs", variants(2, RUNS))
def test_import_under_transient_faults(emu, tmp_path, runs):
    orders = _orders(200)
    events = [[f"e{i}", str(i % 5)] for i in range(120)]
    emu.faults.reset_counters()
    _faults(emu, seed=2000 + runs)

    def one(seed):
        destination = new_project(emu, "imp")
        emu.create_bucket(destination.id, "imp")
        # the no-PK table exists, so the import appends: a load applied twice would double its rows
        emu.create_table(destination.id, "in.c-imp.events", "eid,val\n")
        data = new_data_dir(tmp_path / f"run-{seed}")
        data.add_input_table("orders.csv", HEADER, orders)
        data.add_input_table("events.csv", ["eid", "val"], events)
        data.write_config(
            {
                "mode": "import",
                "destination": {"url": emu.url, "#token": destination.token, "bucket": "in.c-imp"},
                "tables": [
                    {"source": "orders.csv", "primaryKey": ["id"]},
                    {"source": "events.csv", "incremental": True},
                ],
            }
        )
        run = data.run(env_for(emu))
        assert run.returncode == 0, f"seed {seed}: {run.output[-3000:]}"
        assert rows(emu, destination, "in.c-imp.orders") == as_dicts(HEADER, orders)
        assert rows(emu, destination, "in.c-imp.events") == as_dicts(["eid", "val"], events), "rows lost/duplicated"
        assert duplicate_loads(emu, destination.id) == []
        return len(orders) + len(events)

    compared = _parallel(one, range(runs))
    CAMPAIGN.add("1 transient faults / import", runs=runs, rows_compared=sum(compared))
    CAMPAIGN.add_faults("1 transient faults / import", emu.faults)


@pytest.mark.parametrize("runs", variants(1, RUNS))
def test_sync_under_transient_faults(emu, tmp_path, runs):
    """Per seed: a first (full) sync and an incremental one after upserts and row deletes (propagated by delete
    jobs under the same faults), both under faults; the incremental one starts past the watermark's overlap. A
    typed table is among them: same definition, rows with NULLs, decimals, booleans and timestamps."""
    emu.faults.reset_counters()
    _faults(emu, seed=3000 + runs)

    def one(seed):
        rng = random.Random(seed)
        source = _seed_source(emu, "syncsrc", composite=True)
        destination = new_project(emu, "syncdst")
        data = new_data_dir(tmp_path / f"run-{seed}")
        data.write_config(sync_params(emu, source, emu, destination, [{"source": "in.c-rel"}]))
        emu.advance_clock(SYNC_OVERLAP_SECONDS + 60)  # the source rows are older than the watermark's overlap
        compared = deleted = 0
        for step in range(2):
            if step:
                changed = [rng.randrange(300) for _ in range(10)]
                body = [[str(i), f"changed {seed}", "x"] for i in changed] + _orders(10, start=1000 + seed * 10)
                emu.load_table(source.id, "in.c-rel.orders", _csv(HEADER, body), incremental=True)
                emu.load_table(source.id, "in.c-rel.events", "day,kind\n2025-01-01,new\n", incremental=True)
                lines = [[str(rng.randrange(40)), str(rng.randrange(5)), f"changed {seed}"] for _ in range(5)]
                emu.load_table(source.id, "in.c-rel.lines", _csv(LINES, lines), incremental=True)
                deleted += delete_rows(emu, source, "in.c-rel.orders", {"id": rng.sample(range(300), 5)})
                deleted += delete_rows(emu, source, "in.c-rel.lines", {"order_id": [rng.randrange(40)]})
                deleted += delete_rows(emu, source, "in.c-rel.lines", {"order_id": [rng.randrange(40)], "line": [1, 3]})
                emu.load_table(source.id, TYPED, _prices([*rng.sample(range(120), 6), 500 + seed], "changed"), True)
                deleted += delete_rows(emu, source, TYPED, {"id": rng.sample(range(120), 3)})
                emu.advance_clock(SYNC_OVERLAP_SECONDS + 60)
                data.carry_state()
            run = data.run(env_for(emu))
            assert run.returncode == 0, f"seed {seed} step {step}: {run.output[-3000:]}"
            for table in (*SYNC_TABLES, TYPED):
                compared += assert_copy_equal(emu, source, emu, destination, table)
            src_types, dst_types = (emu.table_detail(p.id, TYPED)["definition"] for p in (source, destination))
            assert dst_types == src_types, f"seed {seed} step {step}: {TYPED} definition {dst_types}"
        assert duplicate_loads(emu, destination.id) == []
        return compared, deleted

    results = _parallel(one, range(runs))
    CAMPAIGN.add(
        "1 transient faults / sync",
        runs=2 * runs,
        rows_compared=sum(c for c, _ in results),
        source_rows_deleted=sum(d for _, d in results),
    )
    CAMPAIGN.add_faults("1 transient faults / sync", emu.faults)

"""The recipes of docs/guide.md, run as they are written: each docs/recipes/<name>.json is read, its placeholder URLs
and tokens replaced by the emulator's projects, the source seeded with the tables the recipe names, and the
component run as a process. Expectations are derived from the recipe (its tables, columns, filters, keys), so a
recipe that stops doing what the guide says fails here."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
import requests

from emulator import Emulator
from tests.e2e.harness import REPO, sorted_dicts
from tests.e2e.test_sync_fidelity import _storage

RECIPES = REPO / "docs" / "recipes"
BUCKET_RE = re.compile(r"^(in|out)\.c-[A-Za-z0-9_-]+$")
TABLE_RE = re.compile(r"^(in|out)\.c-[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
PLACEHOLDER_TOKEN = re.compile(r"^<[^<>]+>$")

# Rows the tests seed. Values a CSV gets wrong when it is mishandled: a comma, quotes, a line break, non-ASCII.
ITEMS = (
    ("id", "name", "amount"),
    [
        ("1", "Alice", "10"),
        ("2", 'Bob "the builder"', "20"),
        ("3", "Carol, Jr.", "30"),
        ("4", "Dvořák\nsecond line", "40"),
    ],
)
LOG = ("ts", "message"), [("2024-01-01", "open"), ("2024-01-02", "close"), ("2024-01-02", "close")]
# publish: an orders table with a private column the partner must not get
ORDERS = (
    ("order_id", "customer_email", "country", "amount", "status"),
    [
        (str(i), f"buyer{i}@example.com", country, str(i * 10), status)
        for i, (country, status) in enumerate(
            [
                ("CZ", "paid"),
                ("SK", "cancelled"),
                ("DE", "paid"),
                ("SK", "shipped"),
                ("CZ", "cancelled"),
                ("AT", "shipped"),
                ("CZ", "shipped"),
                ("SK", "paid"),
            ],
            start=1,
        )
    ],
)
# import: the job project's tables the input mapping reads (by table name)
INPUTS = {
    "orders": (("order_id", "customer", "amount"), [("1", "Alice", "10"), ("2", "Bob", "20")], ["order_id"]),
    "order_items": (
        ("order_id", "line", "sku", "qty"),
        [("1", "1", "A-1", "2"), ("1", "2", "B-7", "1"), ("2", "1", "A-1", "5")],
        ["order_id", "line"],
    ),
}


# --------------------------------------------------------------------------------------------------------------
# helpers


def _csv(header, rows) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, *rows])
    return out.getvalue()


def _recipe(name: str, **connections: tuple[str, str]) -> dict:
    """docs/recipes/<name>.json with each connection's placeholder url and token replaced (``source=(url, token)``)."""
    config = json.loads((RECIPES / f"{name}.json").read_text())
    params = config["parameters"]
    assert set(connections) == {w for w in ("source", "destination") if w in params}, "the recipe's connections"
    for which, (url, token) in connections.items():
        conn = params[which]
        assert conn["url"].startswith("https://connection."), f"{name}: {which}.url must be a stack URL placeholder"
        assert PLACEHOLDER_TOKEN.match(conn["#token"]), f"{name}: {which}.#token must be a placeholder like <token>"
        conn["url"], conn["#token"] = url, token
    return config


def _write(data_dir, config: dict) -> None:
    (data_dir.root / "config.json").write_text(json.dumps(config, indent=2))


def _run(data_dir, env, *, carry=True):
    if carry:
        data_dir.carry_state()
    data_dir.clean_out()
    run = data_dir.run(env)
    assert run.returncode == 0, run.output
    return run


def _tables_of(emu, project) -> list[dict]:
    response = requests.get(f"{emu.url}/v2/storage/tables", headers={"X-StorageApi-Token": project.token}, timeout=30)
    response.raise_for_status()
    return response.json()


def _buckets_of(emu, project) -> set[str]:
    response = requests.get(f"{emu.url}/v2/storage/buckets", headers={"X-StorageApi-Token": project.token}, timeout=30)
    response.raise_for_status()
    return {b["id"] for b in response.json()}


def _ensure_bucket(emu, project, bucket_id: str) -> None:
    if bucket_id not in _buckets_of(emu, project):
        stage, name = bucket_id.split(".c-", 1)
        emu.create_bucket(project.id, name, stage=stage)


def _seed(emu, project, sources: list[str]) -> None:
    """Every source a recipe names exists with rows: a bucket gets a keyed table and one without a key."""
    existing = {t["id"] for t in _tables_of(emu, project)}
    for source in sources:
        if BUCKET_RE.match(source):
            _ensure_bucket(emu, project, source)
            if not any(t.startswith(f"{source}.") for t in existing):
                emu.create_table(project.id, f"{source}.items", _csv(*ITEMS), primary_key=["id"])
                emu.create_table(project.id, f"{source}.log", _csv(*LOG))
        else:
            assert TABLE_RE.match(source), source
            _ensure_bucket(emu, project, source.rsplit(".", 1)[0])
            if source not in existing:
                emu.create_table(project.id, source, _csv(*ITEMS), primary_key=["id"])


def _destination_id(params: dict, item: dict, source_table: str) -> str:
    """Where the guide says a table goes: the item's destination (table or bucket id), else destination.bucket, else
    the source's own id."""
    name = source_table.rsplit(".", 1)[-1]
    configured = item.get("destination")
    if configured and TABLE_RE.match(configured):
        return configured
    bucket = configured if configured and BUCKET_RE.match(configured) else params["destination"].get("bucket")
    return f"{bucket}.{name}" if bucket else source_table


def _planned(emu, project, params: dict) -> list[tuple[str, str, dict]]:
    """(source table, destination table, item) for every table the recipe's ``tables`` selects."""
    tables = [t["id"] for t in _tables_of(emu, project)]
    planned = []
    for item in params["tables"]:
        chosen = [t for t in tables if t.startswith(item["source"] + ".")] if BUCKET_RE.match(item["source"]) else []
        for table in chosen or [item["source"]]:
            planned.append((table, _destination_id(params, item, table), item))
    return planned


def _matches(row: dict, filters: list[dict]) -> bool:
    """The Storage API's whereFilters (ANDed; compared as text unless a numeric dataType is given)."""
    for f in filters:
        numeric = bool(f.get("dataType"))
        value = float(row[f["column"]]) if numeric else row[f["column"]]
        values = [float(v) if numeric else str(v) for v in f["values"]]
        op = f.get("operator", "eq")
        ok = {
            "eq": value in values,
            "ne": value not in values,
            "gt": all(value > v for v in values),
            "ge": all(value >= v for v in values),
            "lt": all(value < v for v in values),
            "le": all(value <= v for v in values),
        }[op]
        if not ok:
            return False
    return True


def _assert_same(src_emu, src, dst_emu, dst, source_table, destination_table, *, columns=None, filters=()):
    """Destination == the source selection: same columns (in order), primary key and rows."""
    src_detail = src_emu.table_detail(src.id, source_table)
    dst_detail = dst_emu.table_detail(dst.id, destination_table)
    expected_columns = list(columns or src_detail["columns"])
    assert dst_detail["columns"] == expected_columns, destination_table
    assert dst_detail["primaryKey"] == src_detail["primaryKey"], destination_table
    rows = [
        {c: r[c] for c in expected_columns} for r in src_emu.table_rows(src.id, source_table) if _matches(r, filters)
    ]
    assert sorted_dicts(dst_emu.table_rows(dst.id, destination_table)) == sorted_dicts(rows), destination_table
    return rows


def _verification(data_dir) -> list[dict]:
    with (data_dir.root / "out" / "files" / "sync_verification.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _second_stack(emulator, tmp_path) -> Emulator:
    """Another stack (another region): AWS next to AWS shares the S3 endpoint as real AWS stacks do; next to Azure
    or GCP it is an AWS stack, so the migration also crosses providers."""
    if emulator.provider == "aws":
        return Emulator(workdir=tmp_path / "second-stack", share_storage_with=emulator)
    return Emulator(provider="aws", workdir=tmp_path / "aws-stack")


# --------------------------------------------------------------------------------------------------------------
# (a) migrate a whole project to another region


@pytest.mark.timeout(600)
def test_migrate_project_recipe_copies_every_bucket_and_verifies(emulator, source, data_dir, env, tmp_path):
    with _second_stack(emulator, tmp_path) as other:
        target = other.create_project("migrated")
        while target.id == source.id:  # project ids of two stacks are unrelated; the same id created in the same
            target = other.create_project("migrated")  # second would read as one stack under two names
        data_dir.secrets.add(target.token)
        config = _recipe("migrate-project", source=(emulator.url, source.token), destination=(other.url, target.token))
        params = config["parameters"]
        buckets = [item["source"] for item in params["tables"]]
        assert all(BUCKET_RE.match(b) for b in buckets), "the migration recipe selects whole buckets"
        _seed(emulator, source, buckets)
        assert _buckets_of(emulator, source) == set(buckets), "the recipe lists every bucket of the project"
        planned = _planned(emulator, source, params)
        assert len(planned) == len(_tables_of(emulator, source))
        _write(data_dir, config)
        run_env = {**env, **other.env}

        run = _run(data_dir, run_env, carry=False)
        for source_table, destination_table, _ in planned:
            _assert_same(emulator, source, other, target, source_table, destination_table)
        report = _verification(data_dir)
        assert {r["source_table"] for r in report} == {p[0] for p in planned}
        assert {r["status"] for r in report} == {"ok"}, report
        assert f"{len(planned)} of {len(planned)} table(s) match" in run.output

        # the cut-over: the source changed once more, the last run copies the change; then the verify action
        emulator.load_table(
            source.id, "in.c-sales.customers", "id,name,city\n2,Bob,Zlin\n9,Ida,Kolin\n", incremental=True
        )
        last = _run(data_dir, run_env)
        assert "copying rows changed since" in last.output, "the runs after the first are incremental"
        for source_table, destination_table, _ in planned:
            _assert_same(emulator, source, other, target, source_table, destination_table)
        config["action"] = "verify"
        _write(data_dir, config)
        action = _run(data_dir, run_env)
        result = json.loads(action.stdout.strip().splitlines()[-1])
        assert result["type"] == "success", result
        assert f"{len(planned)} of {len(planned)} table(s) match their source" in result["message"]


# --------------------------------------------------------------------------------------------------------------
# (b) keep a dev copy of production in step every hour


def test_dev_copy_recipe_keeps_the_dev_project_equal_to_production(emulator, source, destination, data_dir, env):
    config = _recipe(
        "dev-copy-hourly", source=(emulator.url, source.token), destination=(emulator.url, destination.token)
    )
    params = config["parameters"]
    _seed(emulator, source, [item["source"] for item in params["tables"]])
    planned = _planned(emulator, source, params)
    keyed = [p for p in planned if emulator.table_detail(source.id, p[0])["primaryKey"]]
    assert keyed, "the recipe copies keyed tables (the ones that sync incrementally)"
    _write(data_dir, config)

    # the first hourly run copies everything; its watermark is newer than every source row, and an hour passes
    emulator.advance_clock(3600)
    _run(data_dir, env, carry=False)
    emulator.advance_clock(3600)
    for source_table, destination_table, _ in planned:
        _assert_same(emulator, source, emulator, destination, source_table, destination_table)

    # production changes: an upsert (one row changed, one new) and a row deleted through the API in each keyed table
    for source_table, _, _ in keyed:
        detail = emulator.table_detail(source.id, source_table)
        rows = emulator.table_rows(source.id, source_table)
        changed = {**rows[0], detail["columns"][-1]: "changed in production"}
        new = {c: f"new-{c}" for c in detail["columns"]}
        emulator.load_table(
            source.id,
            source_table,
            _csv(detail["columns"], [list(changed.values()), list(new.values())]),
            incremental=True,
        )
        key = detail["primaryKey"][0]
        body = {"whereFilters": [{"column": key, "operator": "eq", "values": [rows[1][key]]}]}
        _storage(emulator, source, "DELETE", f"tables/{source_table}/rows", json=body)

    second = _run(data_dir, env)
    assert "copying rows changed since" in second.output, "the hourly run is incremental"
    for source_table, destination_table, _ in planned:
        _assert_same(emulator, source, emulator, destination, source_table, destination_table)
    for source_table, destination_table, _ in keyed:
        key = emulator.table_detail(source.id, source_table)["primaryKey"][0]
        assert "new-" + key in {r[key] for r in emulator.table_rows(destination.id, destination_table)}

    # an hour without changes: the next run changes nothing
    emulator.advance_clock(3600)
    _run(data_dir, env)
    for source_table, destination_table, _ in planned:
        _assert_same(emulator, source, emulator, destination, source_table, destination_table)


# --------------------------------------------------------------------------------------------------------------
# (c) publish selected columns and rows to a partner's project


def _excluding(filters: list[dict], row: dict) -> dict:
    """``row`` changed so that the first filter no longer selects it."""
    f = filters[0]
    if f.get("operator", "eq") == "ne":
        return {**row, f["column"]: str(f["values"][0])}
    assert f.get("operator", "eq") == "eq", "the test knows how to leave an eq or ne filter"
    return {**row, f["column"]: "none of the values"}


def test_publish_recipe_gives_the_partner_only_the_selected_columns_and_rows(
    emulator, source, destination, data_dir, env
):
    params = json.loads((RECIPES / "publish-to-partner.json").read_text())["parameters"]
    (item,) = params["tables"]
    columns, filters = item["columns"], item["whereFilters"]
    header, rows = ORDERS
    assert set(columns) < set(header), "the recipe publishes some of the orders' columns, not all"
    _ensure_bucket(emulator, source, item["source"].rsplit(".", 1)[0])
    emulator.create_table(source.id, item["source"], _csv(header, rows), primary_key=[header[0]])
    selected = [r for r in emulator.table_rows(source.id, item["source"]) if _matches(r, filters)]
    assert 0 < len(selected) < len(rows), "the recipe's filters select some rows, not all"
    # the partner's token may write only into the bucket it set up for the data
    dest_table = _destination_id(params, item, item["source"])
    _ensure_bucket(emulator, destination, dest_table.rsplit(".", 1)[0])
    partner_token = emulator.create_token(destination.id, {dest_table.rsplit(".", 1)[0]: "write"}, description="p")
    # and your own token may only read the bucket the table is in
    reader = emulator.create_token(source.id, {item["source"].rsplit(".", 1)[0]: "read"}, description="reader")
    data_dir.secrets |= {partner_token, reader}
    config = _recipe("publish-to-partner", source=(emulator.url, reader), destination=(emulator.url, partner_token))
    _write(data_dir, config)

    _run(data_dir, env, carry=False)
    published = _assert_same(
        emulator, source, emulator, destination, item["source"], dest_table, columns=columns, filters=filters
    )
    assert len(published) == len(selected)
    assert not set(emulator.table_detail(destination.id, dest_table)["columns"]) - set(columns)

    # a published row that stops matching the filters is deleted from the partner's copy
    emulator.advance_clock(3600)
    leaving = _excluding(filters, selected[0])
    emulator.load_table(source.id, item["source"], _csv(header, [[leaving[c] for c in header]]), incremental=True)
    _run(data_dir, env)
    again = _assert_same(
        emulator, source, emulator, destination, item["source"], dest_table, columns=columns, filters=filters
    )
    assert len(again) == len(selected) - 1


# --------------------------------------------------------------------------------------------------------------
# (d) load tables produced elsewhere (import of input tables)


def _input_mapping(emu, project, data_dir: Path, mapping: list[dict], *, only_rows=None) -> None:
    """What Keboola's input mapping writes: in/tables/<destination> (CSV with a header) and its manifest."""
    tables_in = data_dir.root / "in" / "tables"
    for path in tables_in.iterdir():
        path.unlink()
    for entry in mapping:
        detail = emu.table_detail(project.id, entry["source"])
        rows = emu.table_rows(project.id, entry["source"])
        if only_rows is not None:
            rows = [r for r in rows if only_rows(entry["source"], r)]
        manifest = {
            "id": entry["source"],
            "name": detail["name"],
            "columns": detail["columns"],
            "primary_key": detail["primaryKey"],
        }
        data_dir.add_input_table(entry["destination"], detail["columns"], [list(r.values()) for r in rows], manifest)


def test_import_recipe_loads_the_input_tables_as_the_guide_says(emulator, destination, data_dir, env):
    config = _recipe("import-input-tables", destination=(emulator.url, destination.token))
    params, mapping = config["parameters"], config["storage"]["input"]["tables"]
    job_project = emulator.create_project("job-project")  # where the input tables come from
    data_dir.secrets.add(job_project.token)
    for entry in mapping:
        header, rows, pk = INPUTS[entry["source"].rsplit(".", 1)[-1]]
        _ensure_bucket(emulator, job_project, entry["source"].rsplit(".", 1)[0])
        emulator.create_table(job_project.id, entry["source"], _csv(header, rows), primary_key=pk)
    by_file = {entry["destination"]: entry["source"] for entry in mapping}
    items = params.get("tables") or [{"source": name} for name in by_file]
    expected: dict[str, tuple[str, list[str], list[dict]]] = {}  # destination table -> (source, key, rows)
    for item in items:
        source_table = by_file[item["source"]]
        key = item.get("primaryKey") or emulator.table_detail(job_project.id, source_table)["primaryKey"]
        expected[_destination_id(params, item, source_table)] = (source_table, key, [])
    _input_mapping(emulator, job_project, data_dir, mapping)
    _write(data_dir, config)

    _run(data_dir, env, carry=False)
    for table, (source_table, key, rows) in expected.items():
        detail = emulator.table_detail(destination.id, table)
        assert detail["primaryKey"] == key, table
        assert detail["columns"] == emulator.table_detail(job_project.id, source_table)["columns"]
        rows[:] = emulator.table_rows(job_project.id, source_table)
        assert sorted_dicts(emulator.table_rows(destination.id, table)) == sorted_dicts(rows), table

    # the next day's input holds only new and changed rows: incremental tables are upserted by their key
    changed: dict[str, list[dict]] = {}
    for table, (source_table, key, rows) in expected.items():
        detail = emulator.table_detail(job_project.id, source_table)
        update = {**rows[0], detail["columns"][-1]: "changed"}
        new = {c: f"new-{c}" for c in detail["columns"]}
        emulator.load_table(
            job_project.id, source_table, _csv(detail["columns"], [list(update.values()), list(new.values())]), True
        )
        changed[source_table] = [update, new]
    keys = {source_table: key for source_table, key, _ in expected.values()}

    def only_changed(source_table, row):
        return any(all(row[k] == c[k] for k in keys[source_table]) for c in changed[source_table])

    _input_mapping(emulator, job_project, data_dir, mapping, only_rows=only_changed)
    _run(data_dir, env)
    for item in items:
        source_table = by_file[item["source"]]
        table = _destination_id(params, item, source_table)
        key = expected[table][1]
        if item.get("incremental", params.get("incremental", False)):
            want = {tuple(r[k] for k in key): r for r in expected[table][2]}
            want |= {tuple(r[k] for k in key): r for r in changed[source_table]}
            want_rows = list(want.values())
        else:
            want_rows = changed[source_table]
        assert sorted_dicts(emulator.table_rows(destination.id, table)) == sorted_dicts(want_rows), table


# --------------------------------------------------------------------------------------------------------------
# the guide shows each recipe as the file has it


def test_the_guide_shows_every_recipe_file_as_it_is():
    guide = (REPO / "docs" / "guide.md").read_text()
    shown = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", guide, flags=re.DOTALL)]
    for path in sorted(RECIPES.glob("*.json")):
        assert f"](recipes/{path.name})" in guide, f"the guide links {path.name}"
        assert json.loads(path.read_text()) in shown, f"the guide shows {path.name} as it is"


def test_the_verification_report_of_a_migration_is_a_storage_file_not_an_output_table(
    emulator, source, destination, data_dir, env
):
    """An output table would need a destination bucket in the job's own project (keboola-conventions.md 1.1:
    Default Bucket, output mapping, manifest destination or a file name with two dots, else the job fails after
    the copy); a file in out/files with a file manifest needs none."""
    config = _recipe(
        "migrate-project", source=(emulator.url, source.token), destination=(emulator.url, destination.token)
    )
    _seed(emulator, source, [item["source"] for item in config["parameters"]["tables"]])
    _write(data_dir, config)
    _run(data_dir, env, carry=False)
    assert not list((data_dir.root / "out" / "tables").glob("*")), "nothing for the output mapping to place"
    report = data_dir.root / "out" / "files" / "sync_verification.csv"
    manifest = json.loads(Path(f"{report}.manifest").read_text())
    assert manifest["tags"] == ["storage-sync", "sync-verification"] and "destination" not in manifest
    statuses = [row["status"] for row in _verification(data_dir)]
    assert statuses and set(statuses) == {"ok"}, statuses

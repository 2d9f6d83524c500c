"""Typed tables end to end (issue 12): a typed table with every base type, NULLs, empty strings, decimals and
timestamps survives a sync (same backend and Snowflake -> BigQuery), an export -> import round trip (the new manifest
and the legacy one) and incremental syncs with changed, deleted and new columns; compared by definition and row for
row. The destination of a typed source keeps its types or fails in one sentence (or is rebuilt)."""

import json
import shutil
from datetime import datetime
from decimal import Decimal

import pytest

from tests.e2e.harness import DataDir, sorted_dicts
from tests.e2e.test_sync_fidelity import _storage

TABLE = "in.c-typed.orders"
COLUMNS = [
    {"name": "id", "definition": {"type": "NUMBER", "length": "38,0", "nullable": False}},
    {"name": "name", "definition": {"type": "VARCHAR", "length": "100"}},
    {"name": "note", "definition": {"type": "VARCHAR"}},
    {"name": "amount", "definition": {"type": "NUMBER", "length": "12,2"}},
    {"name": "ratio", "definition": {"type": "FLOAT"}},
    {"name": "active", "definition": {"type": "BOOLEAN"}},
    {"name": "day", "definition": {"type": "DATE"}},
    {"name": "ts", "definition": {"type": "TIMESTAMP_NTZ", "length": "0"}},
]
# an unquoted empty field is NULL, "" an empty string (the rows are loaded with treatValuesAsNull [])
ROWS = (
    "id,name,note,amount,ratio,active,day,ts\n"
    '1,"Alice","",12.50,0.5,true,2024-01-31,2024-01-31 10:20:30\n'
    '2,"",,-0.01,,false,,\n'
    '3,,"x, ""quoted""",1234567890.12,-2.25,,1999-12-31,1999-12-31 23:59:59\n'
    '4,"Zoë","line\nbreak",0.00,1e-3,true,2000-02-29,2000-02-29 00:00:00\n'
)
LEGACY_MANIFEST_ENV = {
    "KBC_STACKID": "connection.keboola.com",
    "KBC_PROJECT_FEATURE_GATES": "queuev2",
    "KBC_DATA_TYPE_SUPPORT": "none",
}
# what the same table becomes in BigQuery (base types, with NUMERIC precision/scale and the string length kept)
BIGQUERY_DEFINITION = [
    ("id", "INTEGER", None, False, "INTEGER"),
    ("name", "STRING", "100", True, "STRING"),
    ("note", "STRING", None, True, "STRING"),
    ("amount", "NUMERIC", "12,2", True, "NUMERIC"),
    ("ratio", "FLOAT64", None, True, "FLOAT"),
    ("active", "BOOL", None, True, "BOOLEAN"),
    ("day", "DATE", None, True, "DATE"),
    ("ts", "TIMESTAMP", None, True, "TIMESTAMP"),
]


def load_exact(emulator, project, table_id, csv_text, tmp_path, *, incremental=False):
    """Load a CSV keeping "" an empty string and an unquoted empty field NULL (``treatValuesAsNull: []``)."""
    path = tmp_path / f"load-{abs(hash(csv_text))}.csv"
    path.write_text(csv_text, encoding="utf-8")
    file = emulator.backend.upload_local_file(project.id, path, tags=["test"])
    body = {"dataFileId": file.id, "incremental": incremental, "treatValuesAsNull": []}
    return _storage(emulator, project, "POST", f"tables/{table_id}/import-async", json=body)


@pytest.fixture
def typed_source(emulator, tmp_path):
    project = emulator.create_project("typed-source")
    emulator.create_bucket(project.id, "typed")
    emulator.create_typed_table(project.id, TABLE, COLUMNS, primary_key=["id"])
    load_exact(emulator, project, TABLE, ROWS, tmp_path)
    return project


@pytest.fixture
def snowflake_destination(emulator):
    return emulator.create_project("typed-destination")


@pytest.fixture
def bigquery_destination(emulator):
    return emulator.create_project("typed-bigquery", default_backend="bigquery")


@pytest.fixture
def data(tmp_path, typed_source, snowflake_destination, bigquery_destination):
    folder = DataDir(tmp_path / "data")
    folder.secrets |= {typed_source.token, snowflake_destination.token, bigquery_destination.token}
    return folder


def definition(detail):
    """``(name, type, length, nullable, basetype)`` per column in the table's column order, and the key."""
    assert detail["isTyped"] is True, detail
    by_name = {c["name"]: c for c in detail["definition"]["columns"]}
    columns = []
    for name in detail["columns"]:
        column = by_name[name]
        d = column["definition"]
        columns.append((name, d["type"], d.get("length"), d["nullable"], column["basetype"]))
    return columns, sorted(detail["primaryKey"])


def comparable(rows, column_types):
    """Rows with every value as its type's value (decimals, floats, timestamps as numbers and instants): what two
    backends print differently (NUMERIC 12.50 / 12.5, a TIMESTAMP with +00:00) compares equal; NULL stays None."""

    def value(text, basetype):
        if text is None:
            return None
        if basetype == "NUMERIC":
            return Decimal(text)
        if basetype == "FLOAT":
            return float(text)
        if basetype == "TIMESTAMP":
            return datetime.fromisoformat(text.removesuffix("+00:00").removesuffix(" UTC")).replace(tzinfo=None)
        if basetype == "BOOLEAN":
            return text.lower()
        return text

    out = [{c: value(r[c], column_types[c]) for c in r} for r in rows]
    return sorted(out, key=lambda r: json.dumps(r, sort_keys=True, default=str))


def assert_typed_copy_equal(emulator, source, destination, table_id, dest_id=None, *, expected_definition=None):
    """Destination == source: the same definition (or ``expected_definition`` for another backend), key and rows."""
    dest_id = dest_id or table_id
    src, dst = emulator.table_detail(source.id, table_id), emulator.table_detail(destination.id, dest_id)
    src_columns, src_key = definition(src)
    dst_columns, dst_key = definition(dst)
    assert dst_key == src_key
    assert dst_columns == (expected_definition or src_columns)
    src_rows, dst_rows = emulator.table_rows(source.id, table_id), emulator.table_rows(destination.id, dest_id)
    if expected_definition is None:
        assert sorted_dicts(dst_rows) == sorted_dicts(src_rows)
    else:
        basetypes = {c[0]: c[4] for c in dst_columns}
        assert comparable(dst_rows, basetypes) == comparable(src_rows, basetypes)
    return src_rows


def _sync_params(emulator, source, destination, **extra):
    return {
        "mode": "sync",
        "source": {"url": emulator.url, "#token": source.token},
        "destination": {"url": emulator.url, "#token": destination.token},
        "tables": [{"source": TABLE}],
        **extra,
    }


def _run(data_dir, env, *, ok=True):
    data_dir.carry_state()
    run = data_dir.run(env)
    assert (run.returncode == 0) == ok, run.output
    return run


def test_the_typed_source_holds_nulls_empty_strings_decimals_and_timestamps(emulator, typed_source):
    rows = {r["id"]: r for r in emulator.table_rows(typed_source.id, TABLE)}
    assert rows["1"]["note"] == "" and rows["2"]["note"] is None and rows["2"]["name"] == ""
    assert rows["3"]["name"] is None and rows["3"]["note"] == 'x, "quoted"'
    assert rows["1"]["amount"] == "12.50" and rows["2"]["ratio"] is None and rows["1"]["ts"] == "2024-01-31 10:20:30"


def upsert(emulator, project, csv_rows, tmp_path):
    load_exact(emulator, project, TABLE, ROWS.splitlines()[0] + "\n" + csv_rows, tmp_path, incremental=True)


def delete_ids(emulator, project, *ids):
    body = {"whereFilters": [{"column": "id", "values": list(ids)}]}
    _storage(emulator, project, "DELETE", f"tables/{TABLE}/rows", json=body)


def update_and_delete_then_sync(emulator, source, data, env, tmp_path):
    """An hour later row 2 is updated and row 3 deleted in the source; the next sync must go incremental."""
    emulator.advance_clock(3600)
    upsert(emulator, source, '2,"Bob","",7.70,,,,\n', tmp_path)
    delete_ids(emulator, source, "3")
    run = _run(data, env)
    assert "copying rows changed since" in run.output
    return run


def first_sync(emulator, data, env, source, destination, backend):
    """The first sync (with verify) of the source table an hour after it was loaded; returns its output."""
    data.write_config(_sync_params(emulator, source, destination, verify=True))
    emulator.advance_clock(3600)
    run = _run(data, env)
    assert f"creating it as a typed {backend} table with primary key [id]" in run.output
    assert "Verification: 1 of 1 table(s) match." in run.output
    return run.output


def test_sync_creates_the_same_typed_table_and_follows_changes_deletes_and_new_columns(
    emulator, typed_source, snowflake_destination, data, env, tmp_path
):
    first = first_sync(emulator, data, env, typed_source, snowflake_destination, "Snowflake")
    assert "(Snowflake) ->" not in first, "the same backend maps no column"
    assert_typed_copy_equal(emulator, typed_source, snowflake_destination, TABLE)

    # an update and a delete: incremental, the delete propagated by the typed key
    update_and_delete_then_sync(emulator, typed_source, data, env, tmp_path)
    rows = {r["id"]: r for r in assert_typed_copy_equal(emulator, typed_source, snowflake_destination, TABLE)}
    assert set(rows) == {"1", "2", "4"} and rows["2"]["name"] == "Bob" and rows["2"]["note"] == ""

    # a new typed column: added with its definition (the selection changed, so the table is copied in full)
    emulator.advance_clock(3600)
    qty = {"name": "qty", "definition": {"type": "NUMBER", "length": "10,0", "nullable": True}}
    _storage(emulator, typed_source, "POST", f"tables/{TABLE}/columns", json=qty)
    third = _run(data, env)
    assert "adding column qty as NUMBER(10,0) (new in source table" in third.output
    assert_typed_copy_equal(emulator, typed_source, snowflake_destination, TABLE)


def test_a_typed_column_dropped_and_added_again_in_the_middle_is_moved_with_its_type(
    emulator, typed_source, snowflake_destination, data, env, tmp_path
):
    first_sync(emulator, data, env, typed_source, snowflake_destination, "Snowflake")
    emulator.advance_clock(3600)
    _storage(emulator, typed_source, "DELETE", f"tables/{TABLE}/columns/amount")
    amount = {"name": "amount", "definition": {"type": "NUMBER", "length": "12,2", "nullable": True}}
    _storage(emulator, typed_source, "POST", f"tables/{TABLE}/columns", json=amount)
    run = _run(data, env)
    assert "the source's columns changed their order since the last run" in run.output
    assert "adding column amount as NUMBER(12,2) (moved)" in run.output
    rows = assert_typed_copy_equal(emulator, typed_source, snowflake_destination, TABLE)
    assert {r["amount"] for r in rows} == {None}, "the column came back empty in the source"


def test_sync_snowflake_to_bigquery_creates_base_types_with_one_line_per_mapped_column(
    emulator, typed_source, bigquery_destination, data, env, tmp_path
):
    output = first_sync(emulator, data, env, typed_source, bigquery_destination, "BigQuery")
    mapped = [line for line in output.splitlines() if "(Snowflake) ->" in line]
    assert len(mapped) == len(COLUMNS), "one log line per mapped column"
    assert any("column amount: NUMBER(12,2) (Snowflake) -> NUMERIC(12,2) (BigQuery)" in line for line in mapped)
    assert_typed_copy_equal(
        emulator, typed_source, bigquery_destination, TABLE, expected_definition=BIGQUERY_DEFINITION
    )
    rows = {r["id"]: r for r in emulator.table_rows(bigquery_destination.id, TABLE)}
    assert rows["1"]["note"] == "" and rows["2"]["note"] is None, "empty string and NULL stay apart"

    # incremental across backends: an integer key prints alike in both, so the delete is matched
    emulator.advance_clock(3600)
    upsert(emulator, typed_source, '4,"Dan",,9.99,,,,\n', tmp_path)
    delete_ids(emulator, typed_source, "1")
    second = _run(data, env)
    assert "copying rows changed since" in second.output and "(Snowflake) ->" not in second.output
    rows = assert_typed_copy_equal(
        emulator, typed_source, bigquery_destination, TABLE, expected_definition=BIGQUERY_DEFINITION
    )
    assert sorted(r["id"] for r in rows) == ["2", "3", "4"]


@pytest.mark.parametrize("manifest_format", ["new", "merged", "legacy"])
def test_export_then_import_recreates_the_typed_table(
    emulator, typed_source, snowflake_destination, data, env, tmp_path, manifest_format
):
    export_env = dict(env)
    if manifest_format == "legacy":  # a project whose jobs expect the legacy manifest (no data type support)
        export_env |= LEGACY_MANIFEST_ENV
    export = {"mode": "export", "source": {"url": emulator.url, "#token": typed_source.token}}
    data.write_config({**export, "tables": [{"source": TABLE}], "mergedOutput": manifest_format == "merged"})
    _run(data, export_env)
    output = data.root / "out" / "tables" / "orders.csv"
    assert output.is_file() == (manifest_format == "merged"), "merged: one CSV with a header; else slices"
    manifest = json.loads((data.root / "out" / "tables" / "orders.csv.manifest").read_text())
    if manifest_format == "legacy":
        assert manifest["columns"] == [c["name"] for c in COLUMNS] and manifest["primary_key"] == ["id"]
        assert {"key": "KBC.datatype.backend", "value": "snowflake"} in manifest["metadata"]
        assert {"key": "KBC.datatype.length", "value": "12,2"} in manifest["column_metadata"]["amount"]
    else:
        schema = {c["name"]: c for c in manifest["schema"]}
        assert list(schema) == [c["name"] for c in COLUMNS]
        assert schema["amount"]["data_type"] == {
            "base": {"type": "NUMERIC", "length": "12,2"},
            "snowflake": {"type": "NUMBER", "length": "12,2"},
        }
        assert schema["id"]["nullable"] is False and schema["id"]["primary_key"] is True
        assert manifest["has_header"] is (manifest_format == "merged")

    importing = DataDir(tmp_path / "import")
    importing.secrets |= data.secrets
    for path in (data.root / "out" / "tables").iterdir():
        target = importing.root / "in" / "tables" / path.name
        shutil.copytree(path, target) if path.is_dir() else shutil.copy(path, target)
    destination = {"url": emulator.url, "#token": snowflake_destination.token, "bucket": "in.c-typed"}
    importing.write_config({"mode": "import", "destination": destination, "tables": [{"source": "orders.csv"}]})
    run = _run(importing, env)
    assert "creating it as a typed Snowflake table with primary key [id]" in run.output
    assert_typed_copy_equal(emulator, typed_source, snowflake_destination, TABLE)


def test_an_existing_destination_of_other_types_is_one_sentence_or_rebuilt(
    emulator, typed_source, snowflake_destination, data, env
):
    emulator.create_bucket(snowflake_destination.id, "typed")
    other = [
        c if c["name"] != "amount" else {"name": "amount", "definition": {"type": "NUMBER", "length": "8,1"}}
        for c in COLUMNS
    ]
    emulator.create_typed_table(snowflake_destination.id, TABLE, other, primary_key=["id"])
    data.write_config(_sync_params(emulator, typed_source, snowflake_destination))
    failed = _run(data, env, ok=False)
    assert (
        f"Table {TABLE} cannot take the data because its column amount is NUMBER(8,1) but source table {TABLE} has "
        f'NUMBER(12,2); drop the table so that it is created again, or set schemaChanges to "rebuild".'
    ) in failed.output
    data.write_config(_sync_params(emulator, typed_source, snowflake_destination, schemaChanges="rebuild"))
    rebuilt = _run(data, env)
    assert "dropping and recreating it because its column amount is NUMBER(8,1)" in rebuilt.output
    assert_typed_copy_equal(emulator, typed_source, snowflake_destination, TABLE)


def test_an_input_value_that_does_not_fit_its_type_names_table_column_and_the_jobs_message(
    emulator, snowflake_destination, data, env
):
    schema = [
        {"name": "id", "data_type": {"base": {"type": "INTEGER"}}, "nullable": False, "primary_key": True},
        {"name": "price", "data_type": {"base": {"type": "NUMERIC", "length": "10,2"}}},
        {"name": "qty", "data_type": {"base": {"type": "INTEGER"}}},
    ]
    data.add_input_table(
        "items.csv",
        ["id", "price", "qty"],
        [["1", "2.50", "3"], ["2", "4.00", "many"]],
        manifest={"schema": schema, "has_header": True},
    )
    data.write_config(
        {
            "mode": "import",
            "destination": {"url": emulator.url, "#token": snowflake_destination.token, "bucket": "in.c-items"},
            "tables": [{"source": "items.csv"}],
        }
    )
    failed = _run(data, env, ok=False)
    errors = [line for line in failed.error_lines() if "in.c-items.items" in line]
    assert errors and "a value of column qty (NUMBER(38,0)) from input table in/tables/items.csv" in errors[-1]
    assert "'many'" in errors[-1], "the job's message"


def test_a_timestamp_key_across_backends_is_copied_in_full_and_not_verified_as_text(
    emulator, bigquery_destination, data, env, tmp_path
):
    """Keys are matched (deletes) and compared (verify) as the text both sides export: a TIMESTAMP prints one way
    in Snowflake and another in BigQuery, so such a table is copied in full every run and verification skips it."""
    project = emulator.create_project("typed-timestamp-key")
    data.secrets.add(project.token)
    emulator.create_bucket(project.id, "typed")
    columns = [
        {"name": "ts", "definition": {"type": "TIMESTAMP_NTZ", "length": "0", "nullable": False}},
        {"name": "v", "definition": {"type": "VARCHAR"}},
    ]
    emulator.create_typed_table(project.id, TABLE, columns, primary_key=["ts"])
    load_exact(emulator, project, TABLE, "ts,v\n2024-01-01 00:00:00,a\n2024-01-02 12:30:00,b\n", tmp_path)
    data.write_config(_sync_params(emulator, project, bigquery_destination, verify=True))
    emulator.advance_clock(3600)
    _run(data, env)
    emulator.advance_clock(3600)
    second = _run(data, env)
    assert "key column ts is TIMESTAMP, which Snowflake and BigQuery export as different text" in second.output
    assert "not verified: column ts is TIMESTAMP" in second.output
    expected = [("ts", "TIMESTAMP", None, False, "TIMESTAMP"), ("v", "STRING", None, True, "STRING")]
    assert_typed_copy_equal(emulator, project, bigquery_destination, TABLE, expected_definition=expected)


@pytest.fixture
def typed_alias(emulator, typed_source):
    """out.c-views.orders: a simple alias of the typed source table."""
    emulator.create_bucket(typed_source.id, "views", stage="out")
    emulator.create_alias(typed_source.id, "out.c-views", TABLE)
    return "out.c-views.orders"


def test_an_alias_of_a_typed_table_is_copied_into_a_typed_table_and_kept_equal(
    emulator, typed_source, typed_alias, snowflake_destination, data, env, tmp_path
):
    """An alias carries its source's definition under ``sourceTable.definition`` (addendum 5): the copy is a typed
    table of that definition, followed incrementally (updates and deletes) like the table itself."""
    alias = typed_alias
    data.write_config(_sync_params(emulator, typed_source, snowflake_destination) | {"tables": [{"source": alias}]})
    emulator.advance_clock(3600)
    first = _run(data, env)
    assert "creating it as a typed Snowflake table with primary key [id]" in first.output
    _assert_alias_copy_equal(emulator, typed_source, snowflake_destination, alias)

    update_and_delete_then_sync(emulator, typed_source, data, env, tmp_path)
    rows = _assert_alias_copy_equal(emulator, typed_source, snowflake_destination, alias)
    assert sorted(r["id"] for r in rows) == ["1", "2", "4"]


def test_an_export_of_an_alias_of_a_typed_table_states_its_source_types(emulator, typed_source, typed_alias, data, env):
    export = {"mode": "export", "source": {"url": emulator.url, "#token": typed_source.token}}
    data.write_config({**export, "tables": [{"source": typed_alias}]})
    _run(data, env)
    manifest = json.loads((data.root / "out" / "tables" / "orders.csv.manifest").read_text())
    schema = {c["name"]: c for c in manifest["schema"]}
    assert list(schema) == [c["name"] for c in COLUMNS]
    assert schema["amount"]["data_type"]["snowflake"] == {"type": "NUMBER", "length": "12,2"}
    assert schema["ts"]["data_type"]["base"]["type"] == "TIMESTAMP"
    assert schema["id"]["nullable"] is False and schema["id"]["primary_key"] is True


def _assert_alias_copy_equal(emulator, source, destination, alias):
    """The copy of ``alias`` is a real typed table with the definition and key of the alias's source table, and
    the rows the alias reads."""
    copy = emulator.table_detail(destination.id, alias)
    assert copy["isAlias"] is False
    assert definition(copy) == definition(emulator.table_detail(source.id, TABLE))
    rows = emulator.table_rows(source.id, alias)
    assert sorted_dicts(emulator.table_rows(destination.id, alias)) == sorted_dicts(rows)
    return rows

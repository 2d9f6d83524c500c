"""Columns of typed tables (addendum §4): POST tables/{id}/columns needs definition or basetype (and the type's
rules), the added column's KBC.datatype.* metadata and definition; DELETE drops it from the definition; primary key
changes keep the nullability."""

from __future__ import annotations

import pytest

from .conftest import Api
from .test_api_typed_loads import failed, typed_table

BASE = [
    {"name": "id", "definition": {"type": "INT", "nullable": False}},
    {"name": "column_decimal", "definition": {"type": "DECIMAL", "length": "4,3"}},
]


def add(api: Api, table: str, **body) -> dict:
    resp = api.post(f"/tables/{table}/columns", json=body)
    assert resp.status_code == 202, resp.text
    return api.wait(resp.json())


def definition_of(api: Api, table: str, column: str) -> dict:
    detail = api.get(f"/tables/{table}").json()
    return next(c for c in detail["definition"]["columns"] if c["name"] == column)


@pytest.fixture
def bq_api(emu, s3_env):
    return Api(emu.url, emu.create_project("bq-columns", default_backend="bigquery").token)


def test_add_columns_on_typed_table(api):
    """PHPT Snowflake testAddColumnOnTypedTable: appended in order, basetype NUMERIC -> NUMBER(38,9), the storage
    metadata of the new column (type, nullable, basetype)."""
    table = typed_table(api, BASE, ["id"])
    new = [
        {"name": "column_float", "definition": {"type": "FLOAT"}, "basetype": None},
        {"name": "column_boolean", "definition": {"type": "BOOLEAN"}, "basetype": None},
        {"name": "column_date", "definition": {"type": "DATE"}, "basetype": None},
        {"name": "column_timestamp", "definition": {"type": "TIMESTAMP"}, "basetype": None},
        {"name": "column_varchar", "definition": {"type": "VARCHAR"}, "basetype": None},
        {"name": "basetype", "definition": None, "basetype": "NUMERIC"},
        {
            "name": "column_string_with_default",
            "definition": {"type": "STRING", "default": "default"},
            "basetype": None,
        },
    ]
    for column in new:
        job = add(api, table, **column)
        assert job["status"] == "success", job
        assert job["operationName"] == "tableColumnAdd"
    detail = api.get(f"/tables/{table}").json()
    assert detail["columns"] == ["id", "column_decimal"] + [c["name"] for c in new]
    assert definition_of(api, table, "basetype")["definition"] == {"type": "NUMBER", "nullable": True, "length": "38,9"}
    assert definition_of(api, table, "column_timestamp")["definition"]["type"] == "TIMESTAMP_NTZ"
    assert definition_of(api, table, "column_string_with_default")["definition"]["default"] == "default"
    metadata = [(m["key"], m["value"], m["provider"]) for m in detail["columnMetadata"]["column_float"]]
    assert metadata == [
        ("KBC.datatype.type", "FLOAT", "storage"),
        ("KBC.datatype.nullable", "1", "storage"),
        ("KBC.datatype.basetype", "FLOAT", "storage"),
    ]
    # the new columns take typed values
    row = "1,1.5,3.14,1,2022-02-22,2022-02-22 10:00:00,x,7,\n"
    job = api.import_csv(table, ",".join(detail["columns"]) + "\n" + row)
    assert job["status"] == "success", job
    (loaded,) = api.preview_rows(table)
    assert (loaded["column_boolean"], loaded["basetype"], loaded["column_string_with_default"]) == (
        "true",
        "7.000000000",
        None,
    )
    error = failed(api.import_csv(table, ",".join(detail["columns"]) + "\n" + row.replace("3.14", "pi")))
    assert error["message"].endswith("Numeric value 'pi' is not recognized")


def test_added_column_fills_stored_rows_with_default_or_null(api):
    table = typed_table(api, BASE, ["id"])
    assert api.import_csv(table, "id,column_decimal\n1,1.5\n")["status"] == "success"
    assert add(api, table, name="note", basetype="STRING")["status"] == "success"
    assert add(api, table, name="qty", definition={"type": "NUMBER", "default": "5", "nullable": False})["status"] == (
        "success"
    )
    assert api.preview_rows(table) == [{"id": "1", "column_decimal": "1.500", "note": None, "qty": "5"}]
    # the name is webalized, as on untyped tables
    assert add(api, table, name="Some -- Name", basetype="INTEGER")["status"] == "success"
    assert api.get(f"/tables/{table}").json()["columns"][-1] == "Some_Name"


def test_typed_column_needs_definition_or_basetype(api):
    """PHPT testAddTypedColumnToNonTypedTableShouldFail."""
    table = typed_table(api, BASE, ["id"])
    resp = api.post(f"/tables/{table}/columns", json={"name": "addColumn"})
    assert resp.status_code == 400
    assert resp.json()["error"] == 'Column "definition" or "basetype" must be set.'
    assert resp.json()["code"] == "storage.tables.validation"
    for body in (
        {"name": "x", "definition": {"type": "NOPE"}},
        {"name": "x", "basetype": "MONEY"},
        {"name": "x", "definition": {"type": "VARCHAR", "length": "0"}},
        {"name": "x", "definition": "VARCHAR"},
    ):
        assert api.post(f"/tables/{table}/columns", json=body).status_code == 400, body
    assert api.get(f"/tables/{table}").json()["columns"] == ["id", "column_decimal"]


def test_non_nullable_column_on_non_empty_table(api):
    """PHPT testAddNullableColumn: a NOT NULL column without a default only on an empty table."""
    table = typed_table(api, [{"name": "id", "definition": {"type": "INT", "nullable": False}}], name="my-new-table")
    assert add(api, table, name="first", definition={"type": "VARCHAR", "nullable": False})["status"] == "success"
    assert api.import_csv(table, "id,first\n1,a\n")["status"] == "success"
    job = add(api, table, name="fail", definition={"type": "VARCHAR", "nullable": False})
    error = failed(job)
    assert error["code"] == "storage.tables.validation.cannotAddColumn"
    assert error["message"] == (
        'Non-nullable column "fail" cannot be added to non-empty table "my-new-table" unless it has a non-null '
        "default value."
    )


@pytest.mark.parametrize(
    "definition",
    [
        {"type": "DATE", "default": "2021-01-01"},
        {"type": "TIMESTAMP", "default": "CURRENT_TIMESTAMP()"},
        {"type": "TIMESTAMP", "default": "CURRENT_TIMESTAMP"},
        {"type": "NUMBER", "default": "abc"},
    ],
)
def test_default_value_refused_on_add(api, definition):
    """PHPT testAddColumnOnTypedTableFailsWithExpresssionDefaultValue."""
    table = typed_table(api, BASE, ["id"])
    resp = api.post(f"/tables/{table}/columns", json={"name": "c", "definition": definition})
    assert resp.status_code == 400
    assert resp.json()["code"] == "storage.tables.invalidDefaultValueForType"
    assert "Validation:" in resp.json()["error"]


def test_bigquery_add_column_rules(bq_api):
    """PHPT Bigquery testAddRequiredColumn; APIB: no DEFAULT on add."""
    table = typed_table(bq_api, [{"name": "id", "definition": {"type": "INT64", "nullable": False}}], ["id"])
    resp = bq_api.post(
        f"/tables/{table}/columns", json={"name": "c", "definition": {"type": "STRING", "nullable": False}}
    )
    assert resp.status_code == 400
    assert resp.json()["error"] == "Invalid parameters - definition[nullable]: BigQuery cannot add required columns."
    resp = bq_api.post(f"/tables/{table}/columns", json={"name": "c", "definition": {"type": "STRING", "default": "x"}})
    assert resp.status_code == 400
    job = add(bq_api, table, name="column_float", definition={"type": "FLOAT64"})
    assert job["status"] == "success", job
    metadata = bq_api.get(f"/tables/{table}").json()["columnMetadata"]["column_float"]
    assert [(m["key"], m["value"]) for m in metadata] == [
        ("KBC.datatype.type", "FLOAT64"),
        ("KBC.datatype.nullable", "1"),
        ("KBC.datatype.basetype", "FLOAT"),
    ]


def test_drop_column_and_primary_keys_on_typed_table(api):
    """PHPT testDropColumnOnTypedTable, testPrimaryKeys: a dropped column leaves the definition and its metadata;
    removing and adding the primary key keeps the columns' nullability (Snowflake allows a nullable key column)."""
    table = typed_table(
        api, [{"name": "id", "definition": {"type": "VARCHAR"}}, {"name": "name", "basetype": "INTEGER"}], ["id"]
    )
    assert add(api, table, name="extra", basetype="STRING")["status"] == "success"
    resp = api.delete(f"/tables/{table}/columns/extra")
    assert api.wait(resp.json())["status"] == "success"
    detail = api.get(f"/tables/{table}").json()
    assert [c["name"] for c in detail["definition"]["columns"]] == ["id", "name"]
    assert set(detail["columnMetadata"]) == {"id", "name"}
    assert api.wait(api.delete(f"/tables/{table}/primary-key").json())["status"] == "success"
    assert api.job_post(f"/tables/{table}/primary-key", json={"columns": ["id", "name"]})["status"] == "success"
    detail = api.get(f"/tables/{table}").json()
    assert detail["definition"]["primaryKeysNames"] == ["id", "name"]
    nullable = {c["name"]: c["definition"]["nullable"] for c in detail["definition"]["columns"]}
    assert nullable == {"id": False, "name": True}
    assert {c: m[1]["value"] for c, m in detail["columnMetadata"].items()} == {"id": "", "name": "1"}

"""Loading typed tables (addendum §1d): values are checked against the types (the backend's job errors, full and
incremental loads alike), NULL vs empty string per treatValuesAsNull, non-nullable and primary key columns refuse
NULL; incremental, full and headerless sliced loads work as on untyped tables."""

from __future__ import annotations

import gzip
import re

import pytest

from .conftest import Api, rows_set
from .test_api_typed_tables import defined

USERS = "id,name,city,sex\n1,martin,PRG,male\n2,klara,PRG,female\n"


def typed_table(api: Api, columns: list[dict], primary_key=(), name="t") -> str:
    bucket = api.create_bucket("main")
    defined(api, bucket, {"name": name, "primaryKeysNames": list(primary_key), "columns": columns})
    return f"{bucket}.{name}"


def load(api: Api, table: str, csv_text: str | bytes, **params) -> dict:
    return api.import_csv(table, csv_text, **params)


def failed(job: dict) -> dict:
    assert job["status"] == "error", job
    return job["error"]


def preview(api: Api, table: str, **params) -> list[dict]:
    rows = api.preview_rows(table, **params)
    return sorted(rows, key=lambda r: [str(v) for v in r.values()])


@pytest.fixture
def bq_api(emu, s3_env):
    return Api(emu.url, emu.create_project("bq-loads", default_backend="bigquery").token)


@pytest.mark.parametrize("incremental", [False, True])
def test_conversion_error_fails_the_job(api, incremental):
    """PHPT Snowflake/ImportTypedTableTest::testLoadTypedTablesConversionError (full and incremental load)."""
    table = typed_table(
        api,
        [
            {"name": "id", "definition": {"type": "INT", "nullable": False}},
            {"name": "name", "definition": {"type": "VARCHAR"}},
            {"name": "city", "definition": {"type": "VARCHAR"}},
            {"name": "sex", "definition": {"type": "INT"}},
        ],
        ["id"],
    )
    error = failed(load(api, table, USERS, incremental=incremental))
    assert error["message"] == (
        "Table import error: Load error: An exception occurred while executing a query: Numeric value 'male' is not "
        "recognized"
    )
    assert error["code"] == "valueConversion"
    assert api.get(f"/tables/{table}").json()["rowsCount"] == 0


@pytest.mark.parametrize("incremental", [False, True])
def test_length_overflow_fails_the_job(api, incremental):
    """PHPT testLoadTypedTablesLengthOverflowError (addendum: User character length limit (1) exceeded ...)."""
    table = typed_table(
        api,
        [
            {"name": "id", "definition": {"type": "INT", "nullable": False}},
            {"name": "name", "definition": {"type": "VARCHAR", "length": 1}},
            {"name": "city", "definition": {"type": "VARCHAR"}},
            {"name": "sex", "definition": {"type": "VARCHAR"}},
        ],
        ["id"],
    )
    error = failed(load(api, table, USERS, incremental=incremental))
    assert error["code"] == "rowTooLarge"
    first, position, column, hint = error["message"].split("\n")
    assert first == (
        "Load error: An exception occurred while executing a query: User character length limit (1) exceeded by "
        "string 'martin'"
    )
    assert re.fullmatch(r"  File '.+', line 2, character 3", position), position
    assert column == '  Row 1, column ""__temp_csvimport""["name":2]'
    assert hint.startswith("  If you would like to continue loading when an error is encountered")


def test_out_of_range_is_row_too_large(api):
    """PHPT testDataPreviewForTableDefinitionWithDecimalType: DECIMAL(4,3) refuses 123132456.1264654 with the job
    code rowTooLarge (the file is quoted, as CsvFile writes it: the value starts at character 6)."""
    table = typed_table(
        api,
        [
            {"name": "id", "definition": {"type": "INT", "nullable": False}},
            {"name": "column_decimal", "definition": {"type": "DECIMAL", "length": "4,3"}},
        ],
    )
    error = failed(load(api, table, '"id","column_decimal"\n"1","123132456.1264654"\n'))
    assert error["code"] == "rowTooLarge"
    assert re.fullmatch(
        r"Load error: An exception occurred while executing a query: Numeric value '123132456\.1264654' is out of "
        r"range\n  File '.+', line 2, character 6\n  Row 1, column \"\"__temp_csvimport\"\"\[\"column_decimal\":2\]\n"
        r"  If you would like to continue loading when an error is encountered, use other values such as 'SKIP_FILE' or "
        r"'CONTINUE' for the ON_ERROR option\. For more information on loading options, please run 'info loading_data' "
        r"in a SQL client\.",
        error["message"],
    ), error["message"]
    assert load(api, table, '"id","column_decimal"\n"1","003.123"\n')["status"] == "success"
    assert api.preview_rows(table) == [{"id": "1", "column_decimal": "3.123"}]


@pytest.mark.parametrize(
    ("definition", "value", "message"),
    [
        ({"type": "BOOLEAN"}, "222", "Boolean value '222' is not recognized"),
        ({"type": "DATE"}, "2022-02-31", "Date '2022-02-31' is not recognized"),
        ({"type": "DATE"}, "12:00:00.000", "Date '12:00:00.000' is not recognized"),
        ({"type": "TIME"}, "1989-08-31", "Time '1989-08-31' is not recognized"),
        ({"type": "TIMESTAMP"}, "xxx", "Timestamp 'xxx' is not recognized"),
        ({"type": "FLOAT"}, "aaa", "Numeric value 'aaa' is not recognized"),
        ({"type": "NUMBER", "length": "10,2"}, "1,5", "Numeric value '1,5' is not recognized"),
    ],
)
def test_snowflake_type_errors(api, definition, value, message):
    table = typed_table(api, [{"name": "id", "basetype": "INTEGER"}, {"name": "c", "definition": definition}])
    error = failed(load(api, table, f'id,c\n1,"{value}"\n'))
    assert error["message"].endswith(message), error
    assert error["code"] == "valueConversion"


def test_snowflake_accepts_what_snowflake_accepts(api):
    table = typed_table(
        api,
        [
            {"name": "n", "definition": {"type": "NUMBER", "length": "10,2"}},
            {"name": "i", "basetype": "INTEGER"},
            {"name": "f", "basetype": "FLOAT"},
            {"name": "b", "basetype": "BOOLEAN"},
            {"name": "d", "basetype": "DATE"},
            {"name": "ts", "basetype": "TIMESTAMP"},
            {"name": "tm", "definition": {"type": "TIME"}},
        ],
    )
    csv_text = (
        "n,i,f,b,d,ts,tm\n"
        "1.005,1e3,3.14,yes,2022-02-22,2021-01-01T10:00:00.123456,10:00:00\n"
        "-0.5, 7 ,123,0,1989-08-31,1989-08-31,12:00:00.000\n"
    )
    assert load(api, table, csv_text)["status"] == "success"
    assert preview(api, table) == [
        {
            "n": "-0.50",
            "i": "7",
            "f": "123",
            "b": "false",
            "d": "1989-08-31",
            "ts": "1989-08-31 00:00:00.000",
            "tm": "12:00:00",
        },
        {
            "n": "1.01",
            "i": "1000",
            "f": "3.14",
            "b": "true",
            "d": "2022-02-22",
            "ts": "2021-01-01 10:00:00.123",
            "tm": "10:00:00",
        },
    ]


@pytest.mark.parametrize(
    ("params", "csv_text", "expected"),
    [
        # Snowflake, default treatValuesAsNull ['']: ,, and "" are NULL (PHPT ImportTreatValuesAsNullTest "default")
        ({}, 'id,num,str\n1,"9","4"\n2,,\n3,"",""\n', {"1": ("9", "4"), "2": (None, None), "3": (None, None)}),
        # ['NULL']: the marker is NULL, an unquoted empty field still is, "" is an empty string
        (
            {"treatValuesAsNull": ["NULL"]},
            'id,num,str\n1,"9","4"\n2,,\n3,NULL,"NULL"\n4,5,""\n',
            {"1": ("9", "4"), "2": (None, None), "3": (None, None), "4": ("5", "")},
        ),
    ],
)
def test_snowflake_null_rules(api, params, csv_text, expected):
    table = typed_table(
        api,
        [
            {"name": "id", "basetype": "INTEGER"},
            {"name": "num", "basetype": "INTEGER"},
            {"name": "str", "basetype": "STRING"},
        ],
    )
    assert load(api, table, csv_text, **params)["status"] == "success"
    assert {r["id"]: (r["num"], r["str"]) for r in api.preview_rows(table)} == expected


def test_snowflake_empty_array_keeps_quoted_empty_strings(api):
    """PHPT ImportTreatValuesAsNullTest "empty-array": ,, is NULL, "" is '' (a quoted "" into a number column is
    no number then)."""
    table = typed_table(api, [{"name": "id", "basetype": "INTEGER"}, {"name": "str", "basetype": "STRING"}])
    job = load(api, table, 'id,str\n30,\n31,""\n32,"a"\n', treatValuesAsNull=[])
    assert job["status"] == "success", job
    assert {r["id"]: r["str"] for r in api.preview_rows(table)} == {"30": None, "31": "", "32": "a"}
    error = failed(load(api, table, 'id,str\n"",a\n', treatValuesAsNull=[]))
    assert error["message"].endswith("Numeric value '' is not recognized")
    resp = api.post(
        f"/tables/{table}/import-async", json={"dataFileId": api.upload("id,str\n"), "treatValuesAsNull": ["a", "b"]}
    )
    assert resp.status_code == 400


def test_non_nullable_columns_refuse_null(api):
    """A column defined nullable false and a primary key column (NOT NULL by default) refuse NULL."""
    table = typed_table(
        api,
        [
            {"name": "id", "basetype": "INTEGER"},
            {"name": "str", "definition": {"type": "VARCHAR", "nullable": False}},
            {"name": "other", "basetype": "STRING"},
        ],
        ["id"],
    )
    assert load(api, table, "id,str,other\n1,a,\n")["status"] == "success"
    for csv_text in ("id,str,other\n2,,x\n", 'id,str,other\n2,"",x\n', "id,str,other\n,a,x\n"):
        error = failed(load(api, table, csv_text, incremental=True))
        assert error["message"] == (
            "Table import error: Load error: An exception occurred while executing a query: NULL result in a "
            "non-nullable column"
        )
    # with treatValuesAsNull [] a quoted "" is a value, not NULL
    assert load(api, table, 'id,str,other\n2,"",x\n', incremental=True, treatValuesAsNull=[])["status"] == "success"
    assert {r["id"]: (r["str"], r["other"]) for r in api.preview_rows(table)} == {"1": ("a", None), "2": ("", "x")}


def test_failed_load_keeps_the_table(api):
    table = typed_table(api, [{"name": "id", "basetype": "INTEGER"}, {"name": "v", "basetype": "NUMERIC"}], ["id"])
    assert load(api, table, "id,v\n1,1.5\n2,2\n")["status"] == "success"
    before = api.get(f"/tables/{table}").json()
    failed(load(api, table, "id,v\n3,x\n"))  # a full load that fails truncates nothing
    failed(load(api, table, "id,v\n1,9\n3,x\n", incremental=True))
    after = api.get(f"/tables/{table}").json()
    assert (after["rowsCount"], after["lastImportDate"]) == (2, before["lastImportDate"])
    assert preview(api, table) == [{"id": "1", "v": "1.500000000"}, {"id": "2", "v": "2.000000000"}]


def test_incremental_and_full_loads(api, emu):
    """As on untyped tables: incremental + PK upserts (typed keys: 1.0 is the key 1), unchanged rows keep their
    _timestamp, duplicates within a load collapse; a full load truncates; without PK incremental appends."""
    table = typed_table(
        api, [{"name": "id", "basetype": "NUMERIC"}, {"name": "name", "basetype": "STRING"}], ["id"], name="pk"
    )
    assert load(api, table, "id,name\n0,zero\n24,czech\n26,czech\n26,czech\n")["status"] == "success"
    assert api.get(f"/tables/{table}").json()["rowsCount"] == 3
    emu.advance_clock(60)
    since = int(emu.now().timestamp())
    job = load(api, table, "id,name\n24.0,czech\n26,magyar\n1,new\n", incremental=True)
    assert job["status"] == "success", job
    assert job["results"]["totalRowsCount"] == 4
    names = {r["id"]: r["name"] for r in api.preview_rows(table)}
    assert names == {"0.000000000": "zero", "24.000000000": "czech", "26.000000000": "magyar", "1.000000000": "new"}
    changed = {r["id"] for r in api.preview_rows(table, changedSince=since)}
    assert changed == {"26.000000000", "1.000000000"}  # 24 is unchanged and keeps its _timestamp
    assert load(api, table, "id,name\n5,five\n")["status"] == "success"
    assert api.preview_rows(table) == [{"id": "5.000000000", "name": "five"}]

    bucket = table.rsplit(".", 1)[0]
    defined(api, bucket, {"name": "nopk", "columns": [{"name": "id", "basetype": "INTEGER"}]})
    for _ in range(2):
        assert load(api, f"{bucket}.nopk", "id\n1\n", incremental=True)["status"] == "success"
    assert api.get(f"/tables/{bucket}.nopk").json()["rowsCount"] == 2


def test_headerless_sliced_gzip_loads_with_columns(api):
    """A sliced, gzipped, header-less file (an export of another project) with columns in another order."""
    table = typed_table(
        api,
        [
            {"name": "id", "basetype": "INTEGER"},
            {"name": "amount", "basetype": "NUMERIC"},
            {"name": "note", "basetype": "STRING"},
        ],
        ["id"],
    )
    slices = ['"a","1.5","1"\n', '"","2","2"\n,"3","3"\n']
    prepared = api.upload_sliced([gzip.compress(s.encode()) for s in slices], name="typed.csv.gz")
    job = api.job_post(
        f"/tables/{table}/import-async",
        json={"dataFileId": prepared["id"], "columns": ["note", "amount", "id"], "incremental": True},
    )
    assert job["status"] == "success", job
    assert {r["id"]: (r["amount"], r["note"]) for r in api.preview_rows(table)} == {
        "1": ("1.500000000", "a"),
        "2": ("2.000000000", None),
        "3": ("3.000000000", None),
    }
    # sliced without columns: the table's columns in order
    prepared = api.upload_sliced(['"4","4","d"\n'])
    job = api.job_post(f"/tables/{table}/import-async", json={"dataFileId": prepared["id"], "incremental": True})
    assert job["status"] == "success", job
    assert api.get(f"/tables/{table}").json()["rowsCount"] == 4
    # a refused value in a slice names the slice and its line
    prepared = api.upload_sliced(
        ['"5","5","e"\n', '"6","6","f"\n"7","x1234567890123456789012345678901234567890","g"\n']
    )
    error = failed(
        api.job_post(f"/tables/{table}/import-async", json={"dataFileId": prepared["id"], "incremental": True})
    )
    assert "Numeric value 'x1234567890123456789012345678901234567890' is not recognized" in error["message"]


def test_crlf_slices_keep_null_and_empty_apart(api):
    table = typed_table(api, [{"name": "id", "basetype": "INTEGER"}, {"name": "s", "basetype": "STRING"}])
    prepared = api.upload_sliced(['1,""\r\n2,\r\n3,"a\r\nb"\r\n'])
    job = api.job_post(
        f"/tables/{table}/import-async",
        json={"dataFileId": prepared["id"], "columns": ["id", "s"], "treatValuesAsNull": []},
    )
    assert job["status"] == "success", job
    assert {r["id"]: r["s"] for r in api.preview_rows(table)} == {"1": "", "2": None, "3": "a\r\nb"}


def test_typed_table_columns_must_match(api):
    """Missing columns fail as on any table; a typed table adds no columns on import (add them first, as
    output-mapping does)."""
    table = typed_table(api, [{"name": "id", "basetype": "INTEGER"}, {"name": "s", "basetype": "STRING"}])
    error = failed(load(api, table, "id\n1\n"))
    assert error["code"] == "csvImport.columnsNotMatch"
    error = failed(load(api, table, "id,s,extra\n1,a,b\n"))
    assert error["code"] == "csvImport.columnsNotMatch"
    assert "extra" in error["message"]
    assert api.get(f"/tables/{table}").json()["columns"] == ["id", "s"]


# -- BigQuery ------------------------------------------------------------------------------------------------------------
def test_bigquery_required_field_cannot_be_null(bq_api):
    """PHPT Bigquery testLoadingNullValuesToNotNullTypedColumnsFromFile."""
    table = typed_table(
        bq_api,
        [
            {"name": "id", "definition": {"type": "INT64", "nullable": False}},
            {"name": "item", "definition": {"type": "STRING", "nullable": False}},
            {"name": "quantity", "definition": {"type": "INT64", "nullable": False}},
        ],
        ["id"],
    )
    error = failed(load(bq_api, table, 'id,item,quantity\n1,"apple",\n'))
    assert error["message"] == "Load error: Required field quantity cannot be null"


def test_bigquery_invalid_timestamp(bq_api):
    """PHPT Bigquery testInsertInvalidTypestampIsUserError (a gzipped upload; the offset of the record's line)."""
    table = typed_table(
        bq_api,
        [
            {"name": "id", "definition": {"type": "INT64", "nullable": False}},
            {"name": "timestamp", "definition": {"type": "TIMESTAMP", "nullable": False}},
        ],
        ["id"],
    )
    file_id = bq_api.upload('"id","timestamp"\n"1","00:00:00"\n', compress=True)
    error = failed(bq_api.job_post(f"/tables/{table}/import-async", json={"dataFileId": file_id}))
    assert error["message"].startswith(
        "Load error: Error while reading data, error message: Could not parse '00:00:00' as a timestamp. Required "
        "format is YYYY-MM-DD HH:MM[:SS[.SSSSSS]] or YYYY/MM/DD HH:MM[:SS[.SSSSSS]]; line_number: 2 "
        "byte_offset_to_start_of_line: 17 col"
    ), error


def test_bigquery_null_markers(bq_api):
    """PHPT Bigquery ImportTreatValuesAsNullTest: by default an unquoted empty field is NULL and "" stays '' in a
    STRING column; with treatValuesAsNull [] both are ''. An empty value in a non-STRING column is NULL."""
    table = typed_table(
        bq_api,
        [
            {"name": "Id", "definition": {"type": "INT64", "nullable": False}},
            {"name": "iso", "basetype": "STRING"},
            {"name": "n", "basetype": "NUMERIC"},
        ],
        ["Id"],
    )
    csv_text = '"Id","iso","n"\n"30",,""\n"31","",\n"32","a","1.50"\n'
    assert load(bq_api, table, csv_text)["status"] == "success"
    assert {r["Id"]: (r["iso"], r["n"]) for r in bq_api.preview_rows(table)} == {
        "30": (None, None),
        "31": ("", None),
        "32": ("a", "1.5"),
    }
    assert load(bq_api, table, csv_text, treatValuesAsNull=[])["status"] == "success"
    assert {r["Id"]: r["iso"] for r in bq_api.preview_rows(table)} == {"30": "", "31": "", "32": "a"}


@pytest.mark.parametrize(
    ("definition", "value", "message"),
    [
        ({"type": "INT64"}, "1.5", "Could not parse '1.5' as INT64 for field c (position 1)"),
        ({"type": "NUMERIC"}, "abc", "Could not parse 'abc' as NUMERIC for field c (position 1)"),
        ({"type": "BOOL"}, "maybe", "Could not parse 'maybe' as BOOL for field c (position 1)"),
        (
            {"type": "STRING", "length": "2"},
            "abc",
            "Field c: STRING(2) has maximum length 2 but got a value with length 3",
        ),
    ],
)
def test_bigquery_type_errors(bq_api, definition, value, message):
    table = typed_table(bq_api, [{"name": "id", "basetype": "INTEGER"}, {"name": "c", "definition": definition}])
    error = failed(load(bq_api, table, f"id,c\n1,{value}\n"))
    assert error["message"].startswith(f"Load error: Error while reading data, error message: {message}"), error
    assert "line_number: 2 byte_offset_to_start_of_line: 5 column_index: 1" in error["message"]


def test_untyped_tables_still_hold_no_null(api):
    api.create_table(api.create_bucket("main"), "plain", 'id,v\n1,\n2,""\n')
    assert rows_set(api.preview_rows("in.c-main.plain")) == rows_set([{"id": "1", "v": ""}, {"id": "2", "v": ""}])
    assert (
        api.import_csv("in.c-main.plain", "id,v\n3,\n", incremental=True, treatValuesAsNull=[])["status"] == "success"
    )
    assert {r["id"]: r["v"] for r in api.preview_rows("in.c-main.plain")} == {"1": "", "2": "", "3": ""}

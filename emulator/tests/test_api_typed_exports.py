"""Reading typed tables (addendum §1c, §1e): export-async and data-preview print values as the backend does (NULL as
an empty unquoted field / JSON null), where filters and orderBy compare as the column's type, rows delete by typed
filters; an export loads back into an identically defined table."""

from __future__ import annotations

import gzip

import pytest
import requests

from .conftest import Api, parse_csv_rows
from .test_api_preview import _query_filters
from .test_api_typed_loads import failed, typed_table

SF_COLUMNS = [
    {"name": "id", "basetype": "INTEGER"},
    {"name": "num", "basetype": "NUMERIC"},
    {"name": "f", "basetype": "FLOAT"},
    {"name": "b", "basetype": "BOOLEAN"},
    {"name": "d", "basetype": "DATE"},
    {"name": "ts", "basetype": "TIMESTAMP"},
    {"name": "t", "definition": {"type": "TIME"}},
    {"name": "s", "basetype": "STRING"},
]
SF_ROWS = (
    'id,num,f,b,d,ts,t,s\n1,0.123,3.14,0,1989-08-31,1989-08-31 10:11:12.5,10:00:00,"ro""man"\n'
    '2,,,,,,,""\n3,-12,123,true,2022-02-22,2022-02-22,23:59:59,"a\nb"\n'
)


def export_bytes(api: Api, table: str, **params) -> bytes:
    job = api.job_post(f"/tables/{table}/export-async", json=params)
    assert job["status"] == "success", job
    _detail, data = api.download(job["results"]["file"]["id"])
    return gzip.decompress(data) if params.get("gzip") else data


def sf_table(api: Api) -> str:
    table = typed_table(api, SF_COLUMNS, ["id"])
    job = api.import_csv(table, SF_ROWS, treatValuesAsNull=[])
    assert job["status"] == "success", job
    return table


@pytest.fixture
def bq_api(emu, s3_env):
    return Api(emu.url, emu.create_project("bq-exports", default_backend="bigquery").token)


def test_snowflake_export_format(api):
    """TIMESTAMP_FORMAT='YYYY-MM-DD HH24:MI:SS' (the fraction cut), NUMBER with its scale, booleans, NULL_IF=():
    NULL is an empty unquoted field and '' is "" (addendum §1e); values quoted as on untyped tables."""
    table = sf_table(api)
    for gz in (False, True):
        lines = sorted(export_bytes(api, table, gzip=gz).decode().split("\n")[:-1])
        assert lines[:3] == [
            '"1","0.123000000","3.14","false","1989-08-31","1989-08-31 10:11:12","10:00:00","ro""man"',
            '"2",,,,,,,""',
            '"3","-12.000000000","123","true","2022-02-22","2022-02-22 00:00:00","23:59:59","a',
        ]
    # a column subset, filters, order and limit work as on untyped tables
    data = export_bytes(api, table, columns="s,id", orderBy=[{"column": "id", "order": "DESC"}], limit=2)
    assert parse_csv_rows(data) == [["a\nb", "3"], ["", "2"]]


def test_snowflake_preview_format(api):
    """PHPT testDataPreviewForTableDefinitionBaseType: NUMERIC(38,9) 0.123 -> "0.123000000", BOOLEAN 0 -> "false",
    TIMESTAMP -> "1989-08-31 00:00:00.000", NULL -> null (ImportTypedTableTest::testImportEmptyValues)."""
    table = sf_table(api)
    resp = api.get(f"/tables/{table}/data-preview", params={"format": "json", "orderBy[0][column]": "id"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["columns"] == [c["name"] for c in SF_COLUMNS]
    values = [[cell["value"] for cell in row] for row in body["rows"]]
    assert values == [
        ["1", "0.123000000", "3.14", "false", "1989-08-31", "1989-08-31 10:11:12.500", "10:00:00", 'ro"man'],
        ["2", None, None, None, None, None, None, ""],
        ["3", "-12.000000000", "123", "true", "2022-02-22", "2022-02-22 00:00:00.000", "23:59:59", "a\nb"],
    ]
    assert all(cell["isTruncated"] is False for row in body["rows"] for cell in row)
    csv_text = api.get(f"/tables/{table}/data-preview", params={"columns": "id,num,s", "orderBy[0][column]": "id"}).text
    assert csv_text == '"id","num","s"\n"1","0.123000000","ro""man"\n"2",,""\n"3","-12.000000000","a\nb"\n'


def test_bigquery_preview_and_export_format(bq_api):
    """PHPT Bigquery testDataPreviewForTableDefinition(BaseType): NUMERIC without trailing zeros, TIMESTAMP
    "1989-08-31 00:00:00.000000+00:00", DATETIME / TIME with microseconds, FLOAT64 123 -> "123"."""
    table = typed_table(
        bq_api,
        [
            {"name": "id", "basetype": "INTEGER"},
            {"name": "num", "basetype": "NUMERIC"},
            {"name": "f", "basetype": "FLOAT"},
            {"name": "b", "basetype": "BOOLEAN"},
            {"name": "ts", "basetype": "TIMESTAMP"},
            {"name": "dt", "definition": {"type": "DATETIME"}},
            {"name": "tm", "definition": {"type": "TIME"}},
        ],
        ["id"],
    )
    job = bq_api.import_csv(
        table,
        "id,num,f,b,ts,dt,tm\n1,0.123,123,0,1989-08-31 00:00:00.000,2022-02-22 00:00:00,00:00:00\n"
        "2,,3.14,true,2022-02-22 01:00:00+01:00,,\n",
    )
    assert job["status"] == "success", job
    rows = sorted(bq_api.preview_rows(table), key=lambda r: r["id"])
    assert rows == [
        {
            "id": "1",
            "num": "0.123",
            "f": "123",
            "b": "false",
            "ts": "1989-08-31 00:00:00.000000+00:00",
            "dt": "2022-02-22 00:00:00.000000",
            "tm": "00:00:00.000000",
        },
        {
            "id": "2",
            "num": None,
            "f": "3.14",
            "b": "true",
            "ts": "2022-02-22 00:00:00.000000+00:00",
            "dt": None,
            "tm": None,
        },
    ]
    lines = sorted(export_bytes(bq_api, table).decode().splitlines())
    assert lines[1] == '"2",,"3.14","true","2022-02-22 00:00:00.000000+00:00",,'


def test_typed_where_filters(api):
    """Filters compare as the column's type (numbers as numbers, not as the untyped VARCHAR strings)."""
    table = typed_table(
        api,
        [{"name": "id", "basetype": "INTEGER"}, {"name": "d", "basetype": "DATE"}, {"name": "s", "basetype": "STRING"}],
    )
    assert api.import_csv(table, "id,d,s\n9,2022-02-21,x\n10,2022-02-22,10\n100,2022-02-23,9\n")["status"] == "success"

    def ids(*filters) -> list[str]:
        resp = api.post(f"/tables/{table}/export-async", json={"whereFilters": list(filters)})
        assert resp.status_code == 202, resp.text
        job = api.wait(resp.json())
        assert job["status"] == "success", job
        exported = sorted(row[0] for row in parse_csv_rows(api.download(job["results"]["file"]["id"])[1]))
        previewed = sorted(r["id"] for r in api.preview_rows(table, **_query_filters(list(filters))))
        assert previewed == exported
        return exported

    assert ids({"column": "id", "operator": "gt", "values": ["9"]}) == ["10", "100"]
    assert ids({"column": "id", "values": ["10.0", "9"]}) == ["10", "9"]
    assert ids({"column": "id", "operator": "ne", "values": ["10"]}) == ["100", "9"]
    assert ids({"column": "d", "operator": "ge", "values": ["2022-02-22"]}) == ["10", "100"]
    assert ids({"column": "s", "operator": "gt", "values": ["5"]}) == ["100", "9"]  # strings: "9" > "5" > "10"
    # dataType on a text column compares numbers, as on untyped tables ("x" is no number)
    assert ids({"column": "s", "operator": "gt", "values": ["5"], "dataType": "INTEGER"}) == ["10", "100"]


@pytest.mark.parametrize(
    ("flt", "message"),
    [
        # PHPT Snowflake testColumnTypesInTableDefinition
        ({"column": "id", "operator": "eq", "values": ["aaa"]}, "Numeric value 'aaa' is not recognized"),
        ({"column": "d", "operator": "eq", "values": ["12:00:00.000"]}, "Date '12:00:00.000' is not recognized"),
        ({"column": "b", "operator": "eq", "values": ["222"]}, "Boolean value '222' is not recognized"),
        ({"column": "ts", "operator": "eq", "values": ["xxx"]}, "Timestamp 'xxx' is not recognized"),
        # PHPT testDataPreviewExoticTypes
        (
            {"column": "v", "operator": "eq", "values": [""]},
            'Filtering by column "v" of type "VARIANT" is not supported by the backend "Snowflake".',
        ),
    ],
)
def test_typed_filter_errors(api, flt, message):
    table = typed_table(
        api,
        [
            {"name": "id", "basetype": "INTEGER"},
            {"name": "d", "basetype": "DATE"},
            {"name": "b", "basetype": "BOOLEAN"},
            {"name": "ts", "basetype": "TIMESTAMP"},
            {"name": "v", "definition": {"type": "VARIANT"}},
        ],
    )
    assert api.import_csv(table, "id,d,b,ts,v\n1,2022-02-22,1,2022-02-22 10:00:00,x\n")["status"] == "success"
    resp = api.get(f"/tables/{table}/data-preview", params={"format": "json", **_query_filters([flt])})
    assert resp.status_code == 400, resp.text
    assert (resp.json()["code"], resp.json()["error"]) == ("storage.backend.exception", message)
    error = failed(api.job_post(f"/tables/{table}/export-async", json={"whereFilters": [flt]}))
    assert (error["code"], error["message"]) == ("storage.backend.exception", message)


def test_typed_table_detail_marks_unfilterable_columns(api):
    table = typed_table(
        api,
        [{"name": "id", "basetype": "INTEGER"}]
        + [
            {"name": t.lower(), "definition": {"type": t}}
            for t in ("ARRAY", "OBJECT", "VARIANT", "GEOGRAPHY", "BINARY")
        ],
    )
    columns = {c["name"]: c["canBeFiltered"] for c in api.get(f"/tables/{table}").json()["definition"]["columns"]}
    assert columns == {
        "array": False,
        "binary": False,
        "geography": False,
        "id": True,
        "object": False,
        "variant": False,
    }


def test_order_by_on_typed_tables(api):
    """orderBy compares as the type; a dataType on a typed table is refused (PHPT
    testDataPreviewForTableDefinitionBaseType)."""
    table = typed_table(api, [{"name": "id", "basetype": "INTEGER"}, {"name": "f", "basetype": "FLOAT"}])
    assert api.import_csv(table, "id,f\n10,1\n9,2\n100,3\n")["status"] == "success"
    rows = api.preview_rows(table, **{"orderBy[0][column]": "id", "orderBy[0][order]": "DESC"})
    assert [r["id"] for r in rows] == ["100", "10", "9"]
    resp = api.get(
        f"/tables/{table}/data-preview",
        params={"format": "json", "orderBy[0][column]": "f", "orderBy[0][dataType]": "DOUBLE"},
    )
    assert resp.status_code == 400
    assert resp.json()["error"] == "Specifying data type for ordered column is not supported for typed tables"
    # a dataType filter on a typed number column: Snowflake's TRY_TO_NUMBER takes text only
    flt = {"column": "id", "values": ["9"], "dataType": "INTEGER"}
    error = failed(api.job_post(f"/tables/{table}/export-async", json={"whereFilters": [flt]}))
    assert error["message"] == "Specifying data type for filtered column is not supported for typed tables"


def test_rows_delete_by_typed_filters(api):
    table = typed_table(api, [{"name": "id", "basetype": "INTEGER"}, {"name": "s", "basetype": "STRING"}], ["id"])
    assert api.import_csv(table, "id,s\n1,a\n2,\n10,c\n")["status"] == "success"
    resp = api.delete(f"/tables/{table}/rows", json={"whereFilters": [{"column": "id", "values": ["1.0", "10"]}]})
    assert resp.status_code == 202
    job = api.wait(resp.json())
    assert job["status"] == "success" and job["results"] == {"deletedRows": 2}
    assert api.preview_rows(table) == [{"id": "2", "s": None}]
    resp = api.delete(f"/tables/{table}/rows", json={"whereFilters": [{"column": "id", "values": ["x"]}]})
    assert failed(api.wait(resp.json()))["message"] == "Numeric value 'x' is not recognized"


def test_export_loads_back_into_an_identical_table(api, emu, s3_env):
    """MIG SapiMigrate::migrateTable: a typed table exported (sliced, header-less) loads into an identically
    defined table of another project with columns; treatValuesAsNull [] keeps NULL and '' apart."""
    table = sf_table(api)
    job = api.job_post(f"/tables/{table}/export-async", json={"gzip": True})
    _detail, _data = api.download(job["results"]["file"]["id"])
    other = Api(emu.url, emu.create_project("migrated").token)
    target = typed_table(other, SF_COLUMNS, ["id"])
    # the export's slices, uploaded to the other project as a sliced file, as a copy does
    source = api.get(f"/files/{job['results']['file']['id']}", params={"federationToken": 1}).json()
    client = api.s3(source)
    manifest = requests.get(source["url"], timeout=30).json()
    slices = [
        client.get_object(Bucket=source["s3Path"]["bucket"], Key="/".join(e["url"].split("/")[3:]))["Body"].read()
        for e in manifest["entries"]
    ]
    prepared = other.upload_sliced(slices, name="copy.csv.gz")
    job = other.job_post(
        f"/tables/{target}/import-async",
        json={"dataFileId": prepared["id"], "columns": [c["name"] for c in SF_COLUMNS], "treatValuesAsNull": []},
    )
    assert job["status"] == "success", job
    original = sorted(api.preview_rows(table), key=lambda r: r["id"])
    copied = sorted(other.preview_rows(target), key=lambda r: r["id"])
    original[0]["ts"] = "1989-08-31 10:11:12.000"  # the export cuts the fraction of a second (addendum §1e)
    assert copied == original


def test_export_cache_tells_data_types_apart(api):
    """The export cache keys on whereFilters[].dataType too: the same filter compared as strings and as numbers
    are two exports (an untyped table)."""
    api.create_table(api.create_bucket("main"), "u", "id,n\n1,10\n2,9\n")
    flt = {"column": "n", "operator": "gt", "values": ["5"]}
    as_text = api.job_post("/tables/in.c-main.u/export-async", json={"whereFilters": [flt]})
    as_number = api.job_post(
        "/tables/in.c-main.u/export-async", json={"whereFilters": [{**flt, "dataType": "INTEGER"}]}
    )
    assert as_number["results"]["cacheHit"] is False
    assert parse_csv_rows(api.download(as_text["results"]["file"]["id"])[1]) == [["2", "9"]]
    assert sorted(parse_csv_rows(api.download(as_number["results"]["file"]["id"])[1])) == [["1", "10"], ["2", "9"]]

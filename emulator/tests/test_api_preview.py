"""data-preview: CSV (default) and JSON formats, limit, filters, validation."""

from __future__ import annotations

import pytest

from .conftest import parse_csv_rows

TABLE = "in.c-main.p"


@pytest.fixture
def table(api):
    bucket = api.create_bucket("main")
    api.create_table(bucket, "p", "id,name\nfirst,second\n")
    return TABLE


def test_preview_csv_exact_body(api, table):
    resp = api.get(f"/tables/{table}/data-preview")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/csv")
    assert resp.text == '"id","name"\n"first","second"\n'


def test_preview_json_shape(api, table):
    resp = api.get(f"/tables/{table}/data-preview", params={"format": "json"})
    assert resp.status_code == 200
    assert resp.json() == {
        "columns": ["id", "name"],
        "rows": [
            [
                {"columnName": "id", "value": "first", "isTruncated": False},
                {"columnName": "name", "value": "second", "isTruncated": False},
            ]
        ],
    }


def test_preview_json_truncation(api):
    bucket = api.create_bucket("main")
    long_value = "x" * 20000
    api.create_table(bucket, "long", f"id,text\n1,{long_value}\n")
    cell = api.get("/tables/in.c-main.long/data-preview", params={"format": "json"}).json()["rows"][0][1]
    assert cell["isTruncated"] is True
    assert len(cell["value"]) == 16384


def test_preview_limit(api):
    bucket = api.create_bucket("main")
    api.create_table(bucket, "big", "id\n" + "".join(f"{i}\n" for i in range(150)))
    lines = api.get("/tables/in.c-main.big/data-preview").text.splitlines()
    assert len(lines) == 1 + 100  # header + default limit 100
    lines = api.get("/tables/in.c-main.big/data-preview", params={"limit": 5}).text.splitlines()
    assert len(lines) == 6
    resp = api.get("/tables/in.c-main.big/data-preview", params={"limit": 1200})
    assert resp.status_code == 400
    assert resp.json()["code"] == "storage.tables.validation"
    assert "1000" in resp.json()["error"]


def test_preview_filters(api):
    bucket = api.create_bucket("main")
    api.create_table(bucket, "f", "id,c\n1,a\n2,b\n3,a\n")
    params = {"format": "json", "whereColumn": "c", "whereValues[]": ["a"], "columns": "id", "orderBy[0][column]": "id"}
    params["orderBy[0][order]"] = "DESC"
    body = api.get("/tables/in.c-main.f/data-preview", params=params).json()
    assert body["columns"] == ["id"]
    assert [r[0]["value"] for r in body["rows"]] == ["3", "1"]
    # GO-style whereFilters in the query string
    params = {
        "format": "json",
        "whereFilters[0][column]": "id",
        "whereFilters[0][operator]": "gt",
        "whereFilters[0][values][0]": "1",
    }
    body = api.get("/tables/in.c-main.f/data-preview", params=params).json()
    assert sorted(r[0]["value"] for r in body["rows"]) == ["2", "3"]
    body = api.get("/tables/in.c-main.f/data-preview", params={"format": "json", "changedSince": "-5 minutes"}).json()
    assert len(body["rows"]) == 3
    body = api.get("/tables/in.c-main.f/data-preview", params={"format": "json", "changedUntil": "-1 days"}).json()
    assert body["rows"] == []


def test_preview_errors(api, table):
    resp = api.get(f"/tables/{table}/data-preview", params={"format": "csv"})
    assert resp.status_code == 400
    assert resp.json()["code"] == "storage.tables.validation.invalidFormat"
    resp = api.get(f"/tables/{table}/data-preview", params={"whereColumn": "nope", "whereValues[]": "1"})
    assert resp.status_code == 400
    assert resp.json()["code"] == "storage.tables.validation.columnNotExists"
    resp = api.get(f"/tables/{table}/data-preview", params={"columns": "id,nope"})
    assert resp.json()["code"] == "storage.tables.validation.columnNotExists"
    resp = api.get(f"/tables/{table}/data-preview", params={"whereFilters[0][column]": "id"})
    assert resp.status_code == 400
    assert "whereFilters[0][values]" in resp.json()["error"]


CONDITIONS = "column_string,column_string_number,column_double\n" + "".join(
    f"{a},{b},{c}\n"
    for a, b, c in [
        ("first", "1", "003.123"),
        ("second", "4", "3.123"),
        ("third", "4", "0004.123"),
        ("fifth", "5", "4"),
        ("fifth", "555111", "5.1234"),
    ]
)


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        # PHPT Snowflake/WhereFilterTest: with dataType the values compare as numbers
        ([{"column": "column_string_number", "operator": "ge", "values": ["6"], "dataType": "INTEGER"}], ["fifth"]),
        (
            [{"column": "column_double", "operator": "ge", "values": ["4.123"], "dataType": "DOUBLE"}],
            ["fifth", "third"],
        ),
        (
            [
                {"column": "column_double", "operator": "ge", "values": ["4.123"], "dataType": "DOUBLE"},
                {"column": "column_string_number", "operator": "lt", "values": ["5"], "dataType": "INTEGER"},
            ],
            ["third"],
        ),
        ([{"column": "column_double", "operator": "eq", "values": ["4.000"], "dataType": "DOUBLE"}], ["fifth"]),
        # without dataType as strings, as the VARCHAR columns of the backend: "555111" < "6", "5.1234" >= "4.123"
        ([{"column": "column_string_number", "operator": "ge", "values": ["6"]}], []),
        ([{"column": "column_double", "operator": "ge", "values": ["4.123"]}], ["fifth"]),
        ([{"column": "column_double", "operator": "eq", "values": ["4.000"]}], []),
        ([{"column": "column_string", "operator": "eq", "values": ["first"]}], ["first"]),
    ],
)
def test_where_filters_compare_as_the_backend(api, where, expected):
    api.create_table(api.create_bucket("main"), "conditions", CONDITIONS)
    resp = api.get(
        "/tables/in.c-main.conditions/data-preview",
        params={"format": "json", **_query_filters(where)},
    )
    assert resp.status_code == 200, resp.text
    rows = [[c["value"] for c in row] for row in resp.json()["rows"]]
    assert sorted(row[0] for row in rows) == expected
    job = api.job_post("/tables/in.c-main.conditions/export-async", json={"whereFilters": where})
    assert job["status"] == "success", job
    assert job["operationParams"]["export"]["whereFilters"][0]["column"] == where[0]["column"]
    _detail, data = api.download(job["results"]["file"]["id"])
    assert sorted(row[0] for row in parse_csv_rows(data)) == expected


def _query_filters(where: list[dict]) -> dict:
    """GO-style ``whereFilters[0][column]=...&whereFilters[0][values][0]=...``."""
    params = {}
    for i, flt in enumerate(where):
        for key, value in flt.items():
            if key == "values":
                for j, item in enumerate(value):
                    params[f"whereFilters[{i}][values][{j}]"] = item
            else:
                params[f"whereFilters[{i}][{key}]"] = value
    return params


@pytest.mark.parametrize(
    ("where", "message"),
    [
        (
            [{"column": "column_double", "operator": "ge", "values": ["6"], "dataType": "non-existing"}],
            "Data type non-existing not recognized",
        ),
        ([{"column": "column_double", "operator": "non-existing", "values": [123]}], "Invalid where operator"),
        ("string", 'Parameter "whereFilters" should be an array, but parameter contains:\n"string"'),
        (
            {"column": "column"},
            'All items in param "whereFilters" should be an arrays, but parameter contains:\n{"column":"column"}',
        ),
    ],
)
def test_where_filter_errors(api, where, message):
    api.create_table(api.create_bucket("main"), "conditions", CONDITIONS)
    resp = api.post("/tables/in.c-main.conditions/export-async", json={"whereFilters": where})
    assert resp.status_code == 400, resp.text
    assert message in resp.json()["error"]
    assert resp.json()["code"] == "storage.tables.validation"

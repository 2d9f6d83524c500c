"""DELETE tables/{id}/rows (addendum §2): a storage job ``tableRowsDelete`` with ``results.deletedRows``; filters
are ANDed, eq / ne only, deprecated whereColumn, changedSince / changedUntil on ``_timestamp``, and no filter at
all is refused unless ``allowTruncate``."""

from __future__ import annotations

import pytest

TABLE = "in.c-main.users"
USERS = "id,name,city,sex\n1,martin,PRG,male\n2,klara,PRG,female\n3,ondra,VAN,male\n4,miro,BRA,male\n5,hidden,,male\n"


@pytest.fixture
def table(api):
    api.create_table(api.create_bucket("main"), "users", USERS)
    return TABLE


def delete(api, table, **kw) -> dict:
    resp = api.delete(f"/tables/{table}/rows", **kw)
    assert resp.status_code == 202, resp.text
    return api.wait(resp.json())


def remaining_ids(api, table) -> set[str]:
    return {row["id"] for row in api.preview_rows(table)}


def test_where_filters_job_shape_and_counts(api, table):
    resp = api.delete(
        f"/tables/{table}/rows", json={"whereFilters": [{"column": "city", "operator": "eq", "values": ["PRG"]}]}
    )
    assert resp.status_code == 202
    created = resp.json()
    assert created["operationName"] == "tableRowsDelete"
    assert created["status"] == "waiting"
    assert created["operationParams"]["request"] == {
        "changedSince": None,
        "changedUntil": None,
        "whereFilters": [{"column": "city", "operator": "eq", "values": ["PRG"]}],
    }
    job = api.wait(created)
    assert job["status"] == "success", job
    assert job["results"] == {"deletedRows": 2}
    assert remaining_ids(api, table) == {"3", "4", "5"}
    detail = api.get(f"/tables/{table}").json()
    assert detail["rowsCount"] == 3
    assert detail["lastChangeDate"] >= detail["lastImportDate"]


@pytest.mark.parametrize(
    ("params", "left"),
    [
        # PHPT DeleteRowsTest::tableDeleteRowsByFiltersData
        ({"whereColumn": "city", "whereValues": ["PRG"]}, {"3", "4", "5"}),
        ({"whereOperator": "ne", "whereColumn": "city", "whereValues": ["PRG"]}, {"1", "2"}),
        ({"whereOperator": "ne", "whereColumn": "city", "whereValues": ["PRG", "BRA"]}, {"1", "2", "4"}),
        ({"whereFilters": [{"column": "city", "values": ["PRG"]}]}, {"3", "4", "5"}),
        (
            {"whereFilters": [{"column": "city", "values": ["PRG", "VAN"]}, {"column": "sex", "values": ["male"]}]},
            {"2", "4", "5"},
        ),
        ({"whereFilters": [{"column": "city", "operator": "ne", "values": ["PRG", "VAN"]}]}, {"1", "2", "3"}),
        ({"allowTruncate": True}, set()),
        ({"allowTruncate": True, "whereFilters": [{"column": "sex", "values": ["female"]}]}, {"1", "3", "4", "5"}),
    ],
)
def test_filters_as_json_body_and_as_query(api, emu, table, params, left):
    assert delete(api, table, json=params)["status"] == "success"
    assert remaining_ids(api, table) == left
    # the deprecated form: the same parameters in the query string (PHP deleteTableRowsAsQuery)
    other = api.with_token(emu.create_project("rows-as-query").token)
    other.create_table(other.create_bucket("main"), "users", USERS)
    query = {"allowTruncate": "1"} if params.get("allowTruncate") else {}
    for key, value in params.items():
        if key == "whereFilters":
            for i, flt in enumerate(value):
                query[f"whereFilters[{i}][column]"] = flt["column"]
                if "operator" in flt:
                    query[f"whereFilters[{i}][operator]"] = flt["operator"]
                query[f"whereFilters[{i}][values][]"] = flt["values"]
        elif key == "whereValues":
            query["whereValues[]"] = value
        elif key != "allowTruncate":
            query[key] = value
    job = delete(other, TABLE, params=query)
    assert job["status"] == "success", job
    assert remaining_ids(other, TABLE) == left


def test_form_encoded_body(api, table):
    job = delete(api, table, data={"whereFilters[0][column]": "id", "whereFilters[0][values][]": ["1", "5"]})
    assert job["results"] == {"deletedRows": 2}
    assert remaining_ids(api, table) == {"2", "3", "4"}


def test_no_filter_without_allow_truncate_is_refused(api, table):
    for kwargs in ({}, {"json": {}}, {"json": {"whereFilters": []}}, {"json": {"allowTruncate": False}}):
        resp = api.delete(f"/tables/{table}/rows", **kwargs)
        assert resp.status_code == 400, resp.text
        assert resp.json()["code"] == "storage.tables.validation.unintendedTruncation"
        assert resp.json()["error"] == (
            "No filters have been specified, which will truncate the table, but the `allowTruncate` parameter was "
            "not set."
        )
    assert len(api.preview_rows(table)) == 5


def test_where_column_without_values(api, table):
    resp = api.delete(f"/tables/{table}/rows", json={"whereColumn": "city"})
    assert resp.status_code == 400
    assert resp.json()["code"] == "validation.failed"
    assert resp.json()["error"] == 'Invalid request:\n - whereColumn: "To use "whereColumn" specify "whereValues"."'


@pytest.mark.parametrize(
    "flt",
    [
        {"column": "city"},  # values missing
        {"column": "city", "values": []},
        {"column": "id", "operator": "gt", "values": ["1"]},  # eq / ne only on delete
        {"column": "id", "values": ["1"], "dataType": "TEXT"},
        {"column": "city", "valuesByTableInWorkspace": {"workspaceId": 1, "table": "t", "column": "c"}},
    ],
)
def test_invalid_filters_are_400(api, table, flt):
    resp = api.delete(f"/tables/{table}/rows", json={"whereFilters": [flt]})
    assert resp.status_code == 400, resp.text
    assert resp.json()["code"] == "storage.tables.validation"
    assert len(api.preview_rows(table)) == 5


def test_unknown_filter_column_fails_the_job(api, table):
    job = delete(api, table, json={"whereFilters": [{"column": "notExistingColumn", "values": ["PRG"]}]})
    assert job["status"] == "error"
    assert job["error"]["code"] == "storage.tables.columnNotExists"
    assert job["error"]["message"] == (
        'Filter validation: Cannot filter by column "notExistingColumn", column does not exist'
    )


def test_data_type_compares_numbers_without_it_strings(api, table):
    no_type = delete(api, table, json={"whereFilters": [{"column": "id", "values": ["1.0", "02"]}]})
    assert no_type["results"] == {"deletedRows": 0}
    typed = {"column": "id", "values": ["1.0", "02"], "dataType": "INTEGER"}
    job = delete(api, table, json={"whereFilters": [typed]})
    assert job["results"] == {"deletedRows": 2}
    assert job["operationParams"]["request"]["whereFilters"] == [{**typed, "operator": "eq"}]
    assert remaining_ids(api, table) == {"3", "4", "5"}


def test_changed_since_and_until_follow_the_server_clock(api, emu, table):
    emu.advance_clock(3600)  # an hour later ...
    assert api.import_csv(table, "id,name,city,sex\n6,new,OST,female\n", incremental=True)["status"] == "success"
    half_an_hour_ago = int(emu.now().timestamp()) - 1800
    assert delete(api, table, json={"changedUntil": "-2 hours"})["results"] == {"deletedRows": 0}
    # since half an hour ago: only the row of the last import
    job = delete(api, table, json={"changedSince": half_an_hour_ago})
    assert job["results"] == {"deletedRows": 1}
    assert job["operationParams"]["request"]["changedSince"] == half_an_hour_ago
    assert remaining_ids(api, table) == {"1", "2", "3", "4", "5"}
    job = delete(api, table, data={"changedUntil": "-30 minutes"})
    assert job["results"] == {"deletedRows": 5}
    assert api.preview_rows(table) == []


def test_rows_delete_needs_write_permission(api, emu, project, table):
    reader = api.with_token(emu.create_token(project.id, bucket_permissions={"in.c-main": "read"}))
    resp = reader.delete(f"/tables/{table}/rows", json={"allowTruncate": True})
    assert resp.status_code == 403
    assert len(api.preview_rows(table)) == 5

"""POST tables/{id}/columns and DELETE tables/{id}/columns/{name} (addendum §4), on untyped tables: storage jobs
``tableColumnAdd`` / ``tableColumnDelete``."""

from __future__ import annotations

import pytest

from .conftest import rows_set

TABLE = "in.c-main.t"


@pytest.fixture
def table(api):
    api.create_table(api.create_bucket("main"), "t", "id,name\n1,a\n2,b\n")
    return TABLE


def add(api, table, **kw) -> dict:
    resp = api.post(f"/tables/{table}/columns", **kw)
    assert resp.status_code == 202, resp.text
    return api.wait(resp.json())


def drop(api, table, column, **kw) -> dict:
    resp = api.delete(f"/tables/{table}/columns/{column}", **kw)
    assert resp.status_code == 202, resp.text
    return api.wait(resp.json())


def columns(api, table) -> list[str]:
    return api.get(f"/tables/{table}").json()["columns"]


def test_add_column_appends_it_empty_and_loadable(api, table):
    resp = api.post(f"/tables/{table}/columns", json={"name": "State"})
    assert resp.status_code == 202
    assert resp.json()["operationName"] == "tableColumnAdd"
    assert resp.json()["status"] == "waiting"
    job = api.wait(resp.json())
    assert job["status"] == "success", job
    assert columns(api, table) == ["id", "name", "State"]
    assert rows_set(api.preview_rows(table)) == rows_set(
        [{"id": "1", "name": "a", "State": ""}, {"id": "2", "name": "b", "State": ""}]
    )
    assert api.import_csv(table, "id,name,State\n3,c,CZ\n", incremental=True)["status"] == "success"
    assert {r["id"]: r["State"] for r in api.preview_rows(table)} == {"1": "", "2": "", "3": "CZ"}
    # the form encoding works too
    assert add(api, table, data={"name": "form"})["status"] == "success"
    assert columns(api, table) == ["id", "name", "State", "form"]


def test_added_column_name_is_webalized(api, table):
    for requested in ("_abc-def----ghi_", "žluťoučký    kůň", "lot__of_____underscores____"):
        job = add(api, table, json={"name": requested})
        assert job["status"] == "success"
        assert job["operationParams"]["name"] == requested  # the request, as sent
    assert columns(api, table) == ["id", "name", "abc_def_ghi", "zlutoucky_kun", "lot__of_____underscores"]


def test_existing_column_in_any_case_fails_the_job(api, table):
    for name in ("id", "ID"):
        job = add(api, table, json={"name": name})
        assert job["status"] == "error"
        assert job["error"]["code"] == "storage.tables.columnAlreadyExists"
    assert columns(api, table) == ["id", "name"]


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ({"name": ""}, "storage.tables.invalidColumnName", None),
        ({"name": "x" * 65}, "storage.tables.invalidColumnName", None),
        ({"name": "---"}, "storage.tables.invalidColumnName", None),
        ({}, "storage.tables.validation", None),
        (
            {"name": "typed", "definition": {"type": "VARCHAR"}},
            "storage.tables.validation",
            "Invalid parameters - definition: This field was not expected.",
        ),
        (
            {"name": "typed", "basetype": "STRING"},
            "storage.tables.validation",
            "Invalid parameters - basetype: This field was not expected.",
        ),
    ],
)
def test_add_column_request_errors(api, table, body, code, message):
    resp = api.post(f"/tables/{table}/columns", json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["code"] == code
    if message is not None:
        assert resp.json()["error"] == message
    assert columns(api, table) == ["id", "name"]


def test_delete_column_drops_data_and_column_metadata(api, table):
    add(api, table, json={"name": "extra"})
    api.post(
        f"/tables/{table}/metadata",
        json={"provider": "user", "columnsMetadata": {"extra": [{"key": "k", "value": "v"}]}},
    )
    before = api.job_post(f"/tables/{table}/export-async", json={})
    resp = api.delete(f"/tables/{table}/columns/extra")
    assert resp.status_code == 202
    assert resp.json()["operationName"] == "tableColumnDelete"
    assert api.wait(resp.json())["status"] == "success"
    detail = api.get(f"/tables/{table}").json()
    assert detail["columns"] == ["id", "name"]
    assert detail["columnMetadata"] == []
    assert rows_set(api.preview_rows(table)) == rows_set([{"id": "1", "name": "a"}, {"id": "2", "name": "b"}])
    after = api.job_post(f"/tables/{table}/export-async", json={})
    assert after["results"]["cacheHit"] is False  # the table changed: a new export file
    assert after["results"]["file"]["id"] != before["results"]["file"]["id"]


def test_primary_key_column_cannot_be_deleted_even_with_force(api, table):
    assert api.job_post(f"/tables/{table}/primary-key", json={"columns": ["id"]})["status"] == "success"
    for params in ({}, {"force": "true"}):
        job = drop(api, table, "id", params=params)
        assert job["status"] == "error"
        assert job["error"]["code"] == "storage.tables.cannotDeletePrimaryKeyColumn"
    assert columns(api, table) == ["id", "name"]


def test_last_and_unknown_columns_cannot_be_deleted(api, table):
    assert drop(api, table, "name", params={"force": "false"})["status"] == "success"
    job = drop(api, table, "id")
    assert job["status"] == "error"
    assert job["error"]["code"] == "storage.tables.cannotDeleteLastColumn"
    job = drop(api, table, "nope")
    assert job["status"] == "error"
    assert job["error"]["code"] == "storage.tables.columnNotExists"
    assert columns(api, table) == ["id"]
    assert api.delete(f"/tables/{table}/columns/id", params={"force": "maybe"}).status_code == 400


def test_column_changes_need_write_permission(api, emu, project, table):
    reader = api.with_token(emu.create_token(project.id, bucket_permissions={"in.c-main": "read"}))
    assert reader.post(f"/tables/{table}/columns", json={"name": "x"}).status_code == 403
    assert reader.delete(f"/tables/{table}/columns/name").status_code == 403
    assert api.post("/tables/in.c-main.nope/columns", json={"name": "x"}).status_code == 404

"""Primary key add/remove, table metadata (rows delete: test_api_rows_delete.py, columns: test_api_columns.py)."""

from __future__ import annotations

import pytest

TABLE = "in.c-main.t"


@pytest.fixture
def table(api):
    bucket = api.create_bucket("main")
    api.create_table(bucket, "t", "id,name,c\n1,a,x\n2,b,y\n3,b,x\n")
    return TABLE


def test_add_and_remove_primary_key(api, table):
    resp = api.post(f"/tables/{table}/primary-key", json={"columns": ["id"]})
    assert resp.status_code == 202
    job = api.wait(resp.json())
    assert job["operationName"] == "tablePrimaryKeyAdd"
    assert job["status"] == "success", job
    assert api.get(f"/tables/{table}").json()["primaryKey"] == ["id"]
    # a second key -> error
    job = api.job_post(f"/tables/{table}/primary-key", json={"columns": ["name"]})
    assert job["status"] == "error"
    assert job["error"]["code"] == "storage.tables.primaryKeyAlreadyExists"
    resp = api.delete(f"/tables/{table}/primary-key")
    assert resp.status_code == 202
    job = api.wait(resp.json())
    assert job["operationName"] == "tablePrimaryKeyDelete"
    assert job["status"] == "success"
    assert api.get(f"/tables/{table}").json()["primaryKey"] == []


def test_primary_key_form_encoded(api, table):
    job = api.job_post(f"/tables/{table}/primary-key", data={"columns[]": ["id", "name"]})
    assert job["status"] == "success", job
    assert api.get(f"/tables/{table}").json()["primaryKey"] == ["id", "name"]


def test_primary_key_duplicates(api, table):
    job = api.job_post(f"/tables/{table}/primary-key", json={"columns": ["name"]})
    assert job["status"] == "error"
    assert job["error"]["code"] == "storage.tables.primaryKeyDuplicateValues"
    assert job["error"]["message"] == "Cannot create new primary key, duplicate values in primary key columns"
    assert api.get(f"/tables/{table}").json()["primaryKey"] == []


def test_primary_key_unknown_column_and_missing(api, table):
    # PHPT AlterTableTest::testAddInvalidPrimaryKey / testPrimaryKeyAddRequiredParam
    for columns in (["nope"], ["id", "nope"]):
        job = api.job_post(f"/tables/{table}/primary-key", json={"columns": columns})
        assert job["status"] == "error"
        assert job["error"]["code"] == "storage.validation.primaryKey"
    for body in ({}, {"columns": []}):
        resp = api.post(f"/tables/{table}/primary-key", json=body)
        assert resp.status_code == 400
        assert resp.json()["code"] == "storage.validation.primaryKey"
    assert api.get(f"/tables/{table}").json()["primaryKey"] == []


def test_table_metadata(api, table):
    resp = api.post(
        f"/tables/{table}/metadata",
        json={
            "provider": "user",
            "metadata": [{"key": "KBC.description", "value": "hello"}],
            "columnsMetadata": {"id": [{"key": "KBC.datatype.basetype", "value": "INTEGER"}]},
        },
    )
    assert resp.status_code == 200, resp.text
    items = resp.json()
    assert [(m["key"], m["value"], m["provider"]) for m in items] == [("KBC.description", "hello", "user")]
    assert isinstance(items[0]["id"], str)
    # upsert by (provider, key)
    api.post(
        f"/tables/{table}/metadata", json={"provider": "user", "metadata": [{"key": "KBC.description", "value": "v2"}]}
    )
    api.post(
        f"/tables/{table}/metadata", json={"provider": "other", "metadata": [{"key": "KBC.description", "value": "o"}]}
    )
    listed = api.get(f"/tables/{table}/metadata").json()
    assert sorted((m["provider"], m["value"]) for m in listed) == [("other", "o"), ("user", "v2")]
    detail = api.get(f"/tables/{table}").json()
    assert len(detail["metadata"]) == 2
    assert detail["columnMetadata"]["id"][0]["value"] == "INTEGER"
    # delete
    metadata_id = next(m["id"] for m in listed if m["provider"] == "other")
    assert api.delete(f"/tables/{table}/metadata/{metadata_id}").status_code == 204
    assert len(api.get(f"/tables/{table}/metadata").json()) == 1
    assert api.delete(f"/tables/{table}/metadata/{metadata_id}").status_code == 404


def test_table_metadata_validation(api, table):
    assert api.post(f"/tables/{table}/metadata", json={"metadata": [{"key": "k", "value": "v"}]}).status_code == 400
    resp = api.post(f"/tables/{table}/metadata", json={"provider": "user", "metadata": [{"value": "v"}]})
    assert resp.status_code == 400
    resp = api.post(
        f"/tables/{table}/metadata",
        json={"provider": "user", "columnsMetadata": {"nope": [{"key": "k", "value": "v"}]}},
    )
    assert resp.status_code == 400


def test_metadata_form_encoded_like_kbcstorage_old_clients(api, table):
    resp = api.post(
        f"/tables/{table}/metadata",
        data={"provider": "user", "metadata[0][key]": "k", "metadata[0][value]": "v"},
    )
    assert resp.status_code == 200
    assert resp.json()[0]["key"] == "k"


def test_columns_metadata_as_a_list_like_kbcstorage(api, table):
    """sapi-python-client sends ``columnsMetadata`` as ``[{key, value, columnName}]``; the API accepts it."""
    resp = api.post(
        f"/tables/{table}/metadata",
        json={
            "provider": "user",
            "metadata": [{"key": "KBC.description", "value": "d"}],
            "columnsMetadata": [
                {"key": "KBC.datatype.basetype", "value": "INTEGER", "columnName": "id"},
                {"key": "KBC.description", "value": "the id", "columnName": "id"},
                {"key": "KBC.datatype.basetype", "value": "STRING", "columnName": "name"},
            ],
        },
    )
    assert resp.status_code == 200, resp.text
    column_metadata = api.get(f"/tables/{table}").json()["columnMetadata"]
    assert [(m["key"], m["value"]) for m in column_metadata["id"]] == [
        ("KBC.datatype.basetype", "INTEGER"),
        ("KBC.description", "the id"),
    ]
    assert [(m["key"], m["value"]) for m in column_metadata["name"]] == [("KBC.datatype.basetype", "STRING")]
    for bad in ([{"key": "k", "value": "v"}], [{"key": "k", "value": "v", "columnName": "nope"}]):
        resp = api.post(f"/tables/{table}/metadata", json={"provider": "user", "columnsMetadata": bad})
        assert resp.status_code == 400, bad

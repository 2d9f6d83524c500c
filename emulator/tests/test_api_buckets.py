"""Buckets: create (the "c-" rule), list, detail, duplicates, delete."""

from __future__ import annotations


def test_create_bucket_shape(api, emu):
    resp = api.post("/buckets", json={"name": "test", "stage": "in", "description": "d"})
    assert resp.status_code == 201
    body = resp.json()
    assert body["id"] == "in.c-test"
    assert body["name"] == "c-test"
    assert body["displayName"] == "test"
    assert body["stage"] == "in"
    assert body["description"] == "d"
    assert body["backend"] == "snowflake"
    assert body["uri"] == f"{emu.url}/v2/storage/buckets/in.c-test"
    assert body["tables"] == f"{emu.url}/v2/storage/buckets/in.c-test/tables"
    for key in ("created", "lastChangeDate", "isReadOnly", "dataSizeBytes", "rowsCount", "isMaintenance", "sharing"):
        assert key in body


def test_create_bucket_form_encoded_strips_c_prefix(api):
    resp = api.post("/buckets", data={"name": "c-formed", "stage": "out"})
    assert resp.status_code == 201
    assert resp.json()["id"] == "out.c-formed"


def test_duplicate_bucket_400(api):
    api.create_bucket("dup")
    resp = api.post("/buckets", json={"name": "dup", "stage": "in"})
    assert resp.status_code == 400
    body = resp.json()
    assert body["code"] == "storage.buckets.alreadyExists"
    assert body["error"] in (
        'The display name "dup" already exists in project.',
        'The bucket "in.c-dup" already exists.',
    )


def test_duplicate_display_name_400(api):
    api.create_bucket("one")
    resp = api.post("/buckets", json={"name": "two", "displayName": "one"})
    assert resp.status_code == 400
    assert resp.json()["error"] == 'The display name "one" already exists in project.'


def test_invalid_bucket_params(api):
    assert api.post("/buckets", json={"stage": "in"}).json()["code"] == "storage.buckets.validation"
    assert api.post("/buckets", json={"name": "a b"}).status_code == 400
    assert api.post("/buckets", json={"name": "x", "stage": "sys"}).status_code == 400
    assert (
        api.post("/buckets", json={"name": "x", "backend": "bigquery"}).json()["code"] == "storage.buckets.validation"
    )


def test_list_and_detail(api):
    api.create_bucket("b1")
    api.create_bucket("b2", stage="out")
    buckets = api.get("/buckets").json()
    assert [b["id"] for b in buckets] == ["in.c-b1", "out.c-b2"]
    assert "metadata" not in buckets[0]
    assert "metadata" in api.get("/buckets", params={"include": "metadata"}).json()[0]
    detail = api.get("/buckets/in.c-b1").json()
    assert detail["id"] == "in.c-b1"
    assert detail["metadata"] == []


def test_bucket_not_found(api):
    resp = api.get("/buckets/in.c-nope")
    assert resp.status_code == 404
    assert resp.json()["code"] == "storage.buckets.notFound"


def test_delete_empty_bucket(api):
    api.create_bucket("gone")
    resp = api.delete("/buckets/in.c-gone")
    assert resp.status_code == 204
    assert api.get("/buckets/in.c-gone").status_code == 404


def test_delete_not_empty_without_force(api):
    bucket = api.create_bucket("full")
    api.create_table(bucket, "t", "id\n1\n")
    resp = api.delete(f"/buckets/{bucket}")
    assert resp.status_code == 400
    body = resp.json()
    assert body["code"] == "buckets.deleteNotEmpty"
    assert body["error"] == "Only empty buckets can be deleted. There are 1 tables in the bucket."
    resp = api.delete(f"/buckets/{bucket}", params={"force": "true"})
    assert resp.status_code == 204
    assert api.get("/tables/in.c-full.t").status_code == 404


def test_delete_bucket_async_job(api):
    bucket = api.create_bucket("asyncgone")
    api.create_table(bucket, "t", "id\n1\n")
    resp = api.delete(f"/buckets/{bucket}", params={"async": "true"})
    assert resp.status_code == 202
    job = api.wait(resp.json())
    assert job["operationName"] == "bucketDelete"
    assert job["status"] == "error"
    assert job["error"]["code"] == "buckets.deleteNotEmpty"
    resp = api.delete(f"/buckets/{bucket}", params={"async": "true", "force": "true"})
    assert api.wait(resp.json())["status"] == "success"
    assert api.get(f"/buckets/{bucket}").status_code == 404


def test_bucket_detail_lists_tables_and_attributes(api, emu):
    """The detail has the bucket's tables as a list and ``attributes`` (the list and the create answer keep the
    tables URL); sapi-python-client's live ``test_bucket_detail`` expects ``tables == []``, ``attributes == []``."""
    created = api.post("/buckets", json={"name": "det", "description": "Test bucket"}).json()
    assert created["attributes"] == []
    detail = api.get("/buckets/in.c-det").json()
    assert detail["tables"] == [] and detail["attributes"] == []
    assert detail["description"] == "Test bucket"
    api.create_table("in.c-det", "b", "id,v\n1,x\n")
    api.create_table("in.c-det", "a", "id\n1\n")
    detail = api.get("/buckets/in.c-det").json()
    assert [t["id"] for t in detail["tables"]] == ["in.c-det.a", "in.c-det.b"]
    assert detail["tables"][1]["rowsCount"] == 1 and "columns" not in detail["tables"][1]
    assert "bucket" not in detail["tables"][0]
    with_columns = api.get("/buckets/in.c-det", params={"include": "columns,metadata"}).json()
    assert with_columns["tables"][1]["columns"] == ["id", "v"] and with_columns["tables"][1]["metadata"] == []
    listed = next(b for b in api.get("/buckets").json() if b["id"] == "in.c-det")
    assert listed["tables"] == f"{emu.url}/v2/storage/buckets/in.c-det/tables"

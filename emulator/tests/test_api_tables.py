"""Tables: create via files/prepare + upload + tables-async, listing, detail, delete."""

from __future__ import annotations

import gzip

from .conftest import rows_set

CSV = "id,name\n1,alice\n2,bob\n"


def test_create_table_full_flow(api, emu):
    bucket = api.create_bucket("main")
    file_id = api.upload(CSV)
    resp = api.post(
        f"/buckets/{bucket}/tables-async", json={"name": "users", "dataFileId": file_id, "primaryKey": "id"}
    )
    assert resp.status_code == 202
    job = resp.json()
    assert job["status"] == "waiting"
    assert job["operationName"] == "tableCreate"
    assert job["url"] == f"{emu.url}/v2/storage/jobs/{job['id']}"
    assert job["operationParams"]["source"] == {"fileId": str(file_id), "type": "file"}
    done = api.wait(job)
    assert done["status"] == "success", done
    table = done["results"]
    assert table["id"] == "in.c-main.users"
    assert table["columns"] == ["id", "name"]
    assert table["primaryKey"] == ["id"]
    assert table["rowsCount"] == 2
    assert rows_set(api.preview_rows("in.c-main.users")) == rows_set(
        [{"id": "1", "name": "alice"}, {"id": "2", "name": "bob"}]
    )


def test_create_table_form_encoded(api):
    bucket = api.create_bucket("main")
    file_id = api.upload(CSV)
    job = api.job_post(
        f"/buckets/{bucket}/tables-async", data={"name": "t", "dataFileId": str(file_id), "primaryKey": "id,name"}
    )
    assert job["status"] == "success", job
    assert job["results"]["primaryKey"] == ["id", "name"]


def test_primary_key_array_400(api):
    bucket = api.create_bucket("main")
    file_id = api.upload(CSV)
    resp = api.post(f"/buckets/{bucket}/tables-async", json={"name": "t", "dataFileId": file_id, "primaryKey": ["id"]})
    assert resp.status_code == 400
    assert resp.json()["code"] == "storage.validation.primaryKey"
    resp = api.post(f"/buckets/{bucket}/tables-async", data={"name": "t", "dataFileId": file_id, "primaryKey[]": "id"})
    assert resp.status_code == 400
    assert resp.json()["code"] == "storage.validation.primaryKey"


def test_table_name_with_dot_400(api):
    bucket = api.create_bucket("main")
    file_id = api.upload(CSV)
    resp = api.post(f"/buckets/{bucket}/tables-async", json={"name": "a.b", "dataFileId": file_id})
    assert resp.status_code == 400
    assert resp.json()["code"] == "storage.tables.validation"


def test_existing_table_name(api):
    bucket = api.create_bucket("main")
    api.create_table(bucket, "t", CSV)
    file_id = api.upload(CSV)
    resp = api.post(f"/buckets/{bucket}/tables-async", json={"name": "t", "dataFileId": file_id})
    assert resp.status_code == 400
    assert resp.json()["code"] == "storage.buckets.tableAlreadyExists"


def test_create_errors_in_job(api, emu):
    bucket = api.create_bucket("main")

    def create(file_id, **extra):
        return api.job_post(f"/buckets/{bucket}/tables-async", json={"name": "x", "dataFileId": file_id, **extra})

    # unknown file
    job = create(999999)
    assert job["status"] == "error"
    assert job["error"]["code"] == "storage.files.notFound"
    assert job["error"]["exceptionId"]
    # a file of another project
    other = emu.create_project("other")
    other_file = api.with_token(other.token).upload(CSV)
    assert create(other_file)["error"]["code"] == "storage.files.notFound"
    # prepared, never uploaded
    prepared = api.prepare("never.csv")
    assert create(prepared["id"])["error"]["code"] == "storage.fileNotUploaded"
    # empty file
    assert create(api.upload(""))["error"]["code"] == "storage.tables.validation.noColumns"
    # unknown / case-mismatched primary key column
    job = create(api.upload(CSV), primaryKey="ID")
    assert job["error"]["code"] == "storage.tables.validation.invalidPrimaryKeyColumns"
    # sliced (header-less) file
    sliced = api.upload_sliced(["1,a\n", "2,b\n"])
    assert create(sliced["id"])["error"]["code"] == "storage.tables.validation.invalidColumnName"
    assert api.get(f"/tables/{bucket}.x").status_code == 404


def test_column_names_are_sanitized(api):
    bucket = api.create_bucket("main")
    table = api.create_table(bucket, "t", '"with spaces","ščřščž","_with_underscore"\n1,2,3\n')
    assert table["columns"] == ["with_spaces", "scrscz", "with_underscore"]


def test_create_from_gzip(api):
    bucket = api.create_bucket("main")
    file_id = api.upload(CSV, name="data.csv", compress=True)
    job = api.job_post(f"/buckets/{bucket}/tables-async", json={"name": "gz", "dataFileId": file_id})
    assert job["status"] == "success", job
    assert job["results"]["rowsCount"] == 2
    # gzip detected by magic bytes, whatever the name
    file_id = api.upload(gzip.compress(CSV.encode()), name="plain.csv")
    job = api.job_post(f"/buckets/{bucket}/tables-async", json={"name": "gz2", "dataFileId": file_id})
    assert job["status"] == "success", job


def test_pk_duplicates_collapse_on_create(api):
    bucket = api.create_bucket("main")
    table = api.create_table(bucket, "t", "id,v\n1,a\n1,b\n2,c\n", primary_key="id")
    assert table["rowsCount"] == 2


def test_table_detail_shape(api, emu):
    bucket = api.create_bucket("main")
    api.create_table(bucket, "t", CSV, primary_key="id")
    detail = api.get("/tables/in.c-main.t").json()
    assert detail["uri"] == f"{emu.url}/v2/storage/tables/in.c-main.t"
    assert detail["name"] == "t"
    assert detail["displayName"] == "t"
    assert detail["columns"] == ["id", "name"]
    assert detail["primaryKey"] == ["id"]
    assert detail["metadata"] == []
    assert detail["columnMetadata"] == []
    assert detail["bucket"]["id"] == "in.c-main"
    assert detail["isAlias"] is False
    assert detail["tableType"] == "table"
    assert detail["lastImportDate"] is not None
    assert detail["rowsCount"] == 2
    # the size of stored data: non-zero for rows, summed up in the bucket, growing with more rows
    assert detail["dataSizeBytes"] > 0
    assert detail["bucket"]["dataSizeBytes"] == detail["dataSizeBytes"]
    assert api.import_csv("in.c-main.t", "id,name\n3,carol\n", incremental=True)["status"] == "success"
    assert api.get("/tables/in.c-main.t").json()["dataSizeBytes"] > detail["dataSizeBytes"]
    assert api.get("/tables/in.c-main.nope").json()["code"] == "storage.tables.notFound"
    assert (
        api.get("/tables/in.c-main.nope").json()["error"] == 'The table "nope" was not found in the bucket "in.c-main"'
    )


def test_tables_listing_includes(api):
    bucket = api.create_bucket("main")
    api.create_table(bucket, "t", CSV)
    default = api.get("/tables").json()[0]
    assert "bucket" in default and "columns" not in default
    with_columns = api.get("/tables", params={"include": "columns"}).json()[0]
    assert with_columns["columns"] == ["id", "name"]
    bare = api.get("/tables", params={"include": ""}).json()[0]
    assert "bucket" not in bare and "metadata" not in bare and "columnMetadata" not in bare
    in_bucket = api.get(f"/buckets/{bucket}/tables", params={"include": "columns"}).json()
    assert [t["id"] for t in in_bucket] == ["in.c-main.t"]
    assert in_bucket[0]["columns"] == ["id", "name"]


def test_delete_table(api):
    bucket = api.create_bucket("main")
    api.create_table(bucket, "t", CSV)
    assert api.delete("/tables/in.c-main.t").status_code == 204
    assert api.get("/tables/in.c-main.t").status_code == 404
    assert api.delete("/tables/in.c-main.t").status_code == 404

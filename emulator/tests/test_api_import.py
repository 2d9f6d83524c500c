"""import-async: full load, incremental upsert / append, new and missing columns, sliced files, gzip."""

from __future__ import annotations

import gzip

import pytest

from .conftest import rows_set


@pytest.fixture
def table(api):
    bucket = api.create_bucket("main")
    api.create_table(bucket, "t", "id,name\na,b\nc,d\n", primary_key="id")
    return "in.c-main.t"


def test_import_job_shape_and_full_load(api, table):
    file_id = api.upload("id,name\nx,1\n")
    resp = api.post(f"/tables/{table}/import-async", json={"dataFileId": file_id}, headers={"X-KBC-RunId": "123.45"})
    assert resp.status_code == 202
    job = resp.json()
    assert job["operationName"] == "tableImport"
    assert job["tableId"] == table
    assert job["runId"] == "123.45"
    params = job["operationParams"]["params"]
    assert params["incremental"] is False
    assert params["withoutHeaders"] is False
    assert params["columns"] == []
    assert params["delimiter"] == ","
    assert params["enclosure"] == '"'
    assert job["operationParams"]["source"] == {"fileId": str(file_id), "type": "file"}
    done = api.wait(job)
    assert done["status"] == "success", done
    results = done["results"]
    assert results["importedColumns"] == ["id", "name"]
    assert results["warnings"] == []
    assert results["transaction"] is None
    assert results["totalRowsCount"] == 1
    assert "totalDataSizeBytes" in results
    assert rows_set(api.preview_rows(table)) == rows_set([{"id": "x", "name": "1"}])


def test_incremental_upsert_with_pk(api, table):
    job = api.import_csv(table, "id,name\na,updated\nnew,value\nnew,value\n", incremental=True)
    assert job["status"] == "success", job
    assert rows_set(api.preview_rows(table)) == rows_set(
        [{"id": "c", "name": "d"}, {"id": "a", "name": "updated"}, {"id": "new", "name": "value"}]
    )


def test_incremental_append_without_pk(api):
    bucket = api.create_bucket("main")
    api.create_table(bucket, "log", "id,name\n1,a\n")
    api.import_csv("in.c-main.log", "id,name\n1,a\n", incremental=True)
    assert api.get("/tables/in.c-main.log").json()["rowsCount"] == 2


def test_import_updates_dates(api, table):
    before = api.get(f"/tables/{table}").json()
    api.import_csv(table, "id,name\nz,z\n", incremental=True)
    after = api.get(f"/tables/{table}").json()
    assert after["lastImportDate"] >= before["lastImportDate"]
    assert after["rowsCount"] == 3


def test_new_columns_are_added(api, table):
    job = api.import_csv(table, "id,name,code\nq,w,e\n", incremental=True)
    assert job["status"] == "success", job
    assert job["results"]["importedColumns"] == ["id", "name", "code"]
    assert api.get(f"/tables/{table}").json()["columns"] == ["id", "name", "code"]


def test_missing_columns_job_error(api, table):
    job = api.import_csv(table, "id\nq\n")
    assert job["status"] == "error"
    assert job["error"]["code"] == "csvImport.columnsNotMatch"
    assert job["error"]["exceptionId"]
    assert "Missing columns: name" in job["error"]["message"]
    assert job["results"]["missingColumns"] == ["name"]
    assert job["results"]["expectedColumns"] == ["id", "name"]


def test_header_is_case_sensitive(api, table):
    job = api.import_csv(table, "ID,NAME\nq,w\n")
    assert job["status"] == "error"
    assert job["error"]["code"] == "csvImport.columnsNotMatch"


def test_columns_param_means_no_header(api, table):
    file_id = api.upload("n1,i1\n")
    job = api.job_post(
        f"/tables/{table}/import-async", data={"dataFileId": file_id, "columns[]": ["name", "id"], "incremental": 1}
    )
    assert job["status"] == "success", job
    assert {"id": "i1", "name": "n1"} in api.preview_rows(table)


def test_without_headers_uses_table_order(api, table):
    file_id = api.upload("k,v\n")
    job = api.job_post(
        f"/tables/{table}/import-async", json={"dataFileId": file_id, "withoutHeaders": True, "incremental": True}
    )
    assert job["status"] == "success", job
    assert {"id": "k", "name": "v"} in api.preview_rows(table)


def test_sliced_import_with_manifest(api, table):
    prepared = api.upload_sliced(["s1,x\n", "s2,y\n"])
    job = api.job_post(f"/tables/{table}/import-async", json={"dataFileId": prepared["id"], "columns": ["id", "name"]})
    assert job["status"] == "success", job
    assert rows_set(api.preview_rows(table)) == rows_set([{"id": "s1", "name": "x"}, {"id": "s2", "name": "y"}])
    # without columns, the slices are header-less data in table column order
    prepared = api.upload_sliced(["s3,z\n"])
    job = api.job_post(f"/tables/{table}/import-async", json={"dataFileId": prepared["id"], "incremental": True})
    assert job["status"] == "success", job
    assert {"id": "s3", "name": "z"} in api.preview_rows(table)


def test_sliced_gzip_slices(api, table):
    prepared = api.upload_sliced([gzip.compress(b"g1,a\n"), gzip.compress(b"g2,b\n")], name="gz.csv.gz")
    job = api.job_post(f"/tables/{table}/import-async", json={"dataFileId": prepared["id"], "columns": ["id", "name"]})
    assert job["status"] == "success", job
    assert rows_set(api.preview_rows(table)) == rows_set([{"id": "g1", "name": "a"}, {"id": "g2", "name": "b"}])


def test_crlf_file_cut_into_slices_with_line_breaks_in_quoted_values(api, table):
    """A CRLF CSV with line breaks inside quoted values, cut at record boundaries: every slice is valid CSV, also
    the ones whose first line break is inside quotes."""
    slices = ['r1,"a\nb"\r\nr2,"c\r\nd"\r\n', 'r3,x\r\nr4,"e\nf"\r\n', 'r5,"g\nh"\r\n']
    prepared = api.upload_sliced(slices)
    job = api.job_post(f"/tables/{table}/import-async", json={"dataFileId": prepared["id"], "columns": ["id", "name"]})
    assert job["status"] == "success", job
    expected = {"r1": "a\nb", "r2": "c\r\nd", "r3": "x", "r4": "e\nf", "r5": "g\nh"}
    assert {r["id"]: r["name"] for r in api.preview_rows(table)} == expected
    # the same gzipped, and as one file with a header
    prepared = api.upload_sliced([gzip.compress(s.encode()) for s in slices], name="crlf.csv.gz")
    job = api.job_post(f"/tables/{table}/import-async", json={"dataFileId": prepared["id"], "columns": ["id", "name"]})
    assert job["status"] == "success", job
    job = api.import_csv(table, "id,name\r\n" + "".join(slices[2:] + slices[:2]))
    assert job["status"] == "success", job
    assert {r["id"]: r["name"] for r in api.preview_rows(table)} == expected


def test_sliced_without_manifest(api, table):
    prepared = api.upload_sliced(["s1,x\n"], manifest=False)
    job = api.job_post(f"/tables/{table}/import-async", json={"dataFileId": prepared["id"], "columns": ["id", "name"]})
    assert job["status"] == "error"
    assert job["error"]["code"] == "storage.manifestFileMissing"


def test_manifest_entry_missing(api, table):
    prepared = api.prepare("broken.csv", isSliced=True)
    params = prepared["uploadParams"]
    manifest = {"entries": [{"url": f"s3://{params['bucket']}/{params['key']}part-missing", "mandatory": True}]}
    import json

    api.put_object(prepared, params["key"] + "manifest", json.dumps(manifest).encode())
    job = api.job_post(f"/tables/{table}/import-async", json={"dataFileId": prepared["id"], "columns": ["id", "name"]})
    assert job["status"] == "error"
    assert job["error"]["code"] == "storage.importFileMissing"


def test_file_not_uploaded(api, table):
    prepared = api.prepare("never.csv")
    job = api.job_post(f"/tables/{table}/import-async", json={"dataFileId": prepared["id"]})
    assert job["status"] == "error"
    assert job["error"]["code"] == "storage.fileNotUploaded"


def test_gzip_import(api, table):
    file_id = api.upload("id,name\ngz,1\n", compress=True)
    job = api.job_post(f"/tables/{table}/import-async", json={"dataFileId": file_id})
    assert job["status"] == "success", job
    assert api.preview_rows(table) == [{"id": "gz", "name": "1"}]


def test_import_parameter_errors(api, table):
    file_id = api.upload("id,name\n1,2\n")
    resp = api.post(f"/tables/{table}/import-async", json={})
    assert resp.status_code == 400
    resp = api.post(f"/tables/{table}/import-async", json={"dataFileId": file_id, "delimiter": "/t"})
    assert resp.status_code == 400
    assert resp.json()["code"] == "invalidCsv"
    resp = api.post(f"/tables/{table}/import-async", json={"dataFileId": file_id, "treatValuesAsNull": ["", "NULL"]})
    assert resp.status_code == 400
    assert "1 element or less" in resp.json()["error"]
    assert api.post("/tables/in.c-main.missing/import-async", json={"dataFileId": file_id}).status_code == 404


def test_kbcstorage_style_form_import(api, table):
    """kbcstorage sends form fields (and its columns as primaryKey[], which the API ignores)."""
    file_id = api.upload("id,name\nf,1\n")
    job = api.job_post(
        f"/tables/{table}/import-async",
        data={
            "dataFileId": str(file_id),
            "delimiter": ",",
            "enclosure": '"',
            "escapedBy": "",
            "incremental": "1",
            "withoutHeaders": "0",
        },
    )
    assert job["status"] == "success", job
    assert job["operationParams"]["params"]["incremental"] is True
    assert {"id": "f", "name": "1"} in api.preview_rows(table)

"""export-async: results shape, sliced header-less file, manifest, gzip, filters, caching, validation."""

from __future__ import annotations

import gzip
import json
import time

import pytest
import requests

from .conftest import parse_csv_rows

ROWS = [
    ["1", "alice", "CZ", "10"],
    ["2", "bob", "US", "20"],
    ["3", "carol", "CZ", "30"],
    ["4", "dan", "DE", "40"],
]
CSV = "id,name,country,amount\n" + "".join(",".join(r) + "\n" for r in ROWS)
TABLE = "in.c-main.people"


@pytest.fixture
def table(api):
    bucket = api.create_bucket("main")
    api.create_table(bucket, "people", CSV, primary_key="id")
    return TABLE


def export(api, table_id=TABLE, **params) -> dict:
    job = api.job_post(f"/tables/{table_id}/export-async", json=params)
    assert job["status"] == "success", job
    return job


def exported_rows(api, job) -> list[list[str]]:
    detail, data = api.download(job["results"]["file"]["id"])
    if detail["name"].endswith(".gz"):
        # slices are gzip members; their concatenation is one valid gzip stream
        data = gzip.decompress(data)
    return parse_csv_rows(data)


def test_export_job_and_results_shape(api, table):
    resp = api.post(f"/tables/{table}/export-async", json={})
    assert resp.status_code == 202
    job = resp.json()
    assert job["operationName"] == "tableExport"
    assert job["status"] == "waiting"
    export_params = job["operationParams"]["export"]
    assert export_params["format"] == "rfc"
    assert export_params["gzipOutput"] is False
    assert export_params["fileType"] == "csv"
    done = api.wait(job)
    assert done["status"] == "success"
    assert set(done["results"]) == {"file", "cacheHit"}
    assert set(done["results"]["file"]) == {"id"}
    assert done["results"]["cacheHit"] is False
    assert isinstance(done["results"]["file"]["id"], int)


def test_export_file_is_sliced_headerless_quoted(api, table):
    job = export(api)
    file_id = job["results"]["file"]["id"]
    detail = api.get(f"/files/{file_id}", params={"federationToken": 1}).json()
    assert detail["isSliced"] is True
    assert detail["name"] == "in.c-main.people.csv"
    assert "table-export" in detail["tags"]
    assert detail["maxAgeDays"] == 2
    assert detail["provider"] == "aws"
    assert set(detail["s3Path"]) == {"bucket", "key"}
    assert set(detail["credentials"]) >= {"AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"}
    manifest = requests.get(detail["url"], timeout=10).json()
    assert manifest["entries"]
    for entry in manifest["entries"]:
        assert entry["url"].startswith(f"s3://{detail['s3Path']['bucket']}/{detail['s3Path']['key']}")
        assert entry["mandatory"] is True
    _, data = api.download(file_id)
    text = data.decode()
    assert text.endswith("\n")
    for line in text.splitlines():
        assert line.startswith('"') and line.endswith('"')
    assert sorted(parse_csv_rows(data)) == sorted(ROWS)


def test_export_gzip(api, table):
    job = export(api, gzip=True)
    detail = api.get(f"/files/{job['results']['file']['id']}").json()
    assert detail["name"] == "in.c-main.people.csv.gz"
    assert sorted(exported_rows(api, job)) == sorted(ROWS)


def test_export_columns_and_limit(api, table):
    job = export(api, columns="name,id", limit=2, orderBy=[{"column": "id", "order": "DESC"}])
    assert exported_rows(api, job) == [["dan", "4"], ["carol", "3"]]


def test_export_where_column(api, table):
    job = api.job_post(f"/tables/{table}/export-async", data={"whereColumn": "country", "whereValues[]": ["CZ", "DE"]})
    assert sorted(r[0] for r in exported_rows(api, job)) == ["1", "3", "4"]
    job = export(api, whereColumn="country", whereValues=["CZ"], whereOperator="ne")
    assert sorted(r[0] for r in exported_rows(api, job)) == ["2", "4"]


def test_export_where_filters(api, table):
    job = export(
        api,
        whereFilters=[
            {"column": "country", "operator": "eq", "values": ["CZ", "US"]},
            {"column": "amount", "operator": "ge", "values": ["20"]},
        ],
    )
    assert sorted(r[0] for r in exported_rows(api, job)) == ["2", "3"]


def test_export_changed_since(api, table):
    time.sleep(1.1)
    marker = int(time.time())
    time.sleep(1.1)
    api.import_csv(table, "id,name,country,amount\n9,zed,CZ,90\n", incremental=True)
    job = export(api, changedSince=str(marker))
    assert exported_rows(api, job) == [["9", "zed", "CZ", "90"]]
    job = export(api, changedUntil=str(marker))
    assert sorted(r[0] for r in exported_rows(api, job)) == ["1", "2", "3", "4"]
    job = export(api, changedSince="-1 hour")
    assert len(exported_rows(api, job)) == 5


def test_export_cache(api, table):
    first = export(api, columns="id,name")
    second = api.post(f"/tables/{table}/export-async", json={"columns": "id,name"}, headers={"X-KBC-RunId": "777"})
    second = api.wait(second.json())
    assert second["results"]["cacheHit"] is True
    assert second["results"]["file"]["id"] == first["results"]["file"]["id"]
    runs = api.get(f"/files/{first['results']['file']['id']}").json()["runIds"]
    assert "777" in runs
    # other params -> new file
    other = export(api, columns="id,name", gzip=True)
    assert other["results"]["cacheHit"] is False
    assert other["results"]["file"]["id"] != first["results"]["file"]["id"]
    # data change -> new file
    api.import_csv(table, "id,name,country,amount\n5,eve,SE,50\n", incremental=True)
    third = export(api, columns="id,name")
    assert third["results"]["cacheHit"] is False
    assert third["results"]["file"]["id"] != first["results"]["file"]["id"]


def test_export_validation_400(api, table):
    def post(body):
        return api.post(f"/tables/{table}/export-async", json=body)

    resp = post({"columns": ["id", "name"]})
    assert resp.status_code == 400
    assert resp.json()["code"] == "storage.tables.validation"
    resp = post({"format": "csv"})
    assert resp.status_code == 400
    assert resp.json()["code"] == "storage.tables.validation.invalidFormat"
    resp = post({"whereColumn": "id", "whereValues": ["1"], "whereOperator": "neq"})
    assert resp.status_code == 400
    resp = post({"whereFilters": [{"column": "id", "operator": "eq"}]})
    assert resp.status_code == 400
    assert resp.json()["code"] == "storage.tables.validation"
    assert resp.json()["error"] == 'Invalid request:\n - whereFilters[0][values]: "This field is missing."'
    resp = post({"whereFilters": [{"column": "id", "operator": "like", "values": ["1"]}]})
    assert resp.status_code == 400
    resp = post({"changedSince": "not a date"})
    assert resp.status_code == 400
    resp = post({"limit": "abc"})
    assert resp.status_code == 400


def test_export_unknown_column_is_job_error(api, table):
    job = api.job_post(f"/tables/{table}/export-async", json={"columns": "id,nope"})
    assert job["status"] == "error"
    assert job["error"]["code"] == "storage.tables.validation.columnNotExists"


def test_export_empty_result_has_slice_and_manifest(api, table):
    job = export(api, whereColumn="country", whereValues=["XX"])
    detail, data = api.download(job["results"]["file"]["id"])
    assert data == b""
    manifest = requests.get(detail["url"], timeout=10).json()
    assert len(manifest["entries"]) >= 1


def test_manifest_object_is_at_key_plus_manifest(api, table):
    job = export(api)
    detail = api.get(f"/files/{job['results']['file']['id']}", params={"federationToken": "true"}).json()
    client = api.s3(detail)
    body = client.get_object(Bucket=detail["s3Path"]["bucket"], Key=detail["s3Path"]["key"] + "manifest")["Body"]
    assert json.loads(body.read())["entries"]

"""Shared fixtures of the emulator tests: ONE emulator per session, a fresh project per test.

Tests talk to the emulator like a client would: plain ``requests`` against ``emu.url`` and boto3 uploads with the
credentials that ``files/prepare`` returns (the S3 endpoint comes from ``AWS_ENDPOINT_URL_S3``, as in a client
process started with ``emu.env``).
"""

from __future__ import annotations

import gzip as gzip_module
import itertools
import json
import os
import time

import boto3
import pytest
import requests

from emulator import Emulator
from emulator.jobs import DEFAULT_PARALLELISM

_names = itertools.count(1)


@pytest.fixture(scope="session")
def emu():
    # EMULATOR_TEST_WORKDIR keeps the working directory (moto log, DuckDB file) for debugging
    with Emulator(seed=1, workdir=os.environ.get("EMULATOR_TEST_WORKDIR") or None) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _reset_emulator(emu):
    """Every test starts with no faults, no job delay, the default jobs parallelism, no maintenance and the real
    time, whatever the previous one did."""
    yield
    emu.faults.clear()
    emu.job_delay = 0.0
    emu.jobs_parallelism = DEFAULT_PARALLELISM
    emu.set_maintenance(False)
    emu.reset_clock()


@pytest.fixture
def s3_env(emu, monkeypatch):
    for key, value in emu.env.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    return emu.env


@pytest.fixture
def project(emu):
    return emu.create_project(f"test-project-{next(_names)}")


@pytest.fixture
def api(emu, project, s3_env):
    return Api(emu.url, project.token)


class Api:
    """A tiny Storage API client for tests (no retries, no magic: every call is one HTTP request)."""

    def __init__(self, url: str, token: str | None):
        self.url = url.rstrip("/")
        self.token = token
        self.session = requests.Session()

    def headers(self, extra=None) -> dict:
        headers = {}
        if self.token is not None:
            headers["X-StorageApi-Token"] = self.token
        headers.update(extra or {})
        return headers

    def request(self, method: str, path: str, *, headers=None, **kwargs) -> requests.Response:
        return self.session.request(method, self.url + "/v2/storage" + path, headers=self.headers(headers), **kwargs)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def with_token(self, token: str | None) -> Api:
        return Api(self.url, token)

    # jobs -----------------------------------------------------------------------------------------------------
    def wait(self, job: dict | int, timeout: float = 30) -> dict:
        job_id = job["id"] if isinstance(job, dict) else job
        deadline = time.monotonic() + timeout
        while True:
            resp = self.get(f"/jobs/{job_id}")
            assert resp.status_code == 200, resp.text
            body = resp.json()
            assert body["status"] in ("waiting", "processing", "success", "error"), body
            if body["status"] in ("success", "error"):
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} did not finish: {body}")
            time.sleep(0.02)

    def ok(self, job: dict | int) -> dict:
        result = self.wait(job)
        assert result["status"] == "success", result
        return result

    def job_post(self, path, **kw) -> dict:
        resp = self.post(path, **kw)
        assert resp.status_code == 202, resp.text
        return self.wait(resp.json())

    # files ----------------------------------------------------------------------------------------------------
    def prepare(self, name="data.csv", **params) -> dict:
        body = {"name": name, "federationToken": True, **params}
        resp = self.post("/files/prepare", json=body)
        assert resp.status_code == 201, resp.text
        return resp.json()

    @staticmethod
    def s3(prepared: dict):
        creds = prepared["uploadParams"]["credentials"] if "uploadParams" in prepared else prepared["credentials"]
        return boto3.client(
            "s3",
            region_name=prepared["region"],
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
        )

    def put_object(self, prepared: dict, key: str, data: bytes) -> None:
        params = prepared["uploadParams"]
        extra = {}
        if prepared["isEncrypted"]:
            extra["ServerSideEncryption"] = params["x-amz-server-side-encryption"]
        self.s3(prepared).put_object(Bucket=params["bucket"], Key=key, Body=data, **extra)

    def upload(self, data: str | bytes, name="data.csv", *, compress=False) -> int:
        raw = data.encode() if isinstance(data, str) else data
        if compress:
            raw = gzip_module.compress(raw)
            name = name if name.endswith(".gz") else name + ".gz"
        prepared = self.prepare(name, sizeBytes=len(raw))
        self.put_object(prepared, prepared["uploadParams"]["key"], raw)
        return prepared["id"]

    def upload_sliced(self, slices: list[str | bytes], name="sliced.csv", *, manifest=True) -> dict:
        prepared = self.prepare(name, isSliced=True)
        params = prepared["uploadParams"]
        entries = []
        for index, data in enumerate(slices):
            key = f"{params['key']}part{index:03d}"
            self.put_object(prepared, key, data.encode() if isinstance(data, str) else data)
            entries.append({"url": f"s3://{params['bucket']}/{key}", "mandatory": True})
        if manifest:
            self.put_object(prepared, params["key"] + "manifest", json.dumps({"entries": entries}).encode())
        return prepared

    def download(self, file_id: int) -> tuple[dict, bytes]:
        """Download a file like kbcstorage does: detail with federationToken, manifest via ``url``, slices via
        boto3 in manifest order. Returns (file detail, concatenated bytes)."""
        resp = self.get(f"/files/{file_id}", params={"federationToken": 1})
        assert resp.status_code == 200, resp.text
        detail = resp.json()
        client = self.s3(detail)
        bucket = detail["s3Path"]["bucket"]
        if not detail["isSliced"]:
            body = client.get_object(Bucket=bucket, Key=detail["s3Path"]["key"])["Body"].read()
            return detail, body
        manifest = requests.get(detail["url"], timeout=30).json()
        chunks = []
        for entry in manifest["entries"]:
            key = "/".join(entry["url"].split("/")[3:])
            chunks.append(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        return detail, b"".join(chunks)

    # buckets and tables ----------------------------------------------------------------------------------------
    def create_bucket(self, name="main", stage="in") -> str:
        resp = self.post("/buckets", json={"name": name, "stage": stage})
        assert resp.status_code == 201, resp.text
        return resp.json()["id"]

    def create_table(self, bucket_id: str, name: str, csv_text: str, primary_key: str | None = None) -> dict:
        file_id = self.upload(csv_text)
        body = {"name": name, "dataFileId": file_id}
        if primary_key is not None:
            body["primaryKey"] = primary_key
        job = self.job_post(f"/buckets/{bucket_id}/tables-async", json=body)
        assert job["status"] == "success", job
        return job["results"]

    def import_csv(self, table_id: str, csv_text: str | bytes, **params) -> dict:
        file_id = self.upload(csv_text)
        return self.job_post(f"/tables/{table_id}/import-async", json={"dataFileId": file_id, **params})

    def preview_rows(self, table_id: str, **params) -> list[dict]:
        resp = self.get(f"/tables/{table_id}/data-preview", params={"format": "json", "limit": 1000, **params})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        return [{cell["columnName"]: cell["value"] for cell in row} for row in body["rows"]]


def rows_set(rows: list[dict]) -> set[tuple]:
    return {tuple(sorted(r.items())) for r in rows}


def parse_csv_rows(data: bytes) -> list[list[str]]:
    import csv
    import io

    return list(csv.reader(io.StringIO(data.decode("utf-8"))))

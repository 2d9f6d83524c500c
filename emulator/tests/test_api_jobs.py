"""Storage jobs: shape, the four statuses, job_delay, per-table serialization, listing."""

from __future__ import annotations

import re
import time

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}$")
STATUSES = {"waiting", "processing", "success", "error"}


def _table(api):
    bucket = api.create_bucket("main")
    api.create_table(bucket, "t", "id,v\n1,a\n", primary_key="id")
    return "in.c-main.t"


def test_job_detail_shape(api, emu):
    table = _table(api)
    resp = api.post(f"/tables/{table}/export-async", json={}, headers={"X-KBC-RunId": "run-1"})
    job = api.wait(resp.json())
    assert set(job) >= {
        "id",
        "status",
        "url",
        "tableId",
        "operationName",
        "operationParams",
        "createdTime",
        "startTime",
        "endTime",
        "runId",
        "results",
        "creatorToken",
        "metrics",
    }
    assert isinstance(job["id"], int)
    assert job["runId"] == "run-1"
    assert job["tableId"] == table
    for key in ("createdTime", "startTime", "endTime"):
        assert TIMESTAMP.match(job[key]), job[key]
    assert set(job["creatorToken"]) == {"id", "description"}
    assert set(job["metrics"]) >= {"inBytes", "outBytes"}
    assert "error" not in job


def test_job_not_found(api, emu):
    assert api.get("/jobs/99999999").status_code == 404
    other = emu.create_project("other")
    table = _table(api)
    job_id = api.post(f"/tables/{table}/export-async", json={}).json()["id"]
    assert api.with_token(other.token).get(f"/jobs/{job_id}").status_code == 404


def test_job_delay_makes_statuses_observable(api, emu):
    table = _table(api)
    emu.job_delay = 1.0
    resp = api.post(f"/tables/{table}/export-async", json={})
    job_id = resp.json()["id"]
    assert resp.json()["status"] == "waiting"
    seen = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        body = api.get(f"/jobs/{job_id}").json()
        assert body["status"] in STATUSES
        if not seen or seen[-1] != body["status"]:
            seen.append(body["status"])
        if body["status"] in ("success", "error"):
            break
        time.sleep(0.05)
    assert seen == ["waiting", "processing", "success"]
    assert body["startTime"] is not None and body["endTime"] is not None


def test_same_table_jobs_are_serialized(api, emu):
    table = _table(api)
    emu.job_delay = 0.4
    file_a = api.upload("id,v\n2,b\n")
    file_b = api.upload("id,v\n3,c\n")
    started = time.monotonic()
    job_a = api.post(f"/tables/{table}/import-async", json={"dataFileId": file_a, "incremental": True}).json()
    job_b = api.post(f"/tables/{table}/import-async", json={"dataFileId": file_b, "incremental": True}).json()
    time.sleep(0.3)
    assert api.get(f"/jobs/{job_b['id']}").json()["status"] == "waiting"
    done_a = api.wait(job_a)
    done_b = api.wait(job_b)
    assert done_a["status"] == done_b["status"] == "success"
    assert time.monotonic() - started >= 0.8
    assert done_a["endTime"] <= done_b["startTime"]
    assert api.get(f"/tables/{table}").json()["rowsCount"] == 3


def test_jobs_on_different_tables_run_in_parallel(api, emu):
    bucket = api.create_bucket("par")
    api.create_table(bucket, "a", "id\n1\n")
    api.create_table(bucket, "b", "id\n1\n")
    emu.job_delay = 1.0
    started = time.monotonic()
    job_a = api.post(f"/tables/{bucket}.a/export-async", json={}).json()
    job_b = api.post(f"/tables/{bucket}.b/export-async", json={}).json()
    api.ok(job_a)
    api.ok(job_b)
    assert time.monotonic() - started < 1.8  # one after the other would take >= 2 s


def test_jobs_list_newest_first_and_paging(api, emu):
    table = _table(api)
    ids = [api.post(f"/tables/{table}/export-async", json={"limit": i}).json()["id"] for i in range(1, 4)]
    listed = [j["id"] for j in api.get("/jobs").json()]
    assert listed[:3] == sorted(ids, reverse=True)
    assert all(j["status"] in STATUSES for j in api.get("/jobs").json())
    page = [j["id"] for j in api.get("/jobs", params={"limit": 1, "offset": 1}).json()]
    assert page == [sorted(ids, reverse=True)[1]]
    other = emu.create_project("other-jobs")
    assert api.with_token(other.token).get("/jobs").json() == []

"""Injected faults, as a plain ``requests`` client sees them."""

from __future__ import annotations

import time

import pytest
import requests


def test_status_fault_with_retry_after(api, emu):
    emu.faults.add("GET /v2/storage/buckets", kind="status", status=503, retry_after=7, times=1)
    resp = api.get("/buckets")
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "7"
    assert resp.json()  # a JSON body
    assert api.get("/buckets").status_code == 200  # times=1


def test_status_fault_429(api, emu):
    emu.faults.add("POST /v2/storage/files/prepare", kind="status", status=429, retry_after=1, times=1)
    resp = api.post("/files/prepare", json={"name": "x.csv"})
    assert resp.status_code == 429
    assert resp.headers["Retry-After"] == "1"


def test_reset_fault_is_a_connection_error(api, emu):
    emu.faults.add("GET /v2/storage/tokens/verify", kind="reset", times=1)
    with pytest.raises(requests.ConnectionError):
        requests.get(api.url + "/v2/storage/tokens/verify", headers=api.headers(), timeout=10)
    # the server survives and the next request is served
    assert requests.get(api.url + "/v2/storage/tokens/verify", headers=api.headers(), timeout=10).status_code == 200


def test_slow_fault(api, emu):
    emu.faults.add("GET /v2/storage/tokens/verify", kind="slow", delay=0.5, times=1)
    started = time.monotonic()
    resp = api.get("/tokens/verify")
    assert resp.status_code == 200
    assert time.monotonic() - started >= 0.5
    with pytest.raises(requests.Timeout):
        emu.faults.add("GET /v2/storage/tokens/verify", kind="slow", delay=1.0, times=1)
        requests.get(api.url + "/v2/storage/tokens/verify", headers=api.headers(), timeout=0.3)


def test_job_error_fault(api, emu):
    bucket = api.create_bucket("main")
    api.create_table(bucket, "t", "id\n1\n")
    emu.faults.add("POST /v2/storage/tables/*/export-async", kind="job_error", code="storage.jobs.failed", times=1)
    resp = api.post("/tables/in.c-main.t/export-async", json={})
    assert resp.status_code == 202
    job = api.wait(resp.json())
    assert job["status"] == "error"
    assert job["error"]["code"] == "storage.jobs.failed"
    assert job["error"]["exceptionId"]
    assert api.ok(api.post("/tables/in.c-main.t/export-async", json={}).json())["status"] == "success"


def test_random_faults_are_counted(api, emu):
    before = emu.faults.injected["total"]
    emu.faults.random(1.0, kinds=["502"], endpoint="GET /v2/storage/buckets")
    resp = api.get("/buckets")
    assert resp.status_code == 502
    assert resp.json()["exceptionId"]
    assert emu.faults.injected["total"] == before + 1


def test_maintenance_fault_body(api, emu):
    emu.faults.add("GET /v2/storage/jobs", kind="status", status=503, maintenance=True, retry_after=5, times=1)
    resp = api.get("/jobs")
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "5"
    assert resp.json()["status"] == "maintenance"


def test_late_faults_apply_the_request_then_lose_the_response(api, emu):
    """late-502 / late-reset: the server acted (the bucket exists) but the client saw an error or a reset."""
    emu.faults.add("POST /v2/storage/buckets", kind="status", status=502, late=True, times=1)
    resp = api.post("/buckets", json={"name": "late1", "stage": "in"})
    assert resp.status_code == 502
    assert api.get("/buckets/in.c-late1").status_code == 200
    emu.faults.add("POST /v2/storage/buckets", kind="reset", late=True, times=1)
    with pytest.raises(requests.ConnectionError):
        requests.post(
            api.url + "/v2/storage/buckets", json={"name": "late2", "stage": "in"}, headers=api.headers(), timeout=10
        )
    assert api.get("/buckets/in.c-late2").status_code == 200
    labels = emu.faults.report()["by_label"]
    assert labels.get("late-502", 0) >= 1 and labels.get("late-reset", 0) >= 1


def test_late_fault_cannot_be_503_or_429():
    from emulator.faults import Fault

    for status in (503, 429):
        with pytest.raises(ValueError, match="late"):
            Fault(kind="status", status=status, late=True)

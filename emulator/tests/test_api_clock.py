"""The server clock: ``Emulator.advance_clock`` / ``POST /_emulator/clock`` let time pass without sleeping, and
every timestamp of the API follows it; ``created`` tells a dropped-and-recreated table apart."""

from __future__ import annotations

from datetime import datetime, timedelta

import requests

HOUR = 3600


def parse(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z")


def test_every_server_timestamp_follows_the_clock(api, emu):
    later = emu.now() + timedelta(seconds=HOUR)
    assert emu.advance_clock(HOUR) >= later
    bucket = api.create_bucket("main")
    assert parse(api.get(f"/buckets/{bucket}").json()["created"]) >= later.replace(microsecond=0)
    file_id = api.upload("id,name\n1,a\n")
    assert parse(api.get(f"/files/{file_id}").json()["created"]) >= later.replace(microsecond=0)
    job = api.job_post(f"/buckets/{bucket}/tables-async", json={"name": "t", "dataFileId": file_id})
    for key in ("createdTime", "startTime", "endTime"):
        assert parse(job[key]) >= later.replace(microsecond=0), key
    detail = api.get(f"/tables/{bucket}.t").json()
    for key in ("created", "lastImportDate", "lastChangeDate"):
        assert parse(detail[key]) >= later.replace(microsecond=0), key
    # the rows' _timestamp is server time too: relative and absolute changedSince both see the rows
    assert len(api.preview_rows(f"{bucket}.t", changedSince="-10 minutes")) == 1
    real_now = int(datetime.now().timestamp())
    assert len(api.preview_rows(f"{bucket}.t", changedSince=real_now + HOUR // 2)) == 1
    assert api.preview_rows(f"{bucket}.t", changedUntil=real_now + HOUR // 2) == []
    # an hour passes: the rows are older than half an hour now
    emu.advance_clock(HOUR)
    assert api.preview_rows(f"{bucket}.t", changedSince="-30 minutes") == []
    assert len(api.preview_rows(f"{bucket}.t", changedSince="-90 minutes")) == 1
    api.post(f"/tables/{bucket}.t/metadata", json={"provider": "user", "metadata": [{"key": "k", "value": "v"}]})
    metadata = api.get(f"/tables/{bucket}.t/metadata").json()
    assert parse(metadata[0]["timestamp"]) >= (later + timedelta(seconds=HOUR)).replace(microsecond=0)


def test_recreated_table_has_a_newer_created_even_in_the_same_second(api):
    bucket = api.create_bucket("main")
    first = api.create_table(bucket, "t", "id\n1\n")["created"]
    assert api.delete(f"/tables/{bucket}.t").status_code == 204
    second = api.create_table(bucket, "t", "id\n1\n")["created"]
    assert parse(second) > parse(first)
    assert api.get(f"/tables/{bucket}.t").json()["created"] == second


def test_control_endpoint(emu, project):
    url = emu.url + "/_emulator/clock"
    before = requests.get(url, timeout=10).json()
    assert before["offsetSeconds"] == 0
    emu.set_maintenance(True)  # the control endpoint is no Storage API: maintenance and faults do not apply
    emu.faults.add("*", kind="status", status=500)
    resp = requests.post(url, json={"advanceSeconds": 90}, timeout=10)
    assert resp.status_code == 200, resp.text
    assert resp.json()["offsetSeconds"] == 90
    assert parse(resp.json()["now"]) >= parse(before["now"]) + timedelta(seconds=90)
    assert requests.post(url, data={"advanceSeconds": "10"}, timeout=10).json()["offsetSeconds"] == 100
    for bad in ({"advanceSeconds": -1}, {"advanceSeconds": "soon"}, {}):
        resp = requests.post(url, json=bad, timeout=10)
        assert resp.status_code == 400, bad
        assert resp.json()["code"] == "storage.validation"
    assert requests.put(url, timeout=10).status_code == 405
    assert requests.get(emu.url + "/_emulator/nothing", timeout=10).status_code == 404
    assert emu.now() >= datetime.now().astimezone() + timedelta(seconds=99)

"""files/prepare, detail (federationToken), listing and paging, delete, refresh."""

from __future__ import annotations

import re

import requests

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}$")


def test_prepare_shape(api, project):
    resp = api.post(
        "/files/prepare",
        json={"name": "my data.csv", "sizeBytes": 10, "federationToken": True, "tags": ["a", "b"]},
        headers={"X-KBC-RunId": "42"},
    )
    assert resp.status_code == 201
    body = resp.json()
    assert isinstance(body["id"], int)
    assert TIMESTAMP.match(body["created"])
    assert body["isPublic"] is False
    assert body["isSliced"] is False
    assert body["isEncrypted"] is True
    assert body["name"] == "my_data.csv"
    assert body["sizeBytes"] == 10
    assert body["tags"] == ["a", "b"]
    assert body["maxAgeDays"] == 15
    assert body["provider"] == "aws"
    assert body["region"] == "us-east-1"
    assert body["runId"] == "42"
    assert body["runIds"] == ["42"]
    assert set(body["creatorToken"]) == {"id", "description"}
    assert body["url"].startswith("http")
    params = body["uploadParams"]
    assert params["key"].startswith(f"exp-15/{project.id}/files/")
    assert params["key"].endswith(f"{body['id']}.my_data.csv")
    assert params["acl"] == "private"
    assert params["x-amz-server-side-encryption"] == "AES256"
    assert set(params["credentials"]) >= {"AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"}


def test_prepare_form_tags_and_permanent(api):
    resp = api.post(
        "/files/prepare", data={"name": "f.csv", "tags[]": ["x", "y"], "isPermanent": "1", "isEncrypted": "0"}
    )
    assert resp.status_code == 201
    body = resp.json()
    assert body["tags"] == ["x", "y"]
    assert body["maxAgeDays"] is None
    assert body["isEncrypted"] is False


def test_prepare_requires_name(api):
    resp = api.post("/files/prepare", json={"sizeBytes": 1})
    assert resp.status_code == 400


def test_upload_and_detail(api):
    file_id = api.upload("id\n1\n", name="up.csv")
    detail = api.get(f"/files/{file_id}").json()
    assert detail["sizeBytes"] == 5
    assert "credentials" not in detail
    assert requests.get(detail["url"], timeout=10).content == b"id\n1\n"
    federated = api.get(f"/files/{file_id}", params={"federationToken": 1}).json()
    assert federated["s3Path"]["key"].endswith(f"{file_id}.up.csv")
    assert "credentials" in federated
    _, data = api.download(file_id)
    assert data == b"id\n1\n"


def test_sliced_detail_url_is_manifest(api):
    prepared = api.upload_sliced(["a\n", "b\n"])
    detail = api.get(f"/files/{prepared['id']}", params={"federationToken": 1}).json()
    assert detail["isSliced"] is True
    assert detail["url"].split("?")[0].endswith("manifest")
    _, data = api.download(prepared["id"])
    assert data == b"a\nb\n"


def test_files_list_paging_newest_first(api):
    ids = [api.prepare(f"f{i}.csv", tags=["paging"])["id"] for i in range(5)]
    listed = [f["id"] for f in api.get("/files").json()]
    assert listed == sorted(ids, reverse=True)
    page = [f["id"] for f in api.get("/files", params={"limit": 2, "offset": 1}).json()]
    assert page == sorted(ids, reverse=True)[1:3]
    tagged = api.get("/files", params={"tags[]": "paging"}).json()
    assert len(tagged) == 5


def test_file_of_other_project_not_found(emu, api):
    file_id = api.upload("x\n")
    other = emu.create_project("other")
    resp = api.with_token(other.token).get(f"/files/{file_id}")
    assert resp.status_code == 404
    assert resp.json()["code"] == "storage.files.notFound"
    assert resp.json()["error"] == "File not found"


def test_delete_file(api):
    file_id = api.upload("x\n")
    assert api.delete(f"/files/{file_id}").status_code == 204
    assert api.get(f"/files/{file_id}").status_code == 404
    assert api.delete(f"/files/{file_id}").status_code == 404


def test_refresh_only_gcp(api):
    file_id = api.prepare("x.csv")["id"]
    resp = api.put(f"/files/{file_id}/refresh")
    assert resp.status_code == 400


def test_limited_token_sees_only_own_files(emu, api, project):
    master_file = api.upload("x\n")
    token = emu.create_token(project.id)
    limited = api.with_token(token)
    own = limited.upload("y\n")
    assert limited.get(f"/files/{master_file}").status_code == 403
    assert [f["id"] for f in limited.get("/files").json()] == [own]

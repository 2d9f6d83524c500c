"""tokens/verify, authentication and bucket permissions."""

from __future__ import annotations

import re

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}$")


def test_verify_master_token_shape(api, project):
    resp = api.get("/tokens/verify")
    assert resp.status_code == 200
    body = resp.json()
    assert isinstance(body["id"], str)
    assert body["isMasterToken"] is True
    assert body["canManageBuckets"] is True
    assert body["canManageTokens"] is True
    assert body["expires"] is None
    assert body["isExpired"] is False
    assert body["isDisabled"] is False
    assert body["description"] == "Master Token"
    assert TIMESTAMP.match(body["created"])
    assert body["bucketPermissions"] == []  # PHP's empty array
    assert set(body["creatorToken"]) == {"id", "description"}
    assert body["admin"]["role"] == "admin"
    owner = body["owner"]
    assert owner["id"] == project.id
    assert owner["name"] == project.name
    assert owner["type"] == "production"
    assert owner["features"] == []
    assert owner["fileStorageProvider"] == "aws"
    assert owner["defaultBackend"] == "snowflake"
    assert owner["hasSnowflake"] is True
    assert owner["region"] == "us-east-1"
    assert isinstance(owner["limits"], dict) and isinstance(owner["metrics"], dict)


def test_token_format(api, project):
    assert re.match(rf"^{project.id}-\d+-[A-Za-z0-9]{{40}}$", project.token)


def test_master_token_sees_buckets_as_manage(api):
    api.create_bucket("main")
    body = api.get("/tokens/verify").json()
    assert body["bucketPermissions"] == {"in.c-main": "manage"}


def test_missing_token_401(api):
    resp = api.with_token(None).get("/tokens/verify")
    assert resp.status_code == 401
    body = resp.json()
    assert body["error"] == "Access token must be set"
    assert body["code"] == ""
    assert body["exceptionId"]


def test_invalid_token_401(api):
    resp = api.with_token("1-1-invalid").get("/buckets")
    assert resp.status_code == 401
    assert resp.json()["code"] == "storage.tokenInvalid"
    assert resp.json()["error"] == "Invalid access token"


def test_revoked_token_401(emu, api, project):
    token = emu.create_token(project.id, description="temp")
    assert api.with_token(token).get("/tokens/verify").status_code == 200
    emu.revoke_token(token)
    resp = api.with_token(token).get("/tokens/verify")
    assert resp.status_code == 401
    assert resp.json()["code"] == "storage.tokenInvalid"


def test_limited_token_verify(emu, api, project):
    api.create_bucket("x")
    token = emu.create_token(project.id, bucket_permissions={"in.c-x": "read"}, description="reader")
    body = api.with_token(token).get("/tokens/verify").json()
    assert body["isMasterToken"] is False
    assert body["canManageBuckets"] is False
    assert body["bucketPermissions"] == {"in.c-x": "read"}
    assert body["description"] == "reader"
    assert "admin" not in body


def test_token_of_other_project_cannot_see_bucket(emu, api):
    api.create_bucket("mine")
    other = emu.create_project("other")
    resp = api.with_token(other.token).get("/buckets/in.c-mine")
    assert resp.status_code == 404
    assert resp.json()["code"] == "storage.buckets.notFound"


def test_bucket_without_permission_403(emu, api, project):
    api.create_bucket("secret")
    api.create_bucket("open")
    token = emu.create_token(project.id, bucket_permissions={"in.c-open": "read"})
    limited = api.with_token(token)
    resp = limited.get("/buckets/in.c-secret")
    assert resp.status_code == 403
    assert resp.json()["code"] == "accessDenied"
    assert [b["id"] for b in limited.get("/buckets").json()] == ["in.c-open"]


def test_read_token_cannot_import_but_can_read(emu, api, project):
    bucket = api.create_bucket("data")
    api.create_table(bucket, "t", "id,name\n1,a\n", primary_key="id")
    token = emu.create_token(project.id, bucket_permissions={bucket: "read"})
    reader = api.with_token(token)
    assert reader.get("/tables/in.c-data.t").status_code == 200
    assert reader.get("/tables/in.c-data.t/data-preview").status_code == 200
    assert reader.post("/tables/in.c-data.t/export-async", json={}).status_code == 202
    file_id = reader.upload("id,name\n2,b\n")
    resp = reader.post("/tables/in.c-data.t/import-async", json={"dataFileId": file_id})
    assert resp.status_code == 403
    assert resp.json()["code"] == "accessDenied"
    resp = reader.post("/buckets/in.c-data/tables-async", json={"name": "new", "dataFileId": file_id})
    assert resp.status_code == 403
    resp = reader.delete("/tables/in.c-data.t/rows")
    assert resp.status_code == 403
    resp = reader.post(
        "/tables/in.c-data.t/metadata", json={"provider": "user", "metadata": [{"key": "k", "value": "v"}]}
    )
    assert resp.status_code == 403


def test_write_token_can_import(emu, api, project):
    bucket = api.create_bucket("data")
    api.create_table(bucket, "t", "id,name\n1,a\n", primary_key="id")
    token = emu.create_token(project.id, bucket_permissions={bucket: "write"})
    writer = api.with_token(token)
    job = writer.import_csv("in.c-data.t", "id,name\n2,b\n", incremental=True)
    assert job["status"] == "success", job
    # but it cannot delete the bucket (manage) nor create buckets
    assert writer.delete("/buckets/in.c-data", params={"force": 1}).status_code == 403
    assert writer.post("/buckets", json={"name": "nope"}).status_code == 403


def test_non_master_lists_only_permitted_tables(emu, api, project):
    a = api.create_bucket("a")
    b = api.create_bucket("b")
    api.create_table(a, "t1", "id\n1\n")
    api.create_table(b, "t2", "id\n1\n")
    token = emu.create_token(project.id, bucket_permissions={a: "read"})
    tables = api.with_token(token).get("/tables").json()
    assert [t["id"] for t in tables] == ["in.c-a.t1"]
    resp = api.with_token(token).get("/tables/in.c-b.t2")
    assert resp.status_code == 403


def test_can_manage_buckets_token_creates_bucket_and_gets_manage(emu, api, project):
    token = emu.create_token(project.id, can_manage_buckets=True)
    creator = api.with_token(token)
    resp = creator.post("/buckets", json={"name": "made"})
    assert resp.status_code == 201
    assert creator.get("/tokens/verify").json()["bucketPermissions"] == {"in.c-made": "manage"}
    no_manage = api.with_token(emu.create_token(project.id))
    resp = no_manage.post("/buckets", json={"name": "denied"})
    assert resp.status_code == 403
    assert resp.json()["code"] == "accessDenied"

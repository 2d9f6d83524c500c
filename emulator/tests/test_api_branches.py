"""Dev branches (addendum §3) over real HTTP: dev-branches, branch-scoped paths, the two storage models."""

from __future__ import annotations


def _create_branch(api, name="dev"):
    resp = api.post("/dev-branches", json={"name": name, "description": "d"})
    assert resp.status_code == 202, resp.text
    job = api.wait(resp.json())
    assert job["operationName"] == "devBranchCreate"
    assert job["status"] == "success", job
    return job["results"]


def test_default_branch_listed_first(api):
    branches = api.get("/dev-branches").json()
    assert len(branches) == 1 and branches[0]["isDefault"] is True
    dev = _create_branch(api)
    assert dev["isDefault"] is False and dev["name"] == "dev" and isinstance(dev["id"], int)
    listed = api.get("/dev-branches").json()
    assert [b["isDefault"] for b in listed] == [True, False]
    assert api.get(f"/dev-branches/{dev['id']}").json()["id"] == dev["id"]
    resp = api.delete(f"/dev-branches/{dev['id']}")
    assert resp.status_code == 202
    assert api.wait(resp.json())["operationName"] == "devBranchDelete"
    assert api.get(f"/dev-branches/{dev['id']}").status_code == 404
    default_id = listed[0]["id"]
    assert api.delete(f"/dev-branches/{default_id}").status_code == 400


def test_mcp_server_paths(emu, project, api):
    """keboola/mcp-server's storage client: branch/default/buckets, branch/default/tables/{id}, dev-branches."""
    bucket = emu.create_bucket(project.id, "main")
    emu.create_table(project.id, f"{bucket}.t", "id,x\n1,a\n", primary_key=["id"])
    plain = api.get("/buckets").json()
    assert api.get("/branch/default/buckets").json() == plain
    assert api.get(f"/branch/default/tables/{bucket}.t").json()["id"] == f"{bucket}.t"
    assert api.get(f"/branch/default/buckets/{bucket}/tables").status_code == 200
    assert api.get("/branch/default/tokens/verify").json()["owner"]["id"] == project.id
    assert api.get("/dev-branches").json()[0]["isDefault"] is True
    assert api.get("/branch/999999/buckets").status_code == 404
    # jobs stay on the plain path
    assert api.get("/branch/default/jobs").status_code == 404


def test_branched_storage_isolated(emu, project, api):
    emu.set_project_features(project.id, ["storage-branches"])
    assert "storage-branches" in api.get("/tokens/verify").json()["owner"]["features"]
    bucket = emu.create_bucket(project.id, "main")
    emu.create_table(project.id, f"{bucket}.t", "id,x\n1,a\n", primary_key=["id"])
    dev = _create_branch(api)
    b = f"/branch/{dev['id']}"
    assert api.get(f"{b}/buckets").json() == []
    resp = api.get(f"{b}/tables/{bucket}.t")
    assert resp.status_code == 404, resp.text
    # same ids as production, separate data
    assert api.post(f"{b}/buckets", json={"name": "main", "stage": "in"}).status_code == 201
    emu.create_table(project.id, f"{bucket}.t", "id,x\n2,b\n3,c\n", primary_key=["id"], branch_id=dev["id"])
    assert emu.table_detail(project.id, f"{bucket}.t", branch_id=dev["id"])["rowsCount"] == 2
    assert emu.table_detail(project.id, f"{bucket}.t")["rowsCount"] == 1
    preview = api.get(f"{b}/tables/{bucket}.t/data-preview").text
    assert '"2"' in preview and '"1"' not in preview
    resp = api.post(f"{b}/tables/{bucket}.t/export-async", json={})
    assert resp.status_code == 202
    job = api.wait(resp.json())  # polled on the plain path
    assert job["status"] == "success", job
    file_id = job["results"]["file"]["id"]
    assert api.get(f"{b}/files/{file_id}").status_code == 200
    resp = api.get(f"/files/{file_id}")
    assert resp.status_code == 404 and resp.json()["error"].startswith("File not found")
    # rows delete in the branch leaves production alone
    job = api.wait(api.delete(f"{b}/tables/{bucket}.t/rows", params={"allowTruncate": "true"}).json())
    assert job["status"] == "success", job
    assert emu.table_rows(project.id, f"{bucket}.t", branch_id=dev["id"]) == []
    assert emu.table_rows(project.id, f"{bucket}.t") == [{"id": "1", "x": "a"}]
    # dropping the branch drops its buckets
    api.wait(api.delete(f"/dev-branches/{dev['id']}").json())
    assert [x["id"] for x in api.get("/buckets").json()] == [bucket]


def test_legacy_prefix_model(emu, project, api):
    bucket = emu.create_bucket(project.id, "main")
    emu.create_table(project.id, f"{bucket}.t", "id\n1\n")
    dev = _create_branch(api)
    b = f"/branch/{dev['id']}"
    assert "storage-branches" not in api.get("/tokens/verify").json()["owner"]["features"]
    assert api.get(f"{b}/buckets").json() == []
    # branch data lives in production as in.c-{branchId}-name
    resp = api.post(f"{b}/buckets", json={"name": f"{dev['id']}-main", "stage": "in"})
    assert resp.status_code == 201, resp.text
    assert f"in.c-{dev['id']}-main" in [x["id"] for x in api.get("/buckets").json()]
    assert api.get(f"{b}/tables/{bucket}.t").status_code == 200

"""Development branches in the client: path rewriting, the production fallback of reads, both storage models."""

from __future__ import annotations

import pytest

from storage_api import StorageApiError, StorageClient
from storage_api.branches import Branch, BranchReads, branch_path, is_branch_scoped, storage_model


class FakeHttp:
    """Answers GETs from ``pages`` (full path -> body; a missing path is 404) and records every request."""

    def __init__(self, pages: dict):
        self.pages = pages
        self.branch = Branch()
        self.calls: list[tuple[str, str]] = []

    def _path(self, path: str, plain: bool) -> str:
        return path.lstrip("/") if plain else self.branch.path(path)

    def get(self, path, params=None, *, plain=False):
        full = self._path(path, plain)
        self.calls.append(("GET", full))
        if full not in self.pages:
            raise StorageApiError("Not found.", status=404)
        body = self.pages[full]
        if isinstance(body, Exception):
            raise body
        return body

    def post(self, path, json=None, *, idempotent, plain=False):
        full = self._path(path, plain)
        self.calls.append(("POST", full))
        if full.endswith("export-async"):
            return {"id": 1, "status": "success", "operationName": "tableExport", "results": {"file": {"id": 7}}}
        return {"id": "in.c-x", "name": json.get("name")}

    def put(self, path, json=None, *, plain=False):
        self.calls.append(("PUT", self._path(path, plain)))

    def delete(self, path, params=None, *, plain=False):
        self.calls.append(("DELETE", self._path(path, plain)))

    def close(self):
        pass


def client_with(pages: dict, features=(), branch="123") -> tuple[StorageClient, FakeHttp]:
    client = StorageClient("https://connection.example.com", "token")
    fake = FakeHttp(
        {
            "dev-branches": [
                {"id": 1, "name": "Main", "isDefault": True},
                {"id": 123, "name": "dev", "isDefault": False},
            ],
            "tokens/verify": {"owner": {"id": 9, "features": list(features)}},
            **pages,
        }
    )
    client.http = fake
    for part in (client.jobs, client.buckets, client.tables, client.files):
        part.http = fake
    client._token_info = None
    if branch is not None:
        client.use_branch(branch)
    return client, fake


def test_paths_are_prefixed_except_jobs_and_alias_filters():
    assert branch_path("tables/in.c-a.t/import-async", "5") == "branch/5/tables/in.c-a.t/import-async"
    assert branch_path("buckets", "5") == "branch/5/buckets"
    assert branch_path("files/prepare", "5") == "branch/5/files/prepare"
    assert branch_path("jobs/77", "5") == "jobs/77"
    assert branch_path("tables/in.c-a.t/alias-filter", "5") == "tables/in.c-a.t/alias-filter"
    assert branch_path("tables/in.c-a.t", None) == "tables/in.c-a.t"
    assert not is_branch_scoped("tickets")
    assert storage_model(["storage-branches"]) == "branched"
    assert storage_model(["protected-default-branch"]) == "branched"
    assert storage_model([]) == "prefix"


def test_prefix_model_ids():
    branch = Branch(id="123", model="prefix")
    assert branch.table_id("in.c-sales.orders") == "in.c-123-sales.orders"
    assert branch.table_id("in.c-123-sales.orders") == "in.c-123-sales.orders"
    assert branch.logical_table_id("in.c-123-sales.orders") == "in.c-sales.orders"
    assert branch.bucket_name("sales") == "123-sales"
    assert Branch(id="123", model="branched").table_id("in.c-sales.orders") == "in.c-sales.orders"


def test_default_branch_id_keeps_plain_paths():
    client, fake = client_with({"tables/in.c-a.t": {"id": "in.c-a.t"}}, branch="1")
    assert client.branch.is_default
    client.tables.detail("in.c-a.t")
    assert fake.calls[-1] == ("GET", "tables/in.c-a.t")


def test_branched_storage_falls_back_to_production_and_exports_there():
    client, fake = client_with({"tables/in.c-a.t": {"id": "in.c-a.t", "columns": ["id"]}}, ["storage-branches"])
    assert client.branch.model == "branched"
    assert client.tables.detail("in.c-a.t")["id"] == "in.c-a.t"
    assert ("GET", "branch/123/tables/in.c-a.t") in fake.calls and ("GET", "tables/in.c-a.t") in fake.calls
    result = client.tables.export("in.c-a.t")
    assert ("POST", "tables/in.c-a.t/export-async") in fake.calls
    fake.pages["files/7"] = {"id": 7}
    client.files.detail(result.file_id)
    assert ("GET", "files/7") in fake.calls


def test_branched_storage_reads_the_branch_copy_first_and_writes_there():
    client, fake = client_with(
        {"branch/123/tables/in.c-a.t": {"id": "in.c-a.t", "columns": ["id"]}}, ["protected-default-branch"]
    )
    client.tables.detail("in.c-a.t")
    client.tables.export("in.c-a.t")
    assert ("POST", "branch/123/tables/in.c-a.t/export-async") in fake.calls
    client.tables.set_metadata("in.c-a.t", "p", [{"key": "k", "value": "v"}])
    assert ("POST", "branch/123/tables/in.c-a.t/metadata") in fake.calls
    client.buckets.create("new", "out")
    assert ("POST", "branch/123/buckets") in fake.calls


def test_without_fallback_a_table_only_in_production_is_missing():
    client, fake = client_with({"tables/in.c-a.t": {"id": "in.c-a.t"}}, ["storage-branches"])
    client.reads.fall_back = False  # a destination written in the branch
    assert client.tables.detail("in.c-a.t") is None
    assert ("GET", "tables/in.c-a.t") not in fake.calls


def test_prefix_model_reads_branch_bucket_first_then_production():
    client, fake = client_with(
        {
            "branch/123/tables/in.c-123-a.t": {"id": "in.c-123-a.t", "bucket": {"id": "in.c-123-a"}},
            "tables/in.c-b.u": {"id": "in.c-b.u"},
        }
    )
    assert client.branch.model == "prefix"
    detail = client.tables.detail("in.c-a.t")
    assert detail["id"] == "in.c-a.t" and detail["bucket"]["id"] == "in.c-a"
    assert client.tables.detail("in.c-b.u")["id"] == "in.c-b.u"
    assert ("GET", "branch/123/tables/in.c-123-b.u") in fake.calls and ("GET", "tables/in.c-b.u") in fake.calls
    client.tables.delete("in.c-a.t")
    assert ("DELETE", "branch/123/tables/in.c-123-a.t") in fake.calls
    created = client.buckets.create("c-sales", "in")
    assert created["name"] == "123-sales"


@pytest.mark.parametrize(
    ("pages", "message"),
    [
        ({"dev-branches": StorageApiError("Forbidden.", status=403)}, "Cannot determine development branch 123"),
        ({"dev-branches": [{"id": 5, "isDefault": False}]}, "lists no default branch"),
        ({"dev-branches": [{"id": 1, "isDefault": True}]}, "does not exist in the project"),
    ],
)
def test_unknown_branch_fails_before_any_write(pages, message):
    with pytest.raises(StorageApiError, match=message) as info:
        client_with(pages)
    assert "nothing was written" in str(info.value)


class _Recorder:
    def __init__(self):
        self.used = []
        self.reads = BranchReads()

    def use_branch(self, branch_id):
        self.used.append(branch_id)
        return Branch(id=branch_id, model="branched")


def _use_branch(monkeypatch, token: str, branch_id: str | None) -> list:
    from component import Component
    from configuration import Connection

    monkeypatch.setenv("KBC_TOKEN", "forwarded")
    if branch_id is None:
        monkeypatch.delenv("KBC_BRANCHID", raising=False)
    else:
        monkeypatch.setenv("KBC_BRANCHID", branch_id)
    client = _Recorder()
    Component._use_branch(None, "destination", Connection(url="https://x", token=token), client)
    return client.used


def test_branch_applies_to_the_forwarded_connection_only(monkeypatch, caplog):
    caplog.set_level("INFO")
    assert _use_branch(monkeypatch, "forwarded", "123") == ["123"]
    assert "uses development branch 123" in caplog.text
    assert _use_branch(monkeypatch, "own-token", "123") == []
    assert "its own URL and token) uses its default branch" in caplog.text
    assert _use_branch(monkeypatch, "forwarded", None) == []


def test_unknown_branch_is_a_user_error(monkeypatch):
    from keboola.component.exceptions import UserException

    from component import Component
    from configuration import Connection

    class Failing:
        def use_branch(self, branch_id):
            raise StorageApiError("Development branch 9 (KBC_BRANCHID) does not exist, so nothing was written.")

    monkeypatch.setenv("KBC_TOKEN", "forwarded")
    monkeypatch.setenv("KBC_BRANCHID", "9")
    with pytest.raises(UserException, match="nothing was written"):
        Component._use_branch(None, "source", Connection(url="https://x", token="forwarded"), Failing())


def test_alias_skip_and_copy_in_planning():
    from configuration import TableSettings
    from workflows.plan import plan_tables

    class Client:
        class tables:
            @staticmethod
            def detail(table_id):
                alias = table_id.endswith("al")
                return {"id": table_id, "columns": ["id"], "isAlias": alias, "sourceTable": {"id": "in.c-a.t"}}

    items = [TableSettings(source="in.c-a.t"), TableSettings(source="in.c-a.al", aliases="skip")]
    assert [p.source_id for p in plan_tables(Client, items, mode="sync")] == ["in.c-a.t"]
    items = [TableSettings(source="in.c-a.al")]
    assert [p.source_id for p in plan_tables(Client, items, mode="sync")] == ["in.c-a.al"]

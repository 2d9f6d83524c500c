"""Table aliases (addendum section 5) over real HTTP: create (JSON and form), the detail, reads through the source
(export, preview), refused writes, chaining, backends, dev branches, dropping a source, referenced columns,
alias-filter and alias-columns-auto-sync, the Python API."""

from __future__ import annotations

import time

import pytest

from .conftest import Api, parse_csv_rows, rows_set

USERS = "id,name,city,sex\n1,martin,PRG,male\n2,klara,PRG,female\n3,ondra,VAN,male\n4,miro,BRA,male\n"
SOURCE = "in.c-main.users"
ALIAS = "out.c-alias.users"
REFUSED = "storage.tables.aliasImportNotAllowed"


@pytest.fixture
def source(api):
    api.create_table(api.create_bucket("main"), "users", USERS, primary_key="id")
    return SOURCE


@pytest.fixture
def alias_bucket(api):
    return api.create_bucket("alias", stage="out")


def create_alias(api, bucket_id: str, body: dict, *, status=201, form=False) -> dict:
    resp = api.post(f"/buckets/{bucket_id}/table-aliases", **({"data": body} if form else {"json": body}))
    assert resp.status_code == status, resp.text
    return resp.json()


def export_rows(api, table_id: str, **params) -> list[list[str]]:
    job = api.job_post(f"/tables/{table_id}/export-async", json=params)
    assert job["status"] == "success", job
    _, data = api.download(job["results"]["file"]["id"])
    return sorted(parse_csv_rows(data))


def test_create_simple_alias_detail_mirrors_source(api, project, source, alias_bucket):
    alias = create_alias(api, alias_bucket, {"sourceTable": source})
    assert alias["id"] == ALIAS and alias["name"] == "users"  # the source's name by default
    assert alias["isAlias"] is True
    assert alias["aliasColumnsAutoSync"] is True
    assert "aliasFilter" not in alias
    assert alias["sourceTable"]["id"] == source
    assert alias["sourceTable"]["uri"].endswith(f"/v2/storage/tables/{source}")
    assert alias["sourceTable"]["isAlias"] is False
    assert alias["sourceTable"]["project"] == {"id": project.id, "name": project.name}
    detail = api.get(f"/tables/{ALIAS}").json()
    src = api.get(f"/tables/{source}").json()
    assert src["isAlias"] is False and "sourceTable" not in src
    for key in ("rowsCount", "dataSizeBytes", "lastImportDate", "lastChangeDate", "columns", "primaryKey"):
        assert detail[key] == src[key], key
    assert detail["created"] != src["created"] or detail["created"] >= src["created"]
    listed = {t["id"]: t for t in api.get(f"/buckets/{alias_bucket}/tables").json()}
    assert listed[ALIAS]["isAlias"] is True and listed[ALIAS]["sourceTable"]["id"] == source
    everything = {t["id"]: t for t in api.get("/tables").json()}
    assert everything[ALIAS]["isAlias"] is True and everything[SOURCE]["isAlias"] is False
    bucket_tables = api.get(f"/buckets/{alias_bucket}").json()["tables"]
    assert [t["isAlias"] for t in bucket_tables] == [True]


def test_create_filtered_alias_with_columns_by_form(api, source, alias_bucket):
    body = {
        "sourceTable": source,
        "name": "prague",
        "aliasColumns[]": ["id", "name", "city"],
        "aliasFilter[column]": "city",
        "aliasFilter[operator]": "eq",
        "aliasFilter[values][]": ["PRG"],
    }
    alias = create_alias(api, alias_bucket, body, form=True)
    assert alias["id"] == f"{alias_bucket}.prague"
    assert alias["aliasColumnsAutoSync"] is False
    assert alias["aliasFilter"] == {"column": "city", "operator": "eq", "values": ["PRG"]}
    assert alias["columns"] == ["id", "name", "city"]
    assert alias["primaryKey"] == ["id"]
    assert alias["rowsCount"] == 2
    assert alias["isAliasable"] is False


def test_create_validation(api, source, alias_bucket):
    create_alias(api, alias_bucket, {"sourceTable": source})
    clash = create_alias(api, alias_bucket, {"sourceTable": source}, status=400)
    assert clash["code"] == "storage.buckets.tableAlreadyExists"
    assert create_alias(api, alias_bucket, {}, status=400)["error"].startswith("Invalid request")
    missing = api.post(f"/buckets/{alias_bucket}/table-aliases", json={"sourceTable": "in.c-main.nope"})
    assert missing.status_code == 404
    unknown = create_alias(
        api, alias_bucket, {"sourceTable": source, "name": "x", "aliasColumns": ["id", "zip"]}, status=400
    )
    assert "zip" in unknown["error"]
    bad_op = {"sourceTable": source, "name": "y", "aliasFilter": {"column": "city", "operator": "gt", "values": ["A"]}}
    assert create_alias(api, alias_bucket, bad_op, status=400)["code"] == "storage.tables.validation"
    bad_col = {"sourceTable": source, "name": "z", "aliasFilter": {"column": "zip", "values": ["1"]}}
    assert "zip" in create_alias(api, alias_bucket, bad_col, status=400)["error"]


def test_export_and_preview_return_filtered_source_data(api, source, alias_bucket):
    flt = {"column": "city", "operator": "ne", "values": ["PRG"]}
    create_alias(api, alias_bucket, {"sourceTable": source, "name": "rest", "aliasFilter": flt})
    rest = f"{alias_bucket}.rest"
    assert export_rows(api, rest) == [["3", "ondra", "VAN", "male"], ["4", "miro", "BRA", "male"]]
    # the export's own filters and columns apply on top of the alias's
    where = [{"column": "city", "operator": "eq", "values": ["VAN", "PRG"]}]
    assert export_rows(api, rest, whereFilters=where, columns="id,name") == [["3", "ondra"]]
    assert {r["id"] for r in api.preview_rows(rest)} == {"3", "4"}
    resp = api.get(f"/tables/{rest}/data-preview")
    assert resp.status_code == 200 and resp.text.splitlines()[0] == '"id","name","city","sex"'
    assert api.get(f"/tables/{rest}/data-preview", params={"columns": "zip"}).status_code == 400


def test_export_of_fixed_columns_and_changed_since(api, source, alias_bucket):
    create_alias(api, alias_bucket, {"sourceTable": source, "name": "names", "aliasColumns": ["id", "name"]})
    names = f"{alias_bucket}.names"
    assert export_rows(api, names) == [["1", "martin"], ["2", "klara"], ["3", "ondra"], ["4", "miro"]]
    job = api.post(f"/tables/{names}/export-async", json={"columns": "id,city"})
    assert api.wait(job.json())["status"] == "error"  # city is no column of the alias
    time.sleep(1.1)
    marker = int(time.time())
    time.sleep(1.1)
    api.import_csv(source, "id,name,city,sex\n5,eva,PRG,female\n", incremental=True)
    assert export_rows(api, names, changedSince=str(marker)) == [["5", "eva"]]


def test_alias_follows_its_source(api, source, alias_bucket):
    create_alias(api, alias_bucket, {"sourceTable": source})
    fixed = create_alias(api, alias_bucket, {"sourceTable": source, "name": "fixed", "aliasColumns": ["id", "city"]})
    before = api.get(f"/tables/{ALIAS}").json()
    time.sleep(1.1)
    assert api.import_csv(source, "id,name,city,sex\n5,eva,PRG,female\n", incremental=True)["status"] == "success"
    assert api.job_post(f"/tables/{source}/columns", json={"name": "zip"})["status"] == "success"
    after = api.get(f"/tables/{ALIAS}").json()
    src = api.get(f"/tables/{source}").json()
    assert after["rowsCount"] == 5 and after["lastChangeDate"] == src["lastChangeDate"] > before["lastChangeDate"]
    assert after["columns"] == ["id", "name", "city", "sex", "zip"]
    assert api.get(f"/tables/{fixed['id']}").json()["columns"] == ["id", "city"]
    assert {r["id"] for r in api.preview_rows(ALIAS)} == {"1", "2", "3", "4", "5"}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "import-async", {"dataFileId": None}),
        ("DELETE", "rows", {"whereFilters": [{"column": "id", "values": ["1"]}]}),
        ("POST", "columns", {"name": "zip"}),
        ("DELETE", "columns/name", {}),
        ("POST", "primary-key", {"columns": ["id"]}),
        ("DELETE", "primary-key", {}),
    ],
)
def test_writes_into_an_alias_are_refused(api, source, alias_bucket, method, path, body):
    create_alias(api, alias_bucket, {"sourceTable": source})
    if "dataFileId" in body:
        body = {"dataFileId": api.upload("id,name,city,sex\n9,x,y,z\n")}
    resp = api.request(method, f"/tables/{ALIAS}/{path}", json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["code"] == REFUSED
    assert "alias" in resp.json()["error"]
    assert api.get(f"/tables/{source}").json()["rowsCount"] == 4


def test_only_simple_aliases_chain(api, source, alias_bucket):
    create_alias(api, alias_bucket, {"sourceTable": source})
    second = create_alias(api, alias_bucket, {"sourceTable": ALIAS, "name": "second"})
    third = create_alias(api, alias_bucket, {"sourceTable": second["id"], "name": "third"})
    assert third["sourceTable"]["id"] == second["id"] and third["sourceTable"]["isAlias"] is True
    assert third["rowsCount"] == 4
    assert len(export_rows(api, third["id"])) == 4
    flt = {"column": "sex", "values": ["male"]}
    filtered = create_alias(api, alias_bucket, {"sourceTable": third["id"], "name": "males", "aliasFilter": flt})
    assert export_rows(api, filtered["id"])[0] == ["1", "martin", "PRG", "male"]
    fixed = create_alias(api, alias_bucket, {"sourceTable": source, "name": "fixed", "aliasColumns": ["id"]})
    for advanced in (filtered["id"], fixed["id"]):
        err = create_alias(api, alias_bucket, {"sourceTable": advanced, "name": "again"}, status=400)
        assert err["error"] == "Aliasing an advanced alias is not allowed."


def test_same_backend_only(emu, s3_env):
    project = emu.create_project("alias-backends", backends=["snowflake", "bigquery"])
    api = Api(emu.url, project.token)
    api.create_table(api.create_bucket("main"), "users", USERS)
    resp = api.post("/buckets", json={"name": "bq", "stage": "out", "backend": "bigquery"})
    assert resp.status_code == 201, resp.text
    err = create_alias(api, "out.c-bq", {"sourceTable": SOURCE}, status=400)
    assert "same backend" in err["error"]


def test_no_aliases_from_or_into_dev_branch_buckets(emu, project, api, source, alias_bucket):
    dev = api.wait(api.post("/dev-branches", json={"name": "dev"}).json())["results"]
    b = f"/branch/{dev['id']}"
    # legacy model: a bucket created in the branch is a dev-branch bucket in production's namespace
    assert api.post(f"{b}/buckets", json={"name": f"{dev['id']}-main"}).status_code == 201
    branch_bucket = f"in.c-{dev['id']}-main"
    into = create_alias(api, branch_bucket, {"sourceTable": source}, status=400)
    assert into["error"] == "Creating aliases in Dev/Branch buckets is not supported yet."
    emu.create_table(project.id, f"{branch_bucket}.t", "id\n1\n", branch_id=dev["id"])
    from_branch = create_alias(api, alias_bucket, {"sourceTable": f"{branch_bucket}.t"}, status=400)
    assert from_branch["error"] == "Creating aliases from Dev/Branch tables is not supported yet."
    # the default branch's path is production
    assert create_alias(api, alias_bucket, {"sourceTable": source}, status=201)["isAlias"] is True
    resp = api.post("/branch/default/buckets/out.c-alias/table-aliases", json={"sourceTable": source, "name": "b"})
    assert resp.status_code == 201, resp.text


def test_no_aliases_in_branched_storage_branch(emu, project, api, source):
    emu.set_project_features(project.id, ["storage-branches"])
    dev = api.wait(api.post("/dev-branches", json={"name": "dev"}).json())["results"]
    b = f"/branch/{dev['id']}"
    assert api.post(f"{b}/buckets", json={"name": "main"}).status_code == 201
    emu.create_table(project.id, SOURCE, "id\n1\n", branch_id=dev["id"])
    assert api.post(f"{b}/buckets", json={"name": "alias", "stage": "out"}).status_code == 201
    resp = api.post(f"{b}/buckets/out.c-alias/table-aliases", json={"sourceTable": SOURCE})
    assert resp.status_code == 400
    assert resp.json()["error"] == "Creating aliases from Dev/Branch tables is not supported yet."


def test_drop_source_with_aliases(api, source, alias_bucket):
    create_alias(api, alias_bucket, {"sourceTable": source})
    create_alias(api, alias_bucket, {"sourceTable": ALIAS, "name": "chained"})
    resp = api.delete(f"/tables/{source}")
    assert resp.status_code == 400
    assert resp.json()["code"] == "tables.cannotDeletedTableWithAliases"
    assert resp.json()["error"].startswith("The table users cannot be deleted because an alias exists")
    job = api.delete(f"/tables/{source}", params={"async": "true"})
    assert api.wait(job.json())["error"]["code"] == "tables.cannotDeletedTableWithAliases"
    assert api.delete(f"/tables/{source}", params={"force": "true"}).status_code == 204
    for table_id in (source, ALIAS, f"{alias_bucket}.chained"):
        assert api.get(f"/tables/{table_id}").status_code == 404
    # an alias itself drops like a table
    api.create_table("in.c-main", "users", USERS)
    create_alias(api, alias_bucket, {"sourceTable": source})
    assert api.delete(f"/tables/{ALIAS}").status_code == 204
    assert api.get(f"/tables/{source}").json()["rowsCount"] == 4


def test_forced_bucket_drop_drops_aliases_elsewhere(api, source, alias_bucket):
    create_alias(api, alias_bucket, {"sourceTable": source})
    assert api.delete("/buckets/in.c-main", params={"force": "true"}).status_code == 204
    assert api.get(f"/tables/{ALIAS}").status_code == 404


def test_columns_referenced_by_aliases(api, source, alias_bucket):
    create_alias(api, alias_bucket, {"sourceTable": source})
    flt = {"column": "city", "values": ["PRG"]}
    create_alias(api, alias_bucket, {"sourceTable": source, "name": "prague", "aliasFilter": flt})

    def drop(column, force):
        resp = api.delete(f"/tables/{source}/columns/{column}", params={"force": "true" if force else "false"})
        assert resp.status_code == 202, resp.text
        return api.wait(resp.json())

    plain = drop("sex", False)  # in the auto-sync aliases
    assert plain["status"] == "error" and plain["error"]["code"] == "storage.tables.cannotDeleteReferencedColumn"
    assert drop("city", True)["error"]["code"] == "storage.tables.cannotDeleteReferencedColumn"  # a filter column
    assert drop("sex", True)["status"] == "success"
    assert api.get(f"/tables/{ALIAS}").json()["columns"] == ["id", "name", "city"]
    create_alias(api, alias_bucket, {"sourceTable": source, "name": "fixed", "aliasColumns": ["id", "name"]})
    assert drop("name", True)["error"]["code"] == "storage.tables.cannotDeleteReferencedColumn"


def test_alias_filter_and_columns_auto_sync_endpoints(api, source, alias_bucket):
    create_alias(api, alias_bucket, {"sourceTable": source})
    resp = api.post(f"/tables/{ALIAS}/alias-filter", json={"column": "city", "operator": "eq", "values": ["PRG"]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["aliasFilter"] == {"column": "city", "operator": "eq", "values": ["PRG"]}
    assert resp.json()["rowsCount"] == 2
    assert api.delete(f"/tables/{ALIAS}/alias-filter").status_code == 204
    assert "aliasFilter" not in api.get(f"/tables/{ALIAS}").json()
    assert api.delete(f"/tables/{ALIAS}/alias-columns-auto-sync").status_code == 204
    assert api.job_post(f"/tables/{source}/columns", json={"name": "zip"})["status"] == "success"
    fixed = api.get(f"/tables/{ALIAS}").json()
    assert fixed["aliasColumnsAutoSync"] is False and fixed["columns"] == ["id", "name", "city", "sex"]
    assert api.post(f"/tables/{ALIAS}/alias-columns-auto-sync").status_code == 204
    assert api.get(f"/tables/{ALIAS}").json()["columns"][-1] == "zip"
    not_alias = api.post(f"/tables/{source}/alias-filter", json={"column": "city", "values": ["PRG"]})
    assert not_alias.status_code == 400
    # not a branch path (PHP BranchAwareClient: filtered aliases are not supported in branches)
    assert (
        api.post(f"/branch/default/tables/{ALIAS}/alias-filter", json={"column": "id", "values": ["1"]}).status_code
        == 404
    )


def test_python_api(emu, project, api, source, alias_bucket):
    detail = emu.create_alias(
        project.id, alias_bucket, source, name="males", alias_filter={"column": "sex", "values": ["male"]}
    )
    assert detail["isAlias"] is True and detail["rowsCount"] == 3
    rows = emu.table_rows(project.id, detail["id"])
    assert rows_set(rows) == rows_set([r for r in api.preview_rows(source) if r["sex"] == "male"])
    fixed = emu.create_alias(project.id, alias_bucket, source, name="ids", alias_columns=["id"])
    assert sorted(r["id"] for r in emu.table_rows(project.id, fixed["id"])) == ["1", "2", "3", "4"]
    assert emu.table_rows(project.id, fixed["id"])[0].keys() == {"id"}
    with pytest.raises(Exception, match="read-only"):
        emu.load_table(project.id, fixed["id"], "id\n7\n")

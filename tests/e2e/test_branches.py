"""Development branches end to end: the forwarded connection (KBC_URL / KBC_TOKEN / KBC_BRANCHID) writes into the
branch only and reads what the branch has not touched from production, on both storage models."""

import pytest

from tests.e2e.harness import sorted_dicts


@pytest.fixture(params=["branched", "prefix"])
def branch(request, emulator, source):
    emulator.set_project_features(source.id, ["storage-branches"] if request.param == "branched" else [])
    created = emulator.create_dev_branch(source.id, f"dev-{request.param}")
    return request.param, int(created["id"])


def _forwarded(env, emulator, project, branch_id):
    return {**env, "KBC_URL": emulator.url, "KBC_TOKEN": project.token, "KBC_BRANCHID": str(branch_id)}


def _branch_table(model, branch_id, table_id):
    """(id, branch) where a table written in the branch is found."""
    if model == "branched":
        return table_id, branch_id
    stage_bucket, name = table_id.rsplit(".", 1)
    stage, bucket = stage_bucket.split(".c-", 1)
    return f"{stage}.c-{branch_id}-{bucket}.{name}", None


def test_sync_in_a_branch_reads_production_and_writes_the_branch(emulator, source, data_dir, env, branch):
    model, branch_id = branch
    data_dir.write_config(
        {"mode": "sync", "tables": [{"source": "in.c-sales.customers", "destination": "in.c-copy.customers"}]}
    )
    run = data_dir.run(_forwarded(env, emulator, source, branch_id))
    assert run.returncode == 0, run.output
    assert f"uses development branch {branch_id}" in run.output
    table_id, in_branch = _branch_table(model, branch_id, "in.c-copy.customers")
    assert sorted_dicts(emulator.table_rows(source.id, table_id, branch_id=in_branch)) == sorted_dicts(
        emulator.table_rows(source.id, "in.c-sales.customers")
    )
    with pytest.raises(Exception):  # noqa: B017 - production has no copy
        emulator.table_detail(source.id, "in.c-copy.customers")


def test_export_in_a_branch_reads_an_untouched_table_from_production(emulator, source, data_dir, env, branch):
    _, branch_id = branch
    data_dir.write_config({"mode": "export", "tables": [{"source": "in.c-sales.customers"}]})
    run = data_dir.run(_forwarded(env, emulator, source, branch_id))
    assert run.returncode == 0, run.output
    assert (data_dir.root / "out" / "tables" / "customers.csv").exists()


def test_unknown_branch_fails_before_writing(emulator, source, data_dir, env):
    data_dir.write_config(
        {"mode": "sync", "tables": [{"source": "in.c-sales.customers", "destination": "in.c-copy.customers"}]}
    )
    run = data_dir.run(_forwarded(env, emulator, source, 987654))
    assert run.returncode == 1, run.output
    assert "nothing was written" in run.output


def test_import_in_a_branch_writes_the_branch_only(emulator, source, data_dir, env, branch):
    model, branch_id = branch
    data_dir.add_input_table("people.csv", ["id", "name"], [["1", "Ann"], ["2", "Ben"]])
    data_dir.write_config({"mode": "import", "destination": {"bucket": "in.c-pushed"}, "tables": []})
    run = data_dir.run(_forwarded(env, emulator, source, branch_id))
    assert run.returncode == 0, run.output
    table_id, in_branch = _branch_table(model, branch_id, "in.c-pushed.people")
    assert sorted_dicts(emulator.table_rows(source.id, table_id, branch_id=in_branch)) == [
        {"id": "1", "name": "Ann"},
        {"id": "2", "name": "Ben"},
    ]
    with pytest.raises(Exception):  # noqa: B017 - production has no such table
        emulator.table_detail(source.id, "in.c-pushed.people")


def test_sync_in_a_branch_reads_the_branch_copy_of_a_table_it_has_written(emulator, source, data_dir, env, branch):
    model, branch_id = branch
    own_id, in_branch = _branch_table(model, branch_id, "in.c-sales.customers")
    if model == "prefix":
        emulator.create_bucket(source.id, f"{branch_id}-sales")
    else:
        emulator.create_bucket(source.id, "sales", branch_id=branch_id)
    emulator.create_table(source.id, own_id, "id,name,city\n9,Branch,Only\n", primary_key=["id"], branch_id=in_branch)
    data_dir.write_config(
        {"mode": "sync", "tables": [{"source": "in.c-sales.customers", "destination": "in.c-copy.customers"}]}
    )
    run = data_dir.run(_forwarded(env, emulator, source, branch_id))
    assert run.returncode == 0, run.output
    table_id, in_branch = _branch_table(model, branch_id, "in.c-copy.customers")
    assert emulator.table_rows(source.id, table_id, branch_id=in_branch) == [
        {"id": "9", "name": "Branch", "city": "Only"}
    ]
    assert len(emulator.table_rows(source.id, "in.c-sales.customers")) == 3  # production untouched

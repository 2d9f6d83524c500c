"""Sync mode end to end: project to project, incremental, with per-table watermarks in state."""

import json

import pytest

from emulator import Emulator
from emulator.faults import Fault, FaultRule
from tests.e2e.harness import sorted_dicts


def _sync_params(emulator, source, destination, tables, dest_url=None, **extra):
    return {
        "mode": "sync",
        "source": {"url": emulator.url, "#token": source.token},
        "destination": {"url": dest_url or emulator.url, "#token": destination.token},
        "tables": tables,
        **extra,
    }


def _same_rows(emu_a, project_a, emu_b, project_b, table_id, dest_id=None):
    return sorted_dicts(emu_a.table_rows(project_a.id, table_id)) == sorted_dicts(
        emu_b.table_rows(project_b.id, dest_id or table_id)
    )


def test_first_sync_copies_tables_with_primary_key_then_syncs_changes(emulator, source, destination, data_dir, env):
    data_dir.write_config(_sync_params(emulator, source, destination, [{"source": "in.c-sales"}]))
    emulator.advance_clock(3600)  # the source rows are older than the first watermark (with its overlap)
    first = data_dir.run(env)
    assert first.returncode == 0, first.output
    assert emulator.table_detail(destination.id, "in.c-sales.customers")["primaryKey"] == ["id"]
    assert _same_rows(emulator, source, emulator, destination, "in.c-sales.customers")
    assert _same_rows(emulator, source, emulator, destination, "in.c-sales.events")
    watermarks = first.state["tables"]
    assert set(watermarks) == {"in.c-sales.customers", "in.c-sales.events"}

    emulator.advance_clock(3600)
    # a destination row that the source does not change: an incremental sync leaves it, a full copy would not
    emulator.load_table(destination.id, "in.c-sales.customers", "id,name,city\n1,Tampered,X\n", incremental=True)
    emulator.load_table(source.id, "in.c-sales.customers", "id,name,city\n2,Bob,Zlin\n4,Dan,Plzen\n", incremental=True)
    emulator.load_table(source.id, "in.c-sales.events", "ts,kind\n2024-01-03,open\n", incremental=True)
    data_dir.carry_state()
    second = data_dir.run(env)
    assert second.returncode == 0, second.output
    rows = {r["id"]: r for r in emulator.table_rows(destination.id, "in.c-sales.customers")}
    assert rows["1"]["name"] == "Tampered", "the second run copied only the changed rows"
    emulator.load_table(destination.id, "in.c-sales.customers", "id,name,city\n1,Alice,Prague\n", incremental=True)
    assert _same_rows(emulator, source, emulator, destination, "in.c-sales.customers")
    assert _same_rows(emulator, source, emulator, destination, "in.c-sales.events")
    assert "primary key" in second.output.lower(), "tables without a PK are fully reloaded with a warning"
    assert (
        second.state["tables"]["in.c-sales.customers"]["watermark"] >= watermarks["in.c-sales.customers"]["watermark"]
    )


def test_sync_to_other_bucket_and_table_name(emulator, source, destination, data_dir, env):
    tables = [{"source": "in.c-sales.customers", "destination": "out.c-mirror.clients"}]
    data_dir.write_config(_sync_params(emulator, source, destination, tables))
    run = data_dir.run(env)
    assert run.returncode == 0, run.output
    assert _same_rows(emulator, source, emulator, destination, "in.c-sales.customers", "out.c-mirror.clients")


@pytest.mark.provider_independent  # the state across runs, not the transfer
def test_failed_load_does_not_advance_watermark(emulator, source, destination, data_dir, env):
    data_dir.write_config(_sync_params(emulator, source, destination, [{"source": "in.c-sales.customers"}]))
    assert data_dir.run(env).returncode == 0
    data_dir.carry_state()
    before = (data_dir.root / "in" / "state.json").read_text()

    emulator.load_table(source.id, "in.c-sales.customers", "id,name,city\n5,Eve,Kolin\n", incremental=True)
    emulator.faults.add(
        FaultRule(
            endpoint="POST /v2/storage/tables/*/import-async",
            fault=Fault(kind="job_error", code="storage.jobs.internal", message="Injected failure"),
            times=1,
        )
    )
    failed = data_dir.run(env)
    assert failed.returncode == 1, failed.output
    assert "in.c-sales.customers" in failed.stderr
    assert failed.state == json.loads(before), "a failed table keeps its watermark"

    retry = data_dir.run(env)
    assert retry.returncode == 0, retry.output
    assert _same_rows(emulator, source, emulator, destination, "in.c-sales.customers")


@pytest.mark.timeout(600)
def test_cross_stack_sync(emulator, source, data_dir, env, tmp_path):
    """Source and destination on different stacks. AWS -> AWS shares the S3 endpoint (as real AWS stacks do) with
    its own bucket; from Azure or GCP the destination is an AWS stack, so the sync also crosses providers."""
    if emulator.provider == "aws":
        other_stack = Emulator(workdir=tmp_path / "second-stack", share_storage_with=emulator)
    else:
        other_stack = Emulator(provider="aws", workdir=tmp_path / "aws-stack")
    with other_stack as other:
        destination = other.create_project("other-stack")
        data_dir.secrets.add(destination.token)
        data_dir.write_config(
            _sync_params(emulator, source, destination, [{"source": "in.c-sales"}], dest_url=other.url)
        )
        emulator.load_table(source.id, "in.c-sales.customers", "id,name,city\n7,Gus,Cheb\n", incremental=True)
        run = data_dir.run({**env, **other.env})
        assert run.returncode == 0, run.output
        assert _same_rows(emulator, source, other, destination, "in.c-sales.customers")
        assert _same_rows(emulator, source, other, destination, "in.c-sales.events")

        emulator.load_table(source.id, "in.c-sales.customers", "id,name,city\n7,Gus,Tabor\n", incremental=True)
        data_dir.carry_state()
        again = data_dir.run({**env, **other.env})
        assert again.returncode == 0, again.output
        assert _same_rows(emulator, source, other, destination, "in.c-sales.customers")


def test_sync_subset_of_columns_and_rows(emulator, source, destination, data_dir, env):
    tables = [
        {
            "source": "in.c-sales.customers",
            "columns": ["id", "city"],
            "whereFilters": [{"column": "city", "operator": "ne", "values": ["Brno"]}],
        }
    ]
    data_dir.write_config(_sync_params(emulator, source, destination, tables))
    run = data_dir.run(env)
    assert run.returncode == 0, run.output
    rows = sorted_dicts(emulator.table_rows(destination.id, "in.c-sales.customers"))
    assert rows == sorted_dicts([{"id": "1", "city": "Prague"}, {"id": "3", "city": 'Ostrava "East"'}])


def test_sync_refuses_changed_since_and_limit(emulator, source, destination, data_dir, env):
    for extra in ({"changedSince": "-1 days"}, {"limit": 5}):
        data_dir.write_config(
            _sync_params(emulator, source, destination, [{"source": "in.c-sales.customers", **extra}])
        )
        run = data_dir.run(env)
        assert run.returncode == 1, run.output
        assert next(iter(extra)) in run.stderr

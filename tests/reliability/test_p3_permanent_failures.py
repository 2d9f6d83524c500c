"""Part 3: permanent failures end with exit code 1 and a message naming the table and the job; no manifest or
partial slice is left in out/tables for the table, and the state is unchanged (the table's entry as it was; an
import may remember the load job it submitted, which the next run checks before loading again).

Cases: a job ending in error, a job running past ``timeouts.job``, the source table deleted while its export job
waits, the token revoked while a job runs.
"""

from __future__ import annotations

import json
import re
import threading
import time

import pytest

from tests.reliability.conftest import CAMPAIGN, env_for, new_data_dir, new_project, sync_params

TABLE = "in.c-perm.items"
OLD_STATE = {"version": 1, "tables": {TABLE: {"watermark": 1000, "destination": TABLE, "lastSuccess": "x"}}}


@pytest.fixture
def setup(emu, tmp_path):
    source = new_project(emu, "permsrc")
    destination = new_project(emu, "permdst")
    emu.create_bucket(source.id, "perm")
    emu.create_table(source.id, TABLE, "id,v\n" + "".join(f"{i},{i}\n" for i in range(50)), primary_key=["id"])
    data = new_data_dir(tmp_path / "data")
    (data.root / "in" / "state.json").write_text(json.dumps(OLD_STATE))
    data.add_input_table("items.csv", ["id", "v"], [[str(i), "x"] for i in range(20)])
    return source, destination, data


def _params(emu, mode, source, destination, **extra):
    if mode == "export":
        return {
            "mode": "export",
            "source": {"url": emu.url, "#token": source.token},
            "tables": [{"source": TABLE, "changedSince": "last"}],
            **extra,
        }
    if mode == "import":
        return {
            "mode": "import",
            "destination": {"url": emu.url, "#token": destination.token},
            "tables": [{"source": "items.csv", "destination": TABLE}],
            **extra,
        }
    return sync_params(emu, source, emu, destination, [{"source": TABLE}], **extra)


def _wait_for_job(emu, project_id, operation, timeout=20.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with emu.backend.lock:
            for job in emu.backend.jobs.values():
                if job.project_id == project_id and job.operation_name == operation and job.status == "waiting":
                    return job.id
        time.sleep(0.02)
    raise AssertionError(f"no {operation} job appeared")


def _assert_clean_failure(run, data, *, job_named=True):
    assert run.returncode == 1, run.output
    assert "Traceback" not in run.output, run.output
    message = " ".join(run.error_lines())
    assert TABLE in message, message
    if job_named:
        assert re.search(r"[Jj]ob \d+", message), f"the job is not named: {message}"
    tables_out = data.root / "out" / "tables"
    assert sorted(p.name for p in tables_out.iterdir()) == [], "outputs left in out/tables"
    state = run.state
    if state:  # written again (as version 2) with the table's entry as it was: the watermark did not move
        assert state.get("tables") == OLD_STATE["tables"], state
        assert set(state) <= {"version", "tables", "pendingLoads"}, state
        # an import remembers the load it submitted until a run sees it through; the next run checks that job
        assert set(state.get("pendingLoads") or {}) <= {TABLE}, state
    return message


def modes(*in_subset):
    """All modes; those not in the subset run in the full campaign only."""
    return [m if m in in_subset else pytest.param(m, marks=pytest.mark.slow) for m in ("export", "import", "sync")]


@pytest.mark.parametrize("mode", modes("sync"))
def test_job_ending_in_error(emu, setup, mode):
    source, destination, data = setup
    operation = {"export": "export-async", "import": "tables-async", "sync": "import-async"}[mode]
    emu.faults.add(f"POST /v2/storage/*{operation}", kind="job_error", code="storage.jobs.failed", times=1)
    data.write_config(_params(emu, mode, source, destination))
    _assert_clean_failure(data.run(env_for(emu)), data)
    CAMPAIGN.add("3 permanent failures", runs=1)


@pytest.mark.parametrize("mode", modes("export"))
def test_job_past_timeout(emu, setup, mode):
    source, destination, data = setup
    emu.job_delay = 4.0
    data.write_config(_params(emu, mode, source, destination, timeouts={"job": 1}))
    message = _assert_clean_failure(data.run(env_for(emu)), data)
    assert "1 s" in message, message
    CAMPAIGN.add("3 permanent failures", runs=1)


@pytest.mark.parametrize("mode", ["export", pytest.param("sync", marks=pytest.mark.slow)])
def test_source_table_deleted_mid_run(emu, setup, mode):
    source, destination, data = setup
    emu.job_delay = 1.5

    def delete_when_export_waits():
        _wait_for_job(emu, source.id, "tableExport")
        emu.delete_table(source.id, TABLE)

    deleter = threading.Thread(target=delete_when_export_waits)
    deleter.start()
    data.write_config(_params(emu, mode, source, destination))
    run = data.run(env_for(emu))
    deleter.join()
    _assert_clean_failure(run, data)
    CAMPAIGN.add("3 permanent failures", runs=1)


@pytest.mark.parametrize("mode", modes("import"))
def test_token_revoked_mid_run(emu, setup, mode):
    source, destination, data = setup
    emu.job_delay = 1.5
    project = destination if mode == "import" else source
    token = emu.create_token(
        project.id, bucket_permissions={"in.c-perm": "manage"}, can_manage_buckets=True, description="revoked mid-run"
    )
    data.secrets.add(token)
    if mode == "import":
        destination = type(destination)(destination.id, destination.name, token)
    else:
        source = type(source)(source.id, source.name, token)
    operation = "tableCreate" if mode == "import" else "tableExport"

    def revoke_when_job_waits():
        _wait_for_job(emu, project.id, operation)
        emu.revoke_token(token)

    revoker = threading.Thread(target=revoke_when_job_waits)
    revoker.start()
    data.write_config(_params(emu, mode, source, destination))
    run = data.run(env_for(emu))
    revoker.join()
    message = _assert_clean_failure(run, data)
    assert "token" in message.lower(), message
    CAMPAIGN.add("3 permanent failures", runs=1)

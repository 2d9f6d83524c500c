"""Sync keeps the destination equal to the source, after anything a user does: every test ends with
destination == source, row for row and column for column (and the same primary key)."""

import json
import time

import requests

from tests.e2e.harness import sorted_dicts

CUSTOMERS = "in.c-sales.customers"
TEN_ROWS = "id,name,city\n" + "".join(f"{i},name{i},{'Prague' if i % 2 else 'Brno'}\n" for i in range(1, 11))


def _params(emulator, source, destination, tables, **extra):
    return {
        "mode": "sync",
        "source": {"url": emulator.url, "#token": source.token},
        "destination": {"url": emulator.url, "#token": destination.token},
        "tables": tables,
        **extra,
    }


def assert_copy_equal(emulator, source, destination, table_id, dest_id=None, *, columns=None, where=None):
    """Destination == the source selection: same columns (in order), primary key and rows."""
    dest_id = dest_id or table_id
    src_detail = emulator.table_detail(source.id, table_id)
    dst_detail = emulator.table_detail(destination.id, dest_id)
    expected_columns = list(columns or src_detail["columns"])
    assert dst_detail["columns"] == expected_columns
    assert dst_detail["primaryKey"] == src_detail["primaryKey"]
    rows = [{c: r[c] for c in expected_columns} for r in emulator.table_rows(source.id, table_id)]
    if where:
        rows = [r for r in rows if where(r)]
    assert sorted_dicts(emulator.table_rows(destination.id, dest_id)) == sorted_dicts(rows)


def _storage(emulator, project, method, path, **kwargs):
    """A Storage API call as any client makes it; waits for the job it starts."""
    response = requests.request(
        method, f"{emulator.url}/v2/storage/{path}", headers={"X-StorageApi-Token": project.token}, **kwargs
    )
    assert response.status_code < 300, response.text
    if response.status_code == 202:
        job = emulator.wait_job(response.json()["id"])
        assert job["status"] == "success", job
        return job
    return response.json() if response.content else None


def _run(data_dir, env):
    data_dir.carry_state()
    run = data_dir.run(env)
    assert run.returncode == 0, run.output
    return run


def _first_sync(emulator, data_dir, env, params):
    """A first (full) sync whose watermark is newer than every source row (with its overlap), then an hour passes:
    a later run that wrongly went incremental would miss the rows, so a row-for-row check can tell."""
    data_dir.write_config(params)
    emulator.advance_clock(3600)
    run = _run(data_dir, env)
    emulator.advance_clock(3600)
    return run


def _ten_row_source(emulator, source):
    emulator.delete_table(source.id, CUSTOMERS)
    emulator.create_table(source.id, CUSTOMERS, TEN_ROWS, primary_key=["id"])


def test_second_run_is_incremental_and_logs_rows_moved_apart_from_the_total(
    emulator, source, destination, data_dir, env
):
    data_dir.write_config(_params(emulator, source, destination, [{"source": CUSTOMERS}]))
    emulator.advance_clock(3600)  # the source rows are an hour old: older than the watermark with its overlap
    first = _run(data_dir, env)
    assert "full copy" in first.output and "first run" in first.output
    emulator.advance_clock(3600)
    # a destination row the source does not change: an incremental sync leaves it alone, a full copy would not
    emulator.load_table(destination.id, CUSTOMERS, "id,name,city\n1,Tampered,Nowhere\n", incremental=True)
    emulator.load_table(source.id, CUSTOMERS, "id,name,city\n2,Bob,Zlin\n4,Dan,Plzen\n", incremental=True)
    second = _run(data_dir, env)
    assert "copying rows changed since" in second.output
    assert "synced (incremental) 2 rows" in second.output and "The destination holds 4 rows." in second.output
    rows = {r["id"]: r for r in emulator.table_rows(destination.id, CUSTOMERS)}
    assert rows["1"]["name"] == "Tampered", "an incremental sync copies only changed rows"
    assert rows["2"]["city"] == "Zlin" and rows["4"]["name"] == "Dan"


def test_widening_columns_copies_the_table_again(emulator, source, destination, data_dir, env):
    _ten_row_source(emulator, source)
    tables = [{"source": CUSTOMERS, "columns": ["id", "name"], "whereFilters": []}]
    _first_sync(emulator, data_dir, env, _params(emulator, source, destination, tables))
    assert_copy_equal(emulator, source, destination, CUSTOMERS, columns=["id", "name"])
    data_dir.write_config(_params(emulator, source, destination, [{"source": CUSTOMERS}]))
    run = _run(data_dir, env)
    assert "selection (columns or whereFilters) changed" in run.output
    assert_copy_equal(emulator, source, destination, CUSTOMERS)


def test_removing_where_filters_copies_the_table_again(emulator, source, destination, data_dir, env):
    _ten_row_source(emulator, source)
    where = [{"column": "city", "operator": "eq", "values": ["Prague"]}]
    _first_sync(
        emulator, data_dir, env, _params(emulator, source, destination, [{"source": CUSTOMERS, "whereFilters": where}])
    )
    assert_copy_equal(emulator, source, destination, CUSTOMERS, where=lambda r: r["city"] == "Prague")
    data_dir.write_config(_params(emulator, source, destination, [{"source": CUSTOMERS}]))
    run = _run(data_dir, env)
    assert "selection (columns or whereFilters) changed" in run.output
    assert_copy_equal(emulator, source, destination, CUSTOMERS)


def test_switching_the_source_project_copies_the_new_source(emulator, source, destination, data_dir, env):
    _first_sync(emulator, data_dir, env, _params(emulator, source, destination, [{"source": CUSTOMERS}]))
    other = emulator.create_project("other-source")
    emulator.create_bucket(other.id, "sales")
    emulator.create_table(other.id, CUSTOMERS, TEN_ROWS, primary_key=["id"])
    data_dir.secrets.add(other.token)
    emulator.advance_clock(3600)
    data_dir.write_config(_params(emulator, other, destination, [{"source": CUSTOMERS}]))
    run = _run(data_dir, env)
    assert "another project" in run.output
    assert_copy_equal(emulator, other, destination, CUSTOMERS)


def test_destination_recreated_by_hand_is_copied_again(emulator, source, destination, data_dir, env):
    _ten_row_source(emulator, source)
    _first_sync(emulator, data_dir, env, _params(emulator, source, destination, [{"source": CUSTOMERS}]))
    emulator.delete_table(destination.id, CUSTOMERS)
    emulator.create_table(destination.id, CUSTOMERS, "id,name,city\n1,name1,Prague\n", primary_key=["id"])
    run = _run(data_dir, env)
    assert "destination table was recreated" in run.output
    assert_copy_equal(emulator, source, destination, CUSTOMERS)


def test_source_recreated_with_the_same_columns_is_copied_again(emulator, source, destination, data_dir, env):
    _first_sync(emulator, data_dir, env, _params(emulator, source, destination, [{"source": CUSTOMERS}]))
    _ten_row_source(emulator, source)  # dropped and created again; its rows are older than nothing we know
    run = _run(data_dir, env)
    assert "source table was recreated" in run.output
    assert_copy_equal(emulator, source, destination, CUSTOMERS)


def test_columns_added_and_dropped_in_the_source_follow_into_the_destination(
    emulator, source, destination, data_dir, env
):
    _first_sync(emulator, data_dir, env, _params(emulator, source, destination, [{"source": CUSTOMERS}]))
    _storage(emulator, source, "DELETE", f"tables/{CUSTOMERS}/columns/city")
    _storage(emulator, source, "POST", f"tables/{CUSTOMERS}/columns", data={"name": "email"})
    emulator.load_table(source.id, CUSTOMERS, "id,name,email\n2,Bob,bob@example.com\n", incremental=True)
    run = _run(data_dir, env)
    assert "dropping column city" in run.output and "adding column email" in run.output
    assert "columnsNotMatch" not in run.output
    assert_copy_equal(emulator, source, destination, CUSTOMERS)
    emulator.advance_clock(3600)
    _run(data_dir, env)  # and one more sync changes nothing
    assert_copy_equal(emulator, source, destination, CUSTOMERS)


def test_a_column_dropped_in_the_destination_by_hand_is_filled_again(emulator, source, destination, data_dir, env):
    """The destination step adds the column back empty; an incremental load would leave it empty in every row that
    did not change, so the table is copied in full."""
    _first_sync(emulator, data_dir, env, _params(emulator, source, destination, [{"source": CUSTOMERS}]))
    _storage(emulator, destination, "DELETE", f"tables/{CUSTOMERS}/columns/city")
    run = _run(data_dir, env)
    assert "adding column city" in run.output
    assert_copy_equal(emulator, source, destination, CUSTOMERS)


def test_a_changed_primary_key_is_one_sentence_or_a_rebuild(emulator, source, destination, data_dir, env):
    data_dir.write_config(_params(emulator, source, destination, [{"source": CUSTOMERS}]))
    _run(data_dir, env)
    emulator.delete_table(source.id, CUSTOMERS)
    emulator.create_table(source.id, CUSTOMERS, TEN_ROWS, primary_key=["id", "name"])
    data_dir.carry_state()
    failed = data_dir.run(env)
    assert failed.returncode == 1, failed.output
    assert 'schemaChanges to "rebuild"' in failed.error_lines()[-1]
    data_dir.write_config(_params(emulator, source, destination, [{"source": CUSTOMERS, "schemaChanges": "rebuild"}]))
    run = _run(data_dir, env)
    assert "dropping and recreating it" in run.output
    assert_copy_equal(emulator, source, destination, CUSTOMERS)


def test_one_failing_table_does_not_stop_the_others(emulator, source, destination, data_dir, env):
    # the destination's events table has a key the source's has not: that table fails, customers syncs
    emulator.create_bucket(destination.id, "sales")
    emulator.create_table(destination.id, "in.c-sales.events", "ts,kind\n", primary_key=["ts"])
    data_dir.write_config(_params(emulator, source, destination, [{"source": "in.c-sales"}]))
    data_dir.carry_state()
    run = data_dir.run(env)
    assert run.returncode == 1, run.output
    last = run.error_lines()[-1]
    assert "1 of 2 table(s) failed: in.c-sales.events" in last and "customers" not in last
    assert_copy_equal(emulator, source, destination, CUSTOMERS)
    assert set(run.state["tables"]) == {CUSTOMERS}, "the committed table keeps its state"
    assert "Summary:" in run.output


def test_a_table_dropped_from_a_synced_source_bucket_is_named_every_run_until_its_copy_is_dropped(
    emulator, source, destination, data_dir, env
):
    """A table is never dropped on the strength of a bucket listing: its copy stays, and the log says so."""
    _first_sync(emulator, data_dir, env, _params(emulator, source, destination, [{"source": "in.c-sales"}]))
    emulator.delete_table(source.id, "in.c-sales.events")
    warning = (
        "Table in.c-sales.events no longer exists in source bucket in.c-sales; its copy in.c-sales.events, made by "
        "an earlier run, is kept: drop it in the destination if it is no longer needed."
    )
    for _ in range(2):
        run = _run(data_dir, env)
        assert warning in run.output
        assert emulator.table_detail(destination.id, "in.c-sales.events")
        assert "in.c-sales.events" in run.state["tables"]
        assert_copy_equal(emulator, source, destination, CUSTOMERS)
    emulator.delete_table(destination.id, "in.c-sales.events")
    run = _run(data_dir, env)
    assert "no longer exists" not in run.output
    assert set(run.state["tables"]) == {CUSTOMERS}, "the entry of a table gone from both sides is dropped"


def test_a_table_created_by_another_job_while_the_sync_creates_it_is_loaded_instead(
    emulator, source, destination, data_dir, env
):
    """What a stopped run leaves: its create job finishes on the server while the next run creates the same table
    (the create request is held until the table exists). The run loads into that table, fully."""
    _ten_row_source(emulator, source)
    held = emulator.faults.add("POST /v2/storage/buckets/*/tables-async", kind="slow", delay=1.5, times=1)
    data_dir.write_config(_params(emulator, source, destination, [{"source": CUSTOMERS}]))
    proc = data_dir.start(env)
    deadline = time.monotonic() + 60
    while not held.fired:
        assert proc.poll() is None and time.monotonic() < deadline, "the create request never came"
        time.sleep(0.05)
    emulator.create_table(destination.id, CUSTOMERS, "id,name,city\n99,stale,Nowhere\n1,old,Brno\n", ["id"])
    run = data_dir.finish(proc)
    assert run.returncode == 0, run.output
    assert f"Table {CUSTOMERS}: it was created by another job while this run was creating it" in run.output
    assert_copy_equal(emulator, source, destination, CUSTOMERS)
    assert CUSTOMERS in run.state["tables"]


def test_same_project_under_another_host_name_is_refused(emulator, source, data_dir, env):
    params = _params(emulator, source, source, [{"source": CUSTOMERS}])
    params["destination"]["url"] = emulator.url.replace("127.0.0.1", "localhost")
    assert params["destination"]["url"] != params["source"]["url"]
    data_dir.write_config(params)
    run = data_dir.run(env)
    assert run.returncode == 1, run.output
    assert "same project" in run.error_lines()[-1]


def _delete_rows(emulator, project, table_id, column, values):
    body = {"whereFilters": [{"column": column, "operator": "eq", "values": values}]}
    return _storage(emulator, project, "DELETE", f"tables/{table_id}/rows", json=body)


def test_rows_deleted_in_the_source_are_deleted_in_the_destination(emulator, source, destination, data_dir, env):
    _ten_row_source(emulator, source)
    _first_sync(emulator, data_dir, env, _params(emulator, source, destination, [{"source": CUSTOMERS}]))
    _delete_rows(emulator, source, CUSTOMERS, "id", ["3", "7"])
    run = _run(data_dir, env)
    assert "synced (incremental)" in run.output
    assert_copy_equal(emulator, source, destination, CUSTOMERS)
    assert emulator.table_detail(destination.id, CUSTOMERS)["rowsCount"] == 8


def test_rows_that_stop_matching_where_filters_leave_the_destination(emulator, source, destination, data_dir, env):
    _ten_row_source(emulator, source)
    where = [{"column": "city", "operator": "eq", "values": ["Prague"]}]
    _first_sync(
        emulator, data_dir, env, _params(emulator, source, destination, [{"source": CUSTOMERS, "whereFilters": where}])
    )
    emulator.load_table(source.id, CUSTOMERS, "id,name,city\n1,name1,Brno\n", incremental=True)  # leaves the filter
    _run(data_dir, env)
    assert_copy_equal(emulator, source, destination, CUSTOMERS, where=lambda r: r["city"] == "Prague")


def test_deletes_keep_only_counts_and_composite_keys_delete_exactly(emulator, source, destination, data_dir, env):
    table = "in.c-sales.visits"
    rows = "day,shop,n\n" + "".join(f"{d},{s},{d}{s}\n" for d in ("1", "2", "3") for s in ("a", "b", "c"))
    emulator.create_table(source.id, table, rows, primary_key=["day", "shop"])
    _first_sync(emulator, data_dir, env, _params(emulator, source, destination, [{"source": table, "deletes": "keep"}]))
    # (1,a) and (2,b) go: a cross product of day in (1,2) and shop in (a,b) would also delete (1,b) and (2,a)
    _storage(
        emulator,
        source,
        "DELETE",
        f"tables/{table}/rows",
        json={
            "whereFilters": [
                {"column": "day", "operator": "eq", "values": ["1"]},
                {"column": "shop", "operator": "eq", "values": ["a"]},
            ]
        },
    )
    _storage(
        emulator,
        source,
        "DELETE",
        f"tables/{table}/rows",
        json={
            "whereFilters": [
                {"column": "day", "operator": "eq", "values": ["2"]},
                {"column": "shop", "operator": "eq", "values": ["b"]},
            ]
        },
    )
    kept = _run(data_dir, env)
    assert "2" in kept.output and emulator.table_detail(destination.id, table)["rowsCount"] == 9
    data_dir.write_config(_params(emulator, source, destination, [{"source": table}]))
    _run(data_dir, env)
    assert_copy_equal(emulator, source, destination, table)
    assert emulator.table_detail(destination.id, table)["rowsCount"] == 7


def test_verify_reports_what_differs_and_changes_nothing(emulator, source, destination, data_dir, env):
    _ten_row_source(emulator, source)
    data_dir.write_config(_params(emulator, source, destination, [{"source": CUSTOMERS}], verify=True))
    ok = _run(data_dir, env)
    assert "1 of 1 table(s) match" in ok.output
    report = (data_dir.root / "out" / "files" / "sync_verification.csv").read_text()
    assert "in.c-sales.customers" in report and '"ok"' in report
    emulator.load_table(destination.id, CUSTOMERS, "id,name,city\n99,Extra,Nowhere\n", incremental=True)
    # a verify sync action reads both sides and writes nothing
    data_dir.write_config(_params(emulator, source, destination, [{"source": CUSTOMERS}]), action="verify")
    data_dir.carry_state()
    action = data_dir.run(env)
    assert action.returncode == 0, action.output
    result = json.loads(action.stdout.strip().splitlines()[-1])
    assert result["type"] == "warning" and "0 of 1 table(s) match" in result["message"]
    assert 'extra e.g. ["99"]' in result["message"], result["message"]
    assert len(emulator.table_rows(destination.id, CUSTOMERS)) == 11, "verify changes nothing"

"""Import mode end to end: input tables from in/tables pushed into a project."""

import csv
import gzip
import json

import pytest

from tests.e2e.harness import sorted_dicts


def _import_params(emulator, project, tables, **extra):
    return {
        "mode": "import",
        "destination": {"url": emulator.url, "#token": project.token, "bucket": "in.c-pushed"},
        "tables": tables,
        **extra,
    }


def test_import_creates_bucket_and_table_with_primary_key(emulator, destination, data_dir, env):
    data_dir.add_input_table("people.csv", ["id", "name"], [["1", "Ann"], ["2", "Ben"], ["2", "Ben"]])
    data_dir.write_config(_import_params(emulator, destination, [{"source": "people.csv", "primaryKey": ["id"]}]))
    run = data_dir.run(env)
    assert run.returncode == 0, run.output
    detail = emulator.table_detail(destination.id, "in.c-pushed.people")
    assert detail["primaryKey"] == ["id"]
    assert sorted_dicts(emulator.table_rows(destination.id, "in.c-pushed.people")) == [
        {"id": "1", "name": "Ann"},
        {"id": "2", "name": "Ben"},
    ]


def test_import_full_and_incremental_loads(emulator, destination, data_dir, env):
    data_dir.add_input_table("people.csv", ["id", "name"], [["1", "Ann"], ["2", "Ben"]])
    data_dir.write_config(_import_params(emulator, destination, [{"source": "people.csv", "primaryKey": ["id"]}]))
    assert data_dir.run(env).returncode == 0

    data_dir.add_input_table("people.csv", ["id", "name"], [["2", "Benjamin"], ["3", "Cid"]])
    data_dir.write_config(
        _import_params(emulator, destination, [{"source": "people.csv", "primaryKey": ["id"], "incremental": True}])
    )
    run = data_dir.run(env)
    assert run.returncode == 0, run.output
    assert sorted_dicts(emulator.table_rows(destination.id, "in.c-pushed.people")) == [
        {"id": "1", "name": "Ann"},
        {"id": "2", "name": "Benjamin"},
        {"id": "3", "name": "Cid"},
    ]

    data_dir.add_input_table("people.csv", ["id", "name"], [["9", "Zed"]])
    data_dir.write_config(_import_params(emulator, destination, [{"source": "people.csv", "incremental": False}]))
    run = data_dir.run(env)
    assert run.returncode == 0, run.output
    assert emulator.table_rows(destination.id, "in.c-pushed.people") == [{"id": "9", "name": "Zed"}]


def test_import_default_destination_is_manifest_id(emulator, destination, data_dir, env):
    data_dir.add_input_table("orders.csv", ["order_id", "total"], [["o1", "10"]], manifest={"id": "out.c-shop.orders"})
    params = _import_params(emulator, destination, [])
    del params["destination"]["bucket"]
    data_dir.write_config(params)
    run = data_dir.run(env)
    assert run.returncode == 0, run.output
    assert emulator.table_rows(destination.id, "out.c-shop.orders") == [{"order_id": "o1", "total": "10"}]


def test_import_sliced_input_table(emulator, destination, data_dir, env):
    folder = data_dir.root / "in" / "tables" / "big.csv"
    folder.mkdir()
    for index, chunk in enumerate((["1", "a"], ["2", "b"])):
        with gzip.open(folder / f"part{index}.csv.gz", "wt", newline="") as f:
            csv.writer(f, lineterminator="\n").writerow(chunk)
    (folder.parent / "big.csv.manifest").write_text(json.dumps({"columns": ["k", "v"], "primary_key": ["k"]}))
    data_dir.write_config(_import_params(emulator, destination, [{"source": "big.csv"}]))
    run = data_dir.run(env)
    assert run.returncode == 0, run.output
    assert sorted_dicts(emulator.table_rows(destination.id, "in.c-pushed.big")) == [
        {"k": "1", "v": "a"},
        {"k": "2", "v": "b"},
    ]


def test_import_primary_key_mismatch_is_a_user_error(emulator, destination, data_dir, env):
    emulator.create_bucket(destination.id, "pushed")
    emulator.create_table(destination.id, "in.c-pushed.people", "id,name\n1,Ann\n", primary_key=["id"])
    data_dir.add_input_table("people.csv", ["id", "name"], [["1", "Ann"]])
    data_dir.write_config(_import_params(emulator, destination, [{"source": "people.csv", "primaryKey": ["name"]}]))
    run = data_dir.run(env)
    assert run.returncode == 1, run.output
    assert "primary key" in run.stderr.lower()
    assert "Traceback" not in run.stderr


def test_import_without_bucket_permission_is_a_user_error(emulator, destination, data_dir, env):
    token = emulator.create_token(destination.id, bucket_permissions={}, can_manage_buckets=False)
    data_dir.secrets.add(token)
    data_dir.add_input_table("people.csv", ["id", "name"], [["1", "Ann"]])
    params = _import_params(emulator, destination, [{"source": "people.csv"}])
    params["destination"]["#token"] = token
    data_dir.write_config(params)
    run = data_dir.run(env)
    assert run.returncode == 1, run.output
    assert "in.c-pushed" in run.stderr


def test_import_large_csv_goes_as_gzip_slices(emulator, destination, data_dir, env):
    """A plain CSV above the slice size is cut into headerless gzip slices (quoted newlines stay whole), created
    from its header and loaded with columns; a second run loads into the existing table the same way."""
    rows = [[str(i), f"line one\nline two {i}" if i % 3 else f'say "{i}"', "x" * (i % 7)] for i in range(200)]
    data_dir.add_input_table("big.csv", ["id", "text", "pad"], rows)
    data_dir.write_config(_import_params(emulator, destination, [{"source": "big.csv", "primaryKey": ["id"]}]))
    sliced_env = {**env, "STORAGE_SYNC_IMPORT_SLICE_BYTES": "512"}
    run = data_dir.run(sliced_env)
    assert run.returncode == 0, run.output
    expected = [{"id": r[0], "text": r[1], "pad": r[2]} for r in rows]
    assert sorted_dicts(emulator.table_rows(destination.id, "in.c-pushed.big")) == sorted_dicts(expected)
    assert emulator.table_detail(destination.id, "in.c-pushed.big")["primaryKey"] == ["id"]

    data_dir.add_input_table("big.csv", ["pad", "id", "text"], [["p", "1", "new\ntext"], ["q", "500", "added"]])
    data_dir.write_config(
        _import_params(emulator, destination, [{"source": "big.csv", "incremental": True}]),
    )
    run = data_dir.run({**env, "STORAGE_SYNC_IMPORT_SLICE_BYTES": "10"})
    assert run.returncode == 0, run.output
    table = {r["id"]: r for r in emulator.table_rows(destination.id, "in.c-pushed.big")}
    assert len(table) == 201
    assert table["1"] == {"id": "1", "text": "new\ntext", "pad": "p"}
    assert table["500"] == {"id": "500", "text": "added", "pad": "q"}


def test_import_reads_the_manifest_delimiter_and_enclosure(emulator, destination, data_dir, env):
    """A ';'-delimited file with ' as enclosure loads as its columns, also when it is cut into slices."""
    rows = "id;name\n1;'Ann; Jr.'\n2;'Ben\nsecond line'\n3;'Carol ''C'''\n"
    for name in ("semi.csv", "semi_sliced.csv"):
        (data_dir.root / "in" / "tables" / name).write_text(rows, encoding="utf-8")
        manifest = {"delimiter": ";", "enclosure": "'"}
        (data_dir.root / "in" / "tables" / f"{name}.manifest").write_text(json.dumps(manifest))
    data_dir.write_config(_import_params(emulator, destination, [{"source": "semi.csv"}]))
    run = data_dir.run(env)
    assert run.returncode == 0, run.output
    expected = [
        {"id": "1", "name": "Ann; Jr."},
        {"id": "2", "name": "Ben\nsecond line"},
        {"id": "3", "name": "Carol 'C'"},
    ]
    assert sorted_dicts(emulator.table_rows(destination.id, "in.c-pushed.semi")) == expected
    data_dir.write_config(_import_params(emulator, destination, [{"source": "semi_sliced.csv"}]))
    sliced = data_dir.run({**env, "STORAGE_SYNC_IMPORT_SLICE_BYTES": "10"})
    assert sliced.returncode == 0, sliced.output
    assert sorted_dicts(emulator.table_rows(destination.id, "in.c-pushed.semi_sliced")) == expected


@pytest.mark.provider_independent  # the state across runs, not the transfer
def test_a_load_cut_off_by_the_job_timeout_is_not_loaded_again(emulator, destination, data_dir, env):
    """The load job of a stopped run finishes on the server: the next run checks it instead of loading twice."""
    params = _import_params(emulator, destination, [{"source": "log.csv", "incremental": True}])
    data_dir.add_input_table("log.csv", ["ts", "event"], [["1", "open"]])
    data_dir.write_config(params)
    assert data_dir.run(env).returncode == 0  # the table exists (no primary key: loads append)
    data_dir.carry_state()
    data_dir.add_input_table("log.csv", ["ts", "event"], [["2", "click"], ["3", "close"]])
    emulator.job_delay = 3.0
    data_dir.write_config({**params, "timeouts": {"job": 1}})
    cut = data_dir.run(env)
    assert cut.returncode == 1, cut.output
    assert cut.state["pendingLoads"]["in.c-pushed.log"]["jobId"]
    emulator.job_delay = 0.0
    data_dir.carry_state()
    data_dir.write_config(params)
    rerun = data_dir.run(env)
    assert rerun.returncode == 0, rerun.output
    assert "already loaded this input" in rerun.output
    assert "pendingLoads" not in rerun.state
    rows = sorted(r["ts"] for r in emulator.table_rows(destination.id, "in.c-pushed.log"))
    assert rows == ["1", "2", "3"], "each input row once"
    data_dir.carry_state()
    data_dir.add_input_table("log.csv", ["ts", "event"], [["4", "open"]])
    assert data_dir.run(env).returncode == 0  # another input is loaded as usual
    assert sorted(r["ts"] for r in emulator.table_rows(destination.id, "in.c-pushed.log")) == ["1", "2", "3", "4"]


@pytest.mark.provider_independent  # the state across runs, not the transfer
def test_an_import_stopped_while_its_load_runs_is_not_loaded_twice(emulator, destination, data_dir, env):
    import signal
    import time

    params = _import_params(emulator, destination, [{"source": "log.csv", "incremental": True}])
    data_dir.add_input_table("log.csv", ["ts", "event"], [["1", "open"]])
    data_dir.write_config(params)
    assert data_dir.run(env).returncode == 0
    data_dir.carry_state()
    data_dir.add_input_table("log.csv", ["ts", "event"], [["2", "click"]])
    emulator.job_delay = 2.0
    proc = data_dir.start(env)
    state = data_dir.root / "out" / "state.json"
    deadline = time.monotonic() + 60
    while "pendingLoads" not in (state.read_text() if state.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stopped = data_dir.finish(proc)
    assert stopped.returncode == 143, stopped.output
    assert "checks that job instead of loading the same input again" in stopped.stderr
    emulator.job_delay = 0.0
    data_dir.carry_state()
    rerun = data_dir.run(env)
    assert rerun.returncode == 0, rerun.output
    assert sorted(r["ts"] for r in emulator.table_rows(destination.id, "in.c-pushed.log")) == ["1", "2"]

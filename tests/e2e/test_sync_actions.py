"""Sync actions as the Keboola UI calls them: JSON on stdout."""

import json


def test_test_connection(emulator, source, destination, data_dir, env):
    params = {
        "mode": "sync",
        "source": {"url": emulator.url, "#token": source.token},
        "destination": {"url": emulator.url, "#token": destination.token},
    }
    data_dir.write_config(params, action="testConnection")
    run = data_dir.run(env)
    assert run.returncode == 0, run.output
    assert json.loads(run.stdout)["status"] == "success"

    params["destination"]["#token"] = "1-1-wrongtoken"
    data_dir.secrets.add("1-1-wrongtoken")
    data_dir.write_config(params, action="testConnection")
    run = data_dir.run(env)
    assert run.returncode == 1
    assert "destination" in run.stderr.lower()


def test_list_tables_and_buckets(emulator, source, destination, data_dir, env):
    emulator.create_bucket(destination.id, "landing")
    params = {
        "mode": "sync",
        "source": {"url": emulator.url, "#token": source.token},
        "destination": {"url": emulator.url, "#token": destination.token},
    }
    data_dir.write_config(params, action="listTables")
    run = data_dir.run(env)
    assert run.returncode == 0, run.output
    assert {item["value"] for item in json.loads(run.stdout)} == {"in.c-sales.customers", "in.c-sales.events"}

    data_dir.write_config(params, action="listBuckets")
    run = data_dir.run(env)
    assert run.returncode == 0, run.output
    assert [item["value"] for item in json.loads(run.stdout)] == ["in.c-landing"]

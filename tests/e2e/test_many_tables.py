"""Many tables at once: tables run concurrently (parallelism), share one destination bucket created once, and the
log stays readable (every line names its table; one summary at the end)."""

from tests.e2e.test_sync_fidelity import assert_copy_equal


def test_a_bucket_of_tables_syncs_concurrently_into_one_new_bucket(emulator, source, destination, data_dir, env):
    emulator.create_bucket(source.id, "many")
    tables = [f"in.c-many.t{i:02d}" for i in range(12)]
    for i, table in enumerate(tables):
        emulator.create_table(source.id, table, f"id,v\n1,{i}\n2,{i * 2}\n", primary_key=["id"])
    emulator.job_delay = 0.3  # tables overlap while their jobs run
    params = {
        "mode": "sync",
        "source": {"url": emulator.url, "#token": source.token},
        "destination": {"url": emulator.url, "#token": destination.token, "bucket": "out.c-copy"},
        "tables": [{"source": "in.c-many"}],
        "parallelism": 6,
    }
    data_dir.write_config(params)
    run = data_dir.run(env)
    assert run.returncode == 0, run.output
    assert run.output.count("Creating bucket out.c-copy") == 1
    for table in tables:
        assert_copy_equal(emulator, source, destination, table, "out.c-copy." + table.rsplit(".", 1)[1])
    summary = run.output[run.output.index("Summary:") :]
    assert all(t in summary for t in tables)
    for line in run.stdout.splitlines():
        if "Storage job" in line or "slices" in line:
            assert line.startswith(("Table in.c-many.", "[in.c-many.")), line

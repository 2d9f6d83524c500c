"""Export mode end to end: src/component.py as a process against the emulator."""

import json

from tests.e2e.harness import as_dicts, read_output_table, sorted_dicts


def _export_params(emulator, project, tables, **extra):
    return {
        "mode": "export",
        "source": {"url": emulator.url, "#token": project.token},
        "tables": tables,
        **extra,
    }


def test_export_table_writes_sliced_gzip_table_with_manifest(emulator, source, data_dir, env):
    data_dir.write_config(_export_params(emulator, source, [{"source": "in.c-sales.customers"}]))
    run = data_dir.run(env)
    assert run.returncode == 0, run.output

    out = data_dir.root / "out" / "tables" / "customers.csv"
    assert out.is_dir(), "export writes a sliced table: a folder of slices"
    assert all(p.name.endswith(".gz") for p in out.iterdir())
    columns, rows = read_output_table(out)
    assert as_dicts(columns, rows) == sorted_dicts(emulator.table_rows(source.id, "in.c-sales.customers"))
    manifest = json.loads((out.parent / "customers.csv.manifest").read_text())
    assert manifest["columns"] == ["id", "name", "city"]
    assert manifest["primary_key"] == ["id"]
    assert manifest["destination"] == "in.c-sales.customers"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "no partial folders left"


def test_export_bucket_exports_every_table(emulator, source, data_dir, env):
    data_dir.write_config(_export_params(emulator, source, [{"source": "in.c-sales"}]))
    run = data_dir.run(env)
    assert run.returncode == 0, run.output
    names = sorted(p.name for p in (data_dir.root / "out" / "tables").iterdir())
    assert names == ["customers.csv", "customers.csv.manifest", "events.csv", "events.csv.manifest"]


def test_export_filters_columns_limit_and_merged_output(emulator, source, data_dir, env):
    tables = [
        {
            "source": "in.c-sales.customers",
            "columns": ["id", "city"],
            "whereFilters": [{"column": "id", "operator": "ne", "values": ["2"]}],
            "destination": "out.c-copy.people",
        }
    ]
    data_dir.write_config(_export_params(emulator, source, tables, mergedOutput=True, incremental=True))
    run = data_dir.run(env)
    assert run.returncode == 0, run.output
    out = data_dir.root / "out" / "tables" / "customers.csv"
    assert out.is_file(), "mergedOutput writes one CSV with a header"
    columns, rows = read_output_table(out)
    assert columns == ["id", "city"]
    assert sorted(r[0] for r in rows) == ["1", "3"]
    manifest = json.loads((out.parent / "customers.csv.manifest").read_text())
    assert manifest["destination"] == "out.c-copy.people"
    assert manifest["incremental"] is True

    data_dir.clean_out()
    data_dir.write_config(_export_params(emulator, source, [{"source": "in.c-sales.customers", "limit": 2}]))
    run = data_dir.run(env)
    assert run.returncode == 0, run.output
    _, rows = read_output_table(data_dir.root / "out" / "tables" / "customers.csv")
    assert len(rows) == 2


def test_export_changed_since_last_uses_state(emulator, source, data_dir, env):
    params = _export_params(emulator, source, [{"source": "in.c-sales.customers", "changedSince": "last"}])
    data_dir.write_config(params)
    emulator.advance_clock(3600)  # the rows are older than the first watermark with its overlap
    first = data_dir.run(env)
    assert first.returncode == 0, first.output
    _, rows = read_output_table(data_dir.root / "out" / "tables" / "customers.csv")
    assert len(rows) == 3
    assert "in.c-sales.customers" in json.dumps(first.state)

    emulator.advance_clock(3600)
    emulator.load_table(source.id, "in.c-sales.customers", "id,name,city\n4,Dan,Plzen\n", incremental=True)
    data_dir.carry_state()
    data_dir.clean_out()
    second = data_dir.run(env)
    assert second.returncode == 0, second.output
    _, rows = read_output_table(data_dir.root / "out" / "tables" / "customers.csv")
    assert rows == [["4", "Dan", "Plzen"]], "only the rows changed since the last run"
    manifest = json.loads((data_dir.root / "out" / "tables" / "customers.csv.manifest").read_text())
    assert manifest["incremental"] is True, "changed rows only must not replace the target table"


def test_export_changed_since_relative_and_unix(emulator, source, data_dir, env):
    for value in ("-1 days", str(int(emulator.now().timestamp()) + 3600), "2999-01-01T00:00:00+00:00"):
        data_dir.clean_out()
        data_dir.write_config(
            _export_params(emulator, source, [{"source": "in.c-sales.customers", "changedSince": value}])
        )
        run = data_dir.run(env)
        assert run.returncode == 0, run.output
        _, rows = read_output_table(data_dir.root / "out" / "tables" / "customers.csv")
        assert len(rows) == (3 if value == "-1 days" else 0), value

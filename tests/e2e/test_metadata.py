"""Table and column metadata (descriptions) travel with the data: into the export manifest, onto the destination
table on sync and import."""

import json

import requests

from tests.e2e.harness import sorted_dicts

DESCRIPTION = "KBC.description"


def _describe(emulator, project, table_id):
    response = requests.post(
        f"{emulator.url}/v2/storage/tables/{table_id}/metadata",
        headers={"X-StorageApi-Token": project.token},
        json={
            "provider": "user",
            "metadata": [{"key": DESCRIPTION, "value": "Customers of the shop"}],
            "columnsMetadata": {"city": [{"key": DESCRIPTION, "value": "Where they live"}]},
        },
        timeout=30,
    )
    assert response.status_code in (200, 201), response.text


def _pairs(items):
    return {(item["key"], item["value"]) for item in items}


def test_export_manifest_carries_metadata(emulator, source, data_dir, env):
    _describe(emulator, source, "in.c-sales.customers")
    data_dir.write_config(
        {
            "mode": "export",
            "source": {"url": emulator.url, "#token": source.token},
            "tables": [{"source": "in.c-sales.customers"}],
        }
    )
    run = data_dir.run(env)
    assert run.returncode == 0, run.output
    manifest = json.loads((data_dir.root / "out" / "tables" / "customers.csv.manifest").read_text())
    assert (DESCRIPTION, "Customers of the shop") in _pairs(manifest["metadata"])
    assert (DESCRIPTION, "Where they live") in _pairs(manifest["column_metadata"]["city"])


def test_sync_copies_metadata_to_destination(emulator, source, destination, data_dir, env):
    _describe(emulator, source, "in.c-sales.customers")
    data_dir.write_config(
        {
            "mode": "sync",
            "source": {"url": emulator.url, "#token": source.token},
            "destination": {"url": emulator.url, "#token": destination.token},
            "tables": [{"source": "in.c-sales.customers"}],
        }
    )
    run = data_dir.run(env)
    assert run.returncode == 0, run.output
    detail = emulator.table_detail(destination.id, "in.c-sales.customers")
    assert (DESCRIPTION, "Customers of the shop") in _pairs(detail["metadata"])
    assert (DESCRIPTION, "Where they live") in _pairs(detail["columnMetadata"]["city"])


def test_import_sets_metadata_from_input_manifest(emulator, destination, data_dir, env):
    manifest = {
        "id": "in.c-crm.people",
        "primary_key": ["id"],
        "metadata": [{"key": DESCRIPTION, "value": "People we know"}],
        "column_metadata": {"name": [{"key": DESCRIPTION, "value": "Full name"}]},
    }
    data_dir.add_input_table("people.csv", ["id", "name"], [["1", "Ann"]], manifest=manifest)
    data_dir.write_config(
        {"mode": "import", "destination": {"url": emulator.url, "#token": destination.token}, "tables": []}
    )
    run = data_dir.run(env)
    assert run.returncode == 0, run.output
    detail = emulator.table_detail(destination.id, "in.c-crm.people")
    assert detail["primaryKey"] == ["id"]
    assert (DESCRIPTION, "People we know") in _pairs(detail["metadata"])
    assert (DESCRIPTION, "Full name") in _pairs(detail["columnMetadata"]["name"])
    assert sorted_dicts(emulator.table_rows(destination.id, "in.c-crm.people")) == [{"id": "1", "name": "Ann"}]

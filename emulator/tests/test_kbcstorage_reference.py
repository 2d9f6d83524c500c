"""The official Python client (``kbcstorage``) against the emulator: a reference for request/response fidelity.

Workarounds for known kbcstorage bugs (contract, "Bugs in PY kbcstorage"), not for emulator differences:
- ``Tables.load_raw`` sends its ``columns`` argument as ``primaryKey[]``: we never pass ``columns``.
- sliced downloads write temporary slices into the CWD: the test runs in ``tmp_path``.
- ``Jobs.block_until_completed`` sleeps 4, 8, 16 ... s between polls; the sleep is shortened to keep the suite
  fast (the number of polls and their requests stay the same).
"""

from __future__ import annotations

import csv
import time
import types

import kbcstorage.jobs
import pytest
from kbcstorage.client import Client

from emulator import Emulator

ROWS = [{"id": str(i), "name": f"name {i}", "city": ["Prague", "Brno", "Ostrava"][i % 3]} for i in range(1, 51)]


@pytest.fixture(scope="module", params=["aws", "azure", "gcp"])
def stack(request, emu):
    """The same checks on each file storage provider: the AWS stack is the session emulator."""
    if request.param == "aws":
        yield emu
        return
    with Emulator(provider=request.param) as other:
        yield other


@pytest.fixture
def client(stack, monkeypatch, tmp_path):
    return _client(stack, monkeypatch, tmp_path)


@pytest.fixture
def aws_client(emu, monkeypatch, tmp_path):
    """The client on the session (AWS) stack only: for checks that do not depend on the file storage."""
    return _client(emu, monkeypatch, tmp_path)


def _client(stack, monkeypatch, tmp_path) -> Client:
    for key, value in stack.env.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    fast_time = types.SimpleNamespace(sleep=lambda _seconds: time.sleep(0.05))
    monkeypatch.setattr(kbcstorage.jobs, "time", fast_time)
    project = stack.create_project(f"kbcstorage-{stack.provider}-{time.monotonic_ns()}")
    return Client(stack.url, project.token)


def _write_csv(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "name", "city"])
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def _read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _as_set(rows):
    return {tuple(sorted(r.items())) for r in rows}


def test_kbcstorage_end_to_end(client, tmp_path):
    bucket = client.buckets.create("ref")
    assert bucket["id"] == "in.c-ref"
    assert any(b["id"] == "in.c-ref" for b in client.buckets.list())

    table_id = client.tables.create("in.c-ref", "people", _write_csv(tmp_path / "people.csv", ROWS), primary_key=["id"])
    assert table_id == "in.c-ref.people"
    detail = client.tables.detail(table_id)
    assert detail["primaryKey"] == ["id"]
    assert detail["columns"] == ["id", "name", "city"]
    assert detail["rowsCount"] == 50

    # incremental load into a PK table: 2 updates + 1 new row
    increment = [
        {"id": "1", "name": "updated 1", "city": "Plzen"},
        {"id": "2", "name": "updated 2", "city": "Plzen"},
        {"id": "99", "name": "new", "city": "Zlin"},
    ]
    results = client.tables.load(table_id, _write_csv(tmp_path / "inc.csv", increment), is_incremental=True)
    assert results["importedColumns"] == ["id", "name", "city"]
    assert results["totalRowsCount"] == 51
    expected = {r["id"]: r for r in ROWS}
    expected.update({r["id"]: r for r in increment})

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    exported = client.tables.export_to_file(table_id, str(out_dir))
    assert _as_set(_read_csv(exported)) == _as_set(expected.values())

    preview = client.tables.preview(table_id)
    lines = preview.splitlines()
    assert lines[0] == '"id","name","city"'
    assert len(lines) == 1 + 51

    file_id = client.tables.export(table_id, columns=["id", "city"])
    info = client.files.detail(file_id, federation_token=True)
    assert info["isSliced"] is True

    client.buckets.delete("in.c-ref", force=True)
    assert all(b["id"] != "in.c-ref" for b in client.buckets.list())


def test_kbcstorage_errors_surface(client, tmp_path):
    import requests

    client.buckets.create("errs")
    with pytest.raises(requests.HTTPError) as info:
        client.buckets.create("errs")
    assert info.value.response.status_code == 400
    assert info.value.response.json()["code"] == "storage.buckets.alreadyExists"
    client.tables.create("in.c-errs", "t", _write_csv(tmp_path / "t.csv", ROWS[:3]), primary_key=["id"])
    with pytest.raises(RuntimeError, match="Missing columns"):
        bad = tmp_path / "bad.csv"
        bad.write_text("id\n1\n")
        client.tables.load("in.c-errs.t", str(bad))


def test_kbcstorage_bucket_detail_and_column_metadata_list(aws_client, tmp_path):
    """As sapi-python-client's live tests read them: a bucket detail with ``tables`` as a list and ``attributes``
    (``test_bucket_detail``), and ``TablesMetadata.create`` with ``columns_metadata`` as a list of
    ``{key, value, columnName}``."""
    bucket_id = aws_client.buckets.create(name="py-test-buckets", stage="in", description="Test bucket")["id"]
    detail = aws_client.buckets.detail(bucket_id)
    assert (detail["id"], detail["name"], detail["description"]) == (bucket_id, "c-py-test-buckets", "Test bucket")
    assert detail["uri"] and detail["created"]
    assert detail["tables"] == [] and detail["attributes"] == []
    table_id = aws_client.tables.create(bucket_id, "some-table", _write_csv(tmp_path / "t.csv", ROWS[:2]))
    assert [t["id"] for t in aws_client.buckets.detail(bucket_id)["tables"]] == [table_id]
    assert [t["id"] for t in aws_client.buckets.list_tables(bucket_id)] == [table_id]

    metadata = aws_client.tables.metadata.create(
        table_id,
        "user",
        [{"key": "KBC.description", "value": "people"}],
        columns_metadata=[
            {"key": "KBC.datatype.basetype", "value": "INTEGER", "columnName": "id"},
            {"key": "KBC.description", "value": "the city", "columnName": "city"},
        ],
    )
    assert [(m["key"], m["value"]) for m in metadata] == [("KBC.description", "people")]
    column_metadata = aws_client.tables.detail(table_id)["columnMetadata"]
    assert [(m["key"], m["value"], m["provider"]) for m in column_metadata["id"]] == [
        ("KBC.datatype.basetype", "INTEGER", "user")
    ]
    assert [m["value"] for m in column_metadata["city"]] == ["the city"]
    assert [m["key"] for m in aws_client.tables.metadata.list(table_id)] == ["KBC.description"]


def test_kbcstorage_typed_tables(emu, monkeypatch, tmp_path):
    """kbcstorage has no typed-table call (no tables-definition, addendum "Client coverage"): the table is defined
    through the emulator's Python API, everything else goes through the client. A bucket on another backend
    (``buckets.create(backend=...)``), the typed detail, a load refused as the backend refuses it, the export with
    the backend's formatting (NULL as an empty unquoted field) and the preview."""
    _client(emu, monkeypatch, tmp_path)  # the file storage environment of the stack
    project = emu.create_project(f"kbcstorage-typed-{time.monotonic_ns()}", backends=("snowflake", "bigquery"))
    client = Client(emu.url, project.token)
    assert client.tokens.verify()["owner"]["assignedBackends"] == ["snowflake", "bigquery"]
    assert client.buckets.create("bq", backend="bigquery")["backend"] == "bigquery"
    assert client.buckets.create("typed")["backend"] == "snowflake"
    emu.create_typed_table(
        project.id,
        "in.c-typed.orders",
        columns=[
            {"name": "id", "basetype": "INTEGER"},
            {"name": "amount", "basetype": "NUMERIC"},
            {"name": "paid", "basetype": "BOOLEAN"},
            {"name": "at", "basetype": "TIMESTAMP"},
            {"name": "note", "basetype": "STRING"},
        ],
        primary_key=["id"],
    )
    detail = client.tables.detail("in.c-typed.orders")
    assert detail["isTyped"] is True
    assert detail["columns"] == ["id", "amount", "paid", "at", "note"]
    assert {c["name"]: c["definition"]["type"] for c in detail["definition"]["columns"]} == {
        "amount": "NUMBER",
        "at": "TIMESTAMP_NTZ",
        "id": "NUMBER",
        "note": "VARCHAR",
        "paid": "BOOLEAN",
    }
    data = tmp_path / "orders.csv"
    data.write_text("id,amount,paid,at,note\n1,0.5,1,2024-01-02 03:04:05.678,first\n2,,0,,\n", encoding="utf-8")
    results = client.tables.load("in.c-typed.orders", str(data))
    assert results["totalRowsCount"] == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("id,amount,paid,at,note\n3,lots,1,,\n", encoding="utf-8")
    with pytest.raises(RuntimeError, match="Numeric value 'lots' is not recognized"):
        client.tables.load("in.c-typed.orders", str(bad), is_incremental=True)

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    exported = client.tables.export_to_file("in.c-typed.orders", str(out_dir))
    with open(exported, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    assert lines[0] == '"id","amount","paid","at","note"'
    assert sorted(lines[1:]) == ['"1","0.500000000","true","2024-01-02 03:04:05","first"', '"2",,"false",,']
    preview = client.tables.preview("in.c-typed.orders").splitlines()
    assert sorted(preview[1:]) == ['"1","0.500000000","true","2024-01-02 03:04:05.678","first"', '"2",,"false",,']

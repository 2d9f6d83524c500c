"""Row deletes, column jobs, delete propagation and verification against the emulator, through the real client
(``StorageClient``: HTTP, storage jobs, file storage) on every provider of the e2e suite."""

from __future__ import annotations

import csv
import io

import pytest

from storage_api import StorageClient
from storage_api.errors import JobFailed, StorageApiError
from workflows.deletes import propagate_deletes
from workflows.verify import verify_table

SRC, DST = "in.c-keys.t", "in.c-copy.t"


@pytest.fixture
def clients(emulator, source, destination, monkeypatch):
    for key, value in emulator.env.items():  # the client process reaches the emulator's file storage
        monkeypatch.setenv(key, value)
    with StorageClient(emulator.url, source.token) as src, StorageClient(emulator.url, destination.token) as dst:
        yield src, dst


def _csv(header, rows) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, *rows])
    return out.getvalue()


def _table(emulator, project, table_id, header, rows, pk):
    emulator.create_bucket(project.id, table_id.split(".")[1].removeprefix("c-"))  # one table per project
    emulator.create_table(project.id, table_id, _csv(header, rows), primary_key=pk)


def _keys(emulator, project, table_id, columns):
    return sorted(tuple(row[c] for c in columns) for row in emulator.table_rows(project.id, table_id))


# client ---------------------------------------------------------------------------------------------------------
def test_delete_rows_filters_truncation_and_results(emulator, source, clients):
    src, _ = clients
    rows = [[str(i), "a" if i % 2 else "b", f"n{i}"] for i in range(10)]
    _table(emulator, source, SRC, ["id", "kind", "note"], rows, ["id"])
    job = src.tables.delete_rows(SRC, [{"column": "id", "operator": "eq", "values": ["1", "2", "3"]}])
    assert job["operationName"] == "tableRowsDelete" and job["results"]["deletedRows"] == 3
    both = [
        {"column": "kind", "operator": "eq", "values": ["a"]},
        {"column": "id", "operator": "ne", "values": ["9"]},
    ]
    assert src.tables.delete_rows(SRC, both)["results"]["deletedRows"] == 2  # 5 and 7: ANDed
    assert _keys(emulator, source, SRC, ["id"]) == [("0",), ("4",), ("6",), ("8",), ("9",)]
    with pytest.raises(StorageApiError) as refused:
        src.tables.delete_rows(SRC, [])
    assert refused.value.code == "storage.tables.validation.unintendedTruncation"
    assert src.tables.delete_rows(SRC, [], allow_truncate=True)["results"]["deletedRows"] == 5
    assert src.tables.detail(SRC)["rowsCount"] == 0


def test_add_and_delete_columns(emulator, source, clients):
    src, _ = clients
    _table(emulator, source, SRC, ["id", "v"], [["1", "x"]], ["id"])
    job = src.tables.add_column(SRC, "extra")
    assert job["operationName"] == "tableColumnAdd" and job["status"] == "success"
    assert src.tables.detail(SRC)["columns"] == ["id", "v", "extra"]
    assert src.tables.delete_column(SRC, "v")["operationName"] == "tableColumnDelete"
    assert src.tables.detail(SRC)["columns"] == ["id", "extra"]
    with pytest.raises(JobFailed) as failed:
        src.tables.delete_column(SRC, "id", force=True)
    assert failed.value.code == "storage.tables.cannotDeletePrimaryKeyColumn"


# propagation and verification -----------------------------------------------------------------------------------
TRICKY = ["plain", "comma, inside", 'say "hi"', "multi\nline", "", "ünï"]


def _pair(emulator, source, destination, header, dest_rows, gone, pk):
    """The destination holds ``dest_rows``; the source the same rows without those whose key is in ``gone``."""
    width = len(pk)
    _table(emulator, destination, DST, header, dest_rows, pk)
    _table(emulator, source, SRC, header, [r for r in dest_rows if tuple(r[:width]) not in gone], pk)


def _propagate(clients, tmp_path, **kwargs):
    src, dst = clients
    return propagate_deletes(src, dst, source_id=SRC, destination_id=DST, work_dir=tmp_path, **kwargs)


def _verify(clients, tmp_path, columns, key_columns, where_filters=()):
    src, dst = clients
    selection = {"columns": columns, "key_columns": key_columns, "where_filters": list(where_filters)}
    return verify_table(src, dst, source_id=SRC, destination_id=DST, work_dir=tmp_path, **selection)


def test_propagate_single_column_key_and_verify(emulator, source, destination, clients, tmp_path):
    rows = [[v, f"row {i}"] for i, v in enumerate(TRICKY)] + [[str(i), "n"] for i in range(200)]
    gone = {("comma, inside",), ("multi\nline",), ("",)} | {(str(i),) for i in range(0, 200, 3)}
    _pair(emulator, source, destination, ["id", "note"], rows, gone, ["id"])

    before = _verify(clients, tmp_path, ["id", "note"], ["id"])
    assert before.status == "differs" and before.extra_in_destination == len(gone)
    assert before.missing_in_destination == 0 and before.destination_rows == len(rows)

    kept = _propagate(clients, tmp_path, key_columns=["id"], where_filters=[], apply=False)
    assert (kept.found, kept.deleted) == (len(gone), 0)
    assert len(emulator.table_rows(destination.id, DST)) == len(rows)

    outcome = _propagate(clients, tmp_path, key_columns=["id"], where_filters=[], apply=True, chunk_size=20)
    assert (outcome.found, outcome.deleted, outcome.jobs) == (len(gone), len(gone), 4)  # 70 keys, chunks of 20
    assert _keys(emulator, destination, DST, ["id"]) == _keys(emulator, source, SRC, ["id"])

    after = _verify(clients, tmp_path, ["id", "note"], ["id"])
    assert after.status == "ok" and after.source_rows == after.destination_rows == len(rows) - len(gone)


def test_propagate_composite_key_without_cross_product_with_where_filters(
    emulator, source, destination, clients, tmp_path
):
    # every (id, kind) pair exists; the source lost (1, a) and (2, b): IN lists on both columns would delete all
    # four of (1|2, a|b)
    rows = [[str(i), kind, f"{i}{kind}"] for i in range(1, 6) for kind in ("a", "b", 'c"')]
    gone = {("1", "a"), ("2", "b")}
    _pair(emulator, source, destination, ["id", "kind", "note"], rows, gone, ["id", "kind"])
    where = [{"column": "kind", "operator": "ne", "values": ['c"']}]  # kind c" left the selection

    outcome = _propagate(clients, tmp_path, key_columns=["id", "kind"], where_filters=where, apply=True)
    assert (outcome.found, outcome.deleted) == (2 + 5, 7)
    expected = {(str(i), k) for i in range(1, 6) for k in ("a", "b")} - gone
    assert set(_keys(emulator, destination, DST, ["id", "kind"])) == expected

    result = _verify(clients, tmp_path, ["id", "kind", "note"], ["id", "kind"], where)
    assert result.status == "ok" and result.source_rows == 8


def test_verify_without_primary_key_and_a_missing_table(emulator, source, destination, clients, tmp_path):
    _table(emulator, source, SRC, ["a", "b"], [["1", "x"], ["1", "x"], ["2", "y"]], [])
    missing = _verify(clients, tmp_path, ["a", "b"], [])
    assert missing.status == "missing" and missing.source_rows == 3
    _table(emulator, destination, DST, ["b", "a"], [["x", "1"], ["y", "2"], ["z", "3"]], [])
    result = _verify(clients, tmp_path, ["a", "b"], [])
    assert result.status == "differs" and result.columns_match == "order"
    assert (result.missing_in_destination, result.extra_in_destination) == (1, 1)
    assert result.sample_missing == (("1", "x"),) and result.sample_extra == (("3", "z"),)


def test_verify_a_typed_source_against_an_untyped_copy(emulator, source, destination, clients, tmp_path):
    emulator.create_bucket(source.id, "keys")
    columns = [{"name": "id", "basetype": "STRING"}, {"name": "v", "basetype": "STRING"}]
    detail = emulator.create_typed_table(source.id, SRC, columns, rows_csv="id,v\n1,\n2,x\n")  # v of 1 is NULL
    assert detail["isTyped"]
    _table(emulator, destination, DST, ["id", "v"], [["1", ""], ["2", "x"]], [])
    result = _verify(clients, tmp_path, ["id", "v"], [])
    assert result.status == "ok" and result.source_rows == 2  # the untyped copy stores NULL as ''

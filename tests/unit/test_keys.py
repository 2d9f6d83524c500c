"""Key-only exports and the DuckDB key diff (workflows.keys) on generated gzip slices.

``FakeProject`` is a small in-memory Storage project (export of some columns with whereFilters into gzip slices,
row deletes with ANDed filters); test_deletes.py uses it too.
"""

from __future__ import annotations

import gzip
import itertools
import random
from pathlib import Path

import pytest

from workflows.keys import KeyDiff, KeySlices, export_key_pair, export_keys


def csv_line(values) -> str:
    """A Keboola export line: every value quoted; None (NULL of a typed table) as an empty unquoted field."""
    return ",".join("" if v is None else '"' + str(v).replace('"', '""') + '"' for v in values) + "\n"


def write_slices(folder: Path, rows, *, slices: int = 3, suffix: str = ".gz") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rows = list(rows)
    per = max(1, -(-len(rows) // slices))
    paths = []
    for i in range(slices):
        path = folder / f"part{i:04d}{suffix}"
        with gzip.open(path, "wt", encoding="utf-8", newline="") as fh:
            for row in rows[i * per : (i + 1) * per]:
                fh.write(csv_line(row))
        paths.append(path)
    return paths


def slices_of(folder: Path, rows, columns=("id",), **kwargs) -> KeySlices:
    return KeySlices("in.c-t.t", tuple(columns), tuple(write_slices(folder, rows, **kwargs)))


def _matches(row: dict, filters) -> bool:
    for f in filters:
        hit = row.get(f["column"]) in f["values"]
        if hit != (f.get("operator", "eq") == "eq"):
            return False
    return True


class FakeProject:
    """``tables.export/detail/delete_rows``, ``files.detail`` and ``transfer.download`` over in-memory tables."""

    def __init__(self, root: Path, tables: dict[str, dict]):
        self.root = root
        self.data = {
            tid: {
                "columns": list(t["columns"]),
                "primaryKey": list(t.get("primaryKey", [])),
                "isTyped": bool(t.get("isTyped")),
            }
            for tid, t in tables.items()
        }
        self.rows = {tid: [dict(r) for r in t["rows"]] for tid, t in tables.items()}
        self.exports: list[dict] = []
        self.deletes: list[list[dict]] = []
        self.files: dict[int, dict] = {}
        self._ids = itertools.count(1)

    # tables
    def detail(self, table_id: str) -> dict | None:
        if table_id not in self.data:
            return None
        return {"id": table_id, **self.data[table_id], "rowsCount": len(self.rows[table_id])}

    def export(self, table_id, *, columns=None, where_filters=(), gzip=True, **_):
        self.exports.append({"table": table_id, "columns": list(columns), "where_filters": list(where_filters)})
        selected = [r for r in self.rows[table_id] if _matches(r, where_filters)]
        file_id = next(self._ids)
        folder = self.root / f"file{file_id}"
        paths = write_slices(folder, ([r[c] for c in columns] for r in selected), slices=2)
        self.files[file_id] = {"id": file_id, "isSliced": True, "paths": paths}
        return type("Export", (), {"file_id": file_id})()

    def delete_rows(self, table_id, where_filters, **_):
        self.deletes.append(where_filters)
        before = self.rows[table_id]
        self.rows[table_id] = [r for r in before if not _matches(r, where_filters)]
        return {"status": "success", "results": {"deletedRows": len(before) - len(self.rows[table_id])}}

    # files and transfer (the slice names lose .gz, as some providers' keys do)
    def download(self, file, folder, progress=None):
        out = []
        for i, path in enumerate(file["paths"]):
            target = Path(folder) / f"slice_{i}"
            target.write_bytes(path.read_bytes())
            if progress:
                progress(target.stat().st_size)
            out.append(target)
        return out


class _Client:
    """A client-shaped view of a FakeProject: ``tables``, ``files``, ``transfer``."""

    def __init__(self, project: FakeProject):
        self.project = project
        self.tables = project
        self.transfer = project
        self.files = self

    def detail(self, file_id):  # files.detail
        return self.project.files[file_id]


def client_for(root: Path, tables: dict[str, dict]) -> _Client:
    return _Client(FakeProject(root, tables))


# the diff -------------------------------------------------------------------------------------------------------
TRICKY = ["plain", "comma, inside", 'say "hi"', 'only "', "multi\nline", "crlf\r\nvalue", "", " ", "NULL", "ünï", "'"]


def test_tricky_values_survive_the_diff(tmp_path):
    left = slices_of(tmp_path / "a", [[v] for v in TRICKY])
    right = slices_of(tmp_path / "b", [["plain"], ["multi\nline"]])
    with KeyDiff(tmp_path) as diff:
        assert diff.count(left) == len(TRICKY)
        assert diff.difference("d", left, right) == len(TRICKY) - 2
        got = {row[0] for row in diff.fetch("SELECT * FROM d")}
    assert got == set(TRICKY) - {"plain", "multi\nline"}


def test_quoted_empty_string_and_unquoted_null_stay_distinct(tmp_path):
    left = slices_of(tmp_path / "a", [[""], [None], ["x"]], slices=1)
    right = slices_of(tmp_path / "b", [[None]], slices=1)
    with KeyDiff(tmp_path) as diff:
        assert diff.difference("d", left, right) == 2
        assert sorted(diff.fetch("SELECT k0 FROM d"), key=str) == [("",), ("x",)]
        assert diff.difference("e", right, left) == 0  # NULL matches NULL (EXCEPT is NOT DISTINCT)


def test_composite_keys_are_compared_as_tuples(tmp_path):
    left_rows = [["1", "a"], ["1", "b"], ["2", "a"], ["2", "b"], ["a,b", '"']]
    right_rows = [["1", "a"], ["2", "b"], ["1", "b,"]]
    left = slices_of(tmp_path / "a", left_rows, columns=("id", "kind"))
    right = slices_of(tmp_path / "b", right_rows, columns=("id", "kind"))
    with KeyDiff(tmp_path) as diff:
        assert diff.difference("d", left, right) == 3
        assert sorted(diff.fetch("SELECT k0, k1 FROM d")) == [("1", "b"), ("2", "a"), ("a,b", '"')]
        assert diff.sample("d", 2) == [("1", "b"), ("2", "a")]


def test_multiset_difference_counts_duplicates(tmp_path):
    left = slices_of(tmp_path / "a", [["x"], ["x"], ["x"], ["y"]], slices=2)
    right = slices_of(tmp_path / "b", [["x"], ["y"], ["y"]], slices=1)
    with KeyDiff(tmp_path) as diff:
        assert diff.difference("set", left, right) == 0
        assert diff.difference("bag", left, right, multiset=True) == 2
        assert diff.difference("bag2", right, left, multiset=True) == 1


def test_empty_exports(tmp_path):
    no_files = KeySlices("in.c-t.t", ("id",), ())
    empty_slice = slices_of(tmp_path / "e", [], slices=2)
    some = slices_of(tmp_path / "s", [["1"], ["2"]])
    with KeyDiff(tmp_path) as diff:
        assert diff.count(no_files) == 0 and diff.count(empty_slice) == 0
        assert diff.difference("d", some, no_files) == 2
        assert diff.difference("d", empty_slice, some) == 0


def test_a_non_sliced_export_has_a_header(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text('"id"\n"1"\n"2"\n')
    with KeyDiff(tmp_path) as diff:
        assert diff.count(KeySlices("in.c-t.t", ("id",), (path,), header=True)) == 2


def test_large_inputs_stream_under_a_small_memory_limit(tmp_path):
    """~200k long composite keys per side (~50 MB of key data a side) through a 48 MB DuckDB with one thread: the diff
    spills instead of holding them, and the result is read in batches."""
    rng = random.Random(7)
    n = 200_000
    pad = "x" * 250
    gone = set(rng.sample(range(n), 2_000))
    left = slices_of(tmp_path / "a", ([f"{i}{pad}", str(i % 97)] for i in range(n)), columns=("a", "b"), slices=4)
    kept = (i for i in range(n) if i not in gone)
    right = slices_of(tmp_path / "b", ([f"{i}{pad}", str(i % 97)] for i in kept), columns=("a", "b"), slices=4)
    with KeyDiff(tmp_path, memory_limit="48MB", threads=1) as diff:
        assert diff.count(left) == n and diff.count(right) == n - len(gone)
        assert diff.difference("d", left, right) == len(gone)
        batches = diff.fetch("SELECT k0, k1 FROM d ORDER BY k0", batch=333)
        got = {int(a.removesuffix(pad)) for a, _ in batches}
    assert got == gone


def test_fetch_reads_in_batches(tmp_path):
    some = slices_of(tmp_path / "s", [[str(i)] for i in range(1000)])
    with KeyDiff(tmp_path) as diff:
        diff.difference("d", some, KeySlices("x", ("id",), ()))
        rows = diff.fetch("SELECT k0 FROM d ORDER BY k0::INT", batch=7)
        assert next(rows) == ("0",)
        assert [r[0] for r in rows] == [str(i) for i in range(1, 1000)]


def test_close_removes_the_database(tmp_path):
    with KeyDiff(tmp_path) as diff:
        folder = diff.work_dir
        assert (folder / "keys.duckdb").exists()
    assert not folder.exists()


# export ---------------------------------------------------------------------------------------------------------
def test_export_keys_exports_only_the_key_columns_with_the_filters(tmp_path):
    rows = [{"id": str(i), "kind": "a" if i % 2 else "b", "note": "n"} for i in range(10)]
    client = client_for(tmp_path / "p", {"in.c-s.t": {"columns": ["id", "kind", "note"], "rows": rows}})
    filters = [{"column": "kind", "operator": "eq", "values": ["a"]}]
    keys = export_keys(client, "in.c-s.t", ["id", "kind"], tmp_path / "keys", where_filters=filters)
    assert client.project.exports == [{"table": "in.c-s.t", "columns": ["id", "kind"], "where_filters": filters}]
    assert keys.columns == ("id", "kind") and not keys.header
    assert all(p.name.endswith(".gz") for p in keys.paths)  # gzip slices get the suffix DuckDB goes by
    assert keys.bytes == sum(p.stat().st_size for p in keys.paths)
    with KeyDiff(tmp_path) as diff:
        assert diff.count(keys) == 5


def test_export_key_pair_runs_both_sides(tmp_path):
    rows = [{"id": str(i)} for i in range(5)]
    one = client_for(tmp_path / "one", {"in.c-s.t": {"columns": ["id"], "rows": rows}})
    two = client_for(tmp_path / "two", {"in.c-d.t": {"columns": ["id"], "rows": rows[:3]}})
    left, right = export_key_pair((one, "in.c-s.t", ()), (two, "in.c-d.t", ()), ["id"], tmp_path / "w")
    assert (left.table_id, right.table_id) == ("in.c-s.t", "in.c-d.t")
    assert left.paths[0].parent.name == "left" and right.paths[0].parent.name == "right"
    with KeyDiff(tmp_path) as diff:
        assert diff.difference("d", left, right) == 2


def test_export_keys_needs_key_columns(tmp_path):
    with pytest.raises(ValueError, match="No key columns"):
        export_keys(client_for(tmp_path, {}), "in.c-s.t", [], tmp_path)


# verification (workflows.verify) over in-memory projects --------------------------------------------------------
def _verify(tmp_path, source_rows, dest_table, *, columns=("id", "v"), key_columns=("id",), where=(), typed=False):
    from workflows.verify import verify_table

    table = {"columns": list(columns), "rows": source_rows, "isTyped": typed}
    source = client_for(tmp_path / "s", {"in.c-s.t": table})
    dest = client_for(tmp_path / "d", {"in.c-d.t": dest_table} if dest_table is not None else {})
    return verify_table(
        source,
        dest,
        source_id="in.c-s.t",
        destination_id="in.c-d.t",
        columns=columns,
        key_columns=key_columns,
        where_filters=list(where),
        work_dir=tmp_path,
    )


def _table(rows, columns=("id", "v"), pk=("id",)):
    return {"columns": list(columns), "primaryKey": list(pk), "rows": rows}


def _kv(*ids):
    return [{"id": str(i), "v": f"v{i}"} for i in ids]


def test_verify_ok_with_a_filtered_selection(tmp_path):
    rows = _kv(*range(10))
    where = [{"column": "id", "operator": "ne", "values": ["0", "1"]}]
    result = _verify(tmp_path, rows, _table(rows[2:]), where=where)
    assert result.status == "ok" and result.detail == ""
    assert (result.source_rows, result.destination_rows) == (8, 8)
    assert (result.missing_in_destination, result.extra_in_destination) == (0, 0)
    assert result.report_row()["columns_match"] == "true" and result.report_row()["primary_key_match"] == "true"
    assert not list(tmp_path.glob("verify-*"))


def test_verify_reports_missing_and_extra_keys_with_samples(tmp_path):
    result = _verify(tmp_path, _kv(*range(30)), _table(_kv(*range(5, 32)), columns=("v", "id")))
    assert result.status == "differs"
    assert (result.source_rows, result.destination_rows) == (30, 27)
    assert (result.missing_in_destination, result.extra_in_destination) == (5, 2)
    assert result.sample_missing == (("0",), ("1",), ("2",), ("3",), ("4",))
    row = result.report_row()
    assert row["sample_extra"] == '["30", "31"]' and row["columns_match"] == "order"
    assert "5 row(s) missing in the destination" in row["detail"] and "another order" in row["detail"]


def test_verify_compares_a_table_without_a_primary_key_by_all_columns_as_a_multiset(tmp_path):
    rows = _kv(1, 1, 2)
    result = _verify(tmp_path, rows, _table(_kv(1, 2, 2), pk=()), key_columns=())
    assert result.key_columns == ("id", "v") and result.primary_key_match is True
    assert (result.missing_in_destination, result.extra_in_destination) == (1, 1)
    assert result.sample_missing == (("1", "v1"),) and result.report_row()["sample_missing"] == '[["1", "v1"]]'


def test_verify_a_missing_table_and_mismatched_structure(tmp_path):
    missing = _verify(tmp_path, _kv(1, 2), None)
    assert missing.status == "missing" and missing.source_rows == 2 and "does not exist" in missing.detail
    other = _verify(tmp_path, _kv(1), _table([{"key": "1", "v": "v1"}], columns=("key", "v"), pk=("key",)))
    assert other.status == "differs" and other.primary_key_match is False and other.columns_match == "false"
    assert "lacks the key column(s) id" in other.detail and other.source_rows is None


def test_write_report_and_log_summary(tmp_path, caplog):
    import csv as csv_module
    import json
    import logging

    from workflows.verify import REPORT_COLUMNS, log_summary, write_report

    ok = _verify(tmp_path, _kv(1), _table(_kv(1)))
    bad = _verify(tmp_path, _kv(1, 2), _table(_kv(1)))
    path = write_report([ok, bad], tmp_path / "out" / "files")
    with path.open(newline="") as fh:
        rows = list(csv_module.DictReader(fh))
    assert list(rows[0]) == list(REPORT_COLUMNS) and [r["status"] for r in rows] == ["ok", "differs"]
    assert rows[1]["missing_in_destination"] == "1" and rows[1]["sample_missing"] == '["2"]'
    manifest = json.loads(path.with_name("sync_verification.csv.manifest").read_text())
    assert manifest["tags"] == ["storage-sync", "sync-verification"] and manifest["is_permanent"] is False
    assert "destination" not in manifest and "incremental" not in manifest  # a file manifest, not a table's
    with caplog.at_level(logging.INFO):
        assert log_summary([ok, bad]) == 1
    assert "Verified in.c-s.t -> in.c-d.t: ok, 1 row(s) in the source selection." in caplog.text
    assert (
        "differs, 2 row(s) in the source selection: 2 rows in the source selection, 1 in the destination" in caplog.text
    )
    assert "1 of 2 table(s) match" in caplog.text


def test_running_out_of_memory_raises_the_limit_and_runs_again(tmp_path, caplog):
    rows = [[f"{i:06d}" + "y" * 40] for i in range(60_000)]
    left = slices_of(tmp_path / "a", rows, slices=2)
    right = slices_of(tmp_path / "b", rows[::2], slices=2)
    with KeyDiff(tmp_path, memory_limit="2MB", threads=1) as diff:
        assert diff.difference("d", left, right) == 30_000
        limit = diff.con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    assert "ran out of its" in caplog.text and limit != "1.9 MiB"


def test_one_diff_at_a_time_and_nesting_in_one_thread_does_not_wait(tmp_path):
    import threading

    order = []
    with KeyDiff(tmp_path) as outer:
        with KeyDiff(tmp_path):  # the same thread: no deadlock
            order.append("nested")

        def other():
            with KeyDiff(tmp_path):
                order.append("other thread")

        thread = threading.Thread(target=other)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive()  # waits for the slot
        order.append("outer done")
        outer.close()
        thread.join(10)
    assert order == ["nested", "outer done", "other thread"]


def test_null_as_empty_reads_null_as_an_empty_string(tmp_path):
    left = slices_of(tmp_path / "a", [[None], ["x"]], slices=1)
    right = slices_of(tmp_path / "b", [[""]], slices=1)
    with KeyDiff(tmp_path) as diff:
        assert diff.difference("d", left, right) == 2
        assert diff.difference("d", left, right, null_as_empty=True) == 1
        assert diff.difference("d", left, right, multiset=True, null_as_empty=True) == 1


def test_verify_tells_null_from_empty_only_between_typed_tables(tmp_path):
    source_rows = [{"id": "1", "v": None}]
    dest = _table([{"id": "1", "v": ""}], pk=())
    untyped = _verify(tmp_path, source_rows, dest, key_columns=(), typed=True)  # typed -> untyped: NULL became ''
    assert untyped.status == "ok"
    typed = _verify(tmp_path, source_rows, dest | {"isTyped": True}, key_columns=(), typed=True)
    assert typed.status == "differs" and typed.sample_missing == (("1", None),) and typed.sample_extra == (("1", ""),)
    assert typed.report_row()["sample_missing"] == '[["1", null]]'

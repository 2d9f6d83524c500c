"""TableEngine against real CSV/gzip files (no HTTP).

Timing check by hand (10M rows, ~1 GB CSV, gzip):  .venv/bin/python -m emulator.tests.test_engine [rows]
"""

from __future__ import annotations

import csv
import gzip
import io
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from emulator.engine import OrderBy, TableEngine, WhereFilter, _record_ranges
from emulator.errors import ColumnsNotMatch, NotFound, ValidationError

T0 = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
T2 = T0 + timedelta(hours=2)


@pytest.fixture(autouse=True)
def _reset_emulator():
    """Overrides the package-wide autouse fixture: these tests need no running emulator."""
    yield


@pytest.fixture
def engine(tmp_path):
    eng = TableEngine(tmp_path / "db" / "tables.duckdb")
    yield eng
    eng.close()


def write_csv(path: Path, rows: list[list[str]], *, gz: bool = False, delimiter=",", quotechar='"') -> Path:
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, quotechar=quotechar, lineterminator="\n").writerows(rows)
    data = buf.getvalue().encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def read_slices(paths: list[Path]) -> bytes:
    return b"".join(gzip.decompress(p.read_bytes()) if p.name.endswith(".gz") else p.read_bytes() for p in paths)


def parse(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(), newline="")))


def load(engine, handle, files, columns, *, header=True, incremental=False, pk=(), ts=T0, **kw):
    return engine.load(
        handle,
        [Path(f) for f in files],
        file_columns=columns,
        has_header=header,
        incremental=incremental,
        primary_key=list(pk),
        timestamp=ts,
        **kw,
    )


def rows_of(engine, handle, **kw) -> list[list[str]]:
    return sorted(engine.preview(handle, limit=1000, **kw)[1])


@pytest.fixture
def people(engine, tmp_path):
    """Table t1(id, name, age) with 5 rows loaded at T0."""
    engine.create("t1", ["id", "name", "age"])
    data = [["id", "name", "age"], ["1", "alice", "30"], ["2", "bob", "4"], ["3", "carol", "100"]]
    data += [["4", "dave", ""], ["5", "eve", "x"]]
    load(engine, "t1", [write_csv(tmp_path / "people.csv", data)], ["id", "name", "age"])
    return "t1"


# -- tables ---------------------------------------------------------------------------------------------


def test_create_columns_drop(engine):
    engine.create("t1", ["id", "Name With Space", 'quo"te'])
    assert engine.columns("t1") == ["id", "Name With Space", 'quo"te']
    assert engine.stats("t1") == (0, 0)
    engine.drop("t1")
    with pytest.raises(NotFound):
        engine.columns("t1")


def test_add_and_drop_column_keep_rows_and_timestamps(engine, people, tmp_path):
    before = engine.preview(people, changed_since=T0, changed_until=T1)[1]
    engine.add_column(people, "city")
    assert engine.columns(people) == ["id", "name", "age", "city"]
    assert engine.preview(people, columns=["city"], limit=1)[1] == [[""]]
    with pytest.raises(ValidationError):
        engine.add_column(people, "CITY")  # DuckDB names are case-insensitive, so are Keboola's
    engine.drop_column(people, "age")
    assert engine.columns(people) == ["id", "name", "city"]
    after = engine.preview(people, changed_since=T0, changed_until=T1)[1]
    assert len(before) == 5
    assert sorted(r[:2] for r in after) == sorted(r[:2] for r in before)  # same rows, same _timestamp window
    with pytest.raises(ValidationError):
        engine.drop_column(people, "age")


@pytest.mark.parametrize("columns", [["a", "A"], ["a", "_timestamp"], []])
def test_create_rejects_bad_columns(engine, columns):
    with pytest.raises(ValidationError):
        engine.create("t1", columns)


# -- read_header ----------------------------------------------------------------------------------------


def test_read_header_plain_gzip_and_dialects(engine, tmp_path):
    plain = write_csv(tmp_path / "a.csv", [["id", "na,me", 'q"x'], ["1", "2", "3"]])
    assert engine.read_header([plain]) == ["id", "na,me", 'q"x']
    # gzip recognised by magic bytes, whatever the name
    gz = write_csv(tmp_path / "slice_0", [["x", "y"], ["1", "2"]], gz=True)
    assert engine.read_header([gz, plain]) == ["x", "y"]
    semi = write_csv(tmp_path / "b.csv", [["a;b", "c"]], delimiter=";", quotechar="'")
    assert engine.read_header([semi], delimiter=";", enclosure="'") == ["a;b", "c"]
    (tmp_path / "empty.csv").write_bytes(b"")
    assert engine.read_header([tmp_path / "empty.csv"]) == []
    (tmp_path / "bom.csv").write_bytes("\ufeffid,name\n".encode())
    assert engine.read_header([tmp_path / "bom.csv"]) == ["id", "name"]


def test_read_header_invalid_delimiter(engine, tmp_path):
    path = write_csv(tmp_path / "a.csv", [["a"]])
    with pytest.raises(ValidationError) as err:
        engine.read_header([path], delimiter="/t")
    assert err.value.code == "csvImport.invalidCsv"


# -- load -----------------------------------------------------------------------------------------------


def test_full_load_with_header_keeps_empty_strings(engine, people, tmp_path):
    assert rows_of(engine, people) == [
        ["1", "alice", "30"],
        ["2", "bob", "4"],
        ["3", "carol", "100"],
        ["4", "dave", ""],
        ["5", "eve", "x"],
    ]
    # unquoted empty and quoted empty values are both '' (no NULL in string tables)
    (tmp_path / "e.csv").write_bytes(b'id,name,age\n6,,""\n')
    load(engine, people, [tmp_path / "e.csv"], ["id", "name", "age"])
    assert engine.preview(people)[1] == [["6", "", ""]]
    assert engine.stats(people)[0] == 1


def test_full_load_replaces_and_headerless_by_file_columns(engine, people, tmp_path):
    path = write_csv(tmp_path / "h.csv", [["old", "9", "zed"]])
    result = load(engine, people, [path], ["name", "id", "age"], header=False)
    assert result.rows_loaded == 1
    assert result.imported_columns == ["name", "id", "age"]
    assert rows_of(engine, people) == [["9", "old", "zed"]]


def test_sliced_gzip_and_plain_files_load_together(engine, tmp_path):
    engine.create("t1", ["a", "b"])
    files = [
        write_csv(tmp_path / "part0.gz", [["1", "x"], ["2", "y"]], gz=True),
        write_csv(tmp_path / "part1", [["3", "z"]], gz=True),  # gzip without a .gz name
        write_csv(tmp_path / "part2.csv", [["4", "w"]]),
    ]
    assert load(engine, "t1", files, ["a", "b"], header=False).rows_loaded == 4
    assert rows_of(engine, "t1") == [["1", "x"], ["2", "y"], ["3", "z"], ["4", "w"]]


def test_header_is_skipped_in_every_file(engine, tmp_path):
    engine.create("t1", ["a", "b"])
    files = [write_csv(tmp_path / f"{i}.csv.gz", [["a", "b"], [str(i), "v"]], gz=True) for i in range(3)]
    load(engine, "t1", files, ["a", "b"])
    assert rows_of(engine, "t1") == [["0", "v"], ["1", "v"], ["2", "v"]]


def test_custom_delimiter_and_enclosure(engine, tmp_path):
    engine.create("t1", ["a", "b"])
    path = write_csv(tmp_path / "a.tsv", [["a", "b"], ["x\ty", "it's"]], delimiter="\t", quotechar="'")
    load(engine, "t1", [path], ["a", "b"], delimiter="\t", enclosure="'")
    assert rows_of(engine, "t1") == [["x\ty", "it's"]]


def test_line_endings_and_newlines_inside_values(engine, tmp_path):
    engine.create("t1", ["a", "b"])
    files = {
        "crlf.csv": b'a,b\r\n1,"multi\r\nline"\r\n2,\r\n',
        "lf_with_crlf_value_first.csv": b'a,b\n"3","x\r\ny"\n4,\n',
        "crlf_with_lf_value_later.csv": b'a,b\r\n5,"p\nq"\r\n',
        "no_final_newline.csv": b'a,b\n6,"r\rs"',
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    load(engine, "t1", [tmp_path / name for name in files], ["a", "b"])
    assert rows_of(engine, "t1") == [
        ["1", "multi\r\nline"],
        ["2", ""],
        ["3", "x\r\ny"],
        ["4", ""],
        ["5", "p\nq"],
        ["6", "r\rs"],
    ]


@pytest.mark.parametrize("gz", [False, True])
def test_crlf_slices_with_line_breaks_inside_quoted_values(engine, tmp_path, gz):
    """A CRLF export cut into header-less slices at record boundaries: each slice is valid CSV, even the ones
    whose first line break is inside a quoted value (DuckDB's own CRLF detection fails on those)."""
    engine.create("t1", ["a", "b"])
    slices = [b'1,"a\nb"\r\n2,"c\r\nd"\r\n', b'3,x\r\n4,"e\nf"\r\n', b'5,"g\nh"\r\n', b'6,"i""j\n"\r\n']
    paths = []
    for i, data in enumerate(slices):
        path = tmp_path / f"slice{i}"
        path.write_bytes(gzip.compress(data) if gz else data)
        paths.append(path)
    load(engine, "t1", paths, ["a", "b"], header=False)
    assert rows_of(engine, "t1") == [
        ["1", "a\nb"],
        ["2", "c\r\nd"],
        ["3", "x"],
        ["4", "e\nf"],
        ["5", "g\nh"],
        ["6", 'i"j\n'],
    ]
    # strict still: a broken CRLF slice fails the load and loads nothing
    (tmp_path / "bad").write_bytes(b'7,"unterminated\nvalue\r\n')
    with pytest.raises(ValidationError) as caught:
        load(engine, "t1", [paths[0], tmp_path / "bad"], ["a", "b"], header=False)
    assert caught.value.code == "csvImport.invalidCsv"
    assert len(rows_of(engine, "t1")) == 6


def test_primary_key_dedup_within_one_load(engine, tmp_path):
    engine.create("t1", ["id", "v"])
    path = write_csv(tmp_path / "d.csv", [["id", "v"], ["26", "czech"], ["26", "ukulele"], ["1", "a"], ["2", "b"]])
    result = load(engine, "t1", [path], ["id", "v"], pk=["id"])
    assert result.rows_loaded == 3
    rows = rows_of(engine, "t1")
    assert len(rows) == 3 and rows[:2] == [["1", "a"], ["2", "b"]]
    assert rows[2] in (["26", "czech"], ["26", "ukulele"])
    assert not engine.has_duplicates("t1", ["id"])
    # the same file incrementally into the table: still one row per key
    load(engine, "t1", [path], ["id", "v"], pk=["id"], incremental=True, ts=T1)
    assert engine.stats("t1")[0] == 3


def test_incremental_upsert_keeps_timestamp_of_identical_rows(engine, tmp_path):
    """Contract fixture pk.simple: table a,b / c,d + increment a,updated / new,value / new,value."""
    engine.create("t1", ["id", "name"])
    load(
        engine,
        "t1",
        [write_csv(tmp_path / "0.csv", [["id", "name"], ["a", "b"], ["c", "d"]])],
        ["id", "name"],
        pk=["id"],
    )
    increment = write_csv(tmp_path / "1.csv", [["id", "name"], ["a", "updated"], ["new", "value"], ["new", "value"]])
    result = load(engine, "t1", [increment], ["id", "name"], pk=["id"], incremental=True, ts=T1)
    assert result.rows_loaded == 2
    assert rows_of(engine, "t1") == [["a", "updated"], ["c", "d"], ["new", "value"]]
    assert rows_of(engine, "t1", changed_since=T1) == [["a", "updated"], ["new", "value"]]
    assert rows_of(engine, "t1", changed_until=T1) == [["c", "d"]]

    # identical rows keep T1/T0, the changed one moves to T2
    again = write_csv(tmp_path / "2.csv", [["id", "name"], ["a", "updated"], ["c", "d2"], ["new", "value"]])
    load(engine, "t1", [again], ["id", "name"], pk=["id"], incremental=True, ts=T2)
    assert rows_of(engine, "t1", changed_since=T2) == [["c", "d2"]]
    assert rows_of(engine, "t1", changed_since=T1, changed_until=T2) == [["a", "updated"], ["new", "value"]]
    assert engine.stats("t1")[0] == 3


def test_upsert_with_composite_key_and_all_key_columns(engine, tmp_path):
    engine.create("t1", ["k1", "k2"])
    load(
        engine,
        "t1",
        [write_csv(tmp_path / "0.csv", [["1", "a"], ["1", "b"]])],
        ["k1", "k2"],
        header=False,
        pk=["k1", "k2"],
    )
    inc = write_csv(tmp_path / "1.csv", [["1", "a"], ["2", "a"]])
    load(engine, "t1", [inc], ["k1", "k2"], header=False, pk=["k1", "k2"], incremental=True, ts=T1)
    assert rows_of(engine, "t1") == [["1", "a"], ["1", "b"], ["2", "a"]]
    assert rows_of(engine, "t1", changed_since=T1) == [["2", "a"]]


def test_incremental_without_primary_key_appends(engine, people, tmp_path):
    path = write_csv(tmp_path / "p.csv", [["id", "name", "age"], ["1", "alice", "30"]])
    load(engine, people, [path], ["id", "name", "age"], incremental=True, ts=T1)
    load(engine, people, [path], ["id", "name", "age"], incremental=True, ts=T2)
    assert engine.stats(people)[0] == 7
    assert engine.has_duplicates(people, ["id"])


def test_new_columns_are_appended(engine, people, tmp_path):
    path = write_csv(tmp_path / "n.csv", [["zip", "id", "age", "name"], ["123", "9", "1", "new"]])
    result = load(engine, people, [path], ["zip", "id", "age", "name"], incremental=True, pk=["id"], ts=T1)
    assert result.new_columns == ["zip"]
    assert result.table_columns == ["id", "name", "age", "zip"]
    assert result.imported_columns == ["zip", "id", "age", "name"]
    assert engine.columns(people) == ["id", "name", "age", "zip"]
    cols, rows = engine.preview(people, where_filters=[WhereFilter("id", "eq", ["1", "9"])], order_by=[OrderBy("id")])
    assert cols == ["id", "name", "age", "zip"]
    assert rows == [["1", "alice", "30", ""], ["9", "new", "1", "123"]]


def test_missing_columns_raise_before_touching_data(engine, people, tmp_path):
    path = write_csv(tmp_path / "m.csv", [["id", "extra"], ["1", "x"]])
    with pytest.raises(ColumnsNotMatch) as err:
        load(engine, people, [path], ["id", "extra"])
    assert err.value.code == "csvImport.columnsNotMatch"
    assert err.value.extra == {"missingColumns": ["name", "age"], "expectedColumns": ["id", "name", "age"]}
    assert engine.columns(people) == ["id", "name", "age"]
    assert engine.stats(people)[0] == 5


@pytest.mark.parametrize(
    "content",
    [
        b"id,name,age,zip\n1,a,2,3\n4,b,5\n",  # too few values
        b"id,name,age,zip\n1,a,2,3\n4,b,5,6,7\n",  # too many values
        b'id,name,age,zip\n1,"a,2,3\n4,b,5,6\n',  # unterminated quote
        b'id,name,age,zip\n1,"a"x,2,3\n',  # garbage after a closing quote
        b"id,name,age,zip\n1,\xff\xfe,2,3\n",  # not UTF-8
    ],
)
def test_malformed_csv_fails_without_partial_load(engine, people, tmp_path, content):
    (tmp_path / "bad.csv").write_bytes(content)
    for incremental, pk in [(False, []), (True, ["id"])]:
        with pytest.raises(ValidationError) as err:
            load(engine, people, [tmp_path / "bad.csv"], ["id", "name", "age", "zip"], incremental=incremental, pk=pk)
        assert err.value.code == "csvImport.invalidCsv"
        assert "Invalid CSV" in err.value.message and str(tmp_path) not in err.value.message
    assert engine.columns(people) == ["id", "name", "age"]  # the new column was rolled back too
    assert engine.stats(people)[0] == 5


def test_broken_gzip_is_invalid_csv(engine, people, tmp_path):
    (tmp_path / "bad.gz").write_bytes(gzip.compress(b"id,name,age\n1,2,3\n")[:-12])
    with pytest.raises(ValidationError) as err:
        load(engine, people, [tmp_path / "bad.gz"], ["id", "name", "age"])
    assert err.value.code == "csvImport.invalidCsv"
    assert engine.stats(people)[0] == 5


def test_unknown_primary_key_column(engine, people, tmp_path):
    path = write_csv(tmp_path / "p.csv", [["id", "name", "age"]])
    with pytest.raises(ValidationError) as err:
        load(engine, people, [path], ["id", "name", "age"], pk=["ID"])
    assert err.value.code == "storage.tables.validation.invalidPrimaryKeyColumns"


def test_empty_file_list_and_header_only_file(engine, people, tmp_path):
    path = write_csv(tmp_path / "h.csv", [["id", "name", "age"]])
    assert load(engine, people, [path], ["id", "name", "age"], incremental=True).rows_loaded == 0
    assert engine.stats(people)[0] == 5
    assert load(engine, people, [], ["id", "name", "age"]).rows_loaded == 0
    assert engine.stats(people)[0] == 0


# -- export ---------------------------------------------------------------------------------------------


def test_export_headerless_all_quoted_gzip(engine, people, tmp_path):
    paths = engine.export(people, tmp_path / "out", order_by=[OrderBy("id")])
    assert [p.name for p in paths] == ["0000_part_00.gz"]
    data = gzip.decompress(paths[0].read_bytes())
    assert data == (b'"1","alice","30"\n"2","bob","4"\n"3","carol","100"\n"4","dave",""\n"5","eve","x"\n')
    plain = engine.export(
        people, tmp_path / "plain", gzip=False, columns=["name", "id"], order_by=[OrderBy("id", "DESC")]
    )
    assert [p.name for p in plain] == ["0000_part_00"]
    assert plain[0].read_bytes().startswith(b'"eve","5"\n"dave","4"\n')
    assert not [p for p in (tmp_path / "plain").iterdir() if p.name.startswith(".")]


def test_export_is_sliced_by_size_on_record_boundaries(engine, tmp_path):
    engine.create("t1", ["id", "v"])
    rows = [["id", "v"]] + [[f"{i:05d}", f'value "{i}"\nline,{"x" * (i % 50)}\n"'] for i in range(3000)]
    load(engine, "t1", [write_csv(tmp_path / "big.csv", rows)], ["id", "v"])
    for gz in (True, False):
        paths = engine.export("t1", tmp_path / f"out{gz}", order_by=[OrderBy("id")], gzip=gz, slice_bytes=20_000)
        assert len(paths) > 5
        assert [p.name for p in paths] == [f"{i:04d}_part_00" + (".gz" if gz else "") for i in range(len(paths))]
        # every slice holds whole records, and together they are the ordered table
        for p in paths:
            assert len(parse(read_slices([p]))) > 0
        assert parse(read_slices(paths)) == rows[1:]


def test_record_ranges_with_quoted_newlines(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(b'"a\n""\n","b"\n' * 1000)
    for size in (1, 7, 13, 100, 4096):
        ranges = _record_ranges(path, size)
        assert ranges[0][0] == 0 and ranges[-1][1] == path.stat().st_size
        data = path.read_bytes()
        for start, end in ranges:
            assert parse(data[start:end]) == [['a\n"\n', "b"]] * len(parse(data[start:end]))


def test_export_empty_gives_one_empty_slice(engine, people, tmp_path):
    paths = engine.export(people, tmp_path / "out", where_filters=[WhereFilter("id", "eq", ["nope"])])
    assert [p.name for p in paths] == ["0000_part_00.gz"]
    assert gzip.decompress(paths[0].read_bytes()) == b""
    engine.create("t2", ["a"])
    paths = engine.export("t2", tmp_path / "out2", gzip=False)
    assert [p.name for p in paths] == ["0000_part_00"] and paths[0].read_bytes() == b""


@pytest.mark.parametrize(
    "flt, ids",
    [
        (WhereFilter("name", "eq", ["alice", "eve"]), ["1", "5"]),
        (WhereFilter("name", "ne", ["alice", "eve"]), ["2", "3", "4"]),
        (WhereFilter("age", "eq", [""]), ["4"]),
        # without dataType values compare as strings, numbers too: "4" > "30", "100" < "30", "x" > "30"
        (WhereFilter("age", "gt", ["30"]), ["2", "5"]),
        (WhereFilter("age", "ge", ["30"]), ["1", "2", "5"]),
        (WhereFilter("age", "lt", ["30"]), ["3", "4"]),
        (WhereFilter("age", "le", ["30"]), ["1", "3", "4"]),
        (WhereFilter("age", "eq", ["30.0"]), []),
        (WhereFilter("name", "gt", ["carol"]), ["4", "5"]),
        (WhereFilter("name", "le", ["bob"]), ["1", "2"]),
        # with dataType as numbers; cells that are no number ("x", "") never match
        (WhereFilter("age", "gt", ["30"], data_type="INTEGER"), ["3"]),
        (WhereFilter("age", "ge", ["30"], data_type="DOUBLE"), ["1", "3"]),
        (WhereFilter("age", "lt", ["30"], data_type="INTEGER"), ["2"]),
        (WhereFilter("age", "le", ["30"], data_type="INTEGER"), ["1", "2"]),
        (WhereFilter("age", "eq", ["30.0", "4"], data_type="DOUBLE"), ["1", "2"]),
        (WhereFilter("age", "ne", ["30"], data_type="INTEGER"), ["2", "3"]),
        (WhereFilter("age", "gt", ["5"], data_type="INTEGER"), ["1", "3"]),
    ],
)
def test_where_filters(engine, people, tmp_path, flt, ids):
    assert [r[0] for r in rows_of(engine, people, where_filters=[flt])] == ids
    paths = engine.export(people, tmp_path / "out", where_filters=[flt], columns=["id"], order_by=[OrderBy("id")])
    assert [r[0] for r in parse(read_slices(paths))] == ids


def test_filters_are_anded_with_changed_since_until_and_limit(engine, people, tmp_path):
    path = write_csv(tmp_path / "p.csv", [["id", "name", "age"], ["6", "frank", "50"], ["7", "gina", "60"]])
    load(engine, people, [path], ["id", "name", "age"], incremental=True, ts=T1)
    assert [r[0] for r in rows_of(engine, people, changed_since=T1)] == ["6", "7"]
    assert [r[0] for r in rows_of(engine, people, changed_until=T1)] == ["1", "2", "3", "4", "5"]
    assert rows_of(engine, people, changed_since=T0 + timedelta(seconds=1), changed_until=T1) == []
    # naive datetimes are UTC
    assert len(rows_of(engine, people, changed_since=T1.replace(tzinfo=None))) == 2
    filters = [WhereFilter("age", "ge", ["30"], data_type="INTEGER"), WhereFilter("name", "ne", ["frank"])]
    assert [r[0] for r in rows_of(engine, people, where_filters=filters)] == ["1", "3", "7"]
    paths = engine.export(
        people, tmp_path / "out", where_filters=filters, changed_since=T1, order_by=[OrderBy("id", "desc")], limit=5
    )
    assert parse(read_slices(paths)) == [["7", "gina", "60"]]
    _, rows = engine.preview(people, order_by=[OrderBy("age", "DESC", data_type="INTEGER")], limit=2)
    assert [r[0] for r in rows] == ["3", "7"]
    paths = engine.export(people, tmp_path / "out2", order_by=[OrderBy("name")], limit=2, gzip=False)
    assert parse(read_slices(paths)) == [["1", "alice", "30"], ["2", "bob", "4"]]


@pytest.mark.parametrize(
    "kwargs, code",
    [
        ({"columns": ["id", "nope"]}, "storage.tables.validation.columnNotExists"),
        ({"where_filters": [WhereFilter("nope", "eq", ["1"])]}, "storage.tables.validation.columnNotExists"),
        ({"order_by": [OrderBy("nope")]}, "storage.tables.validation.columnNotExists"),
        ({"where_filters": [WhereFilter("id", "neq", ["1"])]}, "storage.tables.validation"),
        ({"where_filters": [WhereFilter("id", "gt", [])]}, "storage.tables.validation"),
        ({"order_by": [OrderBy("id", "UP")]}, "storage.tables.validation"),
    ],
)
def test_invalid_export_parameters(engine, people, tmp_path, kwargs, code):
    for call in (
        lambda: engine.export(people, tmp_path / "out", **kwargs),
        lambda: engine.preview(people, **kwargs),
    ):
        with pytest.raises(ValidationError) as err:
            call()
        assert err.value.code == code


def test_values_round_trip_exactly(engine, tmp_path):
    values = ['say "hi"', "a,b", "two\nlines", "crlf\r\nend", "žluťoučký kůň 🐎", "  padded  ", "", '"', "'", "\t"]
    engine.create("t1", ["id", "v"])
    rows = [["id", "v"]] + [[str(i), v] for i, v in enumerate(values)]
    load(engine, "t1", [write_csv(tmp_path / "v.csv.gz", rows, gz=True)], ["id", "v"])
    exported = parse(read_slices(engine.export("t1", tmp_path / "out", order_by=[OrderBy("id", data_type="INTEGER")])))
    assert exported == rows[1:]
    # the export is loadable again (headerless slices + columns)
    engine.create("t2", ["id", "v"])
    load(engine, "t2", engine.export("t1", tmp_path / "out2", slice_bytes=30), ["id", "v"], header=False)
    assert rows_of(engine, "t2") == rows_of(engine, "t1")


# -- preview / delete / duplicates / stats ----------------------------------------------------------------


def test_preview_columns_and_limit(engine, people):
    cols, rows = engine.preview(people, columns=["age", "id"], order_by=[OrderBy("id")], limit=2)
    assert cols == ["age", "id"] and rows == [["30", "1"], ["4", "2"]]
    assert len(engine.preview(people)[1]) == 5
    assert engine.preview(people, limit=0)[1] == []


def test_delete_rows(engine, people, tmp_path):
    path = write_csv(tmp_path / "p.csv", [["id", "name", "age"], ["6", "frank", "50"]])
    load(engine, people, [path], ["id", "name", "age"], incremental=True, ts=T1)
    assert engine.delete_rows(people, where_filters=[WhereFilter("id", "eq", ["1", "2", "6"])], changed_until=T1) == 2
    assert [r[0] for r in rows_of(engine, people)] == ["3", "4", "5", "6"]
    assert engine.delete_rows(people, changed_since=T1) == 1
    assert engine.delete_rows(people, where_filters=[WhereFilter("age", "ne", ["x"])]) == 2
    assert rows_of(engine, people) == [["5", "eve", "x"]]
    with pytest.raises(ValidationError):
        engine.delete_rows(people, where_filters=[WhereFilter("nope", "eq", ["1"])])
    assert engine.delete_rows(people) == 1
    assert engine.stats(people) == (0, 0)


def test_has_duplicates(engine, people, tmp_path):
    assert not engine.has_duplicates(people, ["id"])
    path = write_csv(tmp_path / "d.csv", [["id", "name", "age"], ["9", "alice", "1"]])
    load(engine, people, [path], ["id", "name", "age"], incremental=True)
    assert engine.has_duplicates(people, ["name"])
    assert not engine.has_duplicates(people, ["name", "age"])
    assert not engine.has_duplicates(people, [])
    with pytest.raises(ValidationError):
        engine.has_duplicates(people, ["nope"])


def test_stats_and_truncate(engine, people, tmp_path):
    rows, size = engine.stats(people)
    assert rows == 5 and 30 < size < 200
    engine.truncate(people)
    assert engine.stats(people) == (0, 0)


def test_concurrent_loads_and_exports(engine, tmp_path):
    path = write_csv(tmp_path / "c.csv", [["id", "v"]] + [[str(i), "x" * 20] for i in range(2000)])

    def work(n: int) -> int:
        handle = f"c{n}"
        engine.create(handle, ["id", "v"])
        for i in range(3):
            load(engine, handle, [path], ["id", "v"], incremental=True, pk=["id"], ts=T0 + timedelta(i))
            engine.export(handle, tmp_path / f"o{n}_{i}")
            engine.preview(handle, limit=10)
        return engine.stats(handle)[0]

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(work, range(4))) == [2000] * 4


def test_database_persists_across_reopen(tmp_path):
    path = tmp_path / "p.duckdb"
    eng = TableEngine(path)
    eng.create("t1", ["a"])
    load(eng, "t1", [write_csv(tmp_path / "a.csv", [["a"], ["1"]])], ["a"])
    eng.close()
    eng = TableEngine(path)
    assert rows_of(eng, "t1") == [["1"]]
    eng.close()


# -- timing check, run by hand ------------------------------------------------------------------------------


def _bench(rows: int = 10_000_000) -> None:  # pragma: no cover
    import resource
    import shutil
    import tempfile
    import time

    import duckdb
    from isal import igzip

    work = Path(tempfile.mkdtemp(prefix="engine-bench-", dir="/tmp"))
    source = work / "data.csv.gz"
    start = time.time()
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(
        f"""COPY (SELECT i::VARCHAR AS id, md5(i::VARCHAR) AS name, 'city_' || (i % 1000)::VARCHAR AS city,
        (i * 3.14159)::VARCHAR AS amount, ['new', 'paid', 'shipped'][i % 3 + 1] AS status,
        'note ' || md5((i * 7)::VARCHAR)[:20] AS note FROM range({rows}) r(i))
        TO '{work / "data.csv"}' (FORMAT csv, HEADER true)"""
    )
    with open(work / "data.csv", "rb") as src, igzip.open(source, "wb", compresslevel=1) as dst:
        shutil.copyfileobj(src, dst, 8 * 2**20)
    size = (work / "data.csv").stat().st_size
    (work / "data.csv").unlink()
    print(
        f"generated {rows} rows, {size / 1e9:.2f} GB CSV, {source.stat().st_size / 1e9:.2f} GB gz in {time.time() - start:.0f}s"
    )
    cols = ["id", "name", "city", "amount", "status", "note"]
    engine = TableEngine(work / "db" / "tables.duckdb")

    def timed(label, fn):
        usage = resource.getrusage(resource.RUSAGE_SELF)
        start = time.time()
        result = fn()
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
        print(f"{label:<34} wall {time.time() - start:6.1f}s  cpu {cpu:6.1f}s")
        return result

    engine.create("t1", cols)
    timed("full load (no PK)", lambda: load(engine, "t1", [source], cols))
    timed("export gzip (64 MB slices)", lambda: engine.export("t1", work / "out_gz"))
    timed("export plain (64 MB slices)", lambda: engine.export("t1", work / "out", gzip=False))
    engine.create("t2", cols)
    timed("full load with PK", lambda: load(engine, "t2", [source], cols, pk=["id"]))
    timed("incremental upsert, all identical", lambda: load(engine, "t2", [source], cols, pk=["id"], incremental=True))
    engine.close()
    shutil.rmtree(work)


if __name__ == "__main__":  # pragma: no cover
    import sys

    _bench(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000)

"""Typed loads at the engine level: the one-pass load (``_typed_fast_source``) stores exactly what the staged path
(``_typed_source``: stage, checks, cast) stores, and where a value is refused the load falls back to the staged
path and fails with its error (problem, value, file position, code) and an unchanged table."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from emulator import engine as engine_module
from emulator.engine import TableEngine
from emulator.errors import ValidationError
from emulator.types import BIGQUERY, SNOWFLAKE, column_type

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T1 = datetime(2024, 1, 2, tzinfo=UTC)
FILLER = 5000  # rows before the last one: several DuckDB vectors (2048 rows)


@pytest.fixture(autouse=True)
def _reset_emulator():
    """Overrides the package-wide autouse fixture: these tests need no running emulator."""
    yield


@pytest.fixture
def staged_calls(monkeypatch) -> list[int]:
    """Counts the loads that fell back to the staged path."""
    calls: list[int] = []
    original = engine_module._typed_source

    def spy(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(engine_module, "_typed_source", spy)
    return calls


def force_staged(monkeypatch) -> None:
    """Every typed load takes the staged path (the one-pass query fails at once)."""
    monkeypatch.setattr(engine_module, "_typed_fast_source", lambda *args: "SELECT error('forced')")


def types_of(backend: str, definitions: dict[str, dict]) -> dict:
    return {
        name: column_type(backend, name, definition=definition, basetype=None, nullable_default=name != "id")
        for name, definition in definitions.items()
    }


def write_csv(path: Path, rows: list[list[str | None]]) -> Path:
    """Every value quoted; None: an unquoted empty field (NULL for the load, where "" may be an empty string)."""
    lines = (",".join("" if v is None else '"' + v.replace('"', '""') + '"' for v in row) for row in rows)
    path.write_bytes("".join(line + "\n" for line in lines).encode())
    return path


def stored(engine: TableEngine, handle: str) -> list[tuple]:
    """The stored rows (with their _timestamp), as reprs (NaN equals NaN)."""
    with engine._cursor() as cur:
        rows = cur.execute(f'SELECT * FROM "{handle}"').fetchall()
    return sorted(tuple(repr(v) for v in row) for row in rows)


def outcome(tmp_path: Path, types: dict, loads: list[tuple[list[list[str | None]], dict]]) -> list:
    """Runs ``loads`` ([(rows with a header, load options)]) into a new table; per load its rows or its error,
    then the stored rows."""
    engine = TableEngine(tmp_path / f"db{len(list(tmp_path.iterdir()))}" / "t.duckdb")
    try:
        engine.create("t", list(types), types=types)
        results: list = []
        for number, (rows, options) in enumerate(loads):
            path = write_csv(tmp_path / f"load{number}.csv", rows)
            options = {"incremental": False, "primary_key": ["id"], "timestamp": T0, **options}
            try:
                result = engine.load("t", [path], file_columns=rows[0], has_header=True, **options)
                results.append(("ok", result.rows_loaded))
            except ValidationError as exc:
                results.append(("error", exc.message, exc.code))
            except duckdb.Error as exc:  # a DuckDB error the checks let through (the load reports it as it is)
                results.append(("error", type(exc).__name__, str(exc)))
            results.append(stored(engine, "t"))
        return results
    finally:
        engine.close()


def both_paths(tmp_path, monkeypatch, types, loads) -> tuple[list, list]:
    fast = outcome(tmp_path, types, loads)
    with monkeypatch.context() as patch:
        force_staged(patch)
        staged = outcome(tmp_path, types, loads)
    return fast, staged


def refusals_of_both_paths(tmp_path, monkeypatch, types, path, columns, incremental) -> list[tuple]:
    """``(message, code, stored rows)`` of a refused load of ``path`` through the one-pass and the staged path."""
    results = []
    for staged in (False, True):
        with monkeypatch.context() as patch:
            if staged:
                force_staged(patch)
            engine = TableEngine(tmp_path / f"db{staged}" / "t.duckdb")
            engine.create("t", list(types), types=types)
            with pytest.raises(ValidationError) as info:
                engine.load(
                    "t",
                    [path],
                    file_columns=columns,
                    has_header=True,
                    incremental=incremental,
                    primary_key=["id"],
                    timestamp=T0,
                )
            results.append((info.value.message, info.value.code, stored(engine, "t")))
            engine.close()
    return results


def rows_with(values: list[str | None], *last: str | None) -> list[list[str | None]]:
    """A header, FILLER rows (id, v) cycling through ``values``, then a row per value of ``last``."""
    rows: list[list[str | None]] = [["id", "v"]]
    rows += [[str(i), values[i % len(values)]] for i in range(FILLER)]
    rows += [[str(FILLER + i), value] for i, value in enumerate(last)]
    return rows


# valid values, the tricky ones included: spaces around (also U+00A0, which trim removes), signs, exponents,
# offsets (cut or converted), separators; None is an unquoted empty field
VALID = {
    SNOWFLAKE: [
        ({"type": "NUMBER", "length": "12,2"}, ["1", "-1.5", "+2.25", " 3 ", "\u00a04", ".5", "5.", "1e2", "1.239"]),
        ({"type": "NUMBER", "length": "38,0"}, ["7", " 8", "-9", "1.5", "00012", "9" * 38, None, ""]),
        ({"type": "INT"}, ["0", "-12", "4.4", " 5 "]),
        ({"type": "FLOAT"}, ["1.5", "nan", "inf", "-Infinity", " 2.5 ", "1e300", "1e999", ".5", "-0"]),
        ({"type": "BOOLEAN"}, ["true", "T", " yes ", "0", "off", "FALSE"]),
        ({"type": "DATE"}, ["2024-01-02", "2024-1-2", " 2024-01-03 ", "0001-01-01"]),
        ({"type": "TIME"}, ["12:34", "12:34:56", "1:02:03.5", " 23:59:59 "]),
        (
            {"type": "TIMESTAMP_NTZ"},
            [
                "2024-01-02",
                "2024-01-02 03:04:05",
                "2024-1-2 3:04",
                "2024-01-02T03:04:05.123456",
                "2024-01-02 03:04:05Z",
                "2024-01-02 03:04:05 +01:00",
                "2024-01-02 03:04 UTC",
                "2024-01-02 03:04:05-0500",
                " 2024-01-02 03:04:05 ",
            ],
        ),
        ({"type": "TIMESTAMP_TZ"}, ["2024-01-02 03:04:05+01:00", "2024-01-02"]),
        ({"type": "VARCHAR", "length": "5"}, ["abcde", "ab", " ", "čšřžý", None, ""]),
        ({"type": "BINARY"}, ["ABCD", "00ff"]),
        ({"type": "VARIANT"}, ['{"a": 1}', "x"]),
    ],
    BIGQUERY: [
        ({"type": "INTEGER"}, ["1", " 2 ", "-3", "+4"]),
        ({"type": "NUMERIC"}, ["1.5", "1e3", "-0.000000001", " 7 "]),
        ({"type": "BIGNUMERIC"}, ["123456789012345678901234567890.5", "1"]),
        ({"type": "FLOAT64"}, ["1.5", "NaN", "-inf", "3"]),
        ({"type": "BOOL"}, ["true", "false", "1"]),
        ({"type": "DATE"}, ["2024-01-02", " 2024-01-02"]),
        ({"type": "DATETIME"}, ["2024-01-02 03:04:05", "2024-01-02T03:04:05.5", "2024-01-02"]),
        ({"type": "TIME"}, ["03:04:05", "03:04"]),
        ({"type": "TIMESTAMP"}, ["2024-01-02 03:04:05+01:00", "2024-01-02 03:04:05", "2024-01-02 03:04:05 UTC"]),
        ({"type": "STRING", "length": "5"}, ["abc", "", None]),
        ({"type": "JSON"}, ['{"a": 1}']),
    ],
}

# refused values: every problem of every checked type (and DuckDB errors the checks let through)
REFUSED = {
    SNOWFLAKE: [
        ({"type": "NUMBER", "length": "12,2"}, ["abc", "1,5", "12345678901234", " ", "1e", "--1", "0x10", "1_000"]),
        ({"type": "NUMBER", "length": "38,0"}, ["9" * 39, "1e39"]),
        ({"type": "INT"}, ["1.2.3", "ten"]),
        ({"type": "FLOAT"}, ["x", "0x10", "1,5"]),
        ({"type": "BOOLEAN"}, ["maybe", "2"]),
        ({"type": "DATE"}, ["2024-13-01", "2024/01/01", "2024-02-30", "20240101"]),
        ({"type": "TIME"}, ["25:00", "12", "12:60"]),
        ({"type": "TIMESTAMP_NTZ"}, ["2024-02-30 00:00:00", "yesterday", "2024-01-02 25:00:00", "2024-01-02 03:04+1"]),
        ({"type": "TIMESTAMP_TZ"}, ["2024-13-01"]),
        ({"type": "VARCHAR", "length": "5"}, ["abcdef", "čšřžýá"]),
        ({"type": "BINARY"}, ["XYZ", "abc"]),
    ],
    BIGQUERY: [
        ({"type": "INTEGER"}, ["1.5", "99999999999999999999"]),
        ({"type": "NUMERIC"}, ["x", "1e40"]),
        ({"type": "BIGNUMERIC"}, ["x"]),
        ({"type": "FLOAT64"}, ["x"]),
        ({"type": "BOOL"}, ["yes!"]),
        ({"type": "DATE"}, ["2024-02-30"]),
        ({"type": "DATETIME"}, ["2024-01-02 03:04:05+01:00", "x"]),
        ({"type": "TIME"}, ["24:00:01"]),
        ({"type": "TIMESTAMP"}, ["2024-01-02 25:00", "x"]),
        ({"type": "STRING", "length": "5"}, ["abcdef"]),
    ],
}


def _cases(table: dict) -> list:
    return [
        pytest.param(backend, definition, values, id=f"{backend}-{definition['type']}-{definition.get('length', '')}")
        for backend, cases in table.items()
        for definition, values in cases
    ]


@pytest.mark.parametrize(("backend", "definition", "values"), _cases(VALID))
def test_valid_values_load_in_one_pass_as_staged(tmp_path, monkeypatch, staged_calls, backend, definition, values):
    types = types_of(backend, {"id": {"type": "INTEGER" if backend == BIGQUERY else "INT"}, "v": definition})
    rows = rows_with(values)
    loads = [(rows, {}), (rows_with(list(reversed(values))), {"incremental": True})]
    fast = outcome(tmp_path, types, loads)
    assert staged_calls == []  # no value refused: the one pass did it all
    assert fast[0] == ("ok", FILLER) and fast[2] == ("ok", FILLER), fast[:1] + fast[2:3]
    with monkeypatch.context() as patch:
        force_staged(patch)
        staged = outcome(tmp_path, types, loads)
    assert len(staged_calls) == 2
    assert fast == staged


@pytest.mark.parametrize(("backend", "definition", "values"), _cases(REFUSED))
def test_refused_value_in_the_last_row_fails_as_staged(tmp_path, monkeypatch, backend, definition, values):
    """The refused value comes after FILLER valid rows (the staged path finds its file position); a full or an
    incremental load that fails leaves the table as the first load left it. The refused values of a type take
    turns at the two kinds of load (a type with one refused value takes both)."""
    types = types_of(backend, {"id": {"type": "INTEGER" if backend == BIGQUERY else "INT"}, "v": definition})
    valid = [v for d, vs in VALID[backend] if d == definition for v in vs] or ["1"]
    runs = [(value, index % 2 == 1) for index, value in enumerate(values)]
    if len(values) == 1:
        runs.append((values[0], True))
    for value, incremental in runs:
        loads = [(rows_with(valid), {}), (rows_with(valid, value), {"incremental": incremental})]
        fast, staged = both_paths(tmp_path, monkeypatch, types, loads)
        assert fast == staged, value
        assert fast[2][0] == "error", (value, fast[2])
        assert fast[3] == fast[1]  # rolled back


def test_refused_values_are_reported_in_column_and_problem_order(tmp_path, monkeypatch):
    """Several refused values: the staged path's order (file columns, then the type's problems), not file order."""
    types = types_of(
        SNOWFLAKE,
        {
            "id": {"type": "INT"},
            "n": {"type": "NUMBER", "length": "4,0"},
            "s": {"type": "VARCHAR", "length": "2", "nullable": False},
        },
    )
    rows = [["id", "n", "s"]] + [[str(i), str(i % 100), "ab"] for i in range(FILLER)]
    rows[10][2] = "abc"  # length, column s: found last
    rows[20][1] = "99999"  # range, column n
    rows[30][1] = "x"  # invalid, column n: reported first
    fast, staged = both_paths(tmp_path, monkeypatch, types, [(rows, {})])
    assert fast == staged
    message = "Table import error: Load error: An exception occurred while executing a query: Numeric value 'x' is not"
    assert fast[0] == ("error", f"{message} recognized", "valueConversion")
    rows[30][1] = "1"
    fast, staged = both_paths(tmp_path, monkeypatch, types, [(rows, {})])
    assert fast == staged
    assert "Numeric value '99999' is out of range" in fast[0][1] and "line 21," in fast[0][1]


@pytest.mark.parametrize("backend", [SNOWFLAKE, BIGQUERY])
@pytest.mark.parametrize("incremental", [False, True])
def test_null_in_a_non_nullable_column(tmp_path, monkeypatch, backend, incremental):
    id_type = {"type": "INTEGER" if backend == BIGQUERY else "INT"}
    types = types_of(backend, {"id": id_type, "v": {"type": "STRING" if backend == BIGQUERY else "VARCHAR"}})
    for value in (None, ""):
        rows = [["id", "v"]] + [[str(i), "a"] for i in range(FILLER)] + [[value, "b"]]
        loads = [(rows[:-1], {}), (rows, {"incremental": incremental})]
        fast, staged = both_paths(tmp_path, monkeypatch, types, loads)
        assert fast == staged
        assert fast[2][0] == "error" and fast[3] == fast[1]


@pytest.mark.parametrize("backend", [SNOWFLAKE, BIGQUERY])
@pytest.mark.parametrize(
    "null_values", [None, [], ["NULL"], ["", "NULL", "n/a"], ["n/a"]], ids=["default", "none", "NULL", "3", "n/a"]
)
def test_treat_values_as_null(tmp_path, monkeypatch, backend, null_values):
    """Markers and empty fields per treatValuesAsNull into string, number and timestamp columns; a value the rules
    leave non-NULL ('' into a number column) is refused, a marker in the non-nullable key too."""
    sf = backend == SNOWFLAKE
    types = types_of(
        backend,
        {
            "id": {"type": "INT" if sf else "INTEGER"},
            "s": {"type": "VARCHAR" if sf else "STRING"},
            "n": {"type": "NUMBER" if sf else "NUMERIC"},
            "t": {"type": "TIMESTAMP_NTZ" if sf else "DATETIME"},
        },
    )
    cells = [None, "", "NULL", "n/a", "null", "x"]
    rows = [["id", "s", "n", "t"]]
    rows += [[str(i), cells[i % len(cells)], "1", "2024-01-01"] for i in range(FILLER)]
    rows += [[str(FILLER + i), "y", cell, cell] for i, cell in enumerate(cells[:4])]
    loads = [(rows, {"null_values": null_values}), (rows[:-4] + [["NULL", "z", "1", "2024-01-01"]], {})]
    loads[1][1]["null_values"] = null_values
    fast, staged = both_paths(tmp_path, monkeypatch, types, loads)
    assert fast == staged
    assert fast[2][0] == "error"  # 'NULL' is no number, or NULL in the key


@pytest.mark.parametrize("incremental", [False, True])
def test_refused_value_at_the_end_of_a_file_read_in_parallel(tmp_path, monkeypatch, incremental):
    """A file of more than one CSV buffer (32 MB: DuckDB reads it with both threads), the refused value in its last
    row: the error gives that row's file position."""
    types = types_of(
        SNOWFLAKE, {"id": {"type": "INT"}, "n": {"type": "NUMBER", "length": "6,2"}, "pad": {"type": "VARCHAR"}}
    )
    count = 400_000
    pad = "x" * 90
    path = tmp_path / "big.csv"
    path.write_text("id,n,pad\n" + "".join(f"{i},{i % 9999}.5,{pad}\n" for i in range(count)) + f"{count},10000,x\n")
    assert path.stat().st_size > 32 * 2**20
    results = refusals_of_both_paths(tmp_path, monkeypatch, types, path, ["id", "n", "pad"], incremental)
    assert results[0] == results[1]
    assert "Numeric value '10000' is out of range" in results[0][0]
    assert f"line {count + 2}, character " in results[0][0] and f"Row {count + 1}, " in results[0][0]


@pytest.mark.parametrize("incremental", [False, True])
def test_csv_error_after_a_refused_value(tmp_path, monkeypatch, incremental):
    """The staged path reads the whole file first: a CSV error anywhere wins over a refused value."""
    types = types_of(SNOWFLAKE, {"id": {"type": "INT"}, "v": {"type": "NUMBER"}})
    engine_rows = [["id", "v"]] + [[str(i), "1"] for i in range(FILLER)]
    engine_rows[5][1] = "x"
    path = write_csv(tmp_path / "broken.csv", engine_rows)
    path.write_bytes(path.read_bytes() + b'"1","2","3"\n')
    results = refusals_of_both_paths(tmp_path, monkeypatch, types, path, ["id", "v"], incremental)
    assert results[0] == results[1]
    assert results[0][1] == "csvImport.invalidCsv"


def test_upsert_keeps_unchanged_rows_and_replaces_changed_ones(tmp_path, staged_calls):
    types = types_of(SNOWFLAKE, {"id": {"type": "INT"}, "n": {"type": "NUMBER", "length": "10,2"}})
    first = [["id", "n"], ["1", "1.5"], ["2", "2"], ["3", None]]
    second = [["id", "n"], ["2", "2.00"], ["3", "3"], ["4", " 4 "], ["4", " 4 "]]
    result = outcome(tmp_path, types, [(first, {}), (second, {"incremental": True, "timestamp": T1})])
    assert staged_calls == []
    assert result[2] == ("ok", 3)
    unchanged, changed = repr(T0.replace(tzinfo=None)), repr(T1.replace(tzinfo=None))
    assert result[3] == [
        ("Decimal('1')", "Decimal('1.50')", unchanged),
        ("Decimal('2')", "Decimal('2.00')", unchanged),
        ("Decimal('3')", "Decimal('3.00')", changed),
        ("Decimal('4')", "Decimal('4.00')", changed),
    ]

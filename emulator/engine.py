"""TableEngine: all table data of one emulator in one embedded DuckDB database file.

Tables hold VARCHAR columns plus the managed ``_timestamp`` column (TIMESTAMP, naive UTC) that
``changedSince``/``changedUntil`` filter on. Keboola string tables have no NULL: every value that
enters a table is coalesced to ``''`` and every value that leaves it is written as a quoted string.

Typed tables (``create(..., types=...)``, a ``types.ColumnType`` per column) store DuckDB-typed values and NULLs:
a load applies the backend's NULL rules, refuses the values the backend refuses (the job error the backend gives)
and casts; exports and previews print values as the backend does, NULL as an empty unquoted field / ``None``;
where filters compare as the column's type.

Speed notes (2-core machine, 10M rows / 1.5 GB CSV):
- storage is forced uncompressed: DuckDB's string compression analysis triples the insert time;
- gzip is decompressed and compressed with isal (several times faster than DuckDB's miniz), so DuckDB
  always reads and writes plain CSV and can use both threads;
- exports are written by DuckDB as one ordered file, then cut into slices at record boundaries;
- a typed load checks and casts in the one pass that writes (``ColumnType.load_sql``); only a load that meets a
  refused value pays for the staged checks that find which value and where.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from .errors import ColumnsNotMatch, NotFound, ValidationError
from .types import STRING, ColumnType, LoadPosition

try:  # isal is a project dependency; the stdlib fallback keeps the module importable anywhere
    from isal import igzip as _gzip
except ImportError:  # pragma: no cover
    import gzip as _gzip

TIMESTAMP_COLUMN = "_timestamp"
GZIP_MAGIC = b"\x1f\x8b"
CSV_ERROR_CODE = "csvImport.invalidCsv"
COLUMN_NOT_EXISTS = "storage.tables.validation.columnNotExists"
VALIDATION = "storage.tables.validation"
OPERATORS = {"eq", "ne", "gt", "ge", "lt", "le"}
_COMPARISON = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
_NUMBER = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")
_HANDLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_COPY_CHUNK = 8 * 2**20
_STATS_SAMPLE = 100_000  # rows read to estimate a table's data size
# Keboola cells may hold up to 16 MB (DuckDB's default line limit is 2 MB); DuckDB's default buffer would then
# be 16 x the line limit per thread, which does not fit the memory limit
_MAX_LINE_SIZE = 16 * 2**20
_CSV_BUFFER_SIZE = 32 * 2**20


@dataclass
class WhereFilter:
    column: str
    operator: str
    values: list[str]
    data_type: str | None = None  # whereFilters[].dataType: compare as numbers when set


@dataclass
class OrderBy:
    column: str
    order: str = "ASC"
    data_type: str | None = None


@dataclass
class LoadResult:
    imported_columns: list[str]
    new_columns: list[str]
    rows_loaded: int  # rows that went into the load after primary-key deduplication
    table_columns: list[str]


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _utc(value: datetime) -> datetime:
    """Naive UTC datetime (the _timestamp column type); naive input is taken as UTC."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def _check_dialect(delimiter: str, enclosure: str) -> None:
    if len(delimiter) != 1 or delimiter in "\r\n":
        raise ValidationError(f'Invalid delimiter "{delimiter}": it must be a single character.', code=CSV_ERROR_CODE)
    if len(enclosure) > 1 or enclosure in ("\r", "\n") or enclosure == delimiter:
        raise ValidationError(
            f'Invalid enclosure "{enclosure}": it must be one character (or empty) other than the delimiter.',
            code=CSV_ERROR_CODE,
        )


def _is_csv_error(exc: duckdb.Error) -> bool:
    return isinstance(exc, duckdb.InvalidInputException) and "CSV" in str(exc)


def _csv_error(exc: duckdb.Error) -> ValidationError:
    """Short, path-free message from DuckDB's multi-line CSV error."""
    lines = str(exc).splitlines()
    first = lines[0].replace("Invalid Input Error: ", "") if lines else "Invalid CSV"
    reason = ""
    if "Possible" in str(exc):
        before = [ln for ln in lines[: next(i for i, ln in enumerate(lines) if ln.startswith("Possible"))] if ln]
        reason = before[-1].strip() if len(before) > 1 else ""
    message = f"Invalid CSV file: {first}" + (f": {reason}" if reason else "")
    return ValidationError(message, code=CSV_ERROR_CODE)


class TableEngine:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._spool = self.path.parent / f"{self.path.name}.spool"  # decompressed load inputs
        self._db = duckdb.connect(
            str(self.path),
            config={
                "memory_limit": "1GB",
                "threads": 2,
                "temp_directory": str(self.path.parent / f"{self.path.name}.tmp"),
                "preserve_insertion_order": False,  # ORDER BY is still honoured; lets loads run in parallel
                "force_compression": "uncompressed",
            },
        )
        self._guard = threading.Lock()
        self._locks: dict[str, threading.RLock] = {}
        self._stats: dict[str, tuple[int, int]] = {}
        self._writes: dict[str, int] = {}  # per-handle write counter: a stale stats result is never cached
        self._types: dict[str, dict[str, ColumnType]] = {}  # typed tables: column -> type

    # -- plumbing -------------------------------------------------------------------------------------

    @contextmanager
    def _cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._guard:
            cur = self._db.cursor()
        cur.execute("SET enable_progress_bar = false")  # a per-connection setting; keeps server output clean
        try:
            yield cur
        finally:
            cur.close()

    def _lock(self, handle: str) -> threading.RLock:
        with self._guard:
            return self._locks.setdefault(handle, threading.RLock())

    def _changed(self, handle: str) -> None:
        with self._guard:
            self._writes[handle] = self._writes.get(handle, 0) + 1
            self._stats.pop(handle, None)

    @staticmethod
    def _table(handle: str) -> str:
        if not _HANDLE.match(handle):
            raise ValueError(f"invalid table handle {handle!r}")
        return quote_ident(handle)

    def close(self) -> None:
        self._db.close()

    # -- tables ---------------------------------------------------------------------------------------

    def create(self, handle: str, columns: list[str], *, types: dict[str, ColumnType] | None = None) -> None:
        """``types``: a typed table (every column typed); None: VARCHAR columns."""
        _check_columns(columns)
        if types is not None:
            missing = [c for c in columns if c not in types]
            if missing:
                raise ValueError(f"typed table without a type for {missing}")
            defs = ", ".join(f"{quote_ident(c)} {types[c].storage_sql}" for c in columns)
        else:
            defs = ", ".join(f"{quote_ident(c)} VARCHAR DEFAULT ''" for c in columns)
        with self._lock(handle), self._cursor() as cur:
            cur.execute(f"CREATE TABLE {self._table(handle)} ({defs}, {quote_ident(TIMESTAMP_COLUMN)} TIMESTAMP)")
            with self._guard:
                if types is not None:
                    self._types[handle] = {c: types[c] for c in columns}
                else:
                    self._types.pop(handle, None)
        self._changed(handle)

    def types(self, handle: str) -> dict[str, ColumnType] | None:
        """The column types of a typed table (a copy), None for an untyped one."""
        with self._guard:
            types = self._types.get(handle)
            return dict(types) if types is not None else None

    def drop(self, handle: str) -> None:
        with self._lock(handle), self._cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {self._table(handle)}")
        self._changed(handle)
        with self._guard:
            self._locks.pop(handle, None)
            self._types.pop(handle, None)

    def truncate(self, handle: str) -> None:
        with self._lock(handle), self._cursor() as cur:
            cur.execute(f"DELETE FROM {self._table(handle)}")
        self._changed(handle)

    def add_column(self, handle: str, name: str, *, column_type: ColumnType | None = None) -> None:
        """Append a VARCHAR column; the stored rows get ``''`` in it and keep their ``_timestamp``. On a typed table
        (``column_type``) the stored rows get the column's default, else NULL."""
        table = self._table(handle)
        with self._lock(handle):
            _check_columns([*self.columns(handle), name])
            typed = self.types(handle)
            if (typed is None) != (column_type is None):
                raise ValueError("a typed column goes to a typed table, an untyped one to an untyped table")
            if column_type is None:
                definition = "VARCHAR DEFAULT ''"
            else:
                default = column_type.default_sql()
                definition = column_type.storage_sql + (f" DEFAULT {default}" if default is not None else "")
            with self._cursor() as cur:
                cur.execute(f"ALTER TABLE {table} ADD COLUMN {quote_ident(name)} {definition}")
            if column_type is not None:
                with self._guard:
                    self._types[handle][name] = column_type
            self._changed(handle)

    def drop_column(self, handle: str, name: str) -> None:
        table = self._table(handle)
        with self._lock(handle):
            _require_columns([name], self.columns(handle))
            with self._cursor() as cur:
                cur.execute(f"ALTER TABLE {table} DROP COLUMN {quote_ident(name)}")
            with self._guard:
                if handle in self._types:
                    self._types[handle].pop(name, None)
            self._changed(handle)

    def columns(self, handle: str) -> list[str]:
        self._table(handle)
        with self._cursor() as cur:
            rows = cur.execute(
                "SELECT column_name FROM duckdb_columns() WHERE schema_name = 'main' AND table_name = ? "
                "ORDER BY column_index",
                [handle],
            ).fetchall()
        if not rows:
            raise NotFound(f'Table "{handle}" not found', code="storage.tables.notFound")
        return [name for (name,) in rows if name != TIMESTAMP_COLUMN]

    def stats(self, handle: str) -> tuple[int, int]:
        """(rows, approximate data bytes = value lengths + separators); cached until the next write. The bytes are
        exact up to ``_STATS_SAMPLE`` rows and extrapolated from a fixed sample above: a load's cost must not
        grow with the table (a warehouse reports its size from metadata too)."""
        with self._guard:
            cached, writes = self._stats.get(handle), self._writes.get(handle, 0)
        if cached is not None:
            return cached
        cols = self.columns(handle)
        if self.types(handle) is None:
            size = " + ".join(f"strlen({quote_ident(c)})" for c in cols)
        else:  # typed values as text; NULL counts 0
            size = " + ".join(f"coalesce(strlen(CAST({quote_ident(c)} AS VARCHAR)), 0)" for c in cols)
        table = self._table(handle)
        with self._cursor() as cur:
            (rows,) = cur.execute(f"SELECT count(*) FROM {table}").fetchone()
            share = 100.0 * _STATS_SAMPLE / rows if rows > _STATS_SAMPLE else 0
            sample = f" USING SAMPLE {share:.6f}% (system, 7)" if share else ""  # whole vectors: reads ~the sample
            (average,) = cur.execute(
                f"SELECT coalesce(avg({size} + {3 * len(cols)}), 0) FROM {table}{sample}"
            ).fetchone()
            data = round(float(average) * rows)
        with self._guard:
            if self._writes.get(handle, 0) == writes:
                self._stats[handle] = (int(rows), int(data))
        return int(rows), int(data)

    def count_rows(self, handle: str, where_filters: Sequence[WhereFilter] = ()) -> int:
        """Rows matching ``where_filters`` (the rows of a filtered alias)."""
        types = self.types(handle)
        where, params = _where_sql(self.columns(handle), None, None, where_filters, types)
        with self._cursor() as cur:
            _check_filter_values(cur, types, where_filters)
            return int(cur.execute(f"SELECT count(*) FROM {self._table(handle)}{where}", params).fetchone()[0])

    def has_duplicates(self, handle: str, columns: list[str]) -> bool:
        if not columns:
            return False
        _require_columns(columns, self.columns(handle))
        keys = ", ".join(quote_ident(c) for c in columns)
        with self._cursor() as cur:
            row = cur.execute(
                f"SELECT 1 FROM {self._table(handle)} GROUP BY {keys} HAVING count(*) > 1 LIMIT 1"
            ).fetchone()
        return row is not None

    # -- import ---------------------------------------------------------------------------------------

    def read_header(self, files: list[Path], delimiter: str = ",", enclosure: str = '"') -> list[str]:
        """First CSV record of the first file, streamed (gzip is recognised by its magic bytes, not the name)."""
        _check_dialect(delimiter, enclosure)
        if not files:
            return []
        path = Path(files[0])
        opener = _gzip.open if _is_gzip(path) else open
        with opener(path, "rb") as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text:
            if enclosure:
                reader = csv.reader(text, delimiter=delimiter, quotechar=enclosure, doublequote=True, strict=True)
            else:
                reader = csv.reader(text, delimiter=delimiter, quoting=csv.QUOTE_NONE)
            try:
                return next(reader, [])
            except (csv.Error, UnicodeDecodeError, OSError, EOFError) as exc:
                raise ValidationError(f"Invalid CSV file header: {exc}", code=CSV_ERROR_CODE) from exc

    def load(
        self,
        handle: str,
        files: list[Path],
        *,
        file_columns: list[str],
        has_header: bool,
        incremental: bool,
        primary_key: list[str],
        timestamp: datetime,
        delimiter: str = ",",
        enclosure: str = '"',
        null_values: Sequence[str] | None = None,
    ) -> LoadResult:
        """``null_values``: ``treatValuesAsNull`` of the import (default ``['']``); typed tables only."""
        _check_dialect(delimiter, enclosure)
        table = self._table(handle)
        with self._lock(handle):
            existing = self.columns(handle)
            missing = [c for c in existing if c not in file_columns]
            if missing:
                raise ColumnsNotMatch(missing, existing, delimiter)
            new = [c for c in file_columns if c not in existing]
            typed = self.types(handle)
            if typed is not None and new:
                raise ValidationError(
                    f"Columns {', '.join(new)} are not in the typed table. Typed tables do not add columns on import: "
                    "add them first (POST tables/{id}/columns with a definition or basetype).",
                    code="csvImport.columnsNotMatch",
                )
            final = existing + new
            _check_columns(final)
            _require_columns(primary_key, final, what="primary key")

            files = [Path(f) for f in files]
            with (
                self._plain_files(files, delimiter, enclosure, exact=typed is not None) as plain,
                self._cursor() as cur,
            ):
                source, params = _read_csv_sql(
                    plain, file_columns, has_header, delimiter, enclosure, keep_nulls=typed is not None
                )
                ts = _utc(timestamp)

                def write(source: str, params: dict) -> int:
                    for col in new:
                        cur.execute(f"ALTER TABLE {table} ADD COLUMN {quote_ident(col)} VARCHAR DEFAULT ''")
                    if not incremental:
                        cur.execute(f"DELETE FROM {table}")
                    if not plain:
                        return 0
                    if incremental and primary_key:
                        return _upsert(cur, handle, final, primary_key, source, params, ts)
                    names = ", ".join(quote_ident(c) for c in final)
                    rows = _count(
                        cur,
                        f"INSERT INTO {table} ({names}, {quote_ident(TIMESTAMP_COLUMN)}) "
                        f"SELECT {names}, $ts::TIMESTAMP FROM ({source})",
                        {**params, "ts": ts},
                    )
                    if primary_key:  # after the truncate the table holds just this load
                        rows -= _dedup(cur, table, primary_key)
                    return rows

                cur.begin()
                try:
                    if typed is not None and plain:
                        # one pass that fails on any refused value; on a failure the staged checks find the first
                        # refused value (or the DuckDB error) the load reports
                        try:
                            rows = write(_typed_fast_source(typed, source, file_columns, null_values), params)
                        except duckdb.Error as exc:
                            if _is_csv_error(exc):  # the staged path would meet it too
                                raise
                            cur.rollback()
                            cur.begin()
                            located = _Located(plain, [f.name for f in files], has_header, delimiter, enclosure)
                            source, params = _typed_source(
                                cur, typed, source, params, file_columns, null_values, located
                            )
                            rows = write(source, params)
                    else:
                        rows = write(source, params)
                    cur.commit()
                except duckdb.Error as exc:
                    cur.rollback()
                    if _is_csv_error(exc):
                        raise _csv_error(exc) from exc
                    raise
                except BaseException:
                    cur.rollback()
                    raise
            self._changed(handle)
        return LoadResult(imported_columns=list(file_columns), new_columns=new, rows_loaded=rows, table_columns=final)

    @contextmanager
    def _plain_files(
        self, files: list[Path], delimiter: str, enclosure: str, *, exact: bool = False
    ) -> Iterator[list[str]]:
        """The input files as plain, LF-terminated CSV paths: gzip ones are decompressed and CRLF ones rewritten with
        LF record ends (in parallel) into a scratch dir; the others are used as they are. ``exact``: the rewrite
        keeps every byte but the record ends, so quoted and unquoted empty fields stay apart (typed tables)."""
        gz = {i for i, f in enumerate(files) if _is_gzip(f)}
        crlf = {i for i, f in enumerate(files) if i not in gz and _is_crlf(str(f), enclosure)}
        if not gz and not crlf:
            yield [str(f) for f in files]
            return
        self._spool.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self._spool, prefix="load-") as tmp:
            plain = [str(f) for f in files]

            def prepare(i: int) -> None:
                source = files[i]
                if i in gz:
                    target = Path(tmp) / f"{i:05d}.csv"
                    try:
                        with _gzip.open(source, "rb") as src, open(target, "wb") as dst:
                            shutil.copyfileobj(src, dst, _COPY_CHUNK)
                    except (OSError, EOFError, ValueError) as exc:
                        raise ValidationError(f"Invalid gzip file {source.name}: {exc}", code=CSV_ERROR_CODE) from exc
                    plain[i] = str(target)
                    if not _is_crlf(plain[i], enclosure):
                        return
                    source = target
                target = Path(tmp) / f"{i:05d}.lf.csv"
                if exact:
                    _crlf_records_to_lf(source, target, enclosure)
                else:
                    _crlf_to_lf(source, target, delimiter, enclosure)
                plain[i] = str(target)

            with ThreadPoolExecutor(max_workers=2) as pool:
                list(pool.map(prepare, sorted(gz | crlf)))
            yield plain

    # -- export / preview / delete --------------------------------------------------------------------

    def export(
        self,
        handle: str,
        out_dir: Path,
        *,
        columns: list[str] | None = None,
        changed_since: datetime | None = None,
        changed_until: datetime | None = None,
        where_filters: Sequence[WhereFilter] = (),
        order_by: Sequence[OrderBy] = (),
        limit: int | None = None,
        gzip: bool = True,
        slice_bytes: int = 64 * 2**20,
    ) -> list[Path]:
        """Headerless RFC-4180 slices, every value quoted (a typed table's NULL: an empty unquoted field), "\\n" line
        ends: 0000_part_00(.gz), ..."""
        _, sql, params = self._select(
            handle, columns, changed_since, changed_until, where_filters, order_by, limit, style="export"
        )
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        whole = out_dir / f".export-{uuid.uuid4().hex}.csv"
        try:
            with self._cursor() as cur:
                # one file keeps ORDER BY (rotating files are written by threads out of order)
                params["out"] = str(whole)
                cur.execute(
                    f"COPY ({sql}) TO $out (FORMAT csv, HEADER false, FORCE_QUOTE *, DELIMITER ',', "
                    "QUOTE '\"', ESCAPE '\"')",
                    params,
                )
            if not whole.exists():
                whole.touch()
            ranges = _record_ranges(whole, max(1, slice_bytes))
            paths = [out_dir / (f"{i:04d}_part_00" + (".gz" if gzip else "")) for i in range(len(ranges))]
            if not gzip and len(ranges) == 1:
                whole.replace(paths[0])
            else:  # isal releases the GIL: two slices are compressed at a time
                with ThreadPoolExecutor(max_workers=2) as pool:
                    list(pool.map(lambda job: _write_range(whole, *job, gzip), zip(paths, ranges)))
        finally:
            whole.unlink(missing_ok=True)
        return sorted(paths)

    def preview(
        self,
        handle: str,
        *,
        columns: list[str] | None = None,
        changed_since: datetime | None = None,
        changed_until: datetime | None = None,
        where_filters: Sequence[WhereFilter] = (),
        order_by: Sequence[OrderBy] = (),
        limit: int | None = 100,
        style: str = "preview",
    ) -> tuple[list[str], list[list[str | None]]]:
        """Rows as text (a typed table's NULL: None), printed as the backend's data-preview does (``style``
        ``export``: as its exports do)."""
        selected, sql, params = self._select(
            handle, columns, changed_since, changed_until, where_filters, order_by, limit, style=style
        )
        with self._cursor() as cur:
            rows = cur.execute(sql, params).fetchall()
        return selected, [list(r) for r in rows]

    def delete_rows(
        self,
        handle: str,
        *,
        where_filters: Sequence[WhereFilter] = (),
        changed_since: datetime | None = None,
        changed_until: datetime | None = None,
    ) -> int:
        table = self._table(handle)
        with self._lock(handle):
            types = self.types(handle)
            where, params = _where_sql(self.columns(handle), changed_since, changed_until, where_filters, types)
            with self._cursor() as cur:
                _check_filter_values(cur, types, where_filters)
                count = int(cur.execute(f"DELETE FROM {table}{where}", params).fetchone()[0])
            self._changed(handle)
        return count

    def _select(
        self,
        handle: str,
        columns: list[str] | None,
        changed_since: datetime | None,
        changed_until: datetime | None,
        where_filters: Iterable[WhereFilter],
        order_by: Iterable[OrderBy],
        limit: int | None,
        *,
        style: str,
    ) -> tuple[list[str], str, dict]:
        table = self._table(handle)
        existing = self.columns(handle)
        types = self.types(handle)
        selected = list(columns) if columns else existing
        _require_columns(selected, existing)
        where_filters = list(where_filters)
        where, params = _where_sql(existing, changed_since, changed_until, where_filters, types)
        if types:
            with self._cursor() as cur:
                _check_filter_values(cur, types, where_filters)
            values = ", ".join(f"{types[c].output_sql(quote_ident(c), style)} AS {quote_ident(c)}" for c in selected)
        else:
            values = ", ".join(f"coalesce({quote_ident(c)}, '') AS {quote_ident(c)}" for c in selected)
        # a typed table's printed values are aliased with the column names: ORDER BY the stored (typed) column
        order = _order_sql(existing, order_by, types, prefix=f"{table}." if types else "")
        sql = f"SELECT {values} FROM {table}{where}{order}"
        if limit is not None:
            if int(limit) < 0:
                raise ValidationError(f"Invalid limit {limit}: it must not be negative.", code=VALIDATION)
            sql += " LIMIT $limit"
            params["limit"] = int(limit)
        return selected, sql, params


# -- SQL helpers ------------------------------------------------------------------------------------------


def _check_columns(columns: list[str]) -> None:
    if not columns:
        raise ValidationError("No columns given.", code="storage.tables.validation.noColumns")
    seen: set[str] = set()
    for col in columns:
        key = col.lower()  # DuckDB identifiers are case-insensitive
        if not col or key == TIMESTAMP_COLUMN:
            raise ValidationError(f'Invalid column name "{col}".', code="storage.tables.validation.invalidColumnName")
        if key in seen:
            raise ValidationError(f'Duplicate column name "{col}".', code="storage.tables.validation.duplicateColumn")
        seen.add(key)


def _require_columns(wanted: Iterable[str], existing: list[str], what: str = "column") -> None:
    unknown = [c for c in wanted if c not in existing]
    if unknown:
        if what == "primary key":
            raise ValidationError(
                f"Primary key columns {', '.join(unknown)} are not in the table.",
                code="storage.tables.validation.invalidPrimaryKeyColumns",
            )
        raise ValidationError(
            f"Columns {', '.join(unknown)} do not exist in the table. Existing columns: {', '.join(existing)}.",
            code=COLUMN_NOT_EXISTS,
        )


def _count(cur, sql: str, params: dict | None = None) -> int:
    return int(cur.execute(sql, params or {}).fetchone()[0])


def _dedup(cur, table: str, primary_key: list[str]) -> int:
    """Keep one (any) row per primary key value; returns the number of rows removed."""
    keys = ", ".join(quote_ident(c) for c in primary_key)
    if cur.execute(f"SELECT 1 FROM {table} GROUP BY {keys} HAVING count(*) > 1 LIMIT 1").fetchone() is None:
        return 0  # the usual case: one cheap aggregate over the keys only
    return _count(
        cur,
        f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM "
        f"(SELECT rowid, row_number() OVER (PARTITION BY {keys}) AS n FROM {table}) WHERE n > 1)",
    )


def _upsert(
    cur, handle: str, columns: list[str], primary_key: list[str], source: str, params: dict, ts: datetime
) -> int:
    """Incremental load with a primary key, set-based.

    Rows whose (key, row hash) already exists are identical and left alone (they keep their _timestamp);
    the others are new or changed: their old versions are deleted and they are inserted with ``ts``.
    """
    table = quote_ident(handle)
    suffix = uuid.uuid4().hex[:8]
    stage, changes = quote_ident(f"stage_{handle}_{suffix}"), quote_ident(f"changes_{handle}_{suffix}")
    names = ", ".join(quote_ident(c) for c in columns)
    match = " AND ".join(f"t.{quote_ident(c)} = s.{quote_ident(c)}" for c in primary_key)
    row_hash = "hash({})".format(", ".join(f"{{0}}.{quote_ident(c)}" for c in columns))
    # created inside the load's transaction: a rollback discards them too
    cur.execute(f"CREATE TEMP TABLE {stage} AS SELECT {names} FROM ({source})", params)
    rows = _count(cur, f"SELECT count(*) FROM {stage}") - _dedup(cur, stage, primary_key)
    # the stored rows with a key in the load (a join on the keys only), so row hashes are computed for at most as
    # many stored rows as the load has: an incremental load costs what it changes, not the table's size
    matched = quote_ident(f"matched_{handle}_{suffix}")
    cur.execute(f"CREATE TEMP TABLE {matched} AS SELECT t.* FROM {table} AS t SEMI JOIN {stage} AS s ON {match}")
    cur.execute(
        f"CREATE TEMP TABLE {changes} AS SELECT s.* FROM {stage} AS s ANTI JOIN {matched} AS t "
        f"ON {match} AND {row_hash.format('t')} = {row_hash.format('s')}"
    )
    cur.execute(f"DROP TABLE {matched}")
    cur.execute(f"DELETE FROM {table} AS t USING {changes} AS s WHERE {match}")
    cur.execute(
        f"INSERT INTO {table} ({names}, {quote_ident(TIMESTAMP_COLUMN)}) SELECT {names}, $ts::TIMESTAMP FROM {changes}",
        {"ts": ts},
    )
    cur.execute(f"DROP TABLE {stage}")
    cur.execute(f"DROP TABLE {changes}")
    return rows


def _read_csv_sql(
    files: list[str],
    file_columns: list[str],
    has_header: bool,
    delimiter: str,
    enclosure: str,
    *,
    keep_nulls: bool = False,
) -> tuple[str, dict]:
    """SELECT over read_csv that yields the file columns by name, '' instead of NULL, strict parsing.
    ``keep_nulls``: an unquoted empty field stays NULL (a quoted one is '')."""
    # positional names keep arbitrary column names out of the read_csv options
    mapping = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(file_columns))) + "}"
    if keep_nulls:
        values = ", ".join(f"c{i} AS {quote_ident(c)}" for i, c in enumerate(file_columns))
    else:
        values = ", ".join(f"coalesce(c{i}, '') AS {quote_ident(c)}" for i, c in enumerate(file_columns))
    options = (
        f"columns = {mapping}, header = $header, delim = $delim, quote = $quote, escape = $quote, "
        "auto_detect = false, strict_mode = true, null_padding = false, ignore_errors = false, skip = 0, "
        "compression = 'none', allow_quoted_nulls = false, max_line_size = $max_line, buffer_size = $buffer"
    )
    params: dict = {
        "header": has_header,
        "delim": delimiter,
        "quote": enclosure,
        "max_line": _MAX_LINE_SIZE,
        "buffer": _CSV_BUFFER_SIZE,
    }
    # DuckDB guesses the line ending from the first newline byte, even one inside quotes, and its explicit
    # '\r\n' mode misparses; so LF files get new_line='\n' and CRLF files keep DuckDB's guess. With an enclosure,
    # _plain_files has rewritten CRLF files with LF record ends already (a guess from a quoted LF breaks the load).
    lf = [f for f in files if _line_terminator(f, enclosure) == "\n"]
    crlf = [f for f in files if f not in lf]
    parts = []
    if lf:
        parts.append(f"SELECT {values} FROM read_csv($lf, {options}, new_line = '\\n')")
        params["lf"] = lf
    if crlf:
        parts.append(f"SELECT {values} FROM read_csv($crlf, {options})")
        params["crlf"] = crlf
    return " UNION ALL ".join(parts), params


def _is_crlf(path: str, enclosure: str) -> bool:
    """A CRLF file that may hold line breaks inside quoted values (only with an enclosure)."""
    return bool(enclosure) and _line_terminator(path, enclosure) == "\r\n"


def _crlf_to_lf(source: Path, target: Path, delimiter: str, enclosure: str) -> None:
    """Rewrite a CSV with LF record ends, strictly parsed; values (line breaks inside quotes included) stay exact.
    Every value is written quoted, which loads the same ('' either way: Keboola string tables have no NULL)."""
    csv.field_size_limit(_MAX_LINE_SIZE)  # cells up to 16 MB, as DuckDB's max_line_size
    try:
        with (
            open(source, encoding="utf-8-sig", newline="") as src,  # a BOM is no data (DuckDB skips it too)
            open(target, "w", encoding="utf-8", newline="") as dst,
        ):
            reader = csv.reader(src, delimiter=delimiter, quotechar=enclosure, doublequote=True, strict=True)
            writer = csv.writer(
                dst, delimiter=delimiter, quotechar=enclosure, quoting=csv.QUOTE_ALL, lineterminator="\n"
            )
            writer.writerows(reader)
    except (csv.Error, UnicodeDecodeError) as exc:
        raise ValidationError(f"Invalid CSV file {source.name}: {exc}", code=CSV_ERROR_CODE) from exc


def _line_terminator(path: str, enclosure: str) -> str:
    r"""The end of the first record, found outside quotes: "\r\n" or "\n"."""
    quote = enclosure.encode()
    inside = False
    previous = b""
    with open(path, "rb") as fh:
        while chunk := fh.read(64 * 1024):
            pos = 0
            while (newline := chunk.find(b"\n", pos)) >= 0:
                if quote:
                    inside ^= bool(chunk.count(quote, pos, newline) & 1)
                if not inside:
                    before = chunk[newline - 1 : newline] if newline else previous
                    return "\r\n" if before == b"\r" else "\n"
                pos = newline + 1
            if quote:
                inside ^= bool(chunk.count(quote, pos) & 1)
            previous = chunk[-1:]
    return "\n"


def _where_sql(
    existing: list[str],
    changed_since: datetime | None,
    changed_until: datetime | None,
    where_filters: Iterable[WhereFilter],
    types: dict[str, ColumnType] | None = None,
) -> tuple[str, dict]:
    clauses: list[str] = []
    params: dict = {}
    if changed_since is not None:
        clauses.append(f"{quote_ident(TIMESTAMP_COLUMN)} >= $since")
        params["since"] = _utc(changed_since)
    if changed_until is not None:
        clauses.append(f"{quote_ident(TIMESTAMP_COLUMN)} < $until")
        params["until"] = _utc(changed_until)
    for n, flt in enumerate(where_filters):
        clauses.append(_filter_sql(n, flt, existing, params, types))
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _filter_sql(
    n: int, flt: WhereFilter, existing: list[str], params: dict, types: dict[str, ColumnType] | None = None
) -> str:
    op = (flt.operator or "eq").lower()
    if op not in OPERATORS:
        raise ValidationError(
            f'Invalid operator "{flt.operator}" in whereFilters[{n}]: use one of eq, ne, gt, ge, lt, le.',
            code=VALIDATION,
        )
    if flt.column not in existing:
        raise ValidationError(
            f'Cannot filter by column "{flt.column}", column does not exist. Existing columns: {", ".join(existing)}.',
            code=COLUMN_NOT_EXISTS,
        )
    column_type = (types or {}).get(flt.column)
    if column_type is not None and not (column_type.kind == STRING and flt.data_type):
        return _typed_filter_sql(n, op, flt, column_type, params)
    values = [str(v) for v in (flt.values or [])]
    col = f"coalesce({quote_ident(flt.column)}, '')"
    numeric = flt.data_type is not None
    if numeric and not all(_NUMBER.match(v) for v in values):
        raise ValidationError(
            f"whereFilters[{n}]: values must be numbers for dataType {flt.data_type}.", code=VALIDATION
        )
    if op in ("eq", "ne"):
        if not values:
            return "FALSE" if op == "eq" else "TRUE"
        names = []
        for i, value in enumerate(values):
            names.append(f"$w{n}_{i}")
            params[f"w{n}_{i}"] = float(value) if numeric else value
        target = f"TRY_CAST({col} AS DOUBLE)" if numeric else col
        return f"{target} {'IN' if op == 'eq' else 'NOT IN'} ({', '.join(names)})"
    if not values:
        raise ValidationError(f'whereFilters[{n}]: operator "{op}" needs a value.', code=VALIDATION)
    value = values[0]
    if numeric:  # dataType: compare numbers (cells that are no number never match)
        params[f"w{n}"] = float(value)
        return f"TRY_CAST({col} AS DOUBLE) {_COMPARISON[op]} $w{n}"
    # no dataType: the backend compares the VARCHAR column as strings ("100" < "30"), as for eq / ne
    params[f"w{n}"] = value
    return f"{col} {_COMPARISON[op]} $w{n}"


def _order_sql(
    existing: list[str], order_by: Iterable[OrderBy], types: dict[str, ColumnType] | None = None, prefix: str = ""
) -> str:
    parts = []
    for n, item in enumerate(order_by):
        if types and item.data_type:  # PHPT testDataPreviewForTableDefinitionBaseType
            raise ValidationError(
                "Specifying data type for ordered column is not supported for typed tables", code=VALIDATION
            )
        direction = (item.order or "ASC").upper()
        if direction not in ("ASC", "DESC"):
            raise ValidationError(f'Invalid order "{item.order}" in orderBy[{n}]: use ASC or DESC.', code=VALIDATION)
        if item.column not in existing:
            raise ValidationError(
                f'Cannot order by column "{item.column}", column does not exist.', code=COLUMN_NOT_EXISTS
            )
        target = prefix + quote_ident(item.column)
        if item.data_type:
            target = f"TRY_CAST({target} AS DOUBLE)"
        parts.append(f"{target} {direction}")
    return (" ORDER BY " + ", ".join(parts)) if parts else ""


# -- typed tables -----------------------------------------------------------------------------------------


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _typed_filter_sql(n: int, op: str, flt: WhereFilter, column_type: ColumnType, params: dict) -> str:
    """A filter on a typed column compares values of its type (the values are checked by
    ``_check_filter_values``); not on semi-structured / binary / geo columns, and no ``dataType`` (except on text
    columns, where it compares numbers as on untyped tables)."""
    if not column_type.can_be_filtered:
        raise column_type.not_filterable_error()
    if flt.data_type:
        raise ValidationError(
            "Specifying data type for filtered column is not supported for typed tables", code=VALIDATION
        )
    col = quote_ident(flt.column)
    values = [str(v) for v in (flt.values or [])]
    names = []
    for i, value in enumerate(values):
        params[f"w{n}_{i}"] = value
        names.append(column_type.cast_sql(f"$w{n}_{i}"))
    if op in ("eq", "ne"):
        if not names:
            return "FALSE" if op == "eq" else "TRUE"
        return f"{col} {'IN' if op == 'eq' else 'NOT IN'} ({', '.join(names)})"
    if not names:
        raise ValidationError(f'whereFilters[{n}]: operator "{op}" needs a value.', code=VALIDATION)
    return f"{col} {_COMPARISON[op]} {names[0]}"


def _check_filter_values(cur, types: dict[str, ColumnType] | None, where_filters: Iterable[WhereFilter]) -> None:
    """A filter value that is no value of its typed column fails as on the backend (``Numeric value 'aaa' is not
    recognized``)."""
    for flt in where_filters:
        column_type = (types or {}).get(flt.column)
        if column_type is None or (column_type.kind == STRING and flt.data_type) or not column_type.can_be_filtered:
            continue
        check = column_type.filter_check_sql("$v")
        if check == "FALSE":
            continue
        for value in flt.values or []:
            if cur.execute(f"SELECT {check}", {"v": str(value)}).fetchone()[0]:
                raise column_type.filter_error(str(value))


@dataclass
class _Located:
    """What finding the file position of a refused value needs: the plain files and their names, the dialect."""

    plain: list[str]
    names: list[str]
    has_header: bool
    delimiter: str
    enclosure: str

    def find(self, column_index: int, value: str) -> LoadPosition | None:
        """The first record (file order) whose field ``column_index`` is ``value``; None if not found."""
        csv.field_size_limit(_MAX_LINE_SIZE)
        for path, name in zip(self.plain, self.names, strict=True):
            with open(path, encoding="utf-8-sig", newline="") as fh:
                if self.enclosure:
                    reader = csv.reader(fh, delimiter=self.delimiter, quotechar=self.enclosure, doublequote=True)
                else:
                    reader = csv.reader(fh, delimiter=self.delimiter, quoting=csv.QUOTE_NONE)
                previous_line, row = 0, 0
                try:
                    for index, record in enumerate(reader):
                        first_line, previous_line = previous_line + 1, reader.line_num
                        if index == 0 and self.has_header:
                            continue
                        row += 1
                        if column_index < len(record) and record[column_index] == value:
                            return self._position(path, name, first_line, row, column_index)
                except csv.Error:
                    return None
        return None

    def _position(self, path: str, name: str, line: int, row: int, column_index: int) -> LoadPosition:
        offset, raw = 0, b""
        with open(path, "rb") as fh:
            for number, raw in enumerate(fh, start=1):
                if number == line:
                    break
                offset += len(raw)
        text = raw.decode("utf-8", "replace")
        if line == 1:
            text = text.removeprefix("\ufeff")
        field, start, inside = 0, 0, False
        for pos, char in enumerate(text):
            if field == column_index:
                break
            if self.enclosure and char == self.enclosure:
                inside = not inside
            elif char == self.delimiter and not inside:
                field, start = field + 1, pos + 1
        character = start + 1 + (1 if self.enclosure and text[start : start + 1] == self.enclosure else 0)
        return LoadPosition(name, line, character, row, column_index, offset)


def _null_ruled(
    types: dict[str, ColumnType], source: str, file_columns: list[str], null_values: Sequence[str] | None
) -> str:
    """SELECT of the raw CSV values of a typed table with the load's NULL rules applied."""
    null_values = [""] if null_values is None else [str(v) for v in null_values]
    markers = ", ".join(_sql_text(v) for v in null_values if v != "") or None
    empty_is_null = "" in null_values
    values = ", ".join(
        f"{types[c].null_sql(quote_ident(c), markers, empty_is_null)} AS {quote_ident(c)}" for c in file_columns
    )
    return f"SELECT {values} FROM ({source})"


def _typed_fast_source(
    types: dict[str, ColumnType], source: str, file_columns: list[str], null_values: Sequence[str] | None
) -> str:
    """The SELECT of the CSV values cast to the stored types, in one pass: it raises (a DuckDB error) where
    ``_typed_source`` would refuse a value, and yields the values ``_typed_source`` returns otherwise."""
    fail = f"error('refused value {uuid.uuid4().hex}')"
    casts = ", ".join(f"{types[c].load_sql(quote_ident(c), fail)} AS {quote_ident(c)}" for c in file_columns)
    return f"SELECT {casts} FROM ({_null_ruled(types, source, file_columns, null_values)})"


def _typed_source(
    cur,
    types: dict[str, ColumnType],
    source: str,
    params: dict,
    file_columns: list[str],
    null_values: Sequence[str] | None,
    located: _Located,
) -> tuple[str, dict]:
    """Stage the raw CSV values of a typed table with the NULL rules applied, fail on the first value the backend
    refuses (NULL in a non-nullable column, a value that is no value of the type, out of range, too long) with its
    job error, and return the SELECT of the stage cast to the stored types. Runs inside the load's transaction."""
    stage = quote_ident(f"typed_stage_{uuid.uuid4().hex[:12]}")
    cur.execute(f"CREATE TEMP TABLE {stage} AS {_null_ruled(types, source, file_columns, null_values)}", params)
    checks: list[tuple[int, str, str]] = []  # (file column index, problem, condition)
    for index, column in enumerate(file_columns):
        column_type, col = types[column], quote_ident(column)
        if not column_type.nullable:
            checks.append((index, "null", f"{col} IS NULL"))
        for problem, condition in column_type.checks(col):
            checks.append((index, problem, f"{col} IS NOT NULL AND ({condition})"))
    if checks:
        found = cur.execute(
            "SELECT "
            + ", ".join(f"coalesce(bool_or({condition}), false)" for _, _, condition in checks)
            + f" FROM {stage}"
        ).fetchone()
        for (index, problem, condition), failed in zip(checks, found, strict=True):
            if failed:
                column_type = types[file_columns[index]]
                (value,) = cur.execute(
                    f"SELECT {quote_ident(file_columns[index])} FROM {stage} WHERE {condition} LIMIT 1"
                ).fetchone()
                where = located.find(index, value) if column_type.needs_position(problem) else None
                raise column_type.load_error(problem, value, where)
    casts = ", ".join(f"{types[c].cast_sql(quote_ident(c))} AS {quote_ident(c)}" for c in file_columns)
    return f"SELECT {casts} FROM {stage}", {}


def _crlf_records_to_lf(source: Path, target: Path, enclosure: str) -> None:
    """CRLF record ends (outside quotes) -> LF; every other byte as it was (quoting, CRLF inside quoted values)."""
    quote = enclosure.encode()
    inside = pending_cr = False
    with open(source, "rb") as src, open(target, "wb") as dst:
        while chunk := src.read(_COPY_CHUNK):
            parts = chunk.split(quote)
            out = bytearray()
            for i, part in enumerate(parts):
                if i:
                    if pending_cr:
                        out += b"\r"
                        pending_cr = False
                    out += quote
                    inside = not inside
                if inside:
                    out += part
                    continue
                if pending_cr:
                    part, pending_cr = b"\r" + part, False
                part = part.replace(b"\r\n", b"\n")
                if i == len(parts) - 1 and part.endswith(b"\r"):
                    part, pending_cr = part[:-1], True
                out += part
            dst.write(out)
        if pending_cr:
            dst.write(b"\r")


# -- slicing ----------------------------------------------------------------------------------------------


def _record_ranges(path: Path, slice_bytes: int) -> list[tuple[int, int]]:
    """Byte ranges of about slice_bytes that end on record boundaries, in one sequential pass.

    Every field is quoted and quotes are doubled, so a newline ends a record exactly when the number of
    quote characters before it is even.
    """
    size = path.stat().st_size
    bounds = [0]
    target = slice_bytes
    pos = 0  # file offset of the current chunk
    odd = False  # quote parity before the current chunk
    with open(path, "rb") as fh:
        while target < size:
            chunk = fh.read(_COPY_CHUNK)
            if not chunk:
                break
            scanned, parity = 0, odd
            while True:
                offset = max(target - pos, scanned)
                if offset >= len(chunk):
                    break
                newline = chunk.find(b"\n", offset)
                if newline < 0:
                    break
                parity ^= bool(chunk.count(b'"', scanned, newline) & 1)
                scanned = newline + 1
                if not parity:
                    boundary = pos + scanned
                    if boundary < size:
                        bounds.append(boundary)
                    target = boundary + slice_bytes
            odd ^= bool(chunk.count(b'"') & 1)
            pos += len(chunk)
    return list(zip(bounds, bounds[1:] + [size]))


def _write_range(source: Path, target: Path, bounds: tuple[int, int], compress: bool) -> None:
    start, end = bounds
    with (
        open(source, "rb") as src,
        _gzip.open(target, "wb", compresslevel=1) if compress else open(target, "wb") as dst,
    ):
        src.seek(start)
        left = end - start
        while left > 0:
            chunk = src.read(min(_COPY_CHUNK, left))
            if not chunk:
                break
            dst.write(chunk)
            left -= len(chunk)

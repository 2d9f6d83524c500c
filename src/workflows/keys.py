"""Key-only exports and a streaming key diff (DuckDB) between two tables.

- ``export_keys``: ``export-async`` of the key columns only (gzip, sliced, header-less) downloaded into a folder;
  ``export_key_pair`` runs two of them at the same time (the source's and the destination's).
- ``KeyDiff``: a DuckDB database in the work folder with a memory limit and a spill directory. It reads the slices
  as they are (gzip CSV, every value quoted) and keeps the keys of one side that the other lacks in an on-disk
  table, so neither side is ever held in Python or in memory as a whole; results are read in ``fetchmany``
  batches.

CSV reading (``read_csv``): no header, every column VARCHAR under a positional name (``k0``, ``k1`` ...), quote and
escape ``"``, no type sniffing. ``allow_quoted_nulls=false`` keeps a quoted empty value ``""`` an empty string,
while an unquoted empty field (how a typed table's unload may write NULL, addendum 1e) becomes NULL, so the two
stay distinct; NULL keys compare equal to each other in the set operations (``EXCEPT`` is NOT DISTINCT).
"""

from __future__ import annotations

import csv
import gzip
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from workflows.files import is_gzip
from workflows.progress import Progress

if TYPE_CHECKING:
    import duckdb

    from storage_api import StorageClient

logger = logging.getLogger(__name__)

# DuckDB's own memory (buffer pool: hash tables, sort runs, CSV buffers) beyond which it spills to disk. The
# process adds ~65 MB for the DuckDB library and connection; BENCHMARKS figures come from benchmarks/deletes.py.
DEFAULT_MEMORY_LIMIT = "64MB"
DEFAULT_THREADS = 2
MAX_MEMORY_LIMIT = "1GB"
FETCH_BATCH = 10_000
# CSV buffers are part of the memory budget: a key value may be up to 1 MiB (the default is 2 MiB lines in 32 MiB
# buffers per file, which alone exceeds a small limit)
_MAX_LINE_SIZE = 1 * 2**20
_BUFFER_SIZE = 2 * _MAX_LINE_SIZE


@dataclass(frozen=True)
class KeySlices:
    """A key-only export of a table, downloaded: header-less CSV slices (a non-sliced file has a header)."""

    table_id: str
    columns: tuple[str, ...]
    paths: tuple[Path, ...]
    header: bool = False
    seconds: float = 0.0  # export job + download
    bytes: int = 0


def export_keys(
    client: StorageClient,
    table_id: str,
    key_columns: Sequence[str],
    folder: Path,
    *,
    where_filters: Sequence[Mapping[str, Any]] = (),
) -> KeySlices:
    """Export only ``key_columns`` of ``table_id`` (optionally filtered) and download the slices into ``folder``.

    The folder is the caller's (a temporary folder in the work dir); the slices stay gzipped."""
    if not key_columns:
        raise ValueError(f"No key columns to export for table {table_id}.")
    started = time.monotonic()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    result = client.tables.export(
        table_id, columns=list(key_columns), where_filters=[dict(f) for f in where_filters], gzip=True
    )
    file = client.files.detail(result.file_id)
    progress = Progress(table_id, "downloaded keys")
    paths = []
    for path in (Path(p) for p in client.transfer.download(file, folder, progress)):
        if path.suffix != ".gz" and path.stat().st_size and is_gzip(path):  # DuckDB tells gzip by the suffix
            path = path.rename(path.with_name(path.name + ".gz"))
        paths.append(path)
    return KeySlices(
        table_id=table_id,
        columns=tuple(key_columns),
        paths=tuple(paths),
        header=not bool(file.get("isSliced", True)),
        seconds=time.monotonic() - started,
        bytes=progress.bytes,
    )


def export_key_pair(
    left: tuple[StorageClient, str, Sequence[Mapping[str, Any]]],
    right: tuple[StorageClient, str, Sequence[Mapping[str, Any]]],
    key_columns: Sequence[str],
    folder: Path,
) -> tuple[KeySlices, KeySlices]:
    """Both key exports at the same time (two threads): ``(client, table_id, where_filters)`` each, into
    ``folder/left`` and ``folder/right``. The storage jobs run in parallel, so the wait is the longer one."""
    with ThreadPoolExecutor(2, thread_name_prefix="key-export") as pool:
        futures = [
            pool.submit(export_keys, client, table_id, key_columns, Path(folder) / side, where_filters=filters)
            for side, (client, table_id, filters) in (("left", left), ("right", right))
        ]
        try:
            return futures[0].result(), futures[1].result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


_DIFF_SLOTS = threading.BoundedSemaphore(1)
_held = threading.local()  # slots this thread holds: a nested KeyDiff in the same thread does not wait for itself


def _take_slot() -> None:
    held = getattr(_held, "count", 0)
    if not held:
        _DIFF_SLOTS.acquire()
    _held.count = held + 1


def _give_slot() -> None:
    _held.count -= 1
    if not _held.count:
        _DIFF_SLOTS.release()


def read_csv_rows(path: Path) -> Iterator[tuple[str, ...]]:
    """The records of a header-less (gzip) CSV written by ``KeyDiff.write_csv``, streamed."""
    opener = gzip.open if is_gzip(path) else open
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        for record in csv.reader(fh):
            yield tuple(record)


def _megabytes(setting: str) -> int:
    """A DuckDB memory setting ("64MB", "61.0 MiB", "1GB", "1.8 GiB") in MiB (MB taken as MiB, rounded)."""
    number = "".join(c for c in setting if c.isdigit() or c == ".")
    unit = setting[len(number) :].strip().upper() if setting.startswith(number) else "MB"
    factor = {"KB": 1 / 1024, "KIB": 1 / 1024, "MB": 1, "MIB": 1, "GB": 1024, "GIB": 1024, "TB": 1024**2}
    return max(1, round(float(number) * factor.get(unit, 1)))


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class KeyDiff:
    """A DuckDB database in ``work_dir`` for diffing key slices; use as a context manager (``close`` removes it).

    Tables it creates hold keys under the positional names ``k0`` .. ``k{n-1}``. One diff runs at a time in the
    process (tables synced concurrently wait for the slot): each uses the whole memory limit and both cores."""

    def __init__(
        self, work_dir: Path, *, memory_limit: str = DEFAULT_MEMORY_LIMIT, threads: int = DEFAULT_THREADS
    ) -> None:
        _take_slot()
        try:
            self._connect(Path(work_dir), memory_limit, threads)
        except BaseException:
            _give_slot()
            raise

    def _connect(self, work_dir: Path, memory_limit: str, threads: int) -> None:
        self.work_dir = Path(tempfile.mkdtemp(prefix="key-diff-", dir=work_dir))
        config = {
            "memory_limit": memory_limit,
            "threads": threads,
            "temp_directory": str(self.work_dir / "spill"),
            "preserve_insertion_order": False,
            "allocator_flush_threshold": "4MB",  # give freed memory back to the OS early
        }
        import duckdb  # here, not at the top: a run that diffs no keys (export, import) does not pay its import

        self.con = duckdb.connect(str(self.work_dir / "keys.duckdb"), config=config)
        self._closed = False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.con.close()
        finally:
            shutil.rmtree(self.work_dir, ignore_errors=True)
            _give_slot()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # reading slices ---------------------------------------------------------------------------------------------
    @staticmethod
    def names(width: int) -> list[str]:
        return [f"k{i}" for i in range(width)]

    def source_sql(self, keys: KeySlices, *, null_as_empty: bool = False) -> str:
        """A SELECT of the slices' rows (``k0`` ..), or of no rows for an export without data. ``null_as_empty``:
        NULL (an unquoted empty field) reads as '' (comparing a typed table with an untyped one, where every NULL
        of the typed table is stored as '')."""
        names = self.names(len(keys.columns))
        if null_as_empty:
            inner = self.source_sql(keys)
            return "SELECT " + ", ".join(f"coalesce({n}, '') AS {n}" for n in names) + f" FROM ({inner})"
        paths = [p for p in keys.paths if p.stat().st_size]
        if not paths:
            return "SELECT " + ", ".join(f"NULL::VARCHAR AS {n}" for n in names) + " WHERE false"
        columns = "{" + ", ".join(f"{_literal(n)}: 'VARCHAR'" for n in names) + "}"
        files = "[" + ", ".join(_literal(str(p)) for p in paths) + "]"
        options = (
            f"header={str(keys.header).lower()}, columns={columns}, delim=',', quote='\"', escape='\"', "
            f"allow_quoted_nulls=false, auto_detect=false, max_line_size={_MAX_LINE_SIZE}, "
            f"buffer_size={_BUFFER_SIZE}"
        )
        return f"SELECT {', '.join(names)} FROM read_csv({files}, {options})"

    def count(self, keys: KeySlices) -> int:
        """Rows of a key export (one pass over its slices)."""
        return self.con.execute(f"SELECT count(*) FROM ({self.source_sql(keys)})").fetchone()[0]

    # diffs ------------------------------------------------------------------------------------------------------
    def difference(
        self, name: str, left: KeySlices, right: KeySlices, *, multiset: bool = False, null_as_empty: bool = False
    ) -> int:
        """Create table ``name`` with the keys of ``left`` that ``right`` lacks; returns how many.

        ``multiset=False``: distinct keys. Planned as an anti join of the left keys against the 64-bit hashes of
        the right keys (DuckDB ``hash`` of all key columns; NULL and '' hash differently), then a DISTINCT of
        the (small) result: the hash table holds 8 bytes a key instead of the strings, which spills less and
        costs ~20 % less CPU than ``EXCEPT`` at 10M keys a side (benchmarks/deletes.py). A hash collision can
        only hide a left key (a missed delete, probability ~ right rows / 2^64 a key), never report a key that
        the right side has: a key present on the right has its hash there. ``multiset=True``: ``EXCEPT ALL``, a
        key twice in ``left`` and once in ``right`` is kept once (tables without a primary key, keyed by all
        their columns). ``null_as_empty``: see ``source_sql``."""
        if len(left.columns) != len(right.columns):
            raise ValueError("Both sides of a key diff need the same number of key columns.")
        names = ", ".join(self.names(len(left.columns)))
        lhs, rhs = (self.source_sql(k, null_as_empty=null_as_empty) for k in (left, right))
        if multiset:
            query = f"({lhs}) EXCEPT ALL ({rhs})"
        else:
            query = (
                f"SELECT DISTINCT * FROM (SELECT l.* FROM ({lhs}) l "
                f"ANTI JOIN (SELECT hash({names}) AS h FROM ({rhs})) r ON hash({names}) = r.h)"
            )
        self.execute(f"CREATE OR REPLACE TABLE {quote_identifier(name)} AS {query}")
        return self.rows(name)

    def rows(self, name: str) -> int:
        return self.con.execute(f"SELECT count(*) FROM {quote_identifier(name)}").fetchone()[0]

    def write_csv(self, sql: str, path: Path) -> Path:
        """The rows of a query as a header-less gzip CSV (every value quoted, NULL as an empty unquoted field),
        written by DuckDB (sorting out of core); read it back with ``read_csv_rows``."""
        self.execute(
            f"COPY ({sql}) TO {_literal(str(path))} (FORMAT csv, HEADER false, QUOTE '\"', ESCAPE '\"', "
            f"FORCE_QUOTE *, COMPRESSION gzip)"
        )
        return path

    def execute(self, sql: str) -> duckdb.DuckDBPyConnection:
        """Run a statement; when DuckDB runs out of its memory limit (it spills most operators, but some buffers
        it must keep), double the limit, up to ``MAX_MEMORY_LIMIT``, and run it again."""
        import duckdb

        while True:
            try:
                return self.con.execute(sql)
            except duckdb.OutOfMemoryException:
                current = self.con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
                limit = 2 * _megabytes(current)
                if limit > _megabytes(MAX_MEMORY_LIMIT):
                    raise
                logger.warning(
                    "The key diff ran out of its %s memory limit; running it again with %d MiB.", current, limit
                )
                self.con.execute(f"SET memory_limit = '{limit}MiB'")

    def fetch(self, sql: str, params: Sequence[Any] = (), *, batch: int = FETCH_BATCH) -> Iterator[tuple]:
        """Rows of a query, read ``batch`` at a time (DuckDB streams the result; ORDER BY spills to disk)."""
        cursor = self.con.cursor()
        try:
            cursor.execute(sql, list(params))
            while rows := cursor.fetchmany(batch):
                yield from rows
        finally:
            cursor.close()

    def sample(self, name: str, limit: int = 10) -> list[tuple]:
        """Up to ``limit`` keys of table ``name`` (sorted, so a report is stable)."""
        width = self._width(name)
        order = ", ".join(self.names(width))
        return self.con.execute(
            f"SELECT * FROM {quote_identifier(name)} ORDER BY {order} LIMIT {int(limit)}"
        ).fetchall()

    def _width(self, name: str) -> int:
        return len(self.con.execute(f"SELECT * FROM {quote_identifier(name)} LIMIT 0").description)

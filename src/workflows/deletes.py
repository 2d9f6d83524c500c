"""Propagating row deletes: destination rows whose key is not in the source selection are deleted.

``propagate_deletes`` exports the key columns of the source selection (with its whereFilters: a row that stops
matching a filter is a delete of the selection) and of the whole destination table at the same time, diffs them
with DuckDB (``destination EXCEPT source``, keys.py) and deletes the difference with ``DELETE tables/{id}/rows``
jobs.

A filter on several key columns is a cross product (addendum section 2): ``a IN (1, 2) AND b IN (x, y)`` also
deletes ``(1, y)`` and ``(2, x)``. So composite keys are deleted per group: every key column but one (the *free*
column) is filtered ``eq`` one value, the free column carries an IN list of at most ``chunk_size`` values. Every
row such a filter matches has a key of the difference, so nothing else is deleted. The free column is the one
that needs the fewest jobs (then the fewest groups), counted in DuckDB; DuckDB sorts the keys by group (out of
core) into a gzip CSV in the work folder, which the delete jobs then stream with DuckDB closed.

A key with an empty unquoted field (NULL in a typed table) cannot be written as a filter value, so such keys are
counted, logged and not deleted.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workflows.context import storage_errors
from workflows.keys import DEFAULT_MEMORY_LIMIT, DEFAULT_THREADS, KeyDiff, export_key_pair, read_csv_rows

if TYPE_CHECKING:
    from storage_api import StorageClient

logger = logging.getLogger(__name__)

CHUNK_SIZE = 10_000  # values per filter (the API documents no limit; PHP/OM send lists of this order)
PROGRESS_LOG_INTERVAL = 30.0
_GONE = "gone"


@dataclass(frozen=True)
class DeleteOutcome:
    """``found``: destination keys not in the source selection; ``deleted``: rows the delete jobs reported
    (``results.deletedRows``; 0 when ``apply`` is False)."""

    found: int
    deleted: int
    jobs: int = 0
    skipped_null_keys: int = 0
    free_column: str | None = None
    export_seconds: float = 0.0  # the two key exports (in parallel) including downloads
    diff_seconds: float = 0.0  # the DuckDB diff and the choice of the free column
    seconds: float = 0.0  # everything (exports, diff, delete jobs)


@dataclass(frozen=True)
class DeletePlan:
    free: int  # index of the key column that carries the IN lists
    groups: int  # distinct values of the other key columns
    jobs: int  # delete jobs: sum over groups of ceil(group size / chunk size)


def propagate_deletes(
    source: StorageClient,
    destination: StorageClient,
    *,
    source_id: str,
    destination_id: str,
    key_columns: Sequence[str],
    where_filters: Sequence[Mapping[str, Any]],
    apply: bool,
    work_dir: Path,
    chunk_size: int = CHUNK_SIZE,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    threads: int = DEFAULT_THREADS,
) -> DeleteOutcome:
    """Delete from ``destination_id`` the rows whose ``key_columns`` are not in the source selection.

    ``where_filters``: the selection's filters in API form (``WhereFilter.to_api()``); the destination is read
    whole. ``apply=False`` (``deletes: "keep"``) only counts and logs what would be deleted. The destination
    table must exist and have the key columns. Client failures become ``UserException`` naming the table.

    The selection must be a set of rows to mirror: not ``limit`` (every row past the limit would be deleted);
    ``changedSince`` does not apply (the source keys are always exported whole). ``work_dir`` gets a temporary
    folder (both key exports, the DuckDB database and its spill files) that is removed at the end."""
    if not key_columns:
        raise ValueError(f"Table {source_id} has no primary key: deletes cannot be propagated without one.")
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="deletes-", dir=work_dir))
    try:
        with storage_errors("exporting the keys of", f"{source_id} / {destination_id}"):
            dest_keys, source_keys = export_key_pair(
                (destination, destination_id, ()), (source, source_id, where_filters), key_columns, work
            )
        export_seconds = time.monotonic() - started
        with KeyDiff(work, memory_limit=memory_limit, threads=threads) as diff:
            found = diff.difference(_GONE, dest_keys, source_keys)
            shutil.rmtree(work / "left", ignore_errors=True)  # the slices are not needed any more
            shutil.rmtree(work / "right", ignore_errors=True)
            nulls = _count_null_keys(diff, _GONE, len(key_columns))
            if not apply:
                logger.info(
                    "Table %s: %d row(s) of %s are not in the source selection; kept them (deletes: keep).",
                    source_id,
                    found,
                    destination_id,
                )
                diff_seconds = time.monotonic() - started - export_seconds
                return DeleteOutcome(
                    found,
                    0,
                    skipped_null_keys=nulls,
                    export_seconds=export_seconds,
                    diff_seconds=diff_seconds,
                    seconds=time.monotonic() - started,
                )
            plan = choose_free_column(diff, _GONE, len(key_columns), chunk_size)
            ordered = diff.write_csv(ordered_keys_sql(_GONE, len(key_columns), plan.free), work / "gone.csv.gz")
        diff_seconds = time.monotonic() - started - export_seconds
        # DuckDB is closed (its memory and the diff slot freed) while the delete jobs run
        rows = read_csv_rows(ordered)
        deleted, jobs = _apply(destination, destination_id, rows, key_columns, plan, chunk_size, found - nulls)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds = time.monotonic() - started
    free = key_columns[plan.free]
    how = f"{jobs} job(s)" + (f", IN lists on {free} in {plan.groups} group(s)" if len(key_columns) > 1 else "")
    logger.info(
        "Table %s: %d row(s) of %s are not in the source selection; deleted %d row(s) in %s (%.1f s).",
        source_id,
        found,
        destination_id,
        deleted,
        how,
        seconds,
    )
    if nulls:
        logger.warning(
            "Table %s: %d key(s) with an empty (NULL) value cannot be written as a delete filter; those rows stay in "
            "%s.",
            source_id,
            nulls,
            destination_id,
        )
    return DeleteOutcome(found, deleted, jobs, nulls, free, export_seconds, diff_seconds, seconds)


def _apply(
    client: StorageClient,
    table_id: str,
    rows: Iterable[tuple],
    key_columns: Sequence[str],
    plan: DeletePlan,
    chunk_size: int,
    total: int,
) -> tuple[int, int]:
    deleted = jobs = done = 0
    last_log = time.monotonic()
    for filters, size in delete_filters(rows, key_columns, plan.free, chunk_size):
        with storage_errors("deleting rows of", table_id):
            job = client.tables.delete_rows(table_id, filters)
        deleted += int((job.get("results") or {}).get("deletedRows") or 0)
        jobs += 1
        done += size
        if time.monotonic() - last_log >= PROGRESS_LOG_INTERVAL:
            last_log = time.monotonic()
            logger.info("Table %s: deleted %d of %d key(s) so far (%d job(s)).", table_id, done, total, jobs)
    return deleted, jobs


# planning the filters -------------------------------------------------------------------------------------------
def _not_null(width: int) -> str:
    return " AND ".join(f"k{i} IS NOT NULL" for i in range(width))


def _count_null_keys(diff: KeyDiff, table: str, width: int) -> int:
    return diff.con.execute(f"SELECT count(*) FROM {table} WHERE NOT ({_not_null(width)})").fetchone()[0]


def choose_free_column(diff: KeyDiff, table: str, width: int, chunk_size: int) -> DeletePlan:
    """The key column whose IN lists need the fewest delete jobs (then groups; then the first such column)."""
    if width == 1:
        jobs = diff.con.execute(f"SELECT ceil(count(*) / {int(chunk_size)}) FROM {table} WHERE k0 IS NOT NULL")
        return DeletePlan(0, 1, int(jobs.fetchone()[0] or 0))
    best: DeletePlan | None = None
    for free in range(width):
        others = ", ".join(f"k{i}" for i in range(width) if i != free)
        groups, jobs = diff.con.execute(
            f"SELECT count(*), coalesce(sum(ceil(n / {int(chunk_size)})), 0) FROM "
            f"(SELECT count(*) AS n FROM {table} WHERE {_not_null(width)} GROUP BY {others})"
        ).fetchone()
        plan = DeletePlan(free, int(groups), int(jobs))
        if best is None or (plan.jobs, plan.groups) < (best.jobs, best.groups):
            best = plan
    return best


def ordered_keys_sql(table: str, width: int, free: int) -> str:
    """Keys without NULLs, the other columns first then the free one, sorted so that a group is contiguous."""
    order = [f"k{i}" for i in range(width) if i != free] + [f"k{free}"]
    return f"SELECT {', '.join(order)} FROM {table} WHERE {_not_null(width)} ORDER BY {', '.join(order)}"


def delete_filters(
    rows: Iterable[tuple], key_columns: Sequence[str], free: int, chunk_size: int = CHUNK_SIZE
) -> Iterator[tuple[list[dict], int]]:
    """``(whereFilters, keys covered)`` for rows ``(other columns ..., free column)`` sorted by the other columns:
    per group of equal other columns, ``eq`` filters on them and IN lists of at most ``chunk_size`` free values.
    The filters are in key-column order."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    group: tuple | None = None
    values: list[str] = []

    def filters() -> tuple[list[dict], int]:
        fixed = iter(group)
        out = [
            {"column": column, "operator": "eq", "values": list(values) if i == free else [next(fixed)]}
            for i, column in enumerate(key_columns)
        ]
        return out, len(values)

    for row in rows:
        prefix, value = tuple(row[:-1]), row[-1]
        if prefix != group or len(values) >= chunk_size:
            if values:
                yield filters()
            group, values = prefix, []
        values.append(value)
    if values:
        yield filters()

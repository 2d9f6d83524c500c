"""Shared parts of the workflows: run context, table planning, error mapping, progress logging, helpers that
create buckets/tables and copy metadata.

The planning functions use only a narrow slice of the Storage client (``tables.list_in_bucket`` and
``tables.detail``), so tests can pass a small fake object.
"""

from __future__ import annotations

import csv
import gzip
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from keboola.component.exceptions import UserException

from configuration import (
    BUCKET_ID_RE,
    TABLE_ID_RE,
    Configuration,
    TableSettings,
    bucket_of,
    redact,
    table_name,
    with_source,
)
from state import StateStore
from storage_api.errors import StorageApiError

logger = logging.getLogger(__name__)

DEFAULT_METADATA_PROVIDER = "keboola.storage-sync"
PROGRESS_LOG_INTERVAL = 30.0  # seconds between "still transferring" lines
_COPY_BUFFER = 1024 * 1024


# ---------------------------------------------------------------------------------------------------------------
# run context


@dataclass
class RunContext:
    """Everything a workflow needs; built by the component, clients created lazily on first use."""

    config: Configuration
    data_dir: Path
    state: StateStore
    source_client: Callable[[], Any] = field(repr=False)
    destination_client: Callable[[], Any] = field(repr=False)
    now: datetime = field(default_factory=lambda: datetime.now().astimezone())
    metadata_provider: str = DEFAULT_METADATA_PROVIDER

    @property
    def tables_in(self) -> Path:
        return self.data_dir / "in" / "tables"

    @property
    def tables_out(self) -> Path:
        return self.data_dir / "out" / "tables"


# ---------------------------------------------------------------------------------------------------------------
# errors


def describe_failure(exc: BaseException, action: str, table_id: str | None = None) -> str:
    """One user-facing sentence for a client failure, naming the table (the client names the job)."""
    detail = redact(str(exc)).strip() or type(exc).__name__
    what = f"{action} table {table_id}" if table_id else action
    text = f"{what[:1].upper()}{what[1:]} failed: {detail}"
    return text if text.endswith((".", "!", "?")) else text + "."


@contextmanager
def storage_errors(action: str, table_id: str | None = None) -> Iterator[None]:
    """Turn client failures (bad token, permissions, failed/timed-out jobs, unreachable URL) into UserException."""
    try:
        yield
    except UserException:
        raise
    except StorageApiError as exc:
        raise UserException(describe_failure(exc, action, table_id)) from exc


# ---------------------------------------------------------------------------------------------------------------
# planning


@dataclass(frozen=True)
class PlannedTable:
    """One source table to process, with everything resolved and validated."""

    source_id: str
    destination_id: str
    settings: TableSettings
    detail: Mapping[str, Any] = field(repr=False)
    columns: tuple[str, ...]  # exported columns, in order
    primary_key: tuple[str, ...]  # effective primary key (configured, else the source table's)
    name: str  # output name for export (unique within the run)

    @property
    def source_columns(self) -> tuple[str, ...]:
        return tuple(self.detail.get("columns") or ())

    @property
    def source_primary_key(self) -> tuple[str, ...]:
        return tuple(self.detail.get("primaryKey") or ())

    @property
    def filtered(self) -> bool:
        s = self.settings
        return bool(s.where_filters or s.limit or s.changed_since or s.columns)


def plan_tables(
    client: Any,
    settings: Sequence[TableSettings],
    *,
    mode: str,
    default_bucket: str | None = None,
) -> list[PlannedTable]:
    """Resolve bucket selections to tables, fetch every table's detail once and validate the settings."""
    expanded = _expand(client, settings)
    planned: list[PlannedTable] = []
    for item in expanded:
        with storage_errors("reading", item.source):
            detail = client.tables.detail(item.source)
        if not detail:
            raise UserException(
                f"Table {item.source} was not found in the source project; check the table id and that the token "
                f"can read bucket {bucket_of(item.source)}."
            )
        planned.append(_plan_one(item, detail, mode=mode, default_bucket=default_bucket))
    _check_unique_destinations(planned)
    return _unique_names(planned)


def _expand(client: Any, settings: Sequence[TableSettings]) -> list[TableSettings]:
    explicit: dict[str, TableSettings] = {}
    for item in settings:
        if item.source_is_bucket:
            continue
        if item.source in explicit:
            raise UserException(f"Table {item.source} is selected twice in 'tables'; keep one entry for it.")
        explicit[item.source] = item

    result: list[TableSettings] = []
    seen: set[str] = set()
    seen_buckets: set[str] = set()
    for item in settings:
        if not item.source_is_bucket:
            if item.source not in seen:
                seen.add(item.source)
                result.append(item)
            continue
        if item.source in seen_buckets:
            raise UserException(f"Bucket {item.source} is selected twice in 'tables'; keep one entry for it.")
        seen_buckets.add(item.source)
        with storage_errors("listing the tables of bucket", item.source):
            tables = client.tables.list_in_bucket(item.source)
        ids = sorted(t["id"] for t in tables or () if t.get("id"))
        if not ids:
            logger.warning("Bucket %s has no tables; nothing to do for it.", item.source)
        for table_id in ids:
            if table_id in seen:
                continue  # an explicit entry (with its own settings) wins over the bucket selection
            seen.add(table_id)
            result.append(explicit.get(table_id) or with_source(item, table_id))
    if not result:
        raise UserException("The selected buckets have no tables; select a bucket with tables or a table id.")
    # explicit tables listed after a bucket that contains them were added at the bucket's position; keep order
    return result


def destination_id(item: TableSettings, source_id: str, *, default_bucket: str | None = None) -> str:
    """Where a source table goes: the item's destination (table id, or bucket id keeping the name), else
    ``default_bucket`` + the table name, else the same id as the source."""
    name = table_name(source_id)
    if item.destination:
        if TABLE_ID_RE.match(item.destination):
            return item.destination
        if BUCKET_ID_RE.match(item.destination):
            return f"{item.destination}.{name}"
    if default_bucket:
        return f"{default_bucket}.{name}"
    return source_id


def _plan_one(item: TableSettings, detail: Mapping[str, Any], *, mode: str, default_bucket: str | None) -> PlannedTable:
    source_id = item.source
    table_columns = list(detail.get("columns") or [])
    known = set(table_columns)

    for column in item.columns or ():
        if column not in known:
            raise UserException(
                f"Column {column} is not a column of table {source_id} (columns: {', '.join(table_columns)}); "
                f"fix 'columns'."
            )
    for where_filter in item.where_filters:
        if where_filter.column not in known:
            raise UserException(
                f"The whereFilters column {where_filter.column} is not a column of table {source_id} "
                f"(columns: {', '.join(table_columns)}); fix the filter."
            )
    for column in item.primary_key or ():
        if column not in known:
            raise UserException(
                f"The primary key column {column} is not a column of table {source_id} "
                f"(columns: {', '.join(table_columns)}); fix 'primaryKey'."
            )

    columns = tuple(item.columns or table_columns)
    source_pk = tuple(detail.get("primaryKey") or ())
    if item.primary_key is not None:
        primary_key = tuple(item.primary_key)
        missing = [c for c in primary_key if c not in columns]
        if missing:
            raise UserException(
                f"The primary key column {missing[0]} of table {source_id} is not among the selected 'columns'; "
                f"add it to 'columns' or change 'primaryKey'."
            )
    else:
        primary_key = source_pk
        missing = [c for c in primary_key if c not in columns]
        if missing and mode == "sync":
            raise UserException(
                f"The selected 'columns' of table {source_id} must include its primary key "
                f"[{', '.join(primary_key)}] so that changes can be synced; add the missing column {missing[0]}."
            )
        if missing:
            logger.warning(
                "Table %s: the primary key [%s] is not among the exported columns, so the output has no primary key.",
                source_id,
                ", ".join(primary_key),
            )
            primary_key = ()

    if mode == "export":
        dest = destination_id(item, source_id)
    else:
        dest = destination_id(item, source_id, default_bucket=default_bucket)
    return PlannedTable(
        source_id=source_id,
        destination_id=dest,
        settings=item,
        detail=detail,
        columns=columns,
        primary_key=primary_key,
        name=table_name(source_id),
    )


def _check_unique_destinations(planned: Sequence[PlannedTable]) -> None:
    seen: dict[str, str] = {}
    for table in planned:
        other = seen.get(table.destination_id)
        if other:
            raise UserException(
                f"Tables {other} and {table.source_id} would both be written to {table.destination_id}; "
                f"give one of them another destination."
            )
        seen[table.destination_id] = table.source_id


def _unique_names(planned: Sequence[PlannedTable]) -> list[PlannedTable]:
    """Output names are table names; tables whose names collide are named ``<stage>_<bucket>_<table>``."""
    counts: dict[str, int] = {}
    for table in planned:
        counts[table.name] = counts.get(table.name, 0) + 1
    result = []
    for table in planned:
        if counts[table.name] > 1:
            qualified = table.source_id.replace(".", "_")
            table = replace(table, name=qualified)
        result.append(table)
    return result


# ---------------------------------------------------------------------------------------------------------------
# progress


def _mb(num_bytes: int) -> float:
    return num_bytes / 2**20


class Progress:
    """Byte counter passed to the transfer manager (thread-safe); logs a line every ``interval`` seconds."""

    def __init__(self, table_id: str, action: str, interval: float = PROGRESS_LOG_INTERVAL):
        self.table_id = table_id
        self.action = action
        self.interval = interval
        self.started = time.monotonic()
        self.bytes = 0
        self._last_log = self.started
        self._lock = threading.Lock()

    def __call__(self, num_bytes: int) -> None:
        with self._lock:
            self.bytes += int(num_bytes)
            now = time.monotonic()
            if now - self._last_log < self.interval:
                return
            self._last_log = now
            done = self.bytes
        elapsed = now - self.started
        logger.info(
            "Table %s: %s %.1f MB so far (%.1f MB/s).", self.table_id, self.action, _mb(done), _mb(done) / elapsed
        )

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def summary(self, verb: str, rows: int | None = None, num_bytes: int | None = None) -> str:
        elapsed = max(self.elapsed, 1e-6)
        size = self.bytes if num_bytes is None else num_bytes
        rows_text = f"{rows} rows" if rows is not None else "rows n/a"
        return (
            f"Table {self.table_id}: {verb} {rows_text}, {_mb(size):.2f} MB in {elapsed:.1f} s "
            f"({_mb(size) / elapsed:.2f} MB/s)."
        )


def result_rows(job: Mapping[str, Any] | None) -> int | None:
    """Rows reported by an import job (``results.totalRowsCount``), if any."""
    results = (job or {}).get("results")
    if isinstance(results, Mapping):
        value = results.get("totalRowsCount")
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


# ---------------------------------------------------------------------------------------------------------------
# destination helpers: buckets, tables, metadata


class BucketEnsurer:
    """Make sure destination buckets exist (create them when the token may); remembers what it checked."""

    def __init__(self, client: Any):
        self.client = client
        self._known: set[str] = set()

    def ensure(self, bucket_id: str, *, for_table: str) -> None:
        if bucket_id in self._known:
            return
        with storage_errors("checking bucket", bucket_id):
            exists = self.client.buckets.detail(bucket_id) is not None
        if not exists:
            stage, name = bucket_id.split(".", 1)
            logger.info("Creating bucket %s in the destination project.", bucket_id)
            try:
                created = self.client.buckets.create(name.removeprefix("c-"), stage)
            except StorageApiError as exc:
                if exc.status in (401, 403):
                    raise UserException(
                        f"Bucket {bucket_id} (for table {for_table}) does not exist in the destination project and "
                        f"the destination token cannot create it; create the bucket or use a token that may manage "
                        f"buckets."
                    ) from exc
                raise UserException(describe_failure(exc, "creating bucket", bucket_id)) from exc
            created_id = (created or {}).get("id")
            if created_id and created_id != bucket_id:
                raise UserException(
                    f"Bucket {bucket_id} was created as {created_id} in the destination project; use {created_id} "
                    f"as the destination bucket."
                )
        self._known.add(bucket_id)


def pk_text(primary_key: Sequence[str]) -> str:
    return f"with primary key [{', '.join(primary_key)}]" if primary_key else "without a primary key"


def write_header_csv(path: Path, columns: Sequence[str]) -> Path:
    """A gzipped CSV holding only the header row (to create a table whose data is headerless slices)."""
    with gzip.open(path, "wt", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator="\n", quoting=csv.QUOTE_ALL).writerow(list(columns))
    return path


def create_table_from_header(
    client: Any, table_id: str, columns: Sequence[str], primary_key: Sequence[str], *, tags: Sequence[str] = ()
) -> dict:
    """Create an empty table with these columns and primary key (the API cannot create a table from headerless
    sliced data: upload a header-only CSV, create from it, then load the data with ``columns``)."""
    name = table_name(table_id)
    tmp_dir = Path(tempfile.mkdtemp(prefix="storage-sync-header-"))
    try:
        header = write_header_csv(tmp_dir / f"{name}.header.csv.gz", columns)
        prepared = client.files.prepare(f"{name}.header.csv.gz", size_bytes=header.stat().st_size, tags=tags)
        client.transfer.upload(prepared, header)
        return client.tables.create(bucket_of(table_id), name, prepared["id"], list(primary_key))
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def metadata_pairs(metadata: Any) -> list[dict]:
    """``[{key, value}]`` from Storage metadata (list of ``{key, value, provider, ...}``) or a ``{key: value}``
    dict; system entries (``provider: system``) are skipped, later keys win."""
    pairs: dict[str, str] = {}
    if isinstance(metadata, Mapping):
        items = [{"key": k, "value": v} for k, v in metadata.items()]
    elif isinstance(metadata, list):
        items = metadata
    else:
        items = []
    for entry in items:
        if not isinstance(entry, Mapping) or entry.get("provider") == "system":
            continue
        key, value = entry.get("key"), entry.get("value")
        if isinstance(key, str) and key and value is not None:
            pairs[key] = str(value)
    return [{"key": k, "value": v} for k, v in pairs.items()]


def column_metadata_pairs(column_metadata: Any, columns: Sequence[str] | None = None) -> dict[str, list[dict]]:
    if not isinstance(column_metadata, Mapping):
        return {}
    allowed = set(columns) if columns is not None else None
    out = {}
    for column, metadata in column_metadata.items():
        if allowed is not None and column not in allowed:
            continue
        pairs = metadata_pairs(metadata)
        if pairs:
            out[str(column)] = pairs
    return out


def copy_metadata(
    client: Any, table_id: str, provider: str, metadata: list[dict], column_metadata: dict[str, list[dict]]
) -> None:
    if not metadata and not column_metadata:
        return
    with storage_errors("setting metadata of", table_id):
        client.tables.set_metadata(table_id, provider, metadata, column_metadata)


# ---------------------------------------------------------------------------------------------------------------
# files


def is_gzip(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(2) == b"\x1f\x8b"


def copy_stream(src, dst) -> int:
    """Copy file objects in 1 MB chunks; returns the byte count."""
    total = 0
    while True:
        chunk = src.read(_COPY_BUFFER)
        if not chunk:
            return total
        dst.write(chunk)
        total += len(chunk)


def remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

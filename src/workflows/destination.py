"""The destination step shared by import and sync: bucket -> existing table -> schema and primary key -> create or
load -> metadata.

It runs in two halves around the transfer: ``prepare`` (before any data moves, so a table that cannot be loaded
fails before gigabytes are uploaded) and ``write`` (once the data file is in the destination's file storage).

Primary-key policy (import and sync alike): a key the data comes with — ``primaryKey`` when configured, else the
source table's (sync) or the input manifest's (import) — must equal an existing table's key; a mismatch is one
sentence saying how to proceed, never a silent change of the table or a load that deduplicates by another key.
An input manifest without a key loads into the table's own key. With ``rebuild`` (sync's ``schemaChanges``) the
table is dropped instead and created again from the data.

Columns: columns of the data that the table lacks are added before the load (``POST tables/{id}/columns``, as
Keboola's output mapping does). Columns of the table that the data lacks are dropped when the target follows a
source (sync); an import refuses them (the load would fail). A dropped primary-key column is a key change.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keboola.component.exceptions import UserException

from configuration import bucket_of, table_name
from storage_api.errors import StorageApiError
from workflows.context import describe_failure, storage_errors
from workflows.files import write_header_csv

if TYPE_CHECKING:
    from storage_api import StorageClient

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableTarget:
    """What the destination table must look like for the data about to be loaded into it."""

    table_id: str
    origin: str  # what the data comes from, for messages: "table in.c-a.b", "input table in/tables/a.csv"
    columns: tuple[str, ...]  # columns of the data, in order
    primary_key: tuple[str, ...]
    # whether an existing table must have exactly ``primary_key`` (False: an import without a stated key)
    key_required: bool = True
    follows_source: bool = False  # sync: columns the data lacks are dropped from the table
    rebuild: bool = False  # a changed key drops and recreates the table instead of failing
    metadata: Sequence[Mapping[str, str]] = field(default=(), repr=False)
    column_metadata: Mapping[str, Sequence[Mapping[str, str]]] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class PreparedTable:
    """A target whose bucket exists and whose existing table (``existing``, None when missing) fits the data."""

    target: TableTarget
    existing: Mapping[str, Any] | None = field(repr=False)


@dataclass(frozen=True)
class DataFile:
    """A file in the destination's file storage, ready to be loaded."""

    file_id: Any
    headerless: bool  # sliced or header-less data: loaded with ``columns``
    delimiter: str = ","
    enclosure: str = '"'  # "" for CSV without quoting

    def csv_options(self) -> dict[str, str]:
        """What the create / import request must say about the CSV dialect (nothing for Keboola's default)."""
        options = {}
        if self.delimiter != ",":
            options["delimiter"] = self.delimiter
        if self.enclosure != '"':
            options["enclosure"] = self.enclosure
        return options


@dataclass(frozen=True)
class WriteResult:
    job: Mapping[str, Any] | None  # the load job (None: the table was created from the file in one job)
    table: Mapping[str, Any] = field(repr=False)  # the table's detail after the write

    @property
    def rows_total(self) -> int | None:
        value = self.table.get("rowsCount")
        return value if isinstance(value, int) else None


class Destination:
    """One destination project. Thread-safe: each bucket is checked (and created) once per run."""

    def __init__(self, client: StorageClient, *, metadata_provider: str, tags: Sequence[str]):
        self.client = client
        self.metadata_provider = metadata_provider
        self.tags = tuple(tags)
        self._buckets: dict[str, threading.Lock] = {}
        self._known_buckets: set[str] = set()
        self._lock = threading.Lock()

    # -- before the transfer ----------------------------------------------------------------------------------
    def prepare(self, target: TableTarget) -> PreparedTable:
        self.ensure_bucket(bucket_of(target.table_id), for_table=target.table_id)
        existing = self.read(target.table_id)
        why = self._key_change(target, existing) if existing is not None else None
        if why:
            existing = self._rebuild(target, why)
        if existing is not None:
            existing = self._reconcile_columns(target, existing)
        return PreparedTable(target, existing)

    def read(self, table_id: str) -> dict | None:
        with storage_errors("reading", table_id):
            return self.client.tables.detail(table_id)

    def ensure_bucket(self, bucket_id: str, *, for_table: str) -> None:
        with self._lock:
            if bucket_id in self._known_buckets:
                return
            bucket_lock = self._buckets.setdefault(bucket_id, threading.Lock())
        with bucket_lock:  # tables of one bucket starting together create it once
            if bucket_id not in self._known_buckets:
                self._create_bucket_if_missing(bucket_id, for_table)
                with self._lock:
                    self._known_buckets.add(bucket_id)

    def _create_bucket_if_missing(self, bucket_id: str, for_table: str) -> None:
        with storage_errors("checking bucket", bucket_id):
            if self.client.buckets.detail(bucket_id) is not None:
                return
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

    @staticmethod
    def _key_change(target: TableTarget, existing: Mapping[str, Any]) -> str | None:
        """Why the existing table's key does not fit the data (None: it does)."""
        existing_pk = list(existing.get("primaryKey") or [])
        dropped = [c for c in existing_pk if c not in target.columns]
        if target.follows_source and dropped:
            return f"its primary key column {dropped[0]} is no longer in {target.origin}"
        if target.key_required and sorted(existing_pk) != sorted(target.primary_key):
            return (
                f"it has primary key [{', '.join(existing_pk)}] but {target.origin} comes with "
                f"[{', '.join(target.primary_key)}]"
            )
        return None

    def _rebuild(self, target: TableTarget, why: str) -> None:
        dest = target.table_id
        if not target.rebuild:
            existing_hint = "set primaryKey to the table's key, " if not target.follows_source else ""
            raise UserException(
                f"Table {dest} cannot take the data because {why}; {existing_hint}change the primary key of {dest}, "
                f'drop the table so that it is created again, or set schemaChanges to "rebuild".'
            )
        logger.warning("Table %s: dropping and recreating it because %s (schemaChanges: rebuild).", dest, why)
        with storage_errors("dropping", dest):
            self.client.tables.delete(dest)

    def _reconcile_columns(self, target: TableTarget, existing: dict) -> dict:
        dest = target.table_id
        present = list(existing.get("columns") or [])
        missing = [c for c in target.columns if c not in present]
        extra = [c for c in present if c not in target.columns]
        if extra and not target.follows_source:
            raise UserException(
                f"Table {dest} has column(s) {', '.join(extra)} that {target.origin} lacks, so the load would fail; "
                f"add them to the input table or drop them from {dest}."
            )
        for column in missing:
            logger.info("Table %s: adding column %s (new in %s).", dest, column, target.origin)
            with storage_errors(f"adding column {column} to", dest):
                self.client.tables.add_column(dest, column)
        for column in extra:
            logger.info("Table %s: dropping column %s (no longer in %s).", dest, column, target.origin)
            with storage_errors(f"dropping column {column} of", dest):
                self.client.tables.delete_column(dest, column)
        if not missing and not extra:
            return existing
        return {**existing, "columns": [c for c in present if c not in extra] + missing}

    # -- after the transfer -----------------------------------------------------------------------------------
    def write(
        self,
        prepared: PreparedTable,
        data: DataFile,
        *,
        incremental: bool,
        on_submitted: Callable[[Mapping[str, Any]], None] | None = None,
    ) -> WriteResult:
        """Create the table from the data (when missing) or load the data into it; then read the table.
        ``on_submitted`` receives the job that writes the data, before the wait for it."""
        job = self._create_or_load(prepared, data, incremental=incremental, on_submitted=on_submitted)
        table = self.read(prepared.target.table_id) or {}
        return WriteResult(job, table)

    def _create_or_load(
        self, prepared: PreparedTable, data: DataFile, *, incremental: bool, on_submitted: Callable | None
    ) -> dict | None:
        target = prepared.target
        dest = target.table_id
        columns = list(target.columns)
        with storage_errors("loading", dest):
            if prepared.existing is not None:
                logger.info("Table %s: %s load.", dest, "incremental" if incremental else "full")
                return self.client.tables.load(
                    dest,
                    data.file_id,
                    incremental=incremental,
                    columns=columns if data.headerless else None,
                    on_submitted=on_submitted,
                    **data.csv_options(),
                )
            logger.info("Table %s: creating it %s.", dest, pk_text(target.primary_key))
            if not data.headerless:
                self.client.tables.create(
                    bucket_of(dest),
                    table_name(dest),
                    data.file_id,
                    list(target.primary_key),
                    on_submitted=on_submitted,
                    **data.csv_options(),
                )
                return None
            # the API cannot create a table from headerless data: create it from a header, then load the data
            self._create_empty(dest, columns, target.primary_key)
            return self.client.tables.load(dest, data.file_id, incremental=False, columns=columns, **data.csv_options())

    def _create_empty(self, table_id: str, columns: Sequence[str], primary_key: Sequence[str]) -> dict:
        name = table_name(table_id)
        tmp_dir = Path(tempfile.mkdtemp(prefix="storage-sync-header-"))
        try:
            header = write_header_csv(tmp_dir / f"{name}.header.csv.gz", columns)
            prepared = self.client.files.prepare(
                f"{name}.header.csv.gz", size_bytes=header.stat().st_size, tags=self.tags
            )
            self.client.transfer.upload(prepared, header)
            return self.client.tables.create(bucket_of(table_id), name, prepared["id"], list(primary_key))
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)

    def set_metadata(self, target: TableTarget) -> None:
        metadata = [dict(m) for m in target.metadata]
        column_metadata = {c: [dict(m) for m in pairs] for c, pairs in target.column_metadata.items()}
        if not metadata and not column_metadata:
            return
        with storage_errors("setting metadata of", target.table_id):
            self.client.tables.set_metadata(target.table_id, self.metadata_provider, metadata, column_metadata)


def pk_text(primary_key: Sequence[str]) -> str:
    return f"with primary key [{', '.join(primary_key)}]" if primary_key else "without a primary key"

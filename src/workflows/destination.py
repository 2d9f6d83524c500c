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

Typed tables (``TableTarget.types``: a typed source table, or an input manifest that states types): a missing
table is created with ``tables-definition`` from the types mapped to the destination bucket's backend (types.py;
one log line per mapped column), then loaded. A table that follows a typed source must have its types: a column
of another type (or an untyped table) is one sentence naming the column and both types, or a rebuild with
``rebuild``. Columns added to a typed table carry their definition (``basetype`` STRING when the data has no
types, as output mapping does), nullable when the table has rows or is in BigQuery (Storage cannot add a required
column there). A value that does not fit its type fails the load job: one sentence naming the table, the column
and the job's message. Typed data loads into Snowflake with ``treatValuesAsNull: []`` so that "" stays an empty
string and only an empty unquoted field is NULL (as typed exports write them); data that writes NULL as "" in a
column that is not a string fails that load (which loads nothing) and is loaded once more with Storage's default.
An untyped target is handled exactly as before.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keboola.component.exceptions import UserException

from configuration import bucket_of, table_name
from storage_api.errors import JobFailed, StorageApiError
from workflows import types
from workflows.context import describe_failure, storage_errors
from workflows.files import write_header_csv
from workflows.types import TableTypes

if TYPE_CHECKING:
    from storage_api import StorageClient

TABLE_ALREADY_EXISTS = "storage.buckets.tableAlreadyExists"

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
    # the data's column types (a typed source table, an input manifest stating types); None: untyped data
    types: TableTypes | None = field(default=None, repr=False)
    # the data writes NULL as an empty unquoted field and an empty string as "" (a typed table's export): a typed
    # Snowflake table loads it with treatValuesAsNull [] so that the two stay apart
    exact_nulls: bool = False
    # finds the column (of the given candidates) holding a value in the data (None: an empty field), to name the
    # column of a failed typed load whose message names none (import: the local input)
    find_value: Callable[[str | None, Sequence[str]], str | None] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PreparedTable:
    """A target whose bucket exists and whose existing table (``existing``, None when missing) fits the data."""

    target: TableTarget
    existing: Mapping[str, Any] | None = field(repr=False)
    backend: str | None = None  # the destination bucket's backend (snowflake, bigquery, ...; None: unknown)
    # typed creation: the data's types mapped to ``backend`` and one note per mapped column; None: untyped table
    create_types: TableTypes | None = field(default=None, repr=False)
    notes: tuple[str, ...] = field(default=(), repr=False)

    @property
    def typed(self) -> bool:
        """Whether the table the data goes into is (or will be) typed."""
        if self.existing is not None:
            return types.is_typed(self.existing)
        return self.create_types is not None

    def column_types(self) -> TableTypes | None:
        """The destination's column types (of the existing table, else of the table to be created)."""
        if self.existing is not None:
            return types.from_table_detail(self.existing, types.normalize_backend(self.backend))
        return self.create_types


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
        self._known_buckets: dict[str, str | None] = {}  # bucket id -> its backend
        self._lock = threading.Lock()

    # -- before the transfer ----------------------------------------------------------------------------------
    def prepare(
        self, target: TableTarget, *, before_adding_columns: Callable[[list[str]], None] | None = None
    ) -> PreparedTable:
        """The bucket, and the existing table fitted to the data (key, types, columns). ``before_adding_columns``
        is called with the columns about to be added to an existing table, before it is changed."""
        backend = self.ensure_bucket(bucket_of(target.table_id), for_table=target.table_id)
        create_types, notes = self._creation_types(target, backend)
        existing = self.read(target.table_id)
        if existing is not None and existing.get("isAlias"):  # aliases are read-only: nothing is written
            alias_of = (existing.get("sourceTable") or {}).get("id") or "another table"
            raise UserException(
                f"Table {target.table_id} in the destination is an alias of {alias_of} and cannot be written; "
                "choose another destination table or drop the alias."
            )
        if existing is not None:
            why = self._key_change(target, existing)
            if why:
                existing_hint = "set primaryKey to the table's key, " if not target.follows_source else ""
                existing = self._rebuild(target, why, f"{existing_hint}change the primary key of {target.table_id}, ")
        if existing is not None:
            why = self._type_change(target, existing, create_types, backend)
            if why:
                existing = self._rebuild(target, why)
        if existing is not None:
            existing = self._reconcile_columns(target, existing, create_types, backend, before_adding_columns)
        return PreparedTable(target, existing, backend, create_types, tuple(notes))

    def read(self, table_id: str) -> dict | None:
        with storage_errors("reading", table_id):
            return self.client.tables.detail(table_id)

    def ensure_bucket(self, bucket_id: str, *, for_table: str) -> str | None:
        """Create the bucket when it is missing (once per run); returns its backend (None when unknown)."""
        with self._lock:
            if bucket_id in self._known_buckets:
                return self._known_buckets[bucket_id]
            bucket_lock = self._buckets.setdefault(bucket_id, threading.Lock())
        with bucket_lock:  # tables of one bucket starting together create it once
            with self._lock:
                if bucket_id in self._known_buckets:
                    return self._known_buckets[bucket_id]
            bucket = self._create_bucket_if_missing(bucket_id, for_table)
            backend = str((bucket or {}).get("backend") or "").lower() or self._project_backend()
            with self._lock:
                self._known_buckets[bucket_id] = backend
            return backend

    def _project_backend(self) -> str | None:
        """The project's default backend (``owner.defaultBackend`` of tokens/verify), None when not told."""
        verify = getattr(self.client, "verify_token", None)
        if verify is None:
            return None
        with storage_errors("verifying the destination token"):
            owner = (verify() or {}).get("owner") or {}
        return str(owner.get("defaultBackend") or "").lower() or None

    def _create_bucket_if_missing(self, bucket_id: str, for_table: str) -> dict | None:
        """The bucket's detail (the created bucket when it was missing)."""
        with storage_errors("checking bucket", bucket_id):
            bucket = self.client.buckets.detail(bucket_id)
            if bucket is not None:
                return bucket
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
        return created

    @staticmethod
    def _creation_types(target: TableTarget, backend: str | None) -> tuple[TableTypes | None, list[str]]:
        """The data's types mapped to the bucket's backend, for creating the table (None: an untyped table)."""
        if target.types is None:
            return None, []
        if backend and types.normalize_backend(backend) is None:
            logger.warning(
                "Table %s: the %s backend of its bucket has no typed tables; it is created without native types.",
                target.table_id,
                backend,
            )
            return None, []
        return target.types.select(target.columns).for_backend(types.normalize_backend(backend), target.primary_key)

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

    @staticmethod
    def _type_change(
        target: TableTarget, existing: Mapping[str, Any], expected: TableTypes | None, backend: str | None
    ) -> str | None:
        """Why an existing table that follows a typed source cannot hold its types (None: it can)."""
        if not target.follows_source or expected is None:
            return None
        backend = types.normalize_backend(backend)
        shared = [c for c in target.columns if c in (existing.get("columns") or ())]
        if not types.is_typed(existing):
            example = next((expected.column(c) for c in shared), None) or (expected.columns or (None,))[0]
            sample = f" (column {example.name} is {example.text(backend)})" if example else ""
            return f"it has no native types but {target.origin} has them{sample}"
        have = types.from_table_detail(existing, backend)
        found = types.differences(expected, have, backend, shared)
        if not found:
            return None
        column, want, got = found[0]
        return f"its column {column} is {got} but {target.origin} has {want}"

    def _rebuild(self, target: TableTarget, why: str, fixes: str = "") -> None:
        dest = target.table_id
        if not target.rebuild:
            raise UserException(
                f"Table {dest} cannot take the data because {why}; {fixes}"
                f'drop the table so that it is created again, or set schemaChanges to "rebuild".'
            )
        logger.warning("Table %s: dropping and recreating it because %s (schemaChanges: rebuild).", dest, why)
        with storage_errors("dropping", dest):
            self.client.tables.delete(dest)

    def _reconcile_columns(
        self,
        target: TableTarget,
        existing: dict,
        expected: TableTypes | None,
        backend: str | None,
        before_adding: Callable[[list[str]], None] | None,
    ) -> dict:
        """Add the columns the data has and the table lacks, drop (when it follows its source) the ones it no longer
        has, and move columns that stand in another order (dropped and added again: Storage appends a column, as
        the source did when its column was dropped and added again). Returns the table as it is now."""
        dest = target.table_id
        present = list(existing.get("columns") or [])
        extra = [c for c in present if c not in target.columns]
        if extra and not target.follows_source:
            raise UserException(
                f"Table {dest} has column(s) {', '.join(extra)} that {target.origin} lacks, so the load would fail; "
                f"add them to the input table or drop them from {dest}."
            )
        moved = self._columns_to_move(target, existing, [c for c in present if c not in extra])
        kept = [c for c in present if c not in extra and c not in moved]
        added = [c for c in target.columns if c not in kept]
        if added and before_adding is not None:
            before_adding(added)
        for column in extra + moved:
            why = (
                f"no longer in {target.origin}" if column in extra else f"to follow the column order of {target.origin}"
            )
            logger.info("Table %s: dropping column %s (%s).", dest, column, why)
            with storage_errors(f"dropping column {column} of", dest):
                self.client.tables.delete_column(dest, column)
        typed = types.is_typed(existing)
        for column in added:
            definition = self._new_column(existing, column, expected, backend) if typed else {}
            as_type = f" as {_definition_text(definition)}" if definition else ""
            why = "moved" if column in moved else f"new in {target.origin}"
            logger.info("Table %s: adding column %s%s (%s).", dest, column, as_type, why)
            with storage_errors(f"adding column {column} to", dest):
                self.client.tables.add_column(dest, column, **definition)
        if not added and not extra:
            return existing
        if typed:  # the added columns' definitions are Storage's to tell
            return self.read(dest) or {**existing, "columns": kept + added}
        return {**existing, "columns": kept + added}

    @staticmethod
    def _columns_to_move(target: TableTarget, existing: Mapping[str, Any], kept: list[str]) -> list[str]:
        """The columns of ``kept`` to drop and add again so that the table's columns end in the order of
        ``target.columns``: the longest start of that order that ``kept`` holds in sequence stays; a key column
        cannot be dropped, so when one would have to move the order is left as it is, with a warning."""
        if not target.follows_source:
            return []
        position, stay = 0, 0
        for column in target.columns:
            if column not in kept[position:]:
                break  # a column the table lacks, or one that stands earlier
            position, stay = kept.index(column, position) + 1, stay + 1
        moved = [c for c in kept if c not in target.columns[:stay]]
        key = [c for c in moved if c in (existing.get("primaryKey") or ())]
        if key or len(moved) == len(kept):  # a key column, or every column (a table keeps one), cannot be dropped
            logger.warning(
                "Table %s: its columns stand in another order than in %s, and column %s cannot be moved; the data "
                "is loaded by column name, so only the order differs.",
                target.table_id,
                target.origin,
                (key or moved)[0],
            )
            return []
        return moved

    @staticmethod
    def _new_column(
        existing: Mapping[str, Any], column: str, expected: TableTypes | None, backend: str | None
    ) -> dict[str, Any]:
        """``definition`` / ``basetype`` of a column added to a typed table: its type from the data, else STRING
        (output mapping's ``TableStructureModifier``); nullable when Storage cannot add it required."""
        column_type = expected.column(column) if expected is not None else None
        if column_type is None:
            return {"basetype": "STRING"}
        backend = types.normalize_backend(backend)
        has_rows = bool(existing.get("rowsCount"))
        nullable = column_type.nullable or has_rows or backend == types.BIGQUERY
        if nullable and not column_type.nullable:
            logger.info(
                "Table %s: column %s is added nullable (NOT NULL in the data): Storage cannot add a required column "
                "to %s.",
                existing.get("id"),
                column,
                "a BigQuery table" if backend == types.BIGQUERY else "a table with rows",
            )
        return types.column_request(column_type, backend, nullable=nullable)

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
        with storage_errors("loading", prepared.target.table_id):
            try:
                return self._create_or_load_once(prepared, data, incremental=incremental, on_submitted=on_submitted)
            except StorageApiError as exc:
                if prepared.existing is not None or exc.code != TABLE_ALREADY_EXISTS:
                    raise
                conflict = exc
            # created between our read and our create: by another job, or by the storage job of a stopped run that
            # the server finished after the stop; prepared again (key, types, columns), the data is loaded into it
            logger.warning(
                "Table %s: it was created by another job while this run was creating it; loading into it instead.",
                prepared.target.table_id,
            )
            again = self.prepare(prepared.target)
            if again.existing is None:
                raise conflict
            return self._create_or_load_once(again, data, incremental=incremental, on_submitted=on_submitted)

    def _create_or_load_once(
        self, prepared: PreparedTable, data: DataFile, *, incremental: bool, on_submitted: Callable | None
    ) -> dict | None:
        target = prepared.target
        dest = target.table_id
        columns = list(target.columns)
        if prepared.existing is not None:
            logger.info("Table %s: %s load.", dest, "incremental" if incremental else "full")
            return self._load(prepared, data, incremental=incremental, on_submitted=on_submitted)
        if prepared.create_types is not None:
            self._create_typed(prepared)
            return self._load(prepared, data, incremental=False, on_submitted=on_submitted)
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
        return self._load(prepared, data, incremental=False, on_submitted=on_submitted)

    def _load(
        self, prepared: PreparedTable, data: DataFile, *, incremental: bool, on_submitted: Callable | None
    ) -> dict:
        """import-async of the data (with ``columns`` when headerless); a typed table keeps NULL and empty strings
        apart when the data does (``exact_nulls``), and a value that does not fit its type is one sentence."""
        target = prepared.target
        typed = prepared.typed
        options: dict[str, Any] = dict(data.csv_options())
        exact = typed and target.exact_nulls and types.normalize_backend(prepared.backend) == types.SNOWFLAKE
        if exact:
            # Snowflake's default NULL_IF [''] makes "" NULL too; BigQuery already keeps "" apart (its null marker
            # applies to unquoted fields only) and would turn an unquoted empty field into '' without it
            options["treat_values_as_null"] = []

        def load() -> dict:
            return self.client.tables.load(
                target.table_id,
                data.file_id,
                incremental=incremental,
                columns=list(target.columns) if data.headerless else None,
                on_submitted=on_submitted,
                **options,
            )

        try:
            try:
                return load()
            except JobFailed as exc:
                if not exact or not _EMPTY_VALUE_REFUSED.search(str((exc.job.get("error") or {}).get("message"))):
                    raise
                # the data writes NULL as "" (a CSV quoted throughout, not a Storage export): the failed job loaded
                # nothing, so the load is sent again with Storage's default, which reads "" as NULL
                logger.warning(
                    'Table %s: %s writes empty values as "" in columns that are not strings; loading it again with '
                    'Storage\'s default, which reads every "" as NULL (also in string columns).',
                    target.table_id,
                    target.origin,
                )
                del options["treat_values_as_null"]
                return load()
        except JobFailed as exc:
            sentence = type_error(prepared, exc) if typed else None
            if sentence is None:
                raise
            raise UserException(sentence) from exc

    def _create_typed(self, prepared: PreparedTable) -> dict:
        """An empty typed table from the mapped types (``tables-definition``); one log line per mapped column."""
        target, backend = prepared.target, types.normalize_backend(prepared.backend)
        dest = target.table_id
        where = f"{types.backend_name(backend)} " if backend else ""
        logger.info("Table %s: creating it as a typed %stable %s.", dest, where, pk_text(target.primary_key))
        for note in prepared.notes:
            logger.info("Table %s: %s.", dest, note)
        return self.client.tables.create_definition(
            bucket_of(dest),
            table_name(dest),
            types.definition_columns(prepared.create_types, backend),
            list(target.primary_key),
        )

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


def _definition_text(request: Mapping[str, Any]) -> str:
    definition = request.get("definition")
    if isinstance(definition, Mapping):
        text = types.NativeType(definition["type"], definition.get("length")).text()
        return text if definition.get("nullable", True) else f"{text} NOT NULL"
    return f"base type {request.get('basetype')}"


def type_error(prepared: PreparedTable, exc: JobFailed) -> str | None:
    """The sentence for a typed load that failed on a value that does not fit its column: the table, the column
    (named by the job's message, else the one column of the type the message names, else found in the data by
    ``target.find_value``) and the job's message; None when the message is no such failure."""
    message = (exc.message or "").strip()
    job_message = str(((exc.job or {}).get("error") or {}).get("message") or "")
    column_types = prepared.column_types()
    if column_types is None:
        return None
    backend = types.normalize_backend(prepared.backend)
    columns = [c.name for c in column_types.columns]
    found = error_column(job_message, columns)
    names = [found] if found else _columns_of_failed_value(job_message, column_types, backend, prepared.target)
    if not names:
        return None
    described = " or ".join(f"{n} ({column_types.column(n).text(backend)})" for n in names)
    text = (
        f"Loading table {prepared.target.table_id} failed: a value of column {described} from "
        f"{prepared.target.origin} does not fit its type: {message}"
    )
    return text if text.endswith((".", "!", "?")) else text + "."


# a Snowflake conversion error on an empty quoted value (a NUMBER / DATE / ... column given "" with NULL_IF ())
_EMPTY_VALUE_REFUSED = re.compile(r"(?:value|Date|Timestamp|Time) '' is not recognized")

# what a load error that names no column says about the value (Snowflake's conversion errors, addendum 1d)
_FAILED_VALUE = (
    (r"Numeric value '(.*?)' is (?:not recognized|out of range)", ("INTEGER", "NUMERIC", "FLOAT")),
    (r"Boolean value '(.*?)' is not recognized", ("BOOLEAN",)),
    (r"Date '(.*?)' is not recognized", ("DATE",)),
    (r"Timestamp '(.*?)' is not recognized", ("TIMESTAMP",)),
    (r"Time '(.*?)' is not recognized", ("TIME",)),
    (r"(NULL) result in a non-nullable column", ()),
)


def _columns_of_failed_value(
    message: str, column_types: TableTypes, backend: str | None, target: TableTarget
) -> list[str]:
    """The columns that can hold the failed value's kind: one, or the one the data has the value in
    (``find_value``), else all of them; [] when the message says nothing about a value."""
    for pattern, kinds in _FAILED_VALUE:
        match = re.search(pattern, message, flags=re.DOTALL)
        if not match:
            continue
        null = not kinds
        candidates = [
            c.name
            for c in column_types.columns
            if c.name in target.columns
            and (
                (null and not c.nullable)
                or c.basetype in kinds
                or (backend in c.native and c.native[backend].type in kinds)
            )
        ]
        if len(candidates) > 1 and target.find_value is not None:
            located = target.find_value(None if null else match.group(1), candidates)
            if located:
                return [located]
        return candidates
    return []


def error_column(message: str, columns: Sequence[str]) -> str | None:
    """The column a load error names: Snowflake's ``["NAME":2]``, BigQuery's ``field NAME``, ``column_name: "NAME"``
    and ``column "NAME"`` (case-insensitive)."""
    by_upper = {c.upper(): c for c in columns}
    for pattern in (
        r'\["?([^"\]:]+)"?:\d+\]',
        r'column_name:\s*"([^"]+)"',
        r'(?:field|column)\s+"([^"]+)"',
        r"(?:field|column)\s+'?([A-Za-z0-9_]+)",
    ):
        for match in re.finditer(pattern, message, flags=re.IGNORECASE):
            found = by_upper.get(match.group(1).upper())
            if found:
                return found
    return None

"""Planning: what a run will move, resolved and validated before any data moves.

- export and sync: ``plan_tables`` turns table and bucket selections into ``PlannedTable`` items (one table
  detail each), checking columns, filters and primary keys against the source table;
- import: ``plan_inputs`` turns the input tables of ``in/tables`` into ``PlannedInput`` items (columns from the
  header or the manifest, the primary key, the destination id).
Both refuse two items written into one destination table.

Planning uses only ``tables.list_in_bucket`` and ``tables.detail`` of the client, so tests can pass a small fake.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from keboola.component.exceptions import UserException

from configuration import BUCKET_ID_RE, TABLE_ID_RE, TABLE_NAME_RE, TableSettings, bucket_of, table_name, with_source
from workflows import types
from workflows.context import storage_errors
from workflows.input_tables import InputTable
from workflows.types import TableTypes

if TYPE_CHECKING:
    from storage_api import StorageClient

logger = logging.getLogger(__name__)


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
    client: StorageClient,
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
        if detail.get("isAlias"):
            alias_of = (detail.get("sourceTable") or {}).get("id") or "another table"
            if item.aliases == "skip":
                logger.info("Table %s is an alias of %s; skipped (aliases: skip).", item.source, alias_of)
                continue
            logger.info("Table %s is an alias of %s; its data is copied into a real table.", item.source, alias_of)
        planned.append(_plan_one(item, detail, mode=mode, default_bucket=default_bucket))
    check_unique_destinations([(p.source_id, p.destination_id) for p in planned])
    return _unique_names(planned)


def _expand(client: StorageClient, settings: Sequence[TableSettings]) -> list[TableSettings]:
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
    return resolve_destination(item.destination, table_name(source_id), default_bucket) or source_id


def resolve_destination(configured: str | None, name: str, default_bucket: str | None) -> str | None:
    """The configured table id; or the configured bucket, else ``default_bucket``, + ``name``; else None."""
    if configured and TABLE_ID_RE.match(configured):
        return configured
    bucket = configured if configured and BUCKET_ID_RE.match(configured) else default_bucket
    return f"{bucket}.{name}" if bucket else None


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
    unfilterable = _unfilterable_columns(detail)
    for where_filter in item.where_filters:
        if where_filter.column not in known:
            raise UserException(
                f"The whereFilters column {where_filter.column} is not a column of table {source_id} "
                f"(columns: {', '.join(table_columns)}); fix the filter."
            )
        if where_filter.column in unfilterable:
            raise UserException(
                f"The whereFilters column {where_filter.column} of table {source_id} is of type "
                f"{unfilterable[where_filter.column]}, which Storage cannot filter by; remove the filter or filter by "
                f"another column."
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


def _unfilterable_columns(detail: Mapping[str, Any]) -> dict[str, str]:
    """Columns of a typed table that Storage cannot filter by (``canBeFiltered: false``: ARRAY, VARIANT, ...;
    addendum 1c) and their types."""
    columns = types.table_definition(detail).get("columns") if types.is_typed(detail) else None
    return {
        str(c.get("name")): str((c.get("definition") or {}).get("type") or "this type")
        for c in columns or ()
        if isinstance(c, Mapping) and c.get("canBeFiltered") is False
    }


def check_unique_destinations(pairs: Sequence[tuple[str, str]], what: str = "Tables") -> None:
    """``pairs``: (what is written, destination id); two writes into one table are refused."""
    seen: dict[str, str] = {}
    for label, dest in pairs:
        other = seen.get(dest)
        if other:
            raise UserException(
                f"{what} {other} and {label} would both be written to {dest}; give one of them another destination."
            )
        seen[dest] = label


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


@dataclass(frozen=True)
class PlannedInput:
    """One input table to import, with its columns, primary key and destination resolved."""

    table: InputTable
    settings: TableSettings
    destination_id: str
    columns: tuple[str, ...]  # columns of the data, in order (header row, else the manifest's columns)
    primary_key: tuple[str, ...]  # configured ``primaryKey``, else the manifest's
    primary_key_configured: bool
    types: TableTypes | None = field(default=None, repr=False)  # the types the manifest states (None: untyped)

    @property
    def where(self) -> str:
        return f"in/tables/{self.table.file_name}"


def plan_inputs(
    inputs: Mapping[str, InputTable],
    items: Sequence[TableSettings],
    defaults: TableSettings,
    *,
    default_bucket: str | None,
) -> list[PlannedInput]:
    """The selected input tables (all of them when ``items`` is empty) with their destinations and schema."""
    if items:
        selected = [(_input_of(inputs, item), item) for item in items]
    else:
        selected = [(table, with_source(defaults, name)) for name, table in inputs.items()]
    planned = [_plan_input(table, settings, default_bucket) for table, settings in selected]
    check_unique_destinations([(p.table.file_name, p.destination_id) for p in planned], "Input tables")
    return planned


def _input_of(inputs: Mapping[str, InputTable], item: TableSettings) -> InputTable:
    table = inputs.get(item.source)
    if table is None:
        available = ", ".join(inputs) or "none"
        raise UserException(
            f"Input table {item.source} is not in in/tables (available: {available}); add it to the input "
            f"mapping or fix 'source'."
        )
    return table


def _plan_input(table: InputTable, settings: TableSettings, default_bucket: str | None) -> PlannedInput:
    where = f"in/tables/{table.file_name}"
    if len(table.delimiter) != 1 or len(table.enclosure) > 1:
        raise UserException(
            f"The manifest of input table {where} has delimiter {table.delimiter!r} and enclosure "
            f"{table.enclosure!r}; the delimiter must be one character and the enclosure one character or empty."
        )
    dest = _input_destination(table, settings, default_bucket)
    if table.headerless:
        columns = table.manifest_columns
        if not columns:
            raise UserException(
                f"Input table {where} has no header row and its manifest lists no 'columns'; fix the input mapping."
            )
    else:
        columns = table.read_header()
    configured = settings.primary_key is not None
    primary_key = tuple(settings.primary_key) if configured else tuple(table.manifest_primary_key)
    for column in primary_key:
        if column not in columns:
            raise UserException(
                f"The primary key column {column} is not a column of input table {where} "
                f"(columns: {', '.join(columns)}); fix 'primaryKey'."
            )
    return PlannedInput(table, settings, dest, tuple(columns), primary_key, configured, table.types(columns))


def _input_destination(table: InputTable, settings: TableSettings, default_bucket: str | None) -> str:
    name = table_name(table.source_id) if table.source_id else table.stem
    if settings.destination and TABLE_ID_RE.match(settings.destination):
        return settings.destination
    if (settings.destination and BUCKET_ID_RE.match(settings.destination)) or default_bucket:
        if not TABLE_NAME_RE.match(name):
            raise UserException(
                f"Cannot derive a table name from in/tables/{table.file_name}; set the table's 'destination' to a "
                f"table id such as in.c-bucket.table."
            )
        return resolve_destination(settings.destination, name, default_bucket)
    if table.source_id:
        return table.source_id
    raise UserException(
        f"The destination of input table in/tables/{table.file_name} is unknown; set destination.bucket or the "
        f"table's 'destination' (a table id)."
    )

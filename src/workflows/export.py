"""Export mode: source project tables -> out/tables (sliced gzip folder + manifest, or one CSV with a header).

Per table: export job -> file detail -> download the slices into a hidden ``.<name>.csv.partial`` folder inside
out/tables -> atomic rename to ``<name>.csv`` -> only then the manifest. A failed table leaves neither data nor
manifest behind and its state entry is not advanced.

Manifests: an untyped table gets the legacy manifest (``columns`` when headerless, ``primary_key``, ``metadata``,
``column_metadata``). A typed table's manifest says its types as output mapping reads them for typed tables
(addendum 1f), written by keboola.component (``create_out_table_definition`` with a ``schema`` of
``ColumnDefinition``s, ``write_manifest``): the new format (``schema`` with ``data_type`` {base, <backend>},
``nullable``, ``primary_key``) when the platform expects it, else the legacy one with the ``KBC.datatype.*`` column
metadata and the table's ``KBC.datatype.backend`` (output mapping's legacy ``native-types`` path).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keboola.component.dao import ColumnDefinition, DataType, TableMetadata
from keboola.component.interface import CommonInterface, init_environment_variables

from state import EXPORT_OVERLAP_SECONDS, Lineage, job_watermark
from workflows import types
from workflows.context import RunContext, storage_errors
from workflows.files import copy_stream, is_gzip, remove_path
from workflows.metadata import column_metadata_pairs, metadata_pairs
from workflows.plan import PlannedTable, plan_tables
from workflows.progress import Progress
from workflows.projects import project_key
from workflows.runner import TableOutcome, TableRunner, finish

if TYPE_CHECKING:
    from storage_api import StorageClient

logger = logging.getLogger(__name__)


def run(ctx: RunContext) -> None:
    ctx.state.save()  # out/state.json exists from the start: entries of other tables are carried over
    client = ctx.source_client()
    client.preload_transfer()  # the file-storage SDK loads while the table is planned and exported
    plans = plan_tables(client, ctx.config.tables, mode="export")
    logger.info("Exporting %d table(s): %s", len(plans), ", ".join(p.source_id for p in plans))
    ctx.tables_out.mkdir(parents=True, exist_ok=True)
    runner = TableRunner(ctx.config.parallelism, what="table(s)")
    outcomes = runner.run(plans, lambda plan: export_table(ctx, client, plan), label=lambda plan: plan.source_id)
    ctx.state.save()
    finish(outcomes, "table(s)")
    logger.info("Export finished: %d table(s).", len(plans))


def export_table(ctx: RunContext, client: StorageClient, plan: PlannedTable) -> TableOutcome:
    settings = plan.settings
    changed_since = None
    uses_last = bool(settings.changed_since and settings.changed_since.is_last)
    lineage = Lineage(
        source=project_key(ctx.config.require("source").url, client.project_id),
        source_created=plan.detail.get("created"),
        selection={"columns": list(plan.columns), "whereFilters": [f.to_api() for f in settings.where_filters]},
    )
    if uses_last:
        changed_since, reason = ctx.state.resume_point(plan.source_id, lineage)
        if changed_since is None:
            logger.info("Table %s: exporting all rows (%s).", plan.source_id, reason)
    elif settings.changed_since:
        changed_since = settings.changed_since.resolve(ctx.now)

    logger.info(
        "Table %s: exporting%s.",
        plan.source_id,
        f" rows changed since {changed_since} (unix time)" if changed_since is not None else "",
    )
    column_types = None
    if types.is_typed(plan.detail):
        with storage_errors("reading the backend of", plan.source_id):
            column_types = types.resolve_table_types(client, plan.detail)
            types.warn_fractions_cut(client, plan.source_id, column_types.select(plan.columns), "exported")
    progress = Progress(plan.source_id, "downloaded")
    out_dir = ctx.tables_out
    final = out_dir / f"{plan.name}.csv"
    partial = out_dir / f".{plan.name}.csv.partial"
    remove_path(partial)
    try:
        with storage_errors("exporting", plan.source_id):
            result = client.tables.export(
                plan.source_id,
                columns=list(plan.columns),
                changed_since=changed_since,
                changed_until=None,
                where_filters=[f.to_api() for f in settings.where_filters],
                limit=settings.limit,
                gzip=True,
            )
            watermark = job_watermark(result.job, EXPORT_OVERLAP_SECONDS, plan.source_id) if uses_last else None
            file = client.files.detail(result.file_id)
            headerless = bool(file.get("isSliced", True))
            if ctx.config.merged_output or not headerless:
                size = _write_merged(client, file, partial, plan.columns if headerless else None, progress)
                headerless = False
            else:
                size = _write_sliced(client, file, partial, progress)
        remove_path(final)
        os.replace(partial, final)
    finally:
        remove_path(partial)

    if column_types is None:
        _write_manifest(final, _manifest(plan, headerless=headerless))
    else:
        write_typed_manifest(ctx.data_dir, final, plan, column_types, headerless=headerless)
    rows = plan.detail.get("rowsCount") if not plan.filtered and changed_since is None else None
    cache = " (export cache hit)" if getattr(result, "cache_hit", False) else ""
    logger.info(progress.summary("exported", rows, size) + cache)
    if uses_last:
        ctx.state.commit(plan.source_id, watermark=watermark, destination=plan.destination_id, lineage=lineage)
    return TableOutcome(plan.source_id, "export", rows=rows, bytes=size)


def _write_sliced(client: StorageClient, file: dict, folder: Path, progress: Progress) -> int:
    """Download the slices (kept gzipped) into ``folder``; returns the byte count."""
    folder.mkdir(parents=True)
    paths = [Path(p) for p in client.transfer.download(file, folder, progress)]
    if not paths:  # an empty export: keep a valid (empty) slice so the folder is a table
        empty = folder / "part_00000.gz"
        with gzip.open(empty, "wb"):
            pass
        paths = [empty]
    total = 0
    for path in paths:
        if path.suffix != ".gz" and is_gzip(path):  # Keboola recognises gzip slices by their suffix
            path = path.rename(path.with_name(path.name + ".gz"))
        total += path.stat().st_size
    return total


def _write_merged(
    client: StorageClient, file: dict, target: Path, header: tuple[str, ...] | None, progress: Progress
) -> int:
    """Download into /tmp and stream-gunzip every slice into one CSV at ``target`` (with a header row)."""
    tmp = Path(tempfile.mkdtemp(prefix="storage-sync-export-"))
    try:
        paths = [Path(p) for p in client.transfer.download(file, tmp, progress)]
        total = 0
        with target.open("wb") as out:
            if header is not None:
                text = io.StringIO()
                csv.writer(text, lineterminator="\n", quoting=csv.QUOTE_ALL).writerow(list(header))
                out.write(text.getvalue().encode("utf-8"))
            for path in paths:
                opener = gzip.open if is_gzip(path) else open
                with opener(path, "rb") as src:
                    total += copy_stream(src, out)
                path.unlink()  # keep /tmp usage at one slice's size beyond the output
        return total
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _manifest(plan: PlannedTable, *, headerless: bool) -> dict:
    manifest: dict[str, Any] = {"destination": plan.destination_id}
    if headerless:
        manifest["columns"] = list(plan.columns)
    manifest.update(
        {
            "incremental": bool(plan.settings.incremental),
            "primary_key": list(plan.primary_key),
            "delimiter": ",",
            "enclosure": '"',
        }
    )
    metadata = metadata_pairs(plan.detail.get("metadata"))
    column_metadata = column_metadata_pairs(plan.detail.get("columnMetadata"), plan.columns)
    if metadata:
        manifest["metadata"] = metadata
    if column_metadata:
        manifest["column_metadata"] = column_metadata
    return manifest


def _write_manifest(data_path: Path, manifest: dict) -> None:
    """Legacy-format output manifest, written atomically next to the data."""
    path = data_path.with_name(data_path.name + ".manifest")
    tmp = data_path.with_name(f".{data_path.name}.manifest.partial")
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


class _OutputManifests(CommonInterface):
    """keboola.component's table definitions and manifest writer for out/tables. ``CommonInterface.__init__`` is not
    run: it would install the library's log handlers again, over the component's (redacting) ones."""

    def __init__(self, data_dir: Path):  # no super().__init__(): see the class docstring
        self.environment_variables = init_environment_variables()
        self.data_folder_path = str(data_dir)


class _ColumnDefinition(ColumnDefinition):
    """``ColumnDefinition`` whose manifest entry keeps ``nullable: false`` (the library drops every False value,
    so a NOT NULL column would read as nullable)."""

    def to_dict(self, name: str):
        result = super().to_dict(name)
        if self.nullable is False:
            result["nullable"] = False
        return result


def typed_schema(
    plan: PlannedTable, column_types: types.TableTypes, column_metadata: dict[str, list[dict]]
) -> dict[str, ColumnDefinition]:
    """The manifest ``schema`` of the exported columns: base type (with the length that carries meaning) and the
    native type of the source's backend; key columns NOT NULL; column metadata without Storage's type entries."""
    schema: dict[str, ColumnDefinition] = {}
    for column in column_types.select(plan.columns).columns:
        data_types = {"base": DataType(column.basetype, length=column.length)}
        for backend, native in column.native.items():
            data_types[backend] = DataType(native.type, length=native.length, default=native.default)
        metadata = {p["key"]: p["value"] for p in types.without_type_metadata(column_metadata.get(column.name, []))}
        schema[column.name] = _ColumnDefinition(
            data_types=data_types,
            nullable=column.nullable and column.name not in plan.primary_key,
            metadata=metadata or None,
        )
    return schema


def write_typed_manifest(
    data_dir: Path, data_path: Path, plan: PlannedTable, column_types: types.TableTypes, *, headerless: bool
) -> Path:
    """The manifest of a typed table, by keboola.component (the format the platform expects: see the module
    docstring), written into a hidden ``.partial`` folder and renamed next to the data (never half-written)."""
    manifests = _OutputManifests(data_dir)
    column_metadata = column_metadata_pairs(plan.detail.get("columnMetadata"), plan.columns)
    table_metadata = TableMetadata()
    for pair in types.without_type_metadata(metadata_pairs(plan.detail.get("metadata"))):
        table_metadata.add_table_metadata(pair["key"], pair["value"])
    if column_types.backend:  # the legacy native-types path keeps native types only with the backend named
        table_metadata.add_table_metadata(types.BACKEND_KEY, column_types.backend)
    definition = manifests.create_out_table_definition(
        data_path.name,
        is_sliced=headerless,
        destination=plan.destination_id,
        primary_key=list(plan.primary_key),
        schema=typed_schema(plan, column_types, column_metadata),
        incremental=bool(plan.settings.incremental),
        table_metadata=table_metadata,
        has_header=not headerless,
    )
    # the legacy format's column_metadata: set after the definition is built, so that the new format's schema
    # metadata stays the user's (the definition copies TableMetadata's column metadata into it when it is built)
    for column in column_types.select(plan.columns).columns:
        pairs = {p["key"]: p["value"] for p in types.without_type_metadata(column_metadata.get(column.name, []))}
        pairs.update(types.legacy_column_metadata(column, column_types.backend))
        definition.table_metadata.column_metadata[column.name] = pairs
    work = data_path.with_name(f".{data_path.name}.manifest.partial")
    remove_path(work)
    work.mkdir()
    try:
        definition.full_path = str(work / data_path.name)
        manifests.write_manifest(definition)
        path = data_path.with_name(data_path.name + ".manifest")
        os.replace(work / f"{data_path.name}.manifest", path)
    finally:
        remove_path(work)
    return path

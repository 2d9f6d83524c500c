"""Import mode: input tables (in/tables) -> destination project.

Per input table: plan (columns, primary key, destination id) -> destination step, first half (bucket, existing
table, key) -> upload (one gzip file, gzip slices cut from a large plain CSV, or the slices of a sliced input) ->
destination step, second half (create or load, metadata from the input manifest).
Loads are never retried here: the client reconciles ambiguous import requests, so data is never loaded twice.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from keboola.component.exceptions import UserException

from configuration import table_name
from workflows.context import RunContext, storage_errors
from workflows.csv_slicing import SLICE_BYTES, SLICES_AHEAD, gzip_slices
from workflows.destination import DataFile, Destination, TableTarget
from workflows.files import MB, gzip_file, is_gzip
from workflows.input_tables import InputTable, discover_inputs
from workflows.plan import PlannedInput, plan_inputs
from workflows.progress import Progress
from workflows.runner import TableOutcome, TableRunner, finish

if TYPE_CHECKING:
    from storage_api import StorageClient

logger = logging.getLogger(__name__)

UPLOAD_TAGS = ("storage-sync",)


def run(ctx: RunContext) -> None:
    ctx.state.save()  # import keeps no watermarks; carry the state over unchanged
    inputs = discover_inputs(ctx.tables_in)
    bucket = ctx.config.require("destination").bucket
    plans = plan_inputs(inputs, ctx.config.tables, ctx.config.defaults, default_bucket=bucket)
    if not plans:
        raise UserException("There are no input tables to import; add tables to the input mapping.")
    client = ctx.destination_client()
    logger.info(
        "Importing %d table(s): %s", len(plans), ", ".join(f"{p.table.file_name} -> {p.destination_id}" for p in plans)
    )
    destination = Destination(client, metadata_provider=ctx.metadata_provider, tags=UPLOAD_TAGS)
    runner = TableRunner(int(getattr(ctx.config, "parallelism", 1) or 1), what="table(s)")
    outcomes = runner.run(
        plans, lambda plan: import_table(client, destination, plan, runner), label=lambda plan: plan.destination_id
    )
    ctx.state.save()
    finish(outcomes, "table(s)")
    logger.info("Import finished: %d table(s).", len(plans))


def import_table(
    client: StorageClient, destination: Destination, plan: PlannedInput, runner: TableRunner
) -> TableOutcome:
    table = plan.table
    target = TableTarget(
        table_id=plan.destination_id,
        origin=f"input table {plan.where}",
        columns=plan.columns,
        primary_key=plan.primary_key,
        key_required=plan.primary_key_configured or bool(plan.primary_key),
        metadata=table.metadata(),
        column_metadata=table.column_metadata(plan.columns),
    )
    prepared = destination.prepare(target)
    progress = Progress(plan.destination_id, "uploaded")
    with storage_errors("importing", plan.destination_id):
        data, size = _upload(client, table, progress)
    logger.info("Table %s: uploaded %.2f MB in %.1f s.", plan.destination_id, size / MB, progress.elapsed)
    runner.check_stop()
    incremental = plan.settings.incremental and prepared.existing is not None
    written = destination.write(prepared, data, incremental=incremental)
    destination.set_metadata(target)
    moved = None if incremental else written.rows_total  # a full load leaves exactly the imported rows
    logger.info(
        progress.summary(f"imported from {plan.where},", moved, size)
        + f" The table holds {_count(written.rows_total)} rows."
    )
    return TableOutcome(
        plan.destination_id,
        "incremental" if incremental else "full",
        rows=moved,
        total=written.rows_total,
        bytes=size,
    )


def _count(value: int | None) -> str:
    return "n/a" if value is None else str(value)


def _upload(client: StorageClient, table: InputTable, progress: Progress) -> tuple[DataFile, int]:
    """Upload the input table as one gzip file, as gzip slices cut from a large plain CSV, or its slices as a sliced
    file; returns the uploaded file and its size in bytes."""
    name = table_name(table.stem) if table.stem else "table"
    if table.sliced:
        slices = table.slices()
        if not slices:
            raise UserException(f"Input table in/tables/{table.file_name} is an empty folder; fix the input mapping.")
        size = sum(p.stat().st_size for p in slices)
        prepared = client.files.prepare(f"{name}.csv", size_bytes=size, sliced=True, tags=UPLOAD_TAGS)
        client.transfer.upload_slices(prepared, slices, progress)
        return DataFile(prepared["id"], True, table.delimiter, table.enclosure), size
    if is_gzip(table.path):
        size = table.path.stat().st_size
        prepared = client.files.prepare(f"{name}.csv.gz", size_bytes=size, tags=UPLOAD_TAGS)
        client.transfer.upload(prepared, table.path, progress)
        return DataFile(prepared["id"], table.headerless, table.delimiter, table.enclosure), size
    if not table.headerless and table.path.stat().st_size > SLICE_BYTES:
        return _upload_gzip_slices(client, table, name, progress)
    fd, tmp_name = tempfile.mkstemp(prefix="storage-sync-upload-", suffix=".csv.gz")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        size = gzip_file(table.path, tmp)
        prepared = client.files.prepare(f"{name}.csv.gz", size_bytes=size, tags=UPLOAD_TAGS)
        client.transfer.upload(prepared, tmp, progress)
        return DataFile(prepared["id"], table.headerless, table.delimiter, table.enclosure), size
    finally:
        tmp.unlink(missing_ok=True)


def _upload_gzip_slices(
    client: StorageClient, table: InputTable, name: str, progress: Progress
) -> tuple[DataFile, int]:
    """Cut a plain CSV with a header into headerless gzip slices while uploading the finished ones (one PUT each)."""
    # sizeBytes is only informative; the gzip size is not known before the upload, so the CSV size is given
    prepared = client.files.prepare(
        f"{name}.csv.gz", size_bytes=table.path.stat().st_size, sliced=True, tags=UPLOAD_TAGS
    )
    tmp_dir = Path(tempfile.mkdtemp(prefix="storage-sync-slices-"))
    try:
        size = client.transfer.upload_slices_from(
            prepared,
            gzip_slices(table.path, tmp_dir, SLICE_BYTES, quote=table.enclosure.encode()),
            progress,
            ahead=SLICES_AHEAD,
            remove=True,
        )
        return DataFile(prepared["id"], True, table.delimiter, table.enclosure), size
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)

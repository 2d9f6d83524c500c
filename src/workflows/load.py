"""Import mode: input tables (in/tables) -> destination project.

Per input table: plan (columns, primary key, destination id, the types its manifest states) -> destination step,
first half (bucket, existing table, key) -> upload (one gzip file, gzip slices cut from a large plain CSV, or the
slices of a sliced input) -> destination step, second half (create or load, metadata from the input manifest).
A manifest with types (``schema`` data types, or legacy ``KBC.datatype.*`` column metadata) creates a missing table
typed (``tables-definition``); an existing table is loaded as it is, as output mapping does.
Loads are never retried here: the client reconciles ambiguous import requests, so data is never loaded twice.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from keboola.component.exceptions import UserException

from configuration import table_name
from storage_api.errors import JobFailed
from workflows.context import RunContext, storage_errors
from workflows.csv_slicing import SLICE_BYTES, SLICES_AHEAD, gzip_slices
from workflows.destination import DataFile, Destination, TableTarget
from workflows.files import MB, gzip_file, is_gzip
from workflows.input_tables import InputTable, discover_inputs
from workflows.plan import PlannedInput, plan_inputs
from workflows.progress import Progress
from workflows.runner import TableOutcome, TableRunner, finish
from workflows.types import without_type_metadata

if TYPE_CHECKING:
    from state import StateStore
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
    runner = TableRunner(ctx.config.parallelism, what="table(s)")
    outcomes = runner.run(
        plans, lambda plan: import_table(ctx, destination, plan, runner), label=lambda plan: plan.destination_id
    )
    ctx.state.save()
    finish(outcomes, "table(s)")
    logger.info("Import finished: %d table(s).", len(plans))


def import_table(ctx: RunContext, destination: Destination, plan: PlannedInput, runner: TableRunner) -> TableOutcome:
    client, table, state = destination.client, plan.table, ctx.state
    metadata, column_metadata = table.metadata(), table.column_metadata(plan.columns)
    if plan.types is not None:  # the types go into the definition; Storage writes its own KBC.datatype.* entries
        metadata = without_type_metadata(metadata)
        column_metadata = {c: kept for c, pairs in column_metadata.items() if (kept := without_type_metadata(pairs))}
    target = TableTarget(
        table_id=plan.destination_id,
        origin=f"input table {plan.where}",
        columns=plan.columns,
        primary_key=plan.primary_key,
        key_required=plan.primary_key_configured or bool(plan.primary_key),
        metadata=metadata,
        column_metadata=column_metadata,
        types=plan.types,
        exact_nulls=plan.types is not None,  # typed data: "" apart from NULL (empty unquoted) where it can be
        find_value=lambda value, candidates: table.find_value(plan.columns, value, candidates),
    )
    prepared = destination.prepare(target)
    with ThreadPoolExecutor(1, thread_name_prefix="fingerprint") as hashing:
        # the digest of the input is read while it uploads (hashlib releases the GIL)
        fingerprint = hashing.submit(
            table.fingerprint, plan.destination_id, plan.settings.incremental, plan.columns, plan.primary_key
        )
        if _loaded_by_a_stopped_run(client, state, plan.destination_id, fingerprint.result):
            destination.set_metadata(target)
            return TableOutcome(
                plan.destination_id, "already loaded", total=(destination.read(target.table_id) or {}).get("rowsCount")
            )
        progress = Progress(plan.destination_id, "uploaded")
        with storage_errors("importing", plan.destination_id):
            data, size = _upload(client, table, progress)
        logger.info("Table %s: uploaded %.2f MB in %.1f s.", plan.destination_id, size / MB, progress.elapsed)
        digest = fingerprint.result()
    runner.check_stop()
    incremental = plan.settings.incremental and prepared.existing is not None
    written = destination.write(
        prepared,
        data,
        incremental=incremental,
        on_submitted=lambda job: state.remember_load(plan.destination_id, job_id=job.get("id"), fingerprint=digest),
    )
    state.forget_load(plan.destination_id)
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


def _loaded_by_a_stopped_run(
    client: StorageClient, state: StateStore, table_id: str, fingerprint: Callable[[], str]
) -> bool:
    """Whether a run that was stopped after submitting the load of this very input saw it through on the server
    (then loading it again would duplicate rows); a load still running is waited for."""
    pending = state.pending_load(table_id)
    if pending is None:
        return False
    job_id = pending["jobId"]
    try:
        with storage_errors(f"checking load job {job_id} of", table_id):
            job = client.jobs.wait(job_id)
    except UserException as exc:
        if not isinstance(exc.__cause__, JobFailed):
            raise  # not known: keep the entry, so that a later run checks the job again
        job = exc.__cause__.job
    same_input = pending.get("fingerprint") == fingerprint()
    state.forget_load(table_id)
    if job.get("status") == "success" and same_input:
        logger.info(
            "Table %s: job %s of a stopped run already loaded this input; it is not loaded again.", table_id, job_id
        )
        return True
    why = "failed" if job.get("status") != "success" else "loaded another input"
    logger.info("Table %s: job %s of a stopped run %s; loading the input now.", table_id, job_id, why)
    return False


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

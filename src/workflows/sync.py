"""Sync mode: source project -> destination project (same or another stack), per-table watermarks.

Per planned source table:
- first run (no watermark for this destination, or destination table missing), a table without a primary key,
  or ``incremental: false``: full copy (export without changedSince, full load);
- later runs: export rows changed since the watermark and load them incrementally (upsert by primary key).
The exported slices are copied file storage to file storage without decompression and loaded with ``columns``
(slices are headerless). The watermark is the source export job's server ``startTime`` minus an overlap; it is
written to the state only after the destination load job succeeded. Rows deleted in the source are not deleted
in the destination.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from keboola.component.exceptions import UserException

from configuration import table_name
from state import SYNC_OVERLAP_SECONDS, job_watermark
from workflows.context import RunContext, storage_errors
from workflows.destination import DataFile, Destination, TableTarget, result_rows
from workflows.files import MB
from workflows.metadata import column_metadata_pairs, metadata_pairs
from workflows.plan import PlannedTable, plan_tables
from workflows.progress import Progress

if TYPE_CHECKING:
    from storage_api import StorageClient

logger = logging.getLogger(__name__)

COPY_TAGS = ("storage-sync",)


def run(ctx: RunContext) -> None:
    ctx.state.save()  # out/state.json exists from the start: entries of other tables are carried over
    source = ctx.source_client()
    destination_client = ctx.destination_client()
    dest_conn = ctx.config.require("destination")
    plans = plan_tables(source, ctx.config.tables, mode="sync", default_bucket=dest_conn.bucket)
    _refuse_copy_onto_itself(ctx, source, destination_client, plans)
    source.preload_transfer()  # the file-storage SDKs load while the first export job runs
    if destination_client.provider != source.provider:
        destination_client.preload_transfer()
    logger.info("Syncing %d table(s): %s", len(plans), ", ".join(f"{p.source_id} -> {p.destination_id}" for p in plans))
    destination = Destination(destination_client, metadata_provider=ctx.metadata_provider, tags=COPY_TAGS)
    incremental_runs = 0
    for plan in plans:
        incremental_runs += sync_table(ctx, source, destination, plan)
    if incremental_runs:
        logger.info(
            "Note: incremental syncs copy new and changed rows only; rows deleted in the source stay in the "
            "destination until the next full copy."
        )
    ctx.state.save()
    logger.info("Sync finished: %d table(s).", len(plans))


def _refuse_copy_onto_itself(
    ctx: RunContext, source: StorageClient, destination: StorageClient, plans: list[PlannedTable]
) -> None:
    if ctx.config.require("source").url != ctx.config.require("destination").url:
        return
    if not any(p.source_id == p.destination_id for p in plans):
        return
    with storage_errors("verifying the tokens"):
        same_project = str(source.project_id) == str(destination.project_id)
    if same_project:
        table = next(p.source_id for p in plans if p.source_id == p.destination_id)
        raise UserException(
            f"The source and destination are the same project, so table {table} would be copied onto itself; "
            f"set destination.bucket or the table's destination."
        )


def sync_table(ctx: RunContext, source: StorageClient, destination: Destination, plan: PlannedTable) -> int:
    """Sync one table; returns 1 when it was an incremental (changes only) sync, else 0."""
    dest_id = plan.destination_id
    pk = list(plan.primary_key)
    columns = list(plan.columns)
    target = TableTarget(
        table_id=dest_id,
        origin=f"the sync of {plan.source_id}",
        columns=plan.columns,
        primary_key=plan.primary_key,
        metadata=metadata_pairs(plan.detail.get("metadata")),
        column_metadata=column_metadata_pairs(plan.detail.get("columnMetadata"), columns),
    )
    prepared = destination.prepare(target)
    existing = prepared.existing

    watermark = ctx.state.watermark(plan.source_id, dest_id)
    if not pk:
        logger.warning(
            "Table %s has no primary key, so it is fully reloaded every run (an incremental load without a primary "
            "key would duplicate rows).",
            plan.source_id,
        )
    incremental = bool(plan.settings.incremental and pk and watermark is not None and existing is not None)
    if incremental:
        logger.info("Table %s: copying rows changed since %d (unix time) to %s.", plan.source_id, watermark, dest_id)
    else:
        reason = (
            "first run"
            if watermark is None or existing is None
            else ("incremental is off" if not plan.settings.incremental else "no primary key")
        )
        logger.info("Table %s: full copy to %s (%s).", plan.source_id, dest_id, reason)

    progress = Progress(plan.source_id, "copied")
    with storage_errors("syncing", plan.source_id):
        result = source.tables.export(
            plan.source_id,
            columns=columns,
            changed_since=watermark if incremental else None,
            changed_until=None,
            where_filters=[f.to_api() for f in plan.settings.where_filters],
            limit=None,
            gzip=True,
        )
        new_watermark = job_watermark(result.job, SYNC_OVERLAP_SECONDS, plan.source_id)
        source_file = source.files.detail(result.file_id)
        sliced = bool(source_file.get("isSliced", True))
        copied = destination.client.files.prepare(
            f"{table_name(dest_id)}.csv.gz",
            size_bytes=source_file.get("sizeBytes"),
            sliced=sliced,
            tags=COPY_TAGS,
        )
        destination.client.transfer.copy(source_file, copied, progress)
    logger.info("Table %s: copied %.2f MB of slices in %.1f s.", plan.source_id, progress.bytes / MB, progress.elapsed)
    job = destination.write(prepared, DataFile(copied["id"], headerless=sliced), incremental=incremental)
    destination.set_metadata(target)
    ctx.state.commit(
        plan.source_id, watermark=new_watermark, destination=dest_id, last_success=(job or {}).get("endTime")
    )
    logger.info(progress.summary("synced (incremental)" if incremental else "synced (full)", result_rows(job)))
    return 1 if incremental else 0

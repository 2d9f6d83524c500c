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
from typing import Any

from keboola.component.exceptions import UserException

from configuration import bucket_of, table_name
from state import SYNC_OVERLAP_SECONDS, job_watermark
from workflows.common import (
    BucketEnsurer,
    PlannedTable,
    Progress,
    RunContext,
    column_metadata_pairs,
    copy_metadata,
    create_table_from_header,
    metadata_pairs,
    pk_text,
    plan_tables,
    result_rows,
    storage_errors,
)

logger = logging.getLogger(__name__)

COPY_TAGS = ("storage-sync",)


def run(ctx: RunContext) -> None:
    ctx.state.save()  # out/state.json exists from the start: entries of other tables are carried over
    source = ctx.source_client()
    destination = ctx.destination_client()
    dest_conn = ctx.config.require("destination")
    plans = plan_tables(source, ctx.config.tables, mode="sync", default_bucket=dest_conn.bucket)
    _refuse_copy_onto_itself(ctx, source, destination, plans)
    source.preload_transfer()  # the file-storage SDKs load while the first export job runs
    if destination.provider != source.provider:
        destination.preload_transfer()
    logger.info("Syncing %d table(s): %s", len(plans), ", ".join(f"{p.source_id} -> {p.destination_id}" for p in plans))
    buckets = BucketEnsurer(destination)
    incremental_runs = 0
    for plan in plans:
        incremental_runs += sync_table(ctx, source, destination, buckets, plan)
    if incremental_runs:
        logger.info(
            "Note: incremental syncs copy new and changed rows only; rows deleted in the source stay in the "
            "destination until the next full copy."
        )
    ctx.state.save()
    logger.info("Sync finished: %d table(s).", len(plans))


def _refuse_copy_onto_itself(ctx: RunContext, source: Any, destination: Any, plans: list[PlannedTable]) -> None:
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


def sync_table(ctx: RunContext, source: Any, destination: Any, buckets: BucketEnsurer, plan: PlannedTable) -> int:
    """Sync one table; returns 1 when it was an incremental (changes only) sync, else 0."""
    dest_id = plan.destination_id
    pk = list(plan.primary_key)
    columns = list(plan.columns)

    buckets.ensure(bucket_of(dest_id), for_table=dest_id)
    with storage_errors("reading", dest_id):
        existing = destination.tables.detail(dest_id)
    if existing is not None:
        existing_pk = list(existing.get("primaryKey") or [])
        if sorted(existing_pk) != sorted(pk):
            raise UserException(
                f"Table {dest_id} has primary key [{', '.join(existing_pk)}]; the sync of {plan.source_id} needs "
                f"[{', '.join(pk)}]; change the primary key of {dest_id} (or drop the table to recreate it), or set "
                f"primaryKey."
            )

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
        prepared = destination.files.prepare(
            f"{table_name(dest_id)}.csv.gz",
            size_bytes=source_file.get("sizeBytes"),
            sliced=sliced,
            tags=COPY_TAGS,
        )
        destination.transfer.copy(source_file, prepared, progress)
        logger.info(
            "Table %s: copied %.2f MB of slices in %.1f s.", plan.source_id, progress.bytes / 2**20, progress.elapsed
        )
        load_columns = columns if sliced else None
        if existing is None:
            logger.info("Table %s: creating it %s.", dest_id, pk_text(pk))
            create_table_from_header(destination, dest_id, columns, pk, tags=COPY_TAGS)
        job = destination.tables.load(dest_id, prepared["id"], incremental=incremental, columns=load_columns)

    copy_metadata(
        destination,
        dest_id,
        ctx.metadata_provider,
        metadata_pairs(plan.detail.get("metadata")),
        column_metadata_pairs(plan.detail.get("columnMetadata"), columns),
    )
    ctx.state.commit(plan.source_id, watermark=new_watermark, destination=dest_id, last_success=job.get("endTime"))
    logger.info(progress.summary("synced (incremental)" if incremental else "synced (full)", result_rows(job)))
    return 1 if incremental else 0

"""Sync mode: source project -> destination project (same or another stack); the destination ends equal to the
source selection, row for row and column for column.

Per planned source table (``parallelism`` tables at a time, each isolated from the others' failures):
1. destination step, first half: bucket; the existing table's key and columns follow the source (new columns
   added, dropped ones dropped; a changed key fails, or rebuilds the table with ``schemaChanges: rebuild``);
2. the state's watermark applies only when it measured exactly this source table, destination table and
   selection (``state.Lineage``); otherwise a full copy, with the reason in the log;
3. transfer: export (rows changed since the watermark, or all) and copy the slices file storage to file storage
   without decompressing them;
4. destination step, second half: create or load (incremental upsert by primary key, or full); a typed source
   table is created typed (``tables-definition``, its native types when the backends match, else its base types)
   and its columns must keep their types (destination.py, types.py);
5. deletes: after an incremental load, keys in the destination that are no longer in the source selection are
   deleted (``deletes: propagate``, the default) or counted (``keep``); a full load needs none;
6. metadata, then the state commit (watermark = the export job's server start time minus an overlap).
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from keboola.component.exceptions import UserException

from configuration import Configuration, bucket_of, table_name
from state import SYNC_OVERLAP_SECONDS, Lineage, job_watermark
from workflows import types
from workflows.context import RunContext, storage_errors
from workflows.deletes import propagate_deletes
from workflows.destination import DataFile, Destination, TableTarget
from workflows.files import MB
from workflows.metadata import column_metadata_pairs, metadata_pairs
from workflows.plan import PlannedTable, plan_tables
from workflows.progress import Progress
from workflows.projects import project_key, same_project
from workflows.runner import TableOutcome, TableRunner, finish
from workflows.verify import VerifyResult, log_summary, verify_table, write_report

if TYPE_CHECKING:
    from storage_api import StorageClient

logger = logging.getLogger(__name__)

COPY_TAGS = ("storage-sync",)


@dataclass(frozen=True)
class SyncRun:
    """What every table of one sync shares."""

    ctx: RunContext
    source: StorageClient
    destination: Destination
    source_project: str  # "<stack>#<project id>"
    destination_project: str
    runner: TableRunner


def run(ctx: RunContext) -> None:
    ctx.state.save()  # out/state.json exists from the start: entries of other tables are carried over
    source = ctx.source_client()
    destination_client = ctx.destination_client()
    source_conn, dest_conn = ctx.config.require("source"), ctx.config.require("destination")
    plans = plan_tables(source, ctx.config.tables, mode="sync", default_bucket=dest_conn.bucket)
    with storage_errors("verifying the tokens"):
        source_project = project_key(source_conn.url, source.project_id)
        destination_project = project_key(dest_conn.url, destination_client.project_id)
    _refuse_copy_onto_itself(source, destination_client, source_conn.url, dest_conn.url, plans)
    _warn_of_tables_gone_from_source(ctx, source, destination_client, plans, source_project)
    source.preload_transfer()  # the file-storage SDKs load while the first export job runs
    if destination_client.provider != source.provider:
        destination_client.preload_transfer()
    logger.info("Syncing %d table(s): %s", len(plans), ", ".join(f"{p.source_id} -> {p.destination_id}" for p in plans))
    runner = TableRunner(ctx.config.parallelism, what="table(s)")
    shared = SyncRun(
        ctx=ctx,
        source=source,
        destination=Destination(destination_client, metadata_provider=ctx.metadata_provider, tags=COPY_TAGS),
        source_project=source_project,
        destination_project=destination_project,
        runner=runner,
    )
    outcomes = runner.run(plans, lambda plan: sync_table(shared, plan), label=lambda plan: plan.source_id)
    ctx.state.save()
    finish(outcomes, "table(s)")
    logger.info("Sync finished: %d table(s).", len(plans))
    if ctx.config.verify:
        results = verify_tables(ctx.config.parallelism, source, destination_client, plans)
        write_report(results, ctx.files_out)
        differ = log_summary(results)
        if differ:
            raise UserException(
                f"Verification after the sync found {differ} of {len(plans)} table(s) that differ from the source "
                f"(the file sync_verification.csv in Storage, Files, says how); run the sync again, and if a table "
                f"still differs while nothing writes to the source, report it."
            )


def _refuse_copy_onto_itself(
    source: StorageClient, destination: StorageClient, source_url: str, destination_url: str, plans: list[PlannedTable]
) -> None:
    onto_itself = [p for p in plans if p.source_id == p.destination_id]
    if not onto_itself:
        return
    with storage_errors("verifying the tokens"):
        same = same_project(source_url, source.verify_token(), destination_url, destination.verify_token())
    if same:
        raise UserException(
            f"The source and destination are the same project, so table {onto_itself[0].source_id} would be copied "
            f"onto itself; set destination.bucket or the table's destination."
        )


def _warn_of_tables_gone_from_source(
    ctx: RunContext,
    source: StorageClient,
    destination: StorageClient,
    plans: list[PlannedTable],
    source_project: str,
) -> None:
    """A table an earlier run copied from a selected bucket that no longer exists in the source: its copy is kept
    (a table is not dropped on the strength of a listing) and the log says so every run until it is dropped; then
    its state entry goes."""
    buckets = {item.source for item in ctx.config.tables if item.source_is_bucket}
    planned = {plan.source_id for plan in plans}
    for source_id in ctx.state.source_ids():
        entry = ctx.state.get(source_id)
        if source_id in planned or bucket_of(source_id) not in buckets or entry is None or entry.lineage is None:
            continue
        if entry.lineage.source != source_project or not entry.destination:
            continue
        with storage_errors("reading", source_id):
            if source.tables.detail(source_id) is not None:
                continue  # still there, only not planned (an alias skipped, say)
        with storage_errors("reading", entry.destination):
            copy = destination.tables.detail(entry.destination)
        if copy is None or copy.get("created") != entry.lineage.destination_created:
            ctx.state.forget(source_id)  # the copy is gone (or is another table now): nothing left to say
            continue
        logger.warning(
            "Table %s no longer exists in source bucket %s; its copy %s, made by an earlier run, is kept: drop it "
            "in the destination if it is no longer needed.",
            source_id,
            bucket_of(source_id),
            entry.destination,
        )


def _selection(plan: PlannedTable) -> dict:
    """What was copied of the source table: the columns exported (a column new to them, configured or added in the
    source, invalidates the watermark: its values in older rows were never copied) and the filters."""
    return {"columns": list(plan.columns), "whereFilters": [f.to_api() for f in plan.settings.where_filters]}


def sync_table(run: SyncRun, plan: PlannedTable) -> TableOutcome:
    ctx, source, destination = run.ctx, run.source, run.destination
    dest_id = plan.destination_id
    pk = list(plan.primary_key)
    columns = list(plan.columns)
    metadata = metadata_pairs(plan.detail.get("metadata"))
    column_metadata = column_metadata_pairs(plan.detail.get("columnMetadata"), columns)
    source_types = None
    if types.is_typed(plan.detail):
        with storage_errors("reading the backend of", plan.source_id):
            source_types = types.resolve_table_types(source, plan.detail)
        # the types travel as the definition; Storage's KBC.datatype.* entries describe the source's backend
        metadata = types.without_type_metadata(metadata)
        column_metadata = {
            c: kept for c, pairs in column_metadata.items() if (kept := types.without_type_metadata(pairs))
        }
    target = TableTarget(
        table_id=dest_id,
        origin=f"source table {plan.source_id}",
        columns=plan.columns,
        primary_key=plan.primary_key,
        follows_source=True,
        rebuild=plan.settings.schema_changes == "rebuild",
        metadata=metadata,
        column_metadata=column_metadata,
        types=source_types,
        exact_nulls=source_types is not None,
    )
    prepared = destination.prepare(
        target,
        before_adding_columns=lambda added: ctx.state.require_full_copy(
            plan.source_id, f"column(s) {', '.join(added)} added to the destination table, empty in its rows"
        ),
    )
    existing = prepared.existing
    if source_types is not None:
        with storage_errors("verifying the source token"):
            types.warn_fractions_cut(source, plan.source_id, source_types.select(columns), "copied")
    # deleted rows are found by comparing the keys both sides export, as text: a key the two backends print
    # differently cannot be matched, so such a table is copied in full
    unmatched_key = types.key_text_differs(source_types, pk, prepared.backend)

    lineage = Lineage(
        source=run.source_project,
        source_created=plan.detail.get("created"),
        destination=run.destination_project,
        destination_table=dest_id,
        destination_created=(existing or {}).get("created"),
        selection=_selection(plan),
    )
    watermark, reason = ctx.state.resume_point(plan.source_id, lineage)
    if not pk:
        logger.warning(
            "Table %s has no primary key, so it is fully reloaded every run (an incremental load without a primary "
            "key would duplicate rows).",
            plan.source_id,
        )
    incremental = bool(
        plan.settings.incremental and pk and watermark is not None and existing is not None and not unmatched_key
    )
    if incremental:
        logger.info("Table %s: copying rows changed since %d (unix time) to %s.", plan.source_id, watermark, dest_id)
    else:
        if watermark is not None:
            reason = "incremental is off" if not plan.settings.incremental else "no primary key"
            if plan.settings.incremental and pk and unmatched_key:
                reason = (
                    f"key column {unmatched_key} is {source_types.column(unmatched_key).basetype}, which "
                    f"{types.backend_name(source_types.backend)} and {types.backend_name(prepared.backend)} export "
                    f"as different text, so deleted rows cannot be matched incrementally"
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
        # an incremental copy is small: its records are counted on the way (a full load's count is the table's)
        counted = destination.client.transfer.copy(source_file, copied, progress, count_records=incremental)
    logger.info("Table %s: copied %.2f MB of slices in %.1f s.", plan.source_id, progress.bytes / MB, progress.elapsed)
    run.runner.check_stop()
    written = destination.write(prepared, DataFile(copied["id"], headerless=sliced), incremental=incremental)
    deleted = _deletes(run, plan, pk) if incremental else None
    destination.set_metadata(target)
    total = written.rows_total
    if deleted:
        total = (destination.read(dest_id) or {}).get("rowsCount", total)
    committed = replace(lineage, destination_created=written.table.get("created"))
    ctx.state.commit(
        plan.source_id,
        watermark=new_watermark,
        destination=dest_id,
        lineage=committed,
        last_success=(written.job or {}).get("endTime"),
    )
    moved = counted if incremental else total  # a full load leaves exactly the copied rows
    logger.info(
        progress.summary("synced (incremental)" if incremental else "synced (full)", moved)
        + f" The destination holds {'n/a' if total is None else total} rows."
    )
    return TableOutcome(
        plan.source_id,
        "incremental" if incremental else "full",
        rows=moved,
        deleted=deleted,
        total=total,
        bytes=progress.bytes,
    )


def _deletes(run: SyncRun, plan: PlannedTable, pk: list[str]) -> int:
    """Propagate (or, with ``deletes: keep``, only count) the rows deleted from the source selection."""
    apply = plan.settings.deletes != "keep"
    run.runner.check_stop()
    with tempfile.TemporaryDirectory(prefix="storage-sync-keys-") as work_dir:
        outcome = propagate_deletes(
            run.source,
            run.destination.client,
            source_id=plan.source_id,
            destination_id=plan.destination_id,
            key_columns=pk,
            where_filters=[f.to_api() for f in plan.settings.where_filters],
            apply=apply,
            work_dir=Path(work_dir),
        )
    return outcome.deleted


def verify_tables(
    parallelism: int, source: StorageClient, destination: StorageClient, plans: list[PlannedTable]
) -> list[VerifyResult]:
    """Compare every planned table with its destination (read-only), in plan order. A typed table whose compared
    columns the two backends print differently is not compared (a warning says why)."""
    results: dict[str, VerifyResult] = {}

    def work(plan: PlannedTable) -> TableOutcome:
        why = _not_comparable(source, destination, plan)
        if why:
            logger.warning("Table %s: not verified: %s.", plan.source_id, why)
            return TableOutcome(plan.source_id, "not verified")
        with tempfile.TemporaryDirectory(prefix="storage-sync-verify-") as work_dir:
            results[plan.source_id] = verify_table(
                source,
                destination,
                source_id=plan.source_id,
                destination_id=plan.destination_id,
                columns=plan.columns,
                key_columns=plan.primary_key,
                where_filters=[f.to_api() for f in plan.settings.where_filters],
                work_dir=Path(work_dir),
            )
        return TableOutcome(plan.source_id, "verify")

    outcomes = TableRunner(parallelism, what="table(s) verified").run(plans, work, label=lambda plan: plan.source_id)
    finish(outcomes, "table(s)", summary=False, verifying=True)
    return [results[p.source_id] for p in plans if p.source_id in results]


def _not_comparable(source: StorageClient, destination: StorageClient, plan: PlannedTable) -> str | None:
    """Why the verification (a text comparison of the key columns, or of all columns without a key: keys.py)
    cannot compare a typed table with its copy in another backend: a NUMERIC, FLOAT or TIMESTAMP column, which
    the backends export as different text (12.50 / 12.5, 2024-01-31 10:20:30 / ...+00:00); None when it can."""
    if not types.is_typed(plan.detail):
        return None
    with storage_errors("reading", plan.destination_id):
        detail = destination.tables.detail(plan.destination_id)
        if not types.is_typed(detail):
            return None
        source_types = types.resolve_table_types(source, plan.detail)
        backend = types.resolve_backend(destination, detail)
    column = types.key_text_differs(source_types, plan.primary_key or plan.columns, backend)
    if column is None:
        return None
    return (
        f"column {column} is {source_types.column(column).basetype}, which {types.backend_name(source_types.backend)} "
        f"and {types.backend_name(backend)} export as different text, and rows are compared as text"
    )


def verify_configured(config: Configuration, source: StorageClient, destination: StorageClient) -> list[VerifyResult]:
    """The ``verify`` sync action: plan the configured tables as a sync would and compare them; writes nothing."""
    plans = plan_tables(source, config.tables, mode="sync", default_bucket=config.require("destination").bucket)
    results = verify_tables(config.parallelism, source, destination, plans)
    log_summary(results)
    return results

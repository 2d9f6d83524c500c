"""Verification of a synced table: does the destination hold the source selection? Changes nothing in either project.

``verify_table`` compares
- the columns (the source selection's vs the destination table's, as sets and in order),
- the primary key (the selection's effective key vs the destination's, in any order),
- the rows: both sides' key columns are exported at the same time (the source with the selection's whereFilters)
  and diffed with DuckDB (keys.py): row counts, keys missing in / extra in the destination, a sample of each.
  The counts come from the exports, not ``rowsCount``: a selection may be filtered. A table without a primary
  key is compared by all selected columns, as a multiset (a row twice in the source and once in the destination
  is one missing row).
``write_report`` writes the results as an output table (CSV with a header and a manifest); ``log_summary`` logs a
line per table.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from keboola.component.dao import FileDefinition

from workflows.context import storage_errors
from workflows.keys import DEFAULT_MEMORY_LIMIT, DEFAULT_THREADS, KeyDiff, export_key_pair, export_keys

if TYPE_CHECKING:
    from storage_api import StorageClient

logger = logging.getLogger(__name__)

SAMPLE_SIZE = 10
REPORT_COLUMNS = (
    "source_table",
    "destination_table",
    "status",
    "source_rows",
    "destination_rows",
    "missing_in_destination",
    "extra_in_destination",
    "columns_match",
    "primary_key_match",
    "sample_missing",
    "sample_extra",
    "detail",
)
OK, DIFFERS, MISSING = "ok", "differs", "missing"


@dataclass(frozen=True)
class VerifyResult:
    """One table's comparison. Counts are None when they could not be computed (see ``detail``).

    ``columns_match`` in the report: ``true`` (same columns, same order), ``order`` (same columns, another order:
    loads match columns by name, so this alone is not a difference) or ``false``."""

    source_table: str
    destination_table: str
    status: str  # ok | differs | missing
    key_columns: tuple[str, ...]  # what rows were compared by
    source_rows: int | None = None
    destination_rows: int | None = None
    missing_in_destination: int | None = None
    extra_in_destination: int | None = None
    columns_same_set: bool | None = None
    columns_same_order: bool | None = None
    primary_key_match: bool | None = None
    sample_missing: tuple[tuple[str | None, ...], ...] = ()
    sample_extra: tuple[tuple[str | None, ...], ...] = ()
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def columns_match(self) -> str:
        if self.columns_same_set is None:
            return ""
        if not self.columns_same_set:
            return "false"
        return "true" if self.columns_same_order else "order"

    def report_row(self) -> dict[str, str]:
        return {
            "source_table": self.source_table,
            "destination_table": self.destination_table,
            "status": self.status,
            "source_rows": _text(self.source_rows),
            "destination_rows": _text(self.destination_rows),
            "missing_in_destination": _text(self.missing_in_destination),
            "extra_in_destination": _text(self.extra_in_destination),
            "columns_match": self.columns_match,
            "primary_key_match": _text(self.primary_key_match),
            "sample_missing": _sample_json(self.sample_missing),
            "sample_extra": _sample_json(self.sample_extra),
            "detail": self.detail,
        }


def verify_table(
    source: StorageClient,
    destination: StorageClient,
    *,
    source_id: str,
    destination_id: str,
    columns: Sequence[str],
    key_columns: Sequence[str],
    where_filters: Sequence[Mapping[str, Any]],
    work_dir: Path,
    source_detail: Mapping[str, Any] | None = None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    threads: int = DEFAULT_THREADS,
) -> VerifyResult:
    """Compare the source selection (``columns``, ``key_columns`` = its effective primary key, ``where_filters``
    in API form) with the destination table. Read-only; client failures become ``UserException``.

    ``source_detail``: the source table's detail if the caller has it (``PlannedTable.detail``), else it is read.
    NULL and '' are told apart only when both tables are typed: an untyped table stores a typed one's NULL as ''.
    """
    columns, key_columns = tuple(columns), tuple(key_columns)
    keys = key_columns or columns
    base = {"source_table": source_id, "destination_table": destination_id, "key_columns": keys}
    work = Path(tempfile.mkdtemp(prefix="verify-", dir=work_dir))
    try:
        with storage_errors("reading", destination_id):
            detail = destination.tables.detail(destination_id)
        if detail is None:
            with storage_errors("exporting the keys of", source_id):
                source_keys = export_keys(source, source_id, keys, work / "source", where_filters=where_filters)
            with KeyDiff(work, memory_limit=memory_limit, threads=threads) as diff:
                rows = diff.count(source_keys)
            return VerifyResult(
                **base, status=MISSING, source_rows=rows, detail=f"table {destination_id} does not exist"
            )

        if source_detail is None:
            with storage_errors("reading", source_id):
                source_detail = source.tables.detail(source_id) or {}
        null_as_empty = not (source_detail.get("isTyped") and detail.get("isTyped"))
        dest_columns = tuple(detail.get("columns") or ())
        dest_pk = tuple(detail.get("primaryKey") or ())
        notes = _column_notes(columns, dest_columns)
        same_set, same_order = set(columns) == set(dest_columns), columns == dest_columns
        pk_match = sorted(key_columns) == sorted(dest_pk)
        if not pk_match:
            notes.append(
                f"primary key [{', '.join(key_columns)}] in the source, [{', '.join(dest_pk)}] in the destination"
            )
        checks = {"columns_same_set": same_set, "columns_same_order": same_order, "primary_key_match": pk_match}
        absent = [c for c in keys if c not in dest_columns]
        if absent:
            notes.append(f"rows not compared: the destination lacks the key column(s) {', '.join(absent)}")
            return VerifyResult(**base, status=DIFFERS, **checks, detail="; ".join(notes))

        with storage_errors("exporting the keys of", f"{source_id} / {destination_id}"):
            source_keys, dest_keys = export_key_pair(
                (source, source_id, where_filters), (destination, destination_id, ()), keys, work
            )
        how = {"multiset": not key_columns, "null_as_empty": null_as_empty}
        with KeyDiff(work, memory_limit=memory_limit, threads=threads) as diff:
            counts = {
                "source_rows": diff.count(source_keys),
                "destination_rows": diff.count(dest_keys),
                "missing_in_destination": diff.difference("missing", source_keys, dest_keys, **how),
                "extra_in_destination": diff.difference("extra", dest_keys, source_keys, **how),
            }
            samples = {
                "sample_missing": diff.sample("missing", SAMPLE_SIZE),
                "sample_extra": diff.sample("extra", SAMPLE_SIZE),
            }
    finally:
        shutil.rmtree(work, ignore_errors=True)

    if counts["source_rows"] != counts["destination_rows"]:
        notes.append(
            f"{counts['source_rows']} rows in the source selection, {counts['destination_rows']} in the destination"
        )
    for what, label in (("missing_in_destination", "missing in"), ("extra_in_destination", "extra in")):
        if counts[what]:
            notes.append(f"{counts[what]} row(s) {label} the destination")
    rows_equal = not counts["missing_in_destination"] and not counts["extra_in_destination"]
    equal = rows_equal and counts["source_rows"] == counts["destination_rows"] and same_set and pk_match
    return VerifyResult(
        **base,
        status=OK if equal else DIFFERS,
        **counts,
        **checks,
        sample_missing=tuple(samples["sample_missing"]),
        sample_extra=tuple(samples["sample_extra"]),
        detail="; ".join(notes),
    )


def _column_notes(columns: Sequence[str], dest_columns: Sequence[str]) -> list[str]:
    missing = [c for c in columns if c not in dest_columns]
    extra = [c for c in dest_columns if c not in columns]
    notes = []
    if missing:
        notes.append(f"column(s) missing in the destination: {', '.join(missing)}")
    if extra:
        notes.append(f"column(s) only in the destination: {', '.join(extra)}")
    if not missing and not extra and tuple(columns) != tuple(dest_columns):
        notes.append("same columns in another order")
    return notes


# output ---------------------------------------------------------------------------------------------------------
REPORT_TAGS = ("storage-sync", "sync-verification")


def write_report(results: Sequence[VerifyResult], files_out: Path, name: str = "sync_verification") -> Path:
    """``out/files/<name>.csv`` (a header, one row per table) and its file manifest (tags ``REPORT_TAGS``), written
    atomically; Keboola uploads it to the project's Storage files. A file, not an output table: a table would
    need a destination bucket in the job's own project, which this component does not have. Returns the CSV path."""
    files_out = Path(files_out)
    files_out.mkdir(parents=True, exist_ok=True)
    path = files_out / f"{name}.csv"
    partial = files_out / f".{name}.csv.partial"
    with partial.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=REPORT_COLUMNS, lineterminator="\n", quoting=csv.QUOTE_ALL)
        writer.writeheader()
        writer.writerows(result.report_row() for result in results)
    os.replace(partial, path)
    manifest = FileDefinition(str(path), tags=list(REPORT_TAGS)).get_manifest_dictionary()
    manifest_partial = files_out / f".{name}.csv.manifest.partial"
    manifest_partial.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    os.replace(manifest_partial, path.with_name(path.name + ".manifest"))
    return path


def log_summary(results: Sequence[VerifyResult]) -> int:
    """One log line per table (warnings for differences) and a total; returns how many tables are not ok."""
    for result in results:
        rows = "" if result.source_rows is None else f", {result.source_rows} row(s) in the source selection"
        if result.ok:
            extra = f" ({result.detail})" if result.detail else ""
            logger.info("Verified %s -> %s: ok%s%s.", result.source_table, result.destination_table, rows, extra)
            continue
        samples = [
            f"e.g. missing {_sample_json(result.sample_missing[:3])}" if result.sample_missing else "",
            f"e.g. extra {_sample_json(result.sample_extra[:3])}" if result.sample_extra else "",
        ]
        text = "; ".join(p for p in [result.detail, *samples] if p)
        logger.warning(
            "Verified %s -> %s: %s%s: %s.", result.source_table, result.destination_table, result.status, rows, text
        )
    bad = sum(not r.ok for r in results)
    logger.info("Verification: %d of %d table(s) match.", len(results) - bad, len(results))
    return bad


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _sample_json(sample: Sequence[tuple]) -> str:
    """Keys as JSON: a list of values for a one-column key, else a list of lists (NULL as null)."""
    if not sample:
        return "[]"
    keys = [row[0] if len(row) == 1 else list(row) for row in sample]
    return json.dumps(keys, ensure_ascii=False)

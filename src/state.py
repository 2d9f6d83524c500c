"""The component state: per-table watermarks, read from in/state.json and committed to out/state.json.

Format::

    {"version": 2,
     "tables": {"<source table id>": {"watermark": <unix int>, "destination": "<table id>", "lastSuccess": "<iso>",
                                      "lineage": {"source": "<stack>#<project>", "sourceCreated": "<iso>",
                                                  "destination": "<stack>#<project>", "destinationCreated": "<iso>",
                                                  "selection": {"columns": [...], "whereFilters": [...]}}}}}

Rules:

- a watermark is valid only for what it measured (its ``lineage``): the same source project and table (its
  creation time), the same destination project and table (its creation time) and the same selection. Anything
  else means a full copy, and ``resume_point`` says why in one phrase for the log. Version-1 states (no lineage)
  are read and their entries treated as unknown lineage: each table is copied fully once;

- entries of tables that this run does not process are carried over unchanged;
- an entry changes only through ``commit``, which the workflows call after the table's data is committed
  (destination load job succeeded / output files and manifest in place), and ``commit`` writes the whole state
  at once, so an interruption later never loses the progress of tables committed earlier;
- a table that fails is never committed, so it keeps its old watermark;
- watermarks come from the Storage API's job timestamps (server time), never from the local clock.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from keboola.component.exceptions import UserException

logger = logging.getLogger(__name__)

STATE_VERSION = 2
READABLE_VERSIONS = (1, 2)
PENDING_LOADS = "pendingLoads"  # top-level key: destination table id -> {jobId, fingerprint, submitted}
SYNC_OVERLAP_SECONDS = 300
EXPORT_OVERLAP_SECONDS = 60


@dataclass(frozen=True)
class Lineage:
    """What a watermark measured. ``source``/``destination`` identify projects as ``<stack url>#<project id>``;
    the ``*_created`` fields are the tables' server creation times (None: the destination table does not exist)."""

    source: str
    source_created: str | None
    destination: str | None = None
    destination_table: str | None = None
    destination_created: str | None = None
    selection: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "sourceCreated": self.source_created,
            "destination": self.destination,
            "destinationTable": self.destination_table,
            "destinationCreated": self.destination_created,
            "selection": copy.deepcopy(dict(self.selection)),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Lineage | None:
        if not isinstance(data, Mapping) or not isinstance(data.get("source"), str):
            return None
        selection = data.get("selection")
        return cls(
            source=data["source"],
            source_created=data.get("sourceCreated"),
            destination=data.get("destination"),
            destination_table=data.get("destinationTable"),
            destination_created=data.get("destinationCreated"),
            selection=selection if isinstance(selection, Mapping) else {},
        )

    def difference(self, recorded: Lineage) -> str | None:
        """Why a watermark recorded with ``recorded`` does not apply now (None: it does)."""
        if recorded.source != self.source:
            return "the source is another project than the one the state was recorded for"
        if recorded.source_created != self.source_created:
            return "the source table was recreated since the last run"
        if recorded.destination != self.destination:
            return "the destination is another project than the one the state was recorded for"
        if recorded.destination_table != self.destination_table:
            return "the destination table changed since the last run"
        if self.destination_table is not None and self.destination_created is None:
            return "the destination table does not exist"
        if recorded.destination_created != self.destination_created:
            return "the destination table was recreated since the last run"
        if recorded.selection.get("whereFilters") != self.selection.get("whereFilters"):
            return "the selection (columns or whereFilters) changed since the last run"
        recorded_columns, columns = recorded.selection.get("columns"), self.selection.get("columns")
        new_columns = _new_columns(recorded_columns, columns)
        if new_columns:
            return f"the selection (columns or whereFilters) changed since the last run: new column(s) {new_columns}"
        if _order_changed(recorded_columns, columns):
            # Storage appends a column added again: a column dropped and added again since the last run
            return "the source's columns changed their order since the last run (a column dropped and added again)"
        return None


def _new_columns(recorded: Any, current: Any) -> str:
    """Columns copied now that the watermark did not measure (fewer columns need no new copy)."""
    if recorded == current:
        return ""
    if not isinstance(recorded, list) or not isinstance(current, list):
        return "(all)"
    return ", ".join(c for c in current if c not in recorded)


def _order_changed(recorded: Any, current: Any) -> bool:
    """Whether the columns both lists hold stand in another order."""
    if not isinstance(recorded, list) or not isinstance(current, list):
        return False
    return [c for c in recorded if c in current] != [c for c in current if c in recorded]


@dataclass(frozen=True)
class TableState:
    watermark: int | None
    destination: str | None
    last_success: str | None
    lineage: Lineage | None = None
    full_copy_reason: str | None = None  # why the watermark was withdrawn (require_full_copy)


class StateStore:
    """In-memory state with commit-per-table; ``writer`` persists the whole state dict (out/state.json)."""

    def __init__(self, initial: Mapping | None, writer: Callable[[dict], None]):
        self._writer = writer
        self._tables: dict[str, dict] = {}
        self._extra: dict = {}
        self._lock = threading.RLock()  # tables commit from several threads
        self._load(initial or {})

    def _load(self, initial: Mapping) -> None:
        if not isinstance(initial, Mapping):
            logger.warning("The state is not a JSON object; starting without watermarks (tables are copied fully).")
            return
        if not initial:
            return
        version = initial.get("version")
        tables = initial.get("tables")
        if version not in READABLE_VERSIONS or not isinstance(tables, Mapping):
            logger.warning(
                "The state has an unknown format (version %r); starting without watermarks (tables are copied fully).",
                version,
            )
            return
        # keep unknown top-level keys (forward compatible)
        self._extra = {k: copy.deepcopy(v) for k, v in initial.items() if k not in ("version", "tables")}
        for table_id, entry in tables.items():
            if isinstance(entry, Mapping):
                self._tables[str(table_id)] = dict(entry)
            else:
                logger.warning("Ignoring an invalid state entry for table %s.", table_id)

    # -- reading ------------------------------------------------------------------------------------------
    def get(self, source_id: str) -> TableState | None:
        entry = self._tables.get(source_id)
        if entry is None:
            return None
        watermark = entry.get("watermark")
        if isinstance(watermark, bool) or not isinstance(watermark, int):
            watermark = None
        return TableState(
            watermark=watermark,
            destination=entry.get("destination"),
            last_success=entry.get("lastSuccess"),
            lineage=Lineage.from_dict(entry.get("lineage")),
            full_copy_reason=entry.get("fullCopyReason") if isinstance(entry.get("fullCopyReason"), str) else None,
        )

    def source_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._tables)

    def resume_point(self, source_id: str, lineage: Lineage) -> tuple[int | None, str]:
        """The table's watermark when it measured exactly ``lineage``, else None and the reason for a full copy."""
        entry = self.get(source_id)
        if entry is None:
            return None, "first run"
        if entry.watermark is None:  # the lineage's reason first: it says what changed in the source
            difference = lineage.difference(entry.lineage) if entry.lineage else None
            return None, difference or entry.full_copy_reason or "first run"
        if entry.lineage is None:
            return None, "the state does not say what its watermark measured (written by an older version)"
        difference = lineage.difference(entry.lineage)
        if difference:
            return None, difference
        return entry.watermark, ""

    def to_dict(self) -> dict:
        return {**copy.deepcopy(self._extra), "version": STATE_VERSION, "tables": copy.deepcopy(self._tables)}

    # -- writing ------------------------------------------------------------------------------------------
    def commit(
        self,
        source_id: str,
        *,
        watermark: int | None,
        destination: str,
        lineage: Lineage | None = None,
        last_success: str | None = None,
    ) -> None:
        """Record a table whose data is committed, and persist the whole state right away (thread-safe)."""
        entry: dict[str, Any] = {"destination": destination, "lastSuccess": last_success or utc_now_iso()}
        if watermark is not None:
            entry["watermark"] = int(watermark)
        if lineage is not None:
            entry["lineage"] = lineage.to_dict()
        with self._lock:
            self._tables[source_id] = entry
            self._writer(self.to_dict())

    def require_full_copy(self, source_id: str, reason: str) -> None:
        """Withdraw the table's watermark, persisted at once, before a change that only a full copy repairs (columns
        added to the destination table are empty in its rows): a run stopped after the change copies in full."""
        with self._lock:
            entry = self._tables.get(source_id)
            if entry is not None and entry.pop("watermark", None) is not None:
                entry["fullCopyReason"] = reason
                self._writer(self.to_dict())

    def forget(self, source_id: str) -> None:
        with self._lock:
            if self._tables.pop(source_id, None) is not None:
                self._writer(self.to_dict())

    # -- loads submitted but not seen finished (import: exactly once across runs) -----------------------------
    def pending_load(self, destination: str) -> dict | None:
        """``{"jobId", "fingerprint"}`` of a load into ``destination`` that a stopped run submitted, if any."""
        entry = (self._extra.get(PENDING_LOADS) or {}).get(destination)
        return dict(entry) if isinstance(entry, Mapping) and entry.get("jobId") is not None else None

    def remember_load(self, destination: str, *, job_id: Any, fingerprint: str) -> None:
        """Persist a submitted load before waiting for it, so that a stopped run's next run does not load it again."""
        with self._lock:
            pending = self._extra.setdefault(PENDING_LOADS, {})
            pending[destination] = {"jobId": job_id, "fingerprint": fingerprint, "submitted": utc_now_iso()}
            self._writer(self.to_dict())

    def forget_load(self, destination: str) -> None:
        with self._lock:
            pending = self._extra.get(PENDING_LOADS) or {}
            if pending.pop(destination, None) is not None:
                if not pending:
                    self._extra.pop(PENDING_LOADS, None)
                self._writer(self.to_dict())

    def save(self) -> None:
        with self._lock:
            self._writer(self.to_dict())


# ---------------------------------------------------------------------------------------------------------------
# server time


def parse_server_time(value: str) -> datetime:
    """Parse a Storage API timestamp such as ``2017-02-13T16:41:18+0100`` (also ``+01:00``/``Z``) to aware UTC."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"not a timestamp: {value!r}")
    parsed = datetime.fromisoformat(value.strip())
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def watermark_from_server_time(value: str, overlap_seconds: int) -> int:
    """Unix watermark = server timestamp minus a safety overlap (the local clock is never used)."""
    return int(parse_server_time(value).timestamp()) - int(overlap_seconds)


def job_watermark(job: Mapping | None, overlap_seconds: int, table_id: str) -> int:
    """Watermark from an export job's server times: ``startTime`` (else ``createdTime``) minus the overlap."""
    job = job or {}
    for key in ("startTime", "createdTime"):
        value = job.get(key)
        if value:
            try:
                return watermark_from_server_time(value, overlap_seconds)
            except ValueError:
                continue
    raise UserException(
        f"The export job of table {table_id} (job {job.get('id')}) has no valid server start time, so no safe "
        f"watermark can be stored; run the job again and report it to Keboola support if it repeats."
    )


def utc_now_iso() -> str:
    """Informational timestamp (``lastSuccess``); never used as a watermark."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()

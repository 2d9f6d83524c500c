"""The component state: per-table watermarks, read from in/state.json and committed to out/state.json.

Format::

    {"version": 1,
     "tables": {"<source table id>": {"watermark": <unix int>, "destination": "<table id>", "lastSuccess": "<iso>"}}}

Rules:

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from keboola.component.exceptions import UserException

logger = logging.getLogger(__name__)

STATE_VERSION = 1
SYNC_OVERLAP_SECONDS = 300
EXPORT_OVERLAP_SECONDS = 60


@dataclass(frozen=True)
class TableState:
    watermark: int | None
    destination: str | None
    last_success: str | None


class StateStore:
    """In-memory state with commit-per-table; ``writer`` persists the whole state dict (out/state.json)."""

    def __init__(self, initial: Mapping | None, writer: Callable[[dict], None]):
        self._writer = writer
        self._tables: dict[str, dict] = {}
        self._extra: dict = {}
        self._load(initial or {})

    def _load(self, initial: Mapping) -> None:
        if not isinstance(initial, Mapping):
            logger.warning("The state is not a JSON object; starting without watermarks (tables are copied fully).")
            return
        if not initial:
            return
        version = initial.get("version")
        tables = initial.get("tables")
        if version != STATE_VERSION or not isinstance(tables, Mapping):
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
            watermark=watermark, destination=entry.get("destination"), last_success=entry.get("lastSuccess")
        )

    def watermark(self, source_id: str, destination: str | None = None) -> int | None:
        """The table's watermark; None when there is none, or when it was recorded for another destination."""
        entry = self.get(source_id)
        if entry is None:
            return None
        if destination is not None and entry.destination not in (None, destination):
            return None
        return entry.watermark

    def to_dict(self) -> dict:
        return {**copy.deepcopy(self._extra), "version": STATE_VERSION, "tables": copy.deepcopy(self._tables)}

    # -- writing ------------------------------------------------------------------------------------------
    def commit(
        self, source_id: str, *, watermark: int | None, destination: str, last_success: str | None = None
    ) -> None:
        """Record a table whose data is committed, and persist the whole state right away."""
        entry = {"destination": destination, "lastSuccess": last_success or utc_now_iso()}
        if watermark is not None:
            entry["watermark"] = int(watermark)
        self._tables[source_id] = entry
        self.save()

    def save(self) -> None:
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

"""Progress of one table's transfer: a thread-safe byte counter that logs a line every 30 s, and the summary."""

from __future__ import annotations

import logging
import threading
import time

from workflows.files import MB

logger = logging.getLogger(__name__)

PROGRESS_LOG_INTERVAL = 30.0  # seconds between "still transferring" lines


class Progress:
    """Byte counter passed to the transfer manager (thread-safe); logs a line every ``interval`` seconds."""

    def __init__(self, table_id: str, action: str, interval: float = PROGRESS_LOG_INTERVAL):
        self.table_id = table_id
        self.action = action
        self.interval = interval
        self.started = time.monotonic()
        self.bytes = 0
        self._last_log = self.started
        self._lock = threading.Lock()

    def __call__(self, num_bytes: int) -> None:
        with self._lock:
            self.bytes += int(num_bytes)
            now = time.monotonic()
            if now - self._last_log < self.interval:
                return
            self._last_log = now
            done = self.bytes
        elapsed = now - self.started
        logger.info(
            "Table %s: %s %.1f MB so far (%.1f MB/s).", self.table_id, self.action, done / MB, done / MB / elapsed
        )

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def summary(self, verb: str, rows: int | None = None, num_bytes: int | None = None) -> str:
        elapsed = max(self.elapsed, 1e-6)
        size = self.bytes if num_bytes is None else num_bytes
        rows_text = f"{rows} rows" if rows is not None else "rows n/a"
        return (
            f"Table {self.table_id}: {verb} {rows_text}, {size / MB:.2f} MB in {elapsed:.1f} s "
            f"({size / MB / elapsed:.2f} MB/s)."
        )

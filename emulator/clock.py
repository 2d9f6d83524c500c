"""The server clock of one emulated stack: real UTC time plus an offset that tests move forward.

Every timestamp the Storage API reports or compares (job ``createdTime/startTime/endTime``, table ``created``,
``lastImportDate``, ``lastChangeDate``, the rows' ``_timestamp``, ``changedSince``/``changedUntil`` and relative
dates like ``-1 hour``, file, bucket, token and metadata times) comes from ``Clock.now()``, so
``advance(3600)`` makes "an hour pass" for all of them at once without sleeping. File storage credentials and
presigned URLs keep real time: the storage servers (moto, Azurite, the GCS emulator) check them against theirs.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class Clock:
    def __init__(self) -> None:
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    @property
    def offset_seconds(self) -> float:
        return self._offset.total_seconds()

    def advance(self, seconds: float) -> datetime:
        """Move the clock ``seconds`` forward (never back: server time does not run backwards); returns now."""
        seconds = float(seconds)
        if not seconds >= 0:  # also refuses NaN
            raise ValueError("the clock only moves forward: seconds must be >= 0")
        with self._lock:
            self._offset += timedelta(seconds=seconds)
        return self.now()

    def reset(self) -> None:
        """Back to real time. For test isolation only (tests sharing one emulator): stored timestamps stay as they
        are, so data written before may look younger than "now"."""
        with self._lock:
            self._offset = timedelta(0)

"""Asynchronous storage jobs.

A storage job goes ``waiting -> processing -> success | error`` and nothing else (APIB "Available Statuses").
Jobs on the same table run one after another in submission order ("Asynchronous imports requested on the same
table will be serialized", APIB); jobs on different tables run in parallel on a thread pool.

``job_delay`` is a minimum duration of every job (seconds, settable at runtime) so that tests can watch a job in
``waiting`` and ``processing``: the first half of the delay is spent waiting, the rest (minus the real work) in
processing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from .errors import ApplicationError, StorageError

log = logging.getLogger("emulator.jobs")

STATUSES = ("waiting", "processing", "success", "error")


@dataclass
class Job:
    id: int
    project_id: int
    operation_name: str
    table_id: str | None
    operation_params: dict
    created_time: datetime
    creator_token: dict
    run_id: str | None = None
    status: str = "waiting"
    start_time: datetime | None = None
    end_time: datetime | None = None
    results: object = None
    error: dict | None = None
    fault_code: str | None = None  # injected job_error fault: end in error with this code
    fault_message: str | None = None
    metrics: dict = field(
        default_factory=lambda: {
            "inCompressed": False,
            "inBytes": 0,
            "inBytesUncompressed": 0,
            "outCompressed": False,
            "outBytes": 0,
            "outBytesUncompressed": 0,
        }
    )
    done: threading.Event = field(default_factory=threading.Event, repr=False)


class JobRunner:
    """Runs job callables on a thread pool; FIFO per serialization key (the table id)."""

    def __init__(self, *, workers: int = 16, job_delay: float = 0.0, clock: Callable[[], datetime]):
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="storage-job")
        self._lock = threading.Lock()
        self._queues: dict[str, deque] = {}
        self._job_delay = float(job_delay)
        self._clock = clock
        self._closed = False

    @property
    def job_delay(self) -> float:
        return self._job_delay

    @job_delay.setter
    def job_delay(self, value: float) -> None:
        if value < 0:
            raise ValueError("job_delay must be >= 0")
        self._job_delay = float(value)

    def submit(self, job: Job, work: Callable[[Job], object], *, key: str | None = None) -> None:
        """Queue ``work(job)``; its return value becomes ``job.results``, a StorageError ends the job in error."""
        with self._lock:
            if self._closed:
                raise RuntimeError("job runner is shut down")
            if key is None:
                self._pool.submit(self._run, job, work, None)
                return
            queue = self._queues.setdefault(key, deque())
            queue.append((job, work))
            if len(queue) == 1:
                self._pool.submit(self._run, job, work, key)

    def _next(self, key: str) -> None:
        with self._lock:
            queue = self._queues.get(key)
            if not queue:
                return
            queue.popleft()
            if queue:
                job, work = queue[0]
                if not self._closed:
                    self._pool.submit(self._run, job, work, key)
                else:
                    for job, _work in queue:
                        self._fail(job, ApplicationError("The emulator is shutting down"))
                    queue.clear()
            if not queue:
                self._queues.pop(key, None)

    def _run(self, job: Job, work: Callable[[Job], object], key: str | None) -> None:
        try:
            delay = self._job_delay
            if delay:
                time.sleep(delay / 2)
            started = time.monotonic()
            job.start_time = self._clock()
            job.status = "processing"
            try:
                if job.fault_code:
                    raise StorageError(job.fault_message or "Injected job failure", code=job.fault_code, status=500)
                results = work(job)
            except StorageError as exc:
                self._sleep_rest(started, delay)
                self._fail(job, exc)
            except Exception as exc:  # a bug or an unexpected backend failure: report like the real API
                log.exception("storage job %s (%s) failed unexpectedly", job.id, job.operation_name)
                self._sleep_rest(started, delay)
                self._fail(job, ApplicationError(), detail=str(exc))
            else:
                self._sleep_rest(started, delay)
                job.results = results
                job.end_time = self._clock()
                job.status = "success"
                job.done.set()
        finally:
            if key is not None:
                self._next(key)

    @staticmethod
    def _sleep_rest(started: float, delay: float) -> None:
        rest = delay / 2 - (time.monotonic() - started) if delay else 0
        if rest > 0:
            time.sleep(rest)

    def _fail(self, job: Job, exc: StorageError, detail: str | None = None) -> None:
        job.error = {"code": exc.code, "message": exc.message, "exceptionId": exc.exception_id}
        if exc.extra.get("results") is not None:
            job.results = exc.extra["results"]
        if job.start_time is None:
            job.start_time = self._clock()
        job.end_time = self._clock()
        job.status = "error"
        job.done.set()

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=wait, cancel_futures=not wait)

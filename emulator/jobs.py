"""Asynchronous storage jobs.

A storage job goes ``waiting -> processing -> success | error`` and nothing else (APIB "Available Statuses").
Jobs on the same table run one after another in submission order ("Asynchronous imports requested on the same
table will be serialized", APIB); jobs on different tables run in parallel on a thread pool, at most
``parallelism`` of one project at a time (the project limit ``storage.jobsParallelism``, 10 on a real stack): the
others stay ``waiting`` until a job of the project ends, then start in the order they became ready.

``job_delay`` is a minimum duration of every job (seconds, settable at runtime) so that tests can watch a job in
``waiting`` and ``processing``: the first half of the delay is spent waiting (before asking for a slot, holding
none), the rest (minus the real work) in processing.
"""

from __future__ import annotations

import bisect
import contextvars
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
DEFAULT_PARALLELISM = 10  # project limit storage.jobsParallelism of a real stack


def _job_id(item: tuple) -> int:
    return item[0]


def _check_parallelism(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("the storage jobs parallelism must be an integer >= 1")
    return value


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
    """Runs job callables on a thread pool: FIFO per serialization key (the table id), at most ``parallelism``
    jobs of one project at once (the project limit ``storage.jobsParallelism``, 10 by default; more jobs stay
    ``waiting`` in submission order, as on a real stack)."""

    def __init__(
        self,
        *,
        workers: int = 32,
        job_delay: float = 0.0,
        clock: Callable[[], datetime],
        parallelism: int = DEFAULT_PARALLELISM,
    ):
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="storage-job")
        self._lock = threading.Lock()
        self._queues: dict[str, deque] = {}  # key -> jobs of one table, the head one is admitted or running
        self._pending: dict[int, list] = {}  # project -> jobs waiting for a slot, by job id
        self._slots: dict[int, int] = {}  # project -> jobs holding a slot (processing or about to)
        self._limits: dict[int, int] = {}  # project -> its own parallelism
        self._parallelism = _check_parallelism(parallelism)
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

    @property
    def parallelism(self) -> int:
        return self._parallelism

    @parallelism.setter
    def parallelism(self, value: int) -> None:
        with self._lock:
            self._parallelism = _check_parallelism(value)
            for project_id in list(self._pending):
                if not self._closed:
                    self._admit_pending(project_id)

    def project_parallelism(self, project_id: int) -> int:
        return self._limits.get(project_id, self._parallelism)

    def set_project_parallelism(self, project_id: int, value: int | None) -> None:
        """The limit of one project (None: back to the runner's ``parallelism``)."""
        with self._lock:
            if value is None:
                self._limits.pop(project_id, None)
            else:
                self._limits[project_id] = _check_parallelism(value)
            if not self._closed:
                self._admit_pending(project_id)

    def submit(self, job: Job, work: Callable[[Job], object], *, key: str | None = None) -> None:
        """Queue ``work(job)``; its return value becomes ``job.results``, a StorageError ends the job in error. The work
        runs in a copy of the submitter's context (the request's dev branch)."""
        context = contextvars.copy_context()
        inner = work

        def work(job: Job, _inner=inner, _context=context):
            return _context.run(_inner, job)

        with self._lock:
            if self._closed:
                raise RuntimeError("job runner is shut down")
            if key is not None:
                queue = self._queues.setdefault(key, deque())
                queue.append((job, work))
                if len(queue) > 1:
                    return  # runs when the jobs before it on the same table are done
        self._ready(job, work, key)

    def _ready(self, job: Job, work, key: str | None) -> None:
        """The job is next on its table: it waits the first half of ``job_delay`` (without holding a slot or a
        thread), then for a slot of its project."""
        delay = self._job_delay / 2
        if delay:
            timer = threading.Timer(delay, self._admit, (job, work, key))
            timer.daemon = True
            timer.start()
        else:
            self._admit(job, work, key)

    def _admit(self, job: Job, work, key: str | None) -> None:
        with self._lock:
            if self._closed:
                self._fail(job, ApplicationError("The emulator is shutting down"))
                return
            # waiting jobs start in submission order (job ids), even when their job_delay timers fire out of order
            bisect.insort(self._pending.setdefault(job.project_id, []), (job.id, job, work, key), key=_job_id)
            self._admit_pending(job.project_id)

    def _admit_pending(self, project_id: int) -> None:
        """Start the project's waiting jobs while it has free slots (call with the lock held)."""
        pending = self._pending.get(project_id)
        limit = self.project_parallelism(project_id)
        while pending and self._slots.get(project_id, 0) < limit:
            _id, job, work, key = pending.pop(0)
            self._slots[project_id] = self._slots.get(project_id, 0) + 1
            self._pool.submit(self._run, job, work, key)
        if not pending:
            self._pending.pop(project_id, None)

    def _release(self, job: Job, key: str | None) -> None:
        """The job is done: free its slot, then let the next job on its table get ready."""
        following = None
        with self._lock:
            self._slots[job.project_id] -= 1
            if not self._slots[job.project_id]:
                del self._slots[job.project_id]
            if not self._closed:
                self._admit_pending(job.project_id)
            if key is not None:
                queue = self._queues[key]
                queue.popleft()
                if queue and self._closed:
                    for waiting, _work in queue:
                        self._fail(waiting, ApplicationError("The emulator is shutting down"))
                    queue.clear()
                if queue:
                    following = queue[0]
                else:
                    del self._queues[key]
        if following is not None:
            self._ready(*following, key)

    def _run(self, job: Job, work: Callable[[Job], object], key: str | None) -> None:
        try:
            delay = self._job_delay
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
            self._release(job, key)

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
            for pending in self._pending.values():  # never started: they end now instead of waiting forever
                for _id, job, _work, _key in pending:
                    self._fail(job, ApplicationError("The emulator is shutting down"))
            self._pending.clear()
        self._pool.shutdown(wait=wait, cancel_futures=not wait)

"""Storage jobs: submitting them exactly once, and waiting with a short first poll, bounded backoff and a deadline.

Storage job statuses are exactly waiting, processing, success and error (contract section 1). Unlike the PHP and
Python clients (2, 4, 8 ... 20 s, no deadline), short jobs are noticed within ~0.5 s and a wait always ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import JobFailed, JobTimeout, StorageApiError, describe_job

logger = logging.getLogger(__name__)

RUNNING_STATUSES = ("waiting", "processing")
_PROGRESS_LOG_EVERY = 60.0  # seconds between "still waiting" log lines
_RECENT_JOBS = 50  # how far back a lost job is looked for


@dataclass(frozen=True)
class PollPolicy:
    """Delays between status requests: ``first``, then doubling up to ``floor`` (short jobs are seen within half a
    second), then at most ``elapsed_share`` of the time waited so far (long jobs are seen at most ~12 % late,
    ~6 % in the median) and never more than ``cap``. Tuned with benchmarks/polling.py (BENCHMARKS.md): median
    detection delay < 0.5 s for jobs under 5 s, < 10 % of longer jobs, under one request per second overall."""

    first: float = 0.25
    factor: float = 2.0
    cap: float = 5.0
    elapsed_share: float = 0.12
    floor: float = 0.5

    def next_delay(self, previous: float | None, elapsed: float) -> float:
        if previous is None:
            return self.first
        bound = max(self.floor, self.elapsed_share * elapsed)
        return max(self.first, min(previous * self.factor, bound, self.cap))


def is_job(payload) -> bool:
    """True for a storage job object (async endpoints answer 202 with one)."""
    return isinstance(payload, dict) and "status" in payload and "operationName" in payload


class Jobs:
    def __init__(
        self,
        http,
        *,
        timeout: float = 3600.0,
        poll: PollPolicy = PollPolicy(),
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        max_submits: int = 3,
        reconcile_delay: float = 1.0,
    ):
        self.http = http
        self.timeout = timeout
        self.poll = poll
        self.max_submits = max_submits
        self.reconcile_delay = reconcile_delay
        self._clock = clock
        self._sleep = sleep

    def get(self, job_id) -> dict:
        return self.http.get(f"jobs/{job_id}")

    def list(self, limit: int = _RECENT_JOBS) -> list[dict]:
        """The project's most recent jobs, newest first."""
        return self.http.get("jobs", params={"limit": limit}) or []

    def submit(
        self,
        path: str,
        body: dict | None,
        *,
        matches: Callable[[dict], bool],
        method: str = "POST",
        params: dict | None = None,
    ) -> dict:
        """Send a request that creates a job (a POST, or e.g. a DELETE of a column), without ever creating it twice.

        The request is not replayed blindly: when it failed after it may have reached the server (reset, read
        timeout, 500/502/504), recent jobs are searched for one that ``matches``; only if none exists is the request
        sent again. Returns the created job (not waited for).
        """
        for attempt in range(1, self.max_submits + 1):
            try:
                if method == "POST":
                    return self.http.post(path, body, idempotent=False)
                response = self.http.request(method, path, json=body, params=params, idempotent=False)
                return response.json() if response.content else None
            except StorageApiError as exc:
                if not exc.maybe_applied:
                    raise
                self._sleep(self.reconcile_delay)  # let a request the server did accept register its job
                job = self._find_recent(matches, exc)
                if job is not None:
                    logger.warning(
                        "%s %s failed (%s) but created job %s; using it", method, path, exc.reason, job["id"]
                    )
                    return job
                if attempt == self.max_submits:
                    raise
                logger.warning("%s %s failed (%s) and created no job; sending it again", method, path, exc.reason)
        raise AssertionError("unreachable")

    def _find_recent(self, matches: Callable[[dict], bool], original: StorageApiError) -> dict | None:
        try:
            recent = self.list()
        except StorageApiError:
            raise original from None  # cannot tell whether the job exists: do not risk a duplicate
        return next((job for job in recent if matches(job)), None)

    def wait(self, job: dict | int | str, *, timeout: float | None = None) -> dict:
        """Poll until the job ends; returns the successful job, raises JobFailed / JobTimeout."""
        if not isinstance(job, dict):
            job = self.get(job)
        timeout = self.timeout if timeout is None else timeout
        start = self._clock()
        deadline = start + timeout
        next_report = start + _PROGRESS_LOG_EVERY
        delay = None
        while True:
            status = job.get("status")
            if status == "success":
                return job
            if status == "error":
                raise JobFailed(job)
            if status not in RUNNING_STATUSES:
                logger.warning("Storage job %s has an unexpected status %r; still waiting", job.get("id"), status)
            now = self._clock()
            if now >= deadline:
                raise JobTimeout(job, timeout)
            if now >= next_report:
                logger.info(
                    "Still waiting for storage job %s (%s, %s) after %.0f s",
                    job.get("id"),
                    describe_job(job),
                    status,
                    now - start,
                )
                next_report = now + _PROGRESS_LOG_EVERY
            delay = self.poll.next_delay(delay, now - start)
            self._sleep(min(delay, deadline - now))
            try:
                job = self.get(job["id"])
            except StorageApiError as exc:  # e.g. the token was revoked: say which job was left running
                exc.message = f"Storage job {job.get('id')} ({describe_job(job)}) could not be checked: {exc.message}"
                exc.args = (exc.message,)
                raise

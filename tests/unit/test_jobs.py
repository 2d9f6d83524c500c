"""Jobs.wait / Jobs.submit with a fake HTTP seam and a fake clock (instant)."""

from __future__ import annotations

import itertools

import pytest

from storage_api import JobFailed, JobTimeout, StorageApiError
from storage_api.jobs import Jobs, PollPolicy


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


class FakeHttp:
    """GET jobs/{id} answers from a script of statuses; the last one repeats. POST raises scripted errors."""

    def __init__(self, job_id=123, statuses=("processing",), final: dict | None = None, recent=()):
        self.job_id = job_id
        self.statuses = list(statuses)
        self.final = final or {}
        self.recent = recent if isinstance(recent, Exception) else list(recent)
        self.post_errors: list[Exception] = []
        self.gets: list[str] = []
        self.posts = 0

    def get(self, path, params=None):
        self.gets.append(path)
        if path == "jobs":
            if isinstance(self.recent, Exception):
                raise self.recent
            return self.recent
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        job = {"id": self.job_id, "status": status, "operationName": "tableImport", "tableId": "in.c-a.t"}
        return job | self.final if status in ("success", "error") else job

    def post(self, path, json=None, *, idempotent):
        assert idempotent is False
        self.posts += 1
        if self.post_errors:
            raise self.post_errors.pop(0)
        return {"id": 900 + self.posts, "status": "waiting", "operationName": "tableImport"}


def _jobs(http, clock, **kwargs) -> Jobs:
    return Jobs(http, clock=clock, sleep=clock.sleep, **kwargs)


def _waiting(job_id=123):
    return {"id": job_id, "status": "waiting", "operationName": "tableImport", "tableId": "in.c-a.t"}


def test_wait_returns_the_successful_job():
    clock = FakeClock()
    http = FakeHttp(statuses=["waiting", "processing", "processing", "success"], final={"results": {"x": 1}})
    job = _jobs(http, clock).wait(_waiting())
    assert job["status"] == "success" and job["results"] == {"x": 1}
    assert http.gets == ["jobs/123"] * 4
    assert sum(clock.sleeps) < 2.0  # four polls of a quick job within two seconds


def test_finished_job_is_not_polled():
    clock, http = FakeClock(), FakeHttp()
    done = {"id": 5, "status": "success", "operationName": "tableExport"}
    assert _jobs(http, clock).wait(done) is done
    assert http.gets == [] and clock.sleeps == []


def test_wait_accepts_a_job_id():
    clock, http = FakeClock(), FakeHttp(statuses=["success"])
    assert _jobs(http, clock).wait(123)["status"] == "success"


def test_error_raises_job_failed_with_the_job_error():
    clock = FakeClock()
    error = {
        "code": "csvImport.columnsNotMatch",
        "message": "Some columns are missing in the csv file. Missing columns: id.",
        "exceptionId": "job-exc-1",
    }
    results = {"missingColumns": ["id"], "expectedColumns": ["id", "name"]}
    http = FakeHttp(statuses=["processing", "error"], final={"error": error, "results": results})
    with pytest.raises(JobFailed) as caught:
        _jobs(http, clock).wait(_waiting())
    failed = caught.value
    assert (failed.job_id, failed.code, failed.exception_id) == (123, "csvImport.columnsNotMatch", "job-exc-1")
    assert failed.results["missingColumns"] == ["id"] and failed.job["status"] == "error"
    assert "Missing columns: id" in failed.message and "123" in failed.message
    assert failed.is_user_error
    assert isinstance(failed, StorageApiError)


def test_internal_job_error_is_not_a_user_error():
    clock = FakeClock()
    http = FakeHttp(statuses=["error"], final={"error": {"message": "Internal error", "exceptionId": "x"}})
    with pytest.raises(JobFailed) as caught:
        _jobs(http, clock).wait(_waiting())
    assert not caught.value.is_user_error and caught.value.code is None


def test_deadline_raises_job_timeout():
    clock, http = FakeClock(), FakeHttp(statuses=["processing"])
    start = clock.now
    with pytest.raises(JobTimeout) as caught:
        _jobs(http, clock, timeout=30).wait(_waiting())
    timeout = caught.value
    assert timeout.job_id == 123 and timeout.timeout == 30
    assert "123" in str(timeout) and "may still finish" in str(timeout)
    assert clock.now == pytest.approx(start + 30)  # never sleeps past the deadline
    assert http.gets[-1] == "jobs/123"  # one last look at the deadline


def test_per_call_timeout_overrides_the_default():
    clock, http = FakeClock(), FakeHttp(statuses=["processing"])
    with pytest.raises(JobTimeout):
        _jobs(http, clock, timeout=3600).wait(_waiting(), timeout=5)
    assert clock.now - 1000.0 == pytest.approx(5)


def test_poll_schedule_starts_fast_grows_and_caps():
    clock, http = FakeClock(), FakeHttp(statuses=["processing"])
    with pytest.raises(JobTimeout):
        _jobs(http, clock, timeout=120).wait(_waiting())
    delays = clock.sleeps[:-1]  # the last sleep is cut at the deadline
    assert delays[0] < 0.5
    assert all(later >= earlier for earlier, later in itertools.pairwise(delays))
    assert max(delays) == pytest.approx(5.0)
    # never more than half a second, or 12 % of the time already waited
    waited = 0.0
    for delay in delays:
        assert delay <= max(0.5, 0.12 * waited) + 1e-9
        waited += delay
    # about 45 polls in 2 minutes, not thousands and not a handful
    assert 30 <= len(clock.sleeps) <= 60


def test_poll_policy_is_configurable():
    policy = PollPolicy(first=0.05, factor=2, cap=1.0, elapsed_share=1.0, floor=0)
    delays, previous, elapsed = [], None, 0.0
    for _ in range(10):
        previous = policy.next_delay(previous, elapsed)
        delays.append(previous)
        elapsed += previous
    assert delays[:3] == [0.05, 0.05, 0.1] and max(delays) == 1.0


# submit: job-creating POSTs are never duplicated ------------------------------------------------------------------
def _ambiguous() -> StorageApiError:
    error = StorageApiError("HTTP 500", status=500, maybe_applied=True)
    error.reason = "HTTP 500"
    return error


def _import_of(file_id):
    def matches(job):
        return job.get("operationName") == "tableImport" and job.get("fileId") == file_id

    return matches


def test_submit_uses_the_job_an_ambiguous_post_created():
    clock = FakeClock()
    http = FakeHttp(recent=[{"id": 77, "operationName": "tableImport", "fileId": 5}])
    http.post_errors = [_ambiguous()]
    job = _jobs(http, clock, reconcile_delay=0.5).submit("tables/t/import-async", {}, matches=_import_of(5))
    assert job["id"] == 77 and http.posts == 1 and clock.sleeps == [0.5]


def test_submit_resends_when_no_job_exists_and_gives_up_after_max_submits():
    clock = FakeClock()
    http = FakeHttp(recent=[{"id": 1, "operationName": "tableImport", "fileId": 4}])
    http.post_errors = [_ambiguous()]
    assert _jobs(http, clock).submit("p", {}, matches=_import_of(5))["id"] == 902
    http.post_errors = [_ambiguous() for _ in range(5)]
    with pytest.raises(StorageApiError):
        _jobs(http, clock, max_submits=3).submit("p", {}, matches=_import_of(5))
    assert http.posts == 2 + 3


def test_submit_does_not_resend_when_recent_jobs_cannot_be_listed():
    clock = FakeClock()
    original = _ambiguous()
    http = FakeHttp(recent=StorageApiError("jobs listing failed", status=500))
    http.post_errors = [original]
    with pytest.raises(StorageApiError) as caught:
        _jobs(http, clock).submit("p", {}, matches=_import_of(5))
    assert caught.value is original and http.posts == 1


def test_submit_raises_unambiguous_errors_at_once():
    clock, http = FakeClock(), FakeHttp()
    http.post_errors = [StorageApiError("bad request", status=400)]
    with pytest.raises(StorageApiError, match="bad request"):
        _jobs(http, clock).submit("p", {}, matches=_import_of(5))
    assert http.posts == 1 and http.gets == []

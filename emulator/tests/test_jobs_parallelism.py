"""Storage jobs parallelism: at most N jobs of one project process at once (project limit
``storage.jobsParallelism``, 10 by default); the others stay ``waiting`` and start in order as slots free up."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest

from emulator.jobs import Job, JobRunner


def _job(job_id: int, project_id: int = 1) -> Job:
    return Job(
        id=job_id,
        project_id=project_id,
        operation_name="tableExport",
        table_id=None,
        operation_params={},
        created_time=datetime.now(UTC),
        creator_token={},
    )


def _wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


@pytest.fixture
def runner():
    jobs = JobRunner(clock=lambda: datetime.now(UTC), parallelism=2)
    yield jobs
    jobs.shutdown(wait=True)


def test_runner_keeps_extra_jobs_of_a_project_waiting_in_order(runner):
    gates = {i: threading.Event() for i in range(1, 6)}
    started: list[int] = []

    def work(job: Job):
        started.append(job.id)
        gates[job.id].wait(5)
        return {"id": job.id}

    jobs = [_job(i) for i in range(1, 5)] + [_job(5, project_id=2)]
    for job in jobs:
        runner.submit(job, work, key=f"table-{job.id}")
    _wait_until(lambda: len(started) == 3)
    assert sorted(started) == [1, 2, 5]  # two of project 1, project 2 is not held up by project 1
    assert [j.status for j in jobs] == ["processing", "processing", "waiting", "waiting", "processing"]
    gates[2].set()
    _wait_until(lambda: jobs[2].status == "processing")
    assert jobs[3].status == "waiting"  # the first waiting one got the slot
    runner.parallelism = 3  # a higher limit starts the next one at once
    _wait_until(lambda: jobs[3].status == "processing")
    for gate in gates.values():
        gate.set()
    for job in jobs:
        assert job.done.wait(5)
        assert job.status == "success" and job.results == {"id": job.id}


def test_runner_project_limit_and_shutdown_ends_waiting_jobs():
    runner = JobRunner(clock=lambda: datetime.now(UTC), parallelism=5)
    runner.set_project_parallelism(1, 1)
    assert runner.project_parallelism(1) == 1 and runner.project_parallelism(2) == 5
    gate = threading.Event()
    first, second = _job(1), _job(2)
    runner.submit(first, lambda job: gate.wait(5))
    runner.submit(second, lambda job: None)
    _wait_until(lambda: first.status == "processing")
    assert second.status == "waiting"
    threading.Timer(0.2, gate.set).start()
    runner.shutdown(wait=True)
    assert first.status == "success"
    assert second.status == "error" and second.done.is_set()  # never started: ended, not left waiting
    with pytest.raises(ValueError):
        JobRunner(clock=lambda: datetime.now(UTC), parallelism=0)


def test_http_jobs_beyond_the_limit_wait(api, emu, project):
    bucket = api.create_bucket("par")
    tables = [f"{bucket}.t{i}" for i in range(3)]
    for table in tables:
        api.create_table(bucket, table.rsplit(".", 1)[1], "id\n1\n")
    limits = api.get("/tokens/verify").json()["owner"]["limits"]
    assert limits["storage.jobsParallelism"]["value"] == 10
    emu.set_project_jobs_parallelism(project.id, 1)
    assert api.get("/tokens/verify").json()["owner"]["limits"]["storage.jobsParallelism"]["value"] == 1
    emu.job_delay = 0.4
    ids = [api.post(f"/tables/{table}/export-async", json={}).json()["id"] for table in tables]
    saw_waiting_beside_processing = False
    deadline = time.monotonic() + 20
    while True:
        statuses = [job["status"] for job in api.get("/jobs").json() if job["id"] in ids]
        saw_waiting_beside_processing |= "processing" in statuses and "waiting" in statuses
        if statuses == ["success"] * 3:
            break
        assert time.monotonic() < deadline, statuses
        time.sleep(0.02)
    assert saw_waiting_beside_processing
    # one at a time: the exact (sub-second) times of the job records never overlap
    records = sorted((emu.backend.jobs[job_id] for job_id in ids), key=lambda job: job.start_time)
    assert records[0].end_time <= records[1].start_time and records[1].end_time <= records[2].start_time
    done = [api.get(f"/jobs/{job_id}").json() for job_id in ids]
    assert all(job["status"] == "success" for job in done)

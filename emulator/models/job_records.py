"""Storage job records: creating and queueing a job on the ``JobRunner`` (``emulator/jobs.py``), job JSON, get,
list, wait.
"""

from __future__ import annotations

from ..errors import JobNotFound
from ..faults import injected_job_error
from ..jobs import Job
from .entities import Token
from .helpers import fmt_time

JOBS_DEFAULT_LIMIT = 100


class JobRecordsMixin:
    def _new_job(self, token: Token, operation: str, table_id, operation_params: dict, run_id) -> Job:
        """A job record; a ``job_error`` fault injected into the current request (``faults.injected_job_error``)
        makes it end in error."""
        job = Job(
            id=self._next("job"),
            project_id=token.project_id,
            operation_name=operation,
            table_id=table_id,
            operation_params=operation_params,
            created_time=self.now(),
            creator_token={"id": str(token.id), "description": token.description},
            run_id=run_id or None,
        )
        fault = injected_job_error()
        if fault is not None:
            job.fault_code, job.fault_message = fault
        with self.lock:
            self.jobs[job.id] = job
        return job

    def _submit(self, job: Job, work, *, key: str | None) -> dict:
        """Queue the job; the response shows it as created (``waiting``), even if a worker picks it up at once."""
        created = self.job_json(job)
        self.runner.submit(job, work, key=key)
        return created

    def job_json(self, job: Job) -> dict:
        data = {
            "id": job.id,
            "status": job.status,
            "url": f"{self.base_url}/v2/storage/jobs/{job.id}",
            "tableId": job.table_id,
            "operationName": job.operation_name,
            "operationParams": job.operation_params,
            "createdTime": fmt_time(job.created_time),
            "startTime": fmt_time(job.start_time),
            "endTime": fmt_time(job.end_time),
            "runId": job.run_id,
            "results": job.results,
            "creatorToken": dict(job.creator_token),
            "metrics": dict(job.metrics),
        }
        if job.status == "error" and job.error:
            data["error"] = dict(job.error)
        return data

    def get_job(self, token: Token, job_id) -> dict:
        try:
            jid = int(job_id)
        except (TypeError, ValueError):
            raise JobNotFound(job_id) from None
        with self.lock:
            job = self.jobs.get(jid)
            if job is None or job.project_id != token.project_id:
                raise JobNotFound(job_id)
            return self.job_json(job)

    def list_jobs(self, token: Token, *, limit: int = JOBS_DEFAULT_LIMIT, offset: int = 0) -> list[dict]:
        with self.lock:
            jobs = [j for j in self.jobs.values() if j.project_id == token.project_id]
        jobs.sort(key=lambda j: j.id, reverse=True)
        return [self.job_json(j) for j in jobs[offset : offset + limit]]

    def wait_job(self, job_id: int, timeout: float | None = None) -> dict:
        job = self.jobs[int(job_id)]
        job.done.wait(timeout)
        return self.job_json(job)

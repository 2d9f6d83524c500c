"""Job polling: how late ``Jobs.wait`` notices that a job ended, and how many GET jobs/{id} it costs.

Jobs of a chosen length come from the emulator's ``job_delay`` (export jobs of a tiny table on distinct tables,
so a batch runs concurrently). Detection delay = when ``wait`` returned minus the job's end (read from the
emulator in the same process).
"""

from __future__ import annotations

import statistics
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from storage_api.http import StorageHttp
from storage_api.jobs import Jobs


@dataclass
class PollRow:
    duration: float
    jobs: int
    median_delay: float
    max_delay: float
    requests: float  # mean GET jobs/{id} per job

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration


class CountingHttp(StorageHttp):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.job_gets = 0

    def get(self, path, params=None):
        if path.startswith("jobs/"):
            self.job_gets += 1
        return super().get(path, params)


def measure(emu, project, durations: list[float], reps: int) -> list[PollRow]:
    bucket = emu.create_bucket(project.id, "poll")
    tables = []
    for i in range(reps):
        table_id = f"{bucket}.t{i}"
        emu.create_table(project.id, table_id, "id,v\n1,a\n")
        tables.append(table_id)
    rows = []
    saved = emu.job_delay
    try:
        for duration in durations:
            emu.job_delay = duration
            delays: list[float] = []
            gets: list[int] = []
            lock = threading.Lock()

            def one(table_id: str, delays=delays, gets=gets, lock=lock) -> None:
                http = CountingHttp(emu.url, project.token)
                try:
                    job = http.post(f"tables/{table_id}/export-async", {"gzip": True}, idempotent=True)
                    done = Jobs(http).wait(job)
                    returned = datetime.now(UTC)
                    end = emu.backend.jobs[int(done["id"])].end_time
                    with lock:
                        delays.append((returned - end).total_seconds())
                        gets.append(http.job_gets)
                finally:
                    http.close()

            threads = [threading.Thread(target=one, args=(t,)) for t in tables]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            rows.append(PollRow(duration, len(delays), statistics.median(delays), max(delays), statistics.mean(gets)))
    finally:
        emu.job_delay = saved
    return rows

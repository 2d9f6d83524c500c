"""The backend's state (projects, tokens, jobs, id sequences), its engine, file storage and job runner."""

from __future__ import annotations

import shutil
import tempfile
import threading
from datetime import datetime
from pathlib import Path

from ..clock import Clock
from ..engine import TableEngine
from ..filestorage import FileStorage
from ..jobs import DEFAULT_PARALLELISM, Job, JobRunner
from .entities import Project, Token

_DEFAULT_REGIONS = {"aws": "us-east-1", "azure": "northeurope", "gcp": "us-east4"}


class BackendCore:
    def __init__(
        self,
        engine: TableEngine,
        storage: FileStorage,
        workdir: Path,
        *,
        job_delay: float = 0.0,
        base_url: str = "http://localhost",
        region: str | None = None,
        clock: Clock | None = None,
        jobs_parallelism: int = DEFAULT_PARALLELISM,
    ):
        self.clock = clock or Clock()
        self.engine = engine
        self.storage = storage
        self.workdir = Path(workdir)
        (self.workdir / "jobs").mkdir(parents=True, exist_ok=True)
        self.base_url = base_url
        self.region = region or getattr(storage, "region", None) or _DEFAULT_REGIONS.get(storage.provider, "us-east-1")
        self.lock = threading.RLock()
        self.projects: dict[int, Project] = {}
        self.tokens: dict[str, Token] = {}
        self.tokens_by_id: dict[int, Token] = {}
        self.jobs: dict[int, Job] = {}
        self._seq = {"project": 0, "token": 0, "file": 0, "job": 0, "table": 0, "metadata": 0, "branch": 0}
        self.runner = JobRunner(job_delay=job_delay, clock=self.now, parallelism=jobs_parallelism)

    def now(self) -> datetime:
        """Server time (the stack's ``Clock``): every timestamp of the API comes from here."""
        return self.clock.now()

    def _next(self, kind: str) -> int:
        with self.lock:
            self._seq[kind] += 1
            return self._seq[kind]

    def close(self) -> None:
        self.runner.shutdown(wait=True)

    def _job_dir(self, job_id):
        return _TempDir(self.workdir / "jobs", f"job-{job_id}-")


class _TempDir:
    """A per-job temporary directory, deleted afterwards."""

    def __init__(self, parent: Path, prefix: str):
        self.parent = parent
        self.prefix = prefix
        self.path: Path | None = None

    def __enter__(self) -> Path:
        self.parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=self.prefix, dir=self.parent))
        return self.path

    def __exit__(self, *exc) -> None:
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)

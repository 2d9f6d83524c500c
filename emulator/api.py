"""Python API of the emulator for tests, the demo and benchmarks.

```python
with Emulator() as emu:
    project = emu.create_project("demo")
    emu.create_bucket(project.id, "main")
    emu.create_table(project.id, "in.c-main.users", "id,name\\n1,alice\\n", primary_key=["id"])
    requests.get(emu.url + "/v2/storage/tokens/verify", headers={"X-StorageApi-Token": project.token})
```
"""

from __future__ import annotations

import csv
import gzip
import shutil
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Self

from .clock import Clock
from .engine import TableEngine, WhereFilter
from .faults import FaultInjector
from .filestorage import create_file_storage
from .jobs import DEFAULT_PARALLELISM
from .models import BRANCH, ColumnRequest, StorageBackend, TableQuery
from .server import ServerThread, StorageApiApp


@dataclass(frozen=True)
class Project:
    id: int
    name: str
    token: str  # the master token


class Emulator:
    """A local Storage API: HTTP server + file storage (moto S3 for ``aws``) + DuckDB tables + job runner."""

    def __init__(
        self,
        provider: str = "aws",
        seed: int | None = None,
        job_delay: float = 0.0,
        port: int = 0,
        workdir: str | Path | None = None,
        host: str = "127.0.0.1",
        faults: str | None = None,
        share_storage_with: Emulator | None = None,
        clock: Clock | None = None,
        jobs_parallelism: int = DEFAULT_PARALLELISM,
    ):
        self.provider = provider
        self.seed = seed
        self.host = host
        self._port = port
        self._initial_job_delay = float(job_delay)
        self._jobs_parallelism = jobs_parallelism
        self._own_workdir = workdir is None
        self._workdir_arg = workdir
        self._fault_spec = faults
        # another AWS "stack" on the same S3 endpoint (own bucket), for cross-stack tests in one client process
        self._share_storage_with = share_storage_with
        # the server clock; a stack sharing storage with another shares its clock too (one world, one time)
        self.clock = clock or (share_storage_with.clock if share_storage_with is not None else Clock())
        self.workdir: Path | None = None
        self.storage = None
        self.engine: TableEngine | None = None
        self.backend: StorageBackend | None = None
        self.app: StorageApiApp | None = None
        self.faults: FaultInjector | None = None
        self._server: ServerThread | None = None
        self._lock = threading.Lock()
        self._started = False

    # lifecycle ---------------------------------------------------------------------------------------------------
    def start(self) -> Self:
        with self._lock:
            if self._started:
                return self
            try:
                if self._own_workdir:
                    self.workdir = Path(tempfile.mkdtemp(prefix="kbc-emulator-"))
                else:
                    self.workdir = Path(self._workdir_arg)
                    self.workdir.mkdir(parents=True, exist_ok=True)
                    _remove_stale_state(self.workdir)
                if self._share_storage_with is not None:
                    self.storage = self._share_storage_with.storage.sibling(f"kbc-sapi-files-{id(self):x}")
                else:
                    self.storage = create_file_storage(self.provider, self.workdir / "files")
                    self.storage.start()
                self.engine = TableEngine(self.workdir / "tables.duckdb")
                self.backend = StorageBackend(
                    self.engine,
                    self.storage,
                    self.workdir / "backend",
                    job_delay=self._initial_job_delay,
                    clock=self.clock,
                    jobs_parallelism=self._jobs_parallelism,
                )
                if self._fault_spec:
                    self.faults = FaultInjector.from_spec(self._fault_spec, seed=self.seed)
                else:
                    self.faults = FaultInjector(seed=self.seed)
                self.app = StorageApiApp(self.backend, self.faults)
                self._server = ServerThread(self.app, self.host, self._port)
                self.backend.base_url = self._server.url
                self._server.start()
                self._started = True
            except BaseException:
                self._shutdown()
                raise
        return self

    def stop(self) -> None:
        with self._lock:
            self._shutdown()
            self._started = False

    def _shutdown(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self.backend is not None:
            self.backend.close()
        if self.engine is not None:
            self.engine.close()
            self.engine = None
        if self.storage is not None:
            self.storage.stop()
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # connection info -----------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        self._require_started()
        return self._server.url

    @property
    def port(self) -> int:
        self._require_started()
        return self._server.port

    @property
    def env(self) -> dict[str, str]:
        """Environment for client processes: how to reach the file storage (e.g. ``AWS_ENDPOINT_URL_S3``)."""
        self._require_started()
        return dict(self.storage.env)

    def _require_started(self) -> None:
        if not self._started:
            raise RuntimeError("the emulator is not running; use `with Emulator() as emu:` or call start()")

    # runtime switches ---------------------------------------------------------------------------------------------------
    @property
    def job_delay(self) -> float:
        return self.backend.runner.job_delay if self.backend else self._initial_job_delay

    @job_delay.setter
    def job_delay(self, seconds: float) -> None:
        self._initial_job_delay = float(seconds)
        if self.backend is not None:
            self.backend.runner.job_delay = seconds

    @property
    def jobs_parallelism(self) -> int:
        """Storage jobs one project processes at once (project limit ``storage.jobsParallelism``, default 10);
        more wait in ``waiting``. Settable at runtime, for every project without a limit of its own."""
        return self.backend.runner.parallelism if self.backend else self._jobs_parallelism

    @jobs_parallelism.setter
    def jobs_parallelism(self, value: int) -> None:
        self._jobs_parallelism = value
        if self.backend is not None:
            self.backend.runner.parallelism = value

    def set_project_jobs_parallelism(self, project_id: int, value: int | None) -> None:
        """The storage jobs parallelism of one project (None: back to ``jobs_parallelism``)."""
        self._require_started()
        self.backend.runner.set_project_parallelism(self.backend._project(project_id).id, value)

    def advance_clock(self, seconds: float) -> datetime:
        """Let ``seconds`` pass on the server clock at once (no sleeping): job, table, file and row timestamps and
        ``changedSince`` / relative dates all follow it. Forward only; returns the new server time (UTC)."""
        return self.clock.advance(seconds)

    def reset_clock(self) -> None:
        """Back to real time, for isolation between tests that share one emulator (see ``Clock.reset``)."""
        self.clock.reset()

    def now(self) -> datetime:
        """The server time (UTC), i.e. real time plus every ``advance_clock`` so far."""
        return self.clock.now()

    def set_maintenance(self, enabled: bool, *, reason: str = "Scheduled maintenance", retry_after: int = 600) -> None:
        self._require_started()
        self.app.set_maintenance(enabled, reason=reason, retry_after=retry_after)

    # projects and tokens -------------------------------------------------------------------------------------------
    def create_project(
        self,
        name: str = "Emulated project",
        *,
        default_backend: str = "snowflake",
        backends: list[str] | tuple[str, ...] | None = None,
    ) -> Project:
        """A project with its master token. ``default_backend`` (``snowflake`` | ``bigquery``): the backend of
        buckets created without one (``tokens/verify`` ``owner.defaultBackend``); ``backends``: the assigned
        backends (``owner.assignedBackends``, default ``[default_backend]``), the ones a bucket may be created on."""
        self._require_started()
        project, master = self.backend.create_project(name, default_backend=default_backend, backends=backends)
        return Project(id=project.id, name=project.name, token=master.secret)

    def create_token(
        self,
        project_id: int,
        bucket_permissions: dict[str, str] | None = None,
        can_manage_buckets: bool = False,
        description: str = "",
        *,
        can_manage_tokens: bool = False,
        can_read_all_file_uploads: bool = False,
    ) -> str:
        self._require_started()
        token = self.backend.create_token(
            project_id,
            bucket_permissions=bucket_permissions,
            can_manage_buckets=can_manage_buckets,
            can_manage_tokens=can_manage_tokens,
            can_read_all_file_uploads=can_read_all_file_uploads,
            description=description,
        )
        return token.secret

    def revoke_token(self, token: str) -> None:
        self._require_started()
        self.backend.revoke_token(token)

    # buckets and tables ----------------------------------------------------------------------------------------------
    # dev branches (addendum §3) ------------------------------------------------------------------------------
    def create_dev_branch(self, project_id: int, name: str, description: str = "") -> dict:
        """Create a dev branch as ``POST dev-branches`` does (job ``devBranchCreate``); returns the branch JSON."""
        self._require_started()
        job = self.backend.create_branch(self.backend.master_token(project_id), name, description)
        done = self.backend.wait_job(job["id"], 60)
        if done["status"] != "success":
            raise RuntimeError(f"devBranchCreate failed: {done.get('error')}")
        return done["results"]

    def set_project_features(self, project_id: int, features: list[str]) -> None:
        """``owner.features`` of the project; ``storage-branches`` (or ``protected-default-branch``) switches dev
        branches to branched storage, none is the legacy prefix model."""
        with self.backend.lock:
            self.backend._project(project_id).features = list(features)

    def default_branch_id(self, project_id: int) -> int:
        return next(b.id for b in self.backend._project(project_id).branches.values() if b.is_default)

    @contextmanager
    def _in_branch(self, branch_id: int | None):
        token = BRANCH.set(branch_id)
        try:
            yield
        finally:
            BRANCH.reset(token)

    def create_bucket(
        self,
        project_id: int,
        name: str,
        stage: str = "in",
        description: str = "",
        backend: str | None = None,
        branch_id: int | None = None,
    ) -> str:
        """``backend``: ``snowflake`` | ``bigquery`` (one of the project's assigned backends); None: the project's
        default backend. ``branch_id``: a dev branch (None: production)."""
        self._require_started()
        master = self.backend.master_token(project_id)
        with self._in_branch(branch_id):
            return self.backend.create_bucket(master, name=name, stage=stage, description=description, backend=backend)[
                "id"
            ]

    def create_table(
        self, project_id: int, table_id: str, csv_data, primary_key=(), branch_id: int | None = None
    ) -> dict:
        """Create ``table_id`` from a CSV with a header (a path or the CSV text); returns the table detail.
        Goes through the real file storage and the engine, like a tables-async job, without HTTP or job delay.
        ``branch_id``: in that dev branch (None: production)."""
        self._require_started()
        with self._csv_file(csv_data) as path, self._in_branch(branch_id):
            return self.backend.create_table_direct(project_id, table_id, path, list(primary_key))

    def create_typed_table(
        self,
        project_id: int,
        table_id: str,
        columns: list[dict],
        primary_key=(),
        rows_csv=None,
        **bigquery_options,
    ) -> dict:
        """Create ``table_id`` as ``POST buckets/{id}/tables-definition`` does (the same checks and errors), on the
        bucket's backend: ``columns`` ``[{"name", "definition": {"type", "length"?, "nullable"?, "default"?}}]``
        and / or ``"basetype"``; ``primary_key`` (its columns default to NOT NULL). ``rows_csv`` (a path or CSV text
        with a header): loaded right after, checked against the types as an import is. ``bigquery_options``:
        ``timePartitioning``, ``clustering``, ``rangePartitioning``. Returns the table detail."""
        self._require_started()
        requests = [
            ColumnRequest(name=c["name"], definition=c.get("definition"), basetype=c.get("basetype")) for c in columns
        ]
        detail = self.backend.create_table_definition_direct(
            project_id, table_id, requests, list(primary_key), bigquery_options
        )
        if rows_csv is not None:
            self.load_table(project_id, table_id, rows_csv)
            detail = self.table_detail(project_id, table_id)
        return detail

    def load_table(
        self, project_id: int, table_id: str, csv_data, incremental: bool = False, branch_id: int | None = None
    ) -> dict:
        """Import a CSV with a header into an existing table; returns the import job results."""
        self._require_started()
        with self._csv_file(csv_data) as path, self._in_branch(branch_id):
            return self.backend.load_table_direct(project_id, table_id, path, incremental=incremental)

    def create_alias(
        self,
        project_id: int,
        bucket_id: str,
        source_table_id: str,
        name: str | None = None,
        alias_filter: dict | None = None,
        alias_columns: list[str] | None = None,
    ) -> dict:
        """An alias of ``source_table_id`` in ``bucket_id``, as ``POST buckets/{id}/table-aliases`` creates it (the
        same checks and errors): ``name`` (default: the source's), ``alias_filter`` ``{"column", "operator": "eq" |
        "ne", "values"}``, ``alias_columns`` (a fixed column list instead of auto-sync). Returns the alias's detail."""
        self._require_started()
        flt = None
        if alias_filter is not None:
            flt = WhereFilter(
                column=alias_filter["column"],
                operator=alias_filter.get("operator") or "eq",
                values=[str(v) for v in alias_filter["values"]],
            )
        return self.backend.create_alias(
            self.backend.master_token(project_id),
            bucket_id,
            source_table=source_table_id,
            name=name,
            alias_columns=list(alias_columns or ()),
            alias_filter=flt,
        )

    def table_detail(self, project_id: int, table_id: str, branch_id: int | None = None) -> dict:
        self._require_started()
        with self._in_branch(branch_id):
            return self.backend.get_table(self.backend.master_token(project_id), table_id)

    def table_rows(self, project_id: int, table_id: str, branch_id: int | None = None) -> list[dict]:
        """All rows of a table as dicts (column order of the table; row order unspecified). A typed table's values
        are printed as its exports print them, NULL as None. ``branch_id``: the table of that dev branch."""
        self._require_started()
        with self._in_branch(branch_id):
            alias_or_table = self.backend.table_for(project_id, table_id)
        # an alias: its source's rows through the alias's filter and columns
        table, query = self.backend._read_view(alias_or_table, TableQuery())
        selection = {"columns": query.columns, "where_filters": query.where_filters}
        if table.is_typed:
            columns, rows = self.engine.preview(table.handle, **selection, limit=None, style="export")
            return [dict(zip(columns, row, strict=True)) for row in rows]
        columns = query.columns or table.columns
        out = Path(tempfile.mkdtemp(prefix="rows-", dir=self.workdir))
        try:
            slices = self.engine.export(table.handle, out, **selection, gzip=False)
            rows = []
            for path in sorted(slices, key=lambda p: p.name):
                opener = gzip.open if path.name.endswith(".gz") else open
                with opener(path, "rt", encoding="utf-8", newline="") as fh:
                    for record in csv.reader(fh):
                        rows.append(dict(zip(columns, record, strict=False)))
            return rows
        finally:
            shutil.rmtree(out, ignore_errors=True)

    def delete_table(self, project_id: int, table_id: str) -> None:
        self._require_started()
        self.backend.delete_table(self.backend.master_token(project_id), table_id)

    def wait_job(self, job_id: int, timeout: float | None = 60) -> dict:
        self._require_started()
        return self.backend.wait_job(job_id, timeout)

    # helpers ------------------------------------------------------------------------------------------------------
    def _csv_file(self, csv_data):
        return _CsvSource(csv_data, self.workdir)


def _remove_stale_state(workdir: Path) -> None:
    """A reused working directory: the tables of a previous run are unreachable (projects live in memory)."""
    for path in workdir.glob("tables.duckdb*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    shutil.rmtree(workdir / "backend", ignore_errors=True)


class _CsvSource:
    """A path as is, or CSV text written to a temporary file."""

    def __init__(self, data, workdir: Path):
        self.data = data
        self.workdir = workdir
        self._tmp: Path | None = None

    def __enter__(self) -> Path:
        data = self.data
        if isinstance(data, Path):
            return data
        if isinstance(data, str) and "\n" not in data and Path(data).is_file():
            return Path(data)
        if isinstance(data, bytes):
            data = data.decode("utf-8")
        fd, name = tempfile.mkstemp(prefix="seed-", suffix=".csv", dir=self.workdir)
        self._tmp = Path(name)
        with open(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(data)
        return self._tmp

    def __exit__(self, *exc) -> None:
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)

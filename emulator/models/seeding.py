"""Seeding through the Python API (no HTTP, no job): upload a local file, create or load a table, look one up."""

from __future__ import annotations

from pathlib import Path

from ..errors import BucketNotFound
from .definitions import ColumnRequest
from .entities import StoredFile, Table
from .files import UPLOAD_MAX_AGE_DAYS


class SeedingMixin:
    def upload_local_file(self, project_id: int, path: Path, *, name: str | None = None, tags=()) -> StoredFile:
        """Put a local file into file storage as a project file (like files/prepare + upload)."""
        project = self._project(project_id)
        token = self.master_token(project_id)
        file = self._new_file(
            project,
            token,
            name=name or Path(path).name,
            sliced=False,
            encrypted=True,
            permanent=False,
            public=False,
            tags=list(tags),
            run_id=None,
            max_age_days=UPLOAD_MAX_AGE_DAYS,
        )
        self.storage.put_file(file.key, Path(path))
        return file

    def create_table_direct(self, project_id: int, table_id: str, path: Path, primary_key=()) -> dict:
        project = self._project(project_id)
        bucket_id, _, name = table_id.rpartition(".")
        self._validate_table_name(name)
        with self.lock:
            bucket = project.buckets.get(bucket_id)
            if bucket is None:
                raise BucketNotFound(bucket_id)
            self._check_table_name_free(bucket, name)
        file = self.upload_local_file(project_id, path, tags=["emulator-seed"])
        return self._create_table(project, bucket, name, file.id, list(primary_key), ",", '"', f"seed-{file.id}")

    def create_table_definition_direct(
        self, project_id: int, table_id: str, columns: list[ColumnRequest], primary_key=(), options=None
    ) -> dict:
        """A tables-definition table, checked as the endpoint checks it, created at once (no job)."""
        project = self._project(project_id)
        bucket_id, _, name = table_id.rpartition(".")
        with self.lock:
            bucket = project.buckets.get(bucket_id)
            if bucket is None:
                raise BucketNotFound(bucket_id)
        spec = self._definition_spec(bucket, name, list(primary_key), list(columns), None, dict(options or {}))
        with self.lock:
            self._check_table_name_free(bucket, name)
        return self._create_defined_table(project, bucket, spec)

    def load_table_direct(self, project_id: int, table_id: str, path: Path, *, incremental: bool) -> dict:
        project = self._project(project_id)
        token = self.master_token(project_id)
        with self.lock:
            table = self._table(token, table_id, "write")
            self._refuse_alias_write(table, "import data into")
        file = self.upload_local_file(project_id, path, tags=["emulator-seed"])
        return self._import(project, table, file.id, incremental, False, [], ",", '"', f"seed-{file.id}")

    def table_for(self, project_id: int, table_id: str) -> Table:
        token = self.master_token(project_id)
        with self.lock:
            return self._table(token, table_id, "read")

"""Buckets: create (name, stage, display name rules), list, detail, delete (sync or as a job)."""

from __future__ import annotations

from ..errors import AccessDenied, BucketNotFound, ValidationError
from .entities import BRANCH, Bucket, Token
from .helpers import NAME_RE, fmt_time


class BucketsMixin:
    def _bucket(self, token: Token, bucket_id: str, level: str = "read") -> Bucket:
        self._require(token, bucket_id, level)
        bucket = self.projects[token.project_id].buckets.get(bucket_id)
        if bucket is None:
            raise BucketNotFound(bucket_id)
        return bucket

    def bucket_json(self, bucket: Bucket, *, metadata: bool = False) -> dict:
        rows = sum(t.rows_count for t in bucket.tables.values())
        size = sum(t.data_size_bytes for t in bucket.tables.values())
        data = {
            "uri": f"{self.base_url}/v2/storage/buckets/{bucket.id}",
            "id": bucket.id,
            "name": bucket.name,
            "displayName": bucket.display_name,
            "idBranch": 1,
            "stage": bucket.stage,
            "description": bucket.description,
            "tables": f"{self.base_url}/v2/storage/buckets/{bucket.id}/tables",
            "created": fmt_time(bucket.created),
            "lastChangeDate": fmt_time(bucket.last_change_date),
            "updated": None,
            "isReadOnly": False,
            "dataSizeBytes": size,
            "rowsCount": rows,
            "isMaintenance": False,
            "backend": bucket.backend,
            "sharing": None,
            "hasExternalSchema": False,
            "databaseName": "",
            "color": None,
            "isLinkedBucket": False,
        }
        if metadata:
            data["metadata"] = []
        return data

    def list_buckets(self, token: Token, include: list[str] | None = None) -> list[dict]:
        include = include or []
        with self.lock:
            project = self.projects[token.project_id]
            if self._in_legacy_dev_branch(project):
                return []  # legacy branches: branch/{id}/buckets lists nothing, the default endpoint everything
            return [
                self.bucket_json(b, metadata="metadata" in include)
                for b in sorted(project.buckets.values(), key=lambda b: b.id)
                if self._level(token, b.id) > 0
            ]

    def get_bucket(self, token: Token, bucket_id: str, include: str | None = None) -> dict:
        """The detail lists the bucket's tables (``include``: ``columns``, ``metadata``, ``columnMetadata`` of each)
        where the list and create answers give their URL, and carries ``attributes`` (sapi-python-client's live
        ``test_bucket_detail``: ``tables == []``, ``attributes == []``)."""
        table_include = self._list_include(include or "") - {"bucket"}
        with self.lock:
            bucket = self._bucket(token, bucket_id)
            data = self.bucket_json(bucket, metadata=True)
            data["tables"] = [
                self.table_json(t, include=table_include) for t in sorted(bucket.tables.values(), key=lambda t: t.id)
            ]
            data["attributes"] = []
            return data

    def create_bucket(
        self,
        token: Token,
        *,
        name,
        stage: str | None = None,
        display_name: str | None = None,
        description: str | None = None,
        backend: str | None = None,
    ) -> dict:
        if not (token.is_master or token.can_manage_buckets):
            raise AccessDenied("You don't have permission to create buckets.")
        stage = stage or "in"
        description = description or ""
        if not isinstance(name, str) or not name:
            raise ValidationError(
                'Invalid request:\n - name: "This field is missing."', code="storage.buckets.validation"
            )
        name = name.removeprefix("c-")
        if not NAME_RE.match(name) or len(name) > 96:
            raise ValidationError(
                f'Invalid bucket name "{name}". Only alphanumeric characters, dashes and underscores are allowed.',
                code="storage.buckets.validation",
            )
        if stage not in ("in", "out"):
            raise ValidationError(
                f'Invalid stage "{stage}". Allowed stages: in, out.', code="storage.buckets.validation"
            )
        project = self.projects[token.project_id]
        if backend in (None, ""):
            backend = project.default_backend  # tokens/verify owner.defaultBackend
        if backend not in project.backends:
            raise ValidationError(
                f'Backend "{backend}" is not assigned to the project. Assigned backends: {", ".join(project.backends)}.',
                code="storage.buckets.validation",
            )
        if display_name in (None, ""):
            display_name = name
        if not isinstance(display_name, str) or not NAME_RE.match(display_name):
            raise ValidationError(
                f'Invalid display name "{display_name}". Only alphanumeric characters, dashes and underscores '
                "are allowed.",
                code="storage.buckets.validation",
            )
        bucket_id = f"{stage}.c-{name}"
        with self.lock:
            project = self.projects[token.project_id]
            for other in project.buckets.values():
                if other.id == bucket_id:
                    raise ValidationError(
                        f'The bucket "{bucket_id}" already exists.', code="storage.buckets.alreadyExists"
                    )
                if other.stage == stage and other.display_name == display_name:
                    raise ValidationError(
                        f'The display name "{display_name}" already exists in project.',
                        code="storage.buckets.alreadyExists",
                    )
            bucket = Bucket(
                id=bucket_id,
                project_id=project.id,
                stage=stage,
                name=f"c-{name}",
                display_name=display_name,
                description=description,
                created=self.now(),
                backend=backend,
                branch_id=BRANCH.get(),  # a dev-branch bucket (no aliases from or into it)
            )
            project.buckets[bucket_id] = bucket
            if not token.is_master:
                token.bucket_permissions[bucket_id] = "manage"
            return {**self.bucket_json(bucket, metadata=True), "attributes": []}  # as the API's create answer

    def delete_bucket(self, token: Token, bucket_id: str, *, force=False, is_async=False, run_id=None):
        """Returns None (sync, 204) or a job dict (``async=true``, 202)."""
        with self.lock:
            self._require(token, bucket_id, "manage")
            if not (token.is_master or token.can_manage_buckets):
                raise AccessDenied("You don't have permission to delete buckets.")
            bucket = self._bucket(token, bucket_id, "manage")
        if not is_async:
            self._drop_bucket(bucket, force)
            return None
        job = self._new_job(
            token,
            "bucketDelete",
            None,
            {"params": {"idBucket": bucket.id, "force": force}, "queue": "main"},
            run_id,
        )
        return self._submit(job, lambda _job: self._drop_bucket(bucket, force), key=f"bucket:{bucket.id}")

    def _drop_bucket(self, bucket: Bucket, force: bool) -> None:
        with self.lock:
            project = self.projects[bucket.project_id]
            if project.buckets.get(bucket.id) is not bucket:
                raise BucketNotFound(bucket.id)
            if bucket.tables and not force:
                raise ValidationError(
                    f"Only empty buckets can be deleted. There are {len(bucket.tables)} tables in the bucket.",
                    code="buckets.deleteNotEmpty",
                )
            tables = list(bucket.tables.values())
            self._drop_aliases_of(tables)  # aliases of its tables in other buckets (a forced drop)
            del project.buckets[bucket.id]
            for other in self.tokens_by_id.values():
                if other.project_id == project.id:
                    other.bucket_permissions.pop(bucket.id, None)
        for table in tables:
            if table.handle:  # an alias has no data of its own
                self.engine.drop(table.handle)

"""The rules and the data of the emulated Storage API: projects, tokens, buckets, tables, files and jobs.

No HTTP here. Handlers pass already-decoded parameters (dicts, lists, strings) and a token; every method checks
the token's permissions first and raises the typed errors of ``errors.py``. Table data lives in the DuckDB
``TableEngine``; file contents in the ``FileStorage`` (S3 via moto). Work that the real API does in a storage job
(create, import, export, primary key changes, row deletes) runs on the ``JobRunner``.

Shapes follow the Storage API contract (APIB examples): ids of tokens are strings, job/file ids integers,
timestamps ``2017-02-13T16:41:18+0100``. PHP serialises an empty associative array as ``[]``: the emulator
does the same for ``bucketPermissions`` and ``columnMetadata``.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import string
import tempfile
import threading
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from . import errors
from .engine import OrderBy, TableEngine, WhereFilter
from .errors import (
    AccessDenied,
    BucketNotFound,
    ColumnsNotMatch,
    FileNotFound,
    InvalidToken,
    JobNotFound,
    MissingToken,
    StorageError,
    TableNotFound,
    ValidationError,
)
from .filestorage import FileStorage
from .jobs import Job, JobRunner

PREVIEW_MAX_LIMIT = 1000
PREVIEW_DEFAULT_LIMIT = 100
JSON_VALUE_LIMIT = 16384
UPLOAD_MAX_AGE_DAYS = 15
EXPORT_MAX_AGE_DAYS = 2
FILES_DEFAULT_LIMIT = 100
JOBS_DEFAULT_LIMIT = 100
WHERE_OPERATORS = ("eq", "ne")
FILTER_OPERATORS = ("eq", "ne", "gt", "ge", "lt", "le")
LEVELS = {"read": 1, "write": 2, "manage": 3}
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_COLUMN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*$")
_MAX_COLUMN_LENGTH = 64
_MAX_TABLE_NAME_LENGTH = 96
_DEFAULT_REGIONS = {"aws": "us-east-1", "azure": "northeurope", "gcp": "us-east4"}


# ---------------------------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------------------------
def utcnow() -> datetime:
    return datetime.now(UTC)


def fmt_time(value: datetime | None) -> str | None:
    """``2017-02-13T16:41:18+0100``: ISO-8601 with a ``+hhmm`` offset, no fraction (APIB examples)."""
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S%z")


def php_map(value: dict) -> dict | list:
    """PHP's json_encode turns an empty associative array into ``[]``."""
    return value if value else []


def sanitize_column_name(name: str) -> str:
    """Column name sanitising of table create: ``"with spaces"`` -> ``with_spaces``, ``ščř`` -> ``scr``,
    ``_x`` -> ``x`` (PHPT ``testTableColumnNamesSanitize``)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^A-Za-z0-9_]", "_", ascii_name).lstrip("_")


def sanitize_file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def parse_bool(value, name: str, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off", ""):
            return False
    raise ValidationError(f'Invalid request:\n - {name}: "This value should be of type bool."')


def parse_int(value, name: str, *, default=None, minimum: int | None = 0, code="storage.validation"):
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise ValidationError(f'Invalid request:\n - {name}: "This value should be of type int."', code=code)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationError(f'Invalid request:\n - {name}: "This value should be of type int."', code=code) from None
    if isinstance(value, float) and value != number:
        raise ValidationError(f'Invalid request:\n - {name}: "This value should be of type int."', code=code)
    if minimum is not None and number < minimum:
        raise ValidationError(
            f'Invalid request:\n - {name}: "This value should be greater than or equal to {minimum}."', code=code
        )
    return number


_RELATIVE_RE = re.compile(
    r"^([+-]?\s*\d+)\s*(sec|secs|second|seconds|min|mins|minute|minutes|hour|hours|day|days|week|weeks|"
    r"month|months|year|years)(\s+ago)?$"
)
_UNIT_SECONDS = {"sec": 1, "min": 60, "hour": 3600, "day": 86400, "week": 7 * 86400, "month": 30 * 86400}


def parse_time(value, name: str, now: datetime | None = None) -> datetime | None:
    """A unix timestamp, an ISO-8601 date or a relative strtotime-like string (``-2 days``, ``-1 hour``)."""
    if value is None or value == "":
        return None
    now = now or utcnow()
    text = str(value).strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return datetime.fromtimestamp(float(text), UTC)
    low = text.lower()
    if low == "now":
        return now
    if low in ("today", "midnight"):
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    if low == "yesterday":
        return now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    match = _RELATIVE_RE.match(low)
    if match:
        amount = int(match.group(1).replace(" ", ""))
        unit = match.group(2).rstrip("s") if match.group(2) not in ("secs",) else "sec"
        unit = {"second": "sec", "minute": "min"}.get(unit, unit)
        if match.group(3):
            amount = -abs(amount)
        if unit == "year":
            return now - timedelta(days=365 * -amount) if amount < 0 else now + timedelta(days=365 * amount)
        return now + timedelta(seconds=amount * _UNIT_SECONDS[unit])
    try:
        parsed = datetime.fromisoformat(text.replace(" ", "T", 1) if re.match(r"^\d{4}-\d\d-\d\d \d", text) else text)
    except ValueError:
        raise ValidationError(
            f'Invalid request:\n - {name}: "Invalid date "{text}": use a unix timestamp, an ISO-8601 date '
            'or a relative date like "-2 days"."',
            code="storage.tables.validation",
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _as_list(value, name: str, code: str = "storage.tables.validation") -> list:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and all(str(k).isdigit() for k in value):
        return [value[k] for k in sorted(value, key=int)]
    raise ValidationError(f'Invalid request:\n - {name}: "This value should be of type array."', code=code)


def _csv_options(params: dict) -> tuple[str, str, str]:
    delimiter = params.get("delimiter")
    delimiter = "," if delimiter in (None, "") else delimiter
    enclosure = params.get("enclosure")
    enclosure = '"' if enclosure is None else enclosure
    escaped_by = params.get("escapedBy") or ""
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise ValidationError(
            f'Invalid delimiter "{delimiter}". The delimiter must be a single character.', code="invalidCsv"
        )
    if not isinstance(enclosure, str) or len(enclosure) > 1:
        raise ValidationError(
            f'Invalid enclosure "{enclosure}". The enclosure must be a single character or empty.', code="invalidCsv"
        )
    if not isinstance(escaped_by, str) or len(escaped_by) > 1:
        raise ValidationError(f'Invalid escapedBy "{escaped_by}".', code="invalidCsv")
    if enclosure and escaped_by:
        raise ValidationError("Use either enclosure or escapedBy, not both.", code="invalidCsv")
    if escaped_by:
        raise ValidationError(
            "escapedBy is not supported by the emulator (Snowflake projects use enclosure).", code="invalidCsv"
        )
    return delimiter, enclosure, escaped_by


# ---------------------------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Token:
    id: int
    project_id: int
    secret: str
    description: str
    is_master: bool
    can_manage_buckets: bool
    can_manage_tokens: bool
    can_read_all_file_uploads: bool
    bucket_permissions: dict[str, str]
    created: datetime
    creator: dict | None = None
    revoked: bool = False

    def ref(self) -> dict:
        return {"id": self.id, "description": self.description}


@dataclass
class Project:
    id: int
    name: str
    created: datetime
    buckets: dict[str, Bucket] = field(default_factory=dict)
    files: dict[int, StoredFile] = field(default_factory=dict)
    export_cache: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)


@dataclass
class Bucket:
    id: str
    project_id: int
    stage: str
    name: str
    display_name: str
    description: str
    created: datetime
    last_change_date: datetime | None = None
    tables: dict[str, Table] = field(default_factory=dict)


@dataclass
class Table:
    id: str
    project_id: int
    bucket_id: str
    name: str
    display_name: str
    handle: str
    columns: list[str]
    primary_key: list[str]
    created: datetime
    last_import_date: datetime | None = None
    last_change_date: datetime | None = None
    rows_count: int = 0
    data_size_bytes: int = 0
    data_version: int = 0
    metadata: list[dict] = field(default_factory=list)
    column_metadata: dict[str, list[dict]] = field(default_factory=dict)


@dataclass
class StoredFile:
    id: int
    project_id: int
    name: str
    key: str
    created: datetime
    is_sliced: bool
    is_encrypted: bool
    is_permanent: bool
    is_public: bool
    tags: list[str]
    max_age_days: int | None
    run_id: str | None
    run_ids: list[str]
    creator_token: dict
    creator_token_id: int
    declared_size: int | None = None
    size_bytes: int | None = None  # known size (exports)
    file_type: str | None = None
    content_type: str = "application/octet-stream"
    deleted: bool = False


@dataclass
class TableQuery:
    """Normalised filters of export-async / data-preview / rows delete."""

    columns: list[str] | None = None
    changed_since: datetime | None = None
    changed_until: datetime | None = None
    where_filters: list[WhereFilter] = field(default_factory=list)
    order_by: list[OrderBy] = field(default_factory=list)
    limit: int | None = None
    format: str = "rfc"
    gzip: bool = False

    def cache_key(self) -> str:
        return json.dumps(
            {
                "columns": self.columns,
                "changedSince": self.changed_since.isoformat() if self.changed_since else None,
                "changedUntil": self.changed_until.isoformat() if self.changed_until else None,
                "whereFilters": [[f.column, f.operator, list(f.values)] for f in self.where_filters],
                "orderBy": [[o.column, o.order] for o in self.order_by],
                "limit": self.limit,
                "format": self.format,
                "gzip": self.gzip,
            },
            sort_keys=True,
        )

    def referenced_columns(self) -> list[str]:
        cols = list(self.columns or [])
        cols += [f.column for f in self.where_filters]
        cols += [o.column for o in self.order_by]
        return cols


# ---------------------------------------------------------------------------------------------------------------
# the backend
# ---------------------------------------------------------------------------------------------------------------
class StorageBackend:
    def __init__(
        self,
        engine: TableEngine,
        storage: FileStorage,
        workdir: Path,
        *,
        job_delay: float = 0.0,
        base_url: str = "http://localhost",
        region: str | None = None,
    ):
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
        self._seq = {"project": 0, "token": 0, "file": 0, "job": 0, "table": 0, "metadata": 0}
        self.runner = JobRunner(job_delay=job_delay, clock=utcnow)

    # ids ---------------------------------------------------------------------------------------------------------
    def _next(self, kind: str) -> int:
        with self.lock:
            self._seq[kind] += 1
            return self._seq[kind]

    def close(self) -> None:
        self.runner.shutdown(wait=True)

    # projects and tokens -----------------------------------------------------------------------------------------
    def create_project(self, name: str) -> tuple[Project, Token]:
        with self.lock:
            project = Project(id=self._next("project"), name=name, created=utcnow())
            self.projects[project.id] = project
            master = self._new_token(
                project,
                description="Master Token",
                is_master=True,
                can_manage_buckets=True,
                can_manage_tokens=True,
                can_read_all_file_uploads=True,
                bucket_permissions={},
                creator=None,
            )
            return project, master

    def _new_token(self, project: Project, **kwargs) -> Token:
        token_id = self._next("token")
        alphabet = string.ascii_letters + string.digits
        secret = f"{project.id}-{token_id}-" + "".join(secrets.choice(alphabet) for _ in range(40))
        token = Token(id=token_id, project_id=project.id, secret=secret, created=utcnow(), **kwargs)
        self.tokens[secret] = token
        self.tokens_by_id[token_id] = token
        return token

    def create_token(
        self,
        project_id: int,
        *,
        bucket_permissions: dict[str, str] | None = None,
        can_manage_buckets: bool = False,
        can_manage_tokens: bool = False,
        can_read_all_file_uploads: bool = False,
        description: str = "",
    ) -> Token:
        perms = dict(bucket_permissions or {})
        for bucket_id, level in perms.items():
            if level not in LEVELS:
                raise ValueError(f'bucket permission for "{bucket_id}" must be read, write or manage, not "{level}"')
        with self.lock:
            project = self._project(project_id)
            master = next(t for t in self.tokens_by_id.values() if t.project_id == project.id and t.is_master)
            return self._new_token(
                project,
                description=description,
                is_master=False,
                can_manage_buckets=can_manage_buckets,
                can_manage_tokens=can_manage_tokens,
                can_read_all_file_uploads=can_read_all_file_uploads,
                bucket_permissions=perms,
                creator=master.ref(),
            )

    def revoke_token(self, secret: str) -> None:
        with self.lock:
            token = self.tokens.get(secret)
            if token is None:
                raise KeyError("unknown token")
            token.revoked = True

    def _project(self, project_id: int) -> Project:
        project = self.projects.get(int(project_id))
        if project is None:
            raise KeyError(f"unknown project {project_id}")
        return project

    def master_token(self, project_id: int) -> Token:
        with self.lock:
            return next(t for t in self.tokens_by_id.values() if t.project_id == int(project_id) and t.is_master)

    def authenticate(self, secret: str | None) -> Token:
        if not secret:
            raise MissingToken()
        token = self.tokens.get(secret)
        if token is None or token.revoked:
            raise InvalidToken()
        return token

    def verify_token(self, token: Token) -> dict:
        with self.lock:
            project = self.projects[token.project_id]
            return self._token_json(token, project)

    def _token_json(self, token: Token, project: Project) -> dict:
        perms = self._effective_permissions(token, project)
        rows, size = self._project_totals(project)
        data = {
            "id": str(token.id),
            "token": token.secret,
            "created": fmt_time(token.created),
            "refreshed": fmt_time(token.created),
            "description": token.description,
            "uri": f"{self.base_url}/v2/storage/tokens/{token.id}",
            "isMasterToken": token.is_master,
            "canManageBuckets": token.is_master or token.can_manage_buckets,
            "canManageTokens": token.is_master or token.can_manage_tokens,
            "canReadAllFileUploads": token.is_master or token.can_read_all_file_uploads,
            "canPurgeTrash": token.is_master,
            "canManageProtectedDefaultBranch": False,
            "canCreateJobs": False,
            "expires": None,
            "isExpired": False,
            "isDisabled": False,
            "isBYODB": False,
            "dailyCapacity": 0,
            "bucketPermissions": php_map(perms),
            "creatorToken": token.creator if token.creator else token.ref(),
            "componentAccess": [],
            "organization": {"id": 1},
            "owner": {
                "id": project.id,
                "name": project.name,
                "type": "production",
                "region": self.region,
                "created": fmt_time(project.created),
                "expires": None,
                "features": [],
                "dataSizeBytes": size,
                "rowsCount": rows,
                "hasMysql": False,
                "hasSynapse": False,
                "hasRedshift": False,
                "hasSnowflake": True,
                "hasExasol": False,
                "hasTeradata": False,
                "hasBigquery": False,
                "defaultBackend": "snowflake",
                "hasTryModeOn": "0",
                "limits": {
                    "components.jobsParallelism": {"name": "components.jobsParallelism", "value": 10},
                    "kbc.adminsCount": {"name": "kbc.adminsCount", "value": 10},
                    "storage.dataSizeBytes": {"name": "storage.dataSizeBytes", "value": 50000000000},
                    "storage.jobsParallelism": {"name": "storage.jobsParallelism", "value": 10},
                },
                "metrics": {
                    "storage.dataSizeBytes": {"name": "storage.dataSizeBytes", "value": size},
                    "storage.rowsCount": {"name": "storage.rowsCount", "value": rows},
                },
                "isDisabled": False,
                "billedMonthlyPrice": None,
                "dataRetentionTimeInDays": 7,
                "assignedBackends": ["snowflake"],
                "fileStorageProvider": self.storage.provider,
            },
        }
        if token.is_master:
            data["admin"] = {
                "id": 1,
                "name": "Emulator Admin",
                "features": [],
                "isOrganizationMember": True,
                "role": "admin",
            }
        return data

    def _project_totals(self, project: Project) -> tuple[int, int]:
        rows = size = 0
        for bucket in project.buckets.values():
            for table in bucket.tables.values():
                rows += table.rows_count
                size += table.data_size_bytes
        return rows, size

    # permissions -------------------------------------------------------------------------------------------------
    def _effective_permissions(self, token: Token, project: Project) -> dict[str, str]:
        if token.is_master:
            return {bucket_id: "manage" for bucket_id in project.buckets}
        return {b: p for b, p in token.bucket_permissions.items() if b in project.buckets}

    @staticmethod
    def _level(token: Token, bucket_id: str) -> int:
        if token.is_master:
            return LEVELS["manage"]
        return LEVELS.get(token.bucket_permissions.get(bucket_id, ""), 0)

    def _require(self, token: Token, bucket_id: str, level: str) -> None:
        if self._level(token, bucket_id) < LEVELS[level]:
            if self._level(token, bucket_id) == 0:
                raise AccessDenied(f'You don\'t have access to the bucket "{bucket_id}".')
            raise AccessDenied(
                f'You don\'t have permission to {"modify" if level == "write" else "manage"} the bucket "{bucket_id}".'
            )

    def _bucket(self, token: Token, bucket_id: str, level: str = "read") -> Bucket:
        self._require(token, bucket_id, level)
        bucket = self.projects[token.project_id].buckets.get(bucket_id)
        if bucket is None:
            raise BucketNotFound(bucket_id)
        return bucket

    def _table(self, token: Token, table_id: str, level: str = "read") -> Table:
        bucket_id, _, name = str(table_id).rpartition(".")
        if not bucket_id or not name:
            raise TableNotFound(str(table_id))
        self._require(token, bucket_id, level)
        bucket = self.projects[token.project_id].buckets.get(bucket_id)
        if bucket is None:
            raise BucketNotFound(bucket_id)
        table = bucket.tables.get(name)
        if table is None:
            raise TableNotFound(table_id)
        return table

    # buckets ------------------------------------------------------------------------------------------------------
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
            "backend": "snowflake",
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
            return [
                self.bucket_json(b, metadata="metadata" in include)
                for b in sorted(project.buckets.values(), key=lambda b: b.id)
                if self._level(token, b.id) > 0
            ]

    def get_bucket(self, token: Token, bucket_id: str) -> dict:
        with self.lock:
            return self.bucket_json(self._bucket(token, bucket_id), metadata=True)

    def create_bucket(self, token: Token, params: dict) -> dict:
        if not (token.is_master or token.can_manage_buckets):
            raise AccessDenied("You don't have permission to create buckets.")
        name = params.get("name")
        stage = params.get("stage") or "in"
        display_name = params.get("displayName")
        description = params.get("description") or ""
        backend = params.get("backend")
        if not isinstance(name, str) or not name:
            raise ValidationError(
                'Invalid request:\n - name: "This field is missing."', code="storage.buckets.validation"
            )
        name = name.removeprefix("c-")
        if not _NAME_RE.match(name) or len(name) > 96:
            raise ValidationError(
                f'Invalid bucket name "{name}". Only alphanumeric characters, dashes and underscores are allowed.',
                code="storage.buckets.validation",
            )
        if stage not in ("in", "out"):
            raise ValidationError(
                f'Invalid stage "{stage}". Allowed stages: in, out.', code="storage.buckets.validation"
            )
        if backend not in (None, "", "snowflake"):
            raise ValidationError(
                f'Backend "{backend}" is not assigned to the project. Assigned backends: snowflake.',
                code="storage.buckets.validation",
            )
        if display_name in (None, ""):
            display_name = name
        if not isinstance(display_name, str) or not _NAME_RE.match(display_name):
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
                created=utcnow(),
            )
            project.buckets[bucket_id] = bucket
            if not token.is_master:
                token.bucket_permissions[bucket_id] = "manage"
            return self.bucket_json(bucket, metadata=True)

    def delete_bucket(self, token: Token, bucket_id: str, params: dict, *, run_id=None, fault=None):
        """Returns None (sync, 204) or a job dict (``async=true``, 202)."""
        force = parse_bool(params.get("force"), "force")
        is_async = parse_bool(params.get("async"), "async")
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
            fault,
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
            del project.buckets[bucket.id]
            for other in self.tokens_by_id.values():
                if other.project_id == project.id:
                    other.bucket_permissions.pop(bucket.id, None)
        for table in tables:
            self.engine.drop(table.handle)

    # tables -------------------------------------------------------------------------------------------------------
    def table_json(self, table: Table, *, include: set[str] | None = None, detail: bool = False) -> dict:
        include = {"columns", "metadata", "columnMetadata", "bucket"} if detail else (include or set())
        data = {
            "uri": f"{self.base_url}/v2/storage/tables/{table.id}",
            "id": table.id,
            "name": table.name,
            "displayName": table.display_name,
            "transactional": False,
            "primaryKey": list(table.primary_key),
            "indexType": None,
            "indexKey": [],
            "distributionType": None,
            "distributionKey": [],
            "syntheticPrimaryKeyEnabled": False,
            "created": fmt_time(table.created),
            "lastImportDate": fmt_time(table.last_import_date),
            "lastChangeDate": fmt_time(table.last_change_date),
            "rowsCount": table.rows_count,
            "dataSizeBytes": table.data_size_bytes,
            "isAlias": False,
            "isAliasable": True,
            "isTyped": False,
            "tableType": "table",
            "timestampType": "MANAGED",
        }
        if "columns" in include:
            data["columns"] = list(table.columns)
        if "metadata" in include:
            data["metadata"] = [dict(m) for m in table.metadata]
        if "columnMetadata" in include:
            data["columnMetadata"] = php_map(
                {col: [dict(m) for m in items] for col, items in table.column_metadata.items() if items}
            )
        if "bucket" in include:
            bucket = self.projects[table.project_id].buckets.get(table.bucket_id)
            if bucket is not None:
                data["bucket"] = self.bucket_json(bucket, metadata=detail)
        return data

    @staticmethod
    def _list_include(include: str | None) -> set[str]:
        if include is None:
            return {"bucket", "metadata"}
        names = {part.strip() for part in include.split(",") if part.strip()}
        result = set()
        for name in names:
            if name in ("buckets", "bucket"):
                result.add("bucket")
            elif name in ("columns", "metadata", "columnMetadata"):
                result.add(name)
        return result

    def list_tables(self, token: Token, include: str | None = None, bucket_id: str | None = None) -> list[dict]:
        inc = self._list_include(include)
        with self.lock:
            project = self.projects[token.project_id]
            if bucket_id is not None:
                buckets = [self._bucket(token, bucket_id)]
            else:
                buckets = [b for b in sorted(project.buckets.values(), key=lambda b: b.id) if self._level(token, b.id)]
            return [self.table_json(t, include=inc) for b in buckets for t in sorted(b.tables.values(), key=_by_id)]

    def get_table(self, token: Token, table_id: str) -> dict:
        with self.lock:
            return self.table_json(self._table(token, table_id), detail=True)

    def delete_table(self, token: Token, table_id: str, params: dict, *, run_id=None, fault=None):
        is_async = parse_bool(params.get("async"), "async")
        with self.lock:
            table = self._table(token, table_id, "write")
        if not is_async:
            self._drop_table(table)
            return None
        job = self._new_job(token, "tableDrop", table.id, {"force": bool(params.get("force"))}, run_id, fault)
        return self._submit(job, lambda _job: self._drop_table(table), key=table.id)

    def _drop_table(self, table: Table) -> None:
        with self.lock:
            bucket = self.projects[table.project_id].buckets.get(table.bucket_id)
            if bucket is None or bucket.tables.get(table.name) is not table:
                raise TableNotFound(table.id)
            del bucket.tables[table.name]
            bucket.last_change_date = utcnow()
            project = self.projects[table.project_id]
            for key in [k for k in project.export_cache if k[0] == table.id]:
                del project.export_cache[key]
        self.engine.drop(table.handle)

    # table create --------------------------------------------------------------------------------------------------
    def create_table_async(self, token: Token, bucket_id: str, params: dict, *, run_id=None, fault=None) -> dict:
        with self.lock:
            bucket = self._bucket(token, bucket_id, "write")
        name = params.get("name")
        if not isinstance(name, str) or not name:
            raise ValidationError(
                'Invalid request:\n - name: "This field is missing."', code="storage.tables.validation"
            )
        self._validate_table_name(name)
        primary_key = self._parse_create_pk(params.get("primaryKey"))
        file_id = self._parse_file_id(params)
        delimiter, enclosure, escaped_by = _csv_options(params)
        with self.lock:
            self._check_table_name_free(bucket, name)
        table_id = f"{bucket.id}.{name}"
        job = self._new_job(
            token,
            "tableCreate",
            table_id,
            {
                "name": name,
                "params": {
                    "primaryKey": ",".join(primary_key),
                    "enclosure": enclosure,
                    "delimiter": delimiter,
                    "escapedBy": escaped_by,
                },
                "source": {"fileId": str(file_id), "type": "file"},
                "queue": "main",
            },
            run_id,
            fault,
        )
        project = self.projects[token.project_id]

        def work(job: Job) -> dict:
            return self._create_table(project, bucket, name, file_id, primary_key, delimiter, enclosure, job.id)

        return self._submit(job, work, key=table_id)

    @staticmethod
    def _validate_table_name(name: str) -> None:
        if "." in name or not _NAME_RE.match(name) or len(name) > _MAX_TABLE_NAME_LENGTH:
            raise ValidationError(
                f'Invalid table name "{name}". Only alphanumeric characters, dashes and underscores are allowed.',
                code="storage.tables.validation",
            )

    @staticmethod
    def _check_table_name_free(bucket: Bucket, name: str) -> None:
        for other in bucket.tables.values():
            if other.name == name or other.display_name == name:
                raise ValidationError(
                    f'The table "{other.name}" in the bucket already has the same display name "{name}".',
                    code="storage.buckets.tableAlreadyExists",
                )

    @staticmethod
    def _parse_create_pk(value) -> list[str]:
        if value is None or value == "":
            return []
        if not isinstance(value, str):
            raise ValidationError(
                'Invalid request:\n - primaryKey: "This value should be of type string."',
                code="storage.validation.primaryKey",
            )
        return [part.strip() for part in value.split(",") if part.strip()]

    @staticmethod
    def _parse_file_id(params: dict) -> int:
        value = params.get("dataFileId")
        if value is None or value == "":
            raise ValidationError(
                'Invalid request:\n - dataFileId: "This field is missing."', code="storage.tables.validation"
            )
        return parse_int(value, "dataFileId", minimum=1, code="storage.tables.validation")

    def _create_table(
        self,
        project: Project,
        bucket: Bucket,
        name: str,
        file_id: int,
        primary_key: list[str],
        delimiter: str,
        enclosure: str,
        job_id: int | str,
    ) -> dict:
        with self._job_dir(job_id) as tmp:
            file, paths = self._fetch_for_load(project, file_id, tmp)
            if file.is_sliced:
                raise ValidationError(
                    "Cannot create a table from a sliced file: sliced files have no header row. "
                    "Create the table from a file with a header, then import the slices with columns.",
                    code="storage.tables.validation.invalidColumnName",
                )
            header = self.engine.read_header(paths, delimiter=delimiter, enclosure=enclosure)
            if not header:
                raise ValidationError(
                    "No columns found in the CSV file. The file is empty or has no header row.",
                    code="storage.tables.validation.noColumns",
                )
            columns = []
            for raw in header:
                column = sanitize_column_name(raw)
                if not column or len(column) > _MAX_COLUMN_LENGTH:
                    raise ValidationError(
                        f'Invalid column name "{raw}": a column name must contain an alphanumeric character and be '
                        f"at most {_MAX_COLUMN_LENGTH} characters long.",
                        code="storage.tables.validation.invalidColumnName",
                    )
                if column in columns:
                    raise ValidationError(
                        f'Duplicate column name "{column}" (after sanitizing "{raw}").',
                        code="storage.tables.validation.invalidColumnName",
                    )
                columns.append(column)
            missing = [c for c in primary_key if c not in columns]
            if missing:
                raise ValidationError(
                    f"Primary key columns {', '.join(missing)} are not present in the table columns "
                    f"({', '.join(columns)}).",
                    code="storage.tables.validation.invalidPrimaryKeyColumns",
                )
            with self.lock:
                if project.buckets.get(bucket.id) is not bucket:
                    raise BucketNotFound(bucket.id)
                self._check_table_name_free(bucket, name)
                handle = f"t{self._next('table')}"
            now = utcnow()
            self.engine.create(handle, columns)
            try:
                self.engine.load(
                    handle,
                    paths,
                    file_columns=columns,
                    has_header=True,
                    incremental=False,
                    primary_key=primary_key,
                    timestamp=now,
                    delimiter=delimiter,
                    enclosure=enclosure,
                )
                rows, size = self.engine.stats(handle)
            except BaseException:
                self.engine.drop(handle)
                raise
            table = Table(
                id=f"{bucket.id}.{name}",
                project_id=project.id,
                bucket_id=bucket.id,
                name=name,
                display_name=name,
                handle=handle,
                columns=columns,
                primary_key=primary_key,
                created=now,
                last_import_date=now,
                last_change_date=now,
                rows_count=rows,
                data_size_bytes=size,
            )
            with self.lock:
                if project.buckets.get(bucket.id) is not bucket:
                    self.engine.drop(handle)
                    raise BucketNotFound(bucket.id)
                bucket.tables[name] = table
                bucket.last_change_date = now
                return self.table_json(table, detail=True)

    # loading files --------------------------------------------------------------------------------------------------
    def _job_dir(self, job_id):
        return _TempDir(self.workdir / "jobs", f"job-{job_id}-")

    def _file_for_job(self, project: Project, file_id: int) -> StoredFile:
        with self.lock:
            file = project.files.get(int(file_id))
            if file is None or file.deleted:
                raise FileNotFound(file_id)
            return file

    def _fetch_for_load(self, project: Project, file_id: int, tmp: Path) -> tuple[StoredFile, list[Path]]:
        file = self._file_for_job(project, file_id)
        if not file.is_sliced:
            if not self.storage.exists(file.key):
                raise ValidationError(
                    f'File "{file.id}" was not uploaded. Upload the file before using it.',
                    code="storage.fileNotUploaded",
                )
            dest = tmp / _local_name(0, file.name)
            try:
                self.storage.fetch(file.key, dest)
            except FileNotFoundError:
                raise ValidationError(f'File "{file.id}" was not uploaded.', code="storage.fileNotUploaded") from None
            return file, [dest]
        try:
            manifest_raw = self.storage.read_bytes(file.key + "manifest")
        except FileNotFoundError:
            raise ValidationError(
                f'Manifest file "{file.key}manifest" of the sliced file "{file.id}" is missing.',
                code="storage.manifestFileMissing",
            ) from None
        try:
            manifest = json.loads(manifest_raw)
            entries = manifest["entries"]
            urls = [entry["url"] for entry in entries]
        except (ValueError, KeyError, TypeError):
            raise ValidationError(
                f'Invalid manifest of the sliced file "{file.id}": expected {{"entries": [{{"url": ...}}]}}.',
                code="storage.invalidManifest",
            ) from None
        paths = []
        for index, url in enumerate(urls):
            key = self.storage.entry_key(url)
            dest = tmp / _local_name(index, key.rsplit("/", 1)[-1])
            try:
                self.storage.fetch(key, dest)
            except FileNotFoundError:
                raise ValidationError(
                    f'Import file "{url}" listed in the manifest of file "{file.id}" was not found.',
                    code="storage.importFileMissing",
                ) from None
            paths.append(dest)
        return file, paths

    # table import --------------------------------------------------------------------------------------------------
    def import_async(self, token: Token, table_id: str, params: dict, *, run_id=None, fault=None) -> dict:
        with self.lock:
            table = self._table(token, table_id, "write")
        file_id = self._parse_file_id(params)
        incremental = parse_bool(params.get("incremental"), "incremental")
        without_headers = parse_bool(params.get("withoutHeaders"), "withoutHeaders")
        columns = _as_list(params.get("columns"), "columns")
        if any(not isinstance(c, str) or not c for c in columns):
            raise ValidationError(
                'Invalid request:\n - columns: "Each column must be a non-empty string."',
                code="storage.tables.validation",
            )
        delimiter, enclosure, escaped_by = _csv_options(params)
        treat_null = params.get("treatValuesAsNull")
        if treat_null is not None and len(_as_list(treat_null, "treatValuesAsNull")) > 1:
            raise ValidationError(
                'Invalid request:\n - treatValuesAsNull: "This collection should contain 1 element or less."',
                code="storage.tables.validation",
            )
        if parse_int(params.get("ignoredLinesCount"), "ignoredLinesCount", default=0):
            raise ValidationError(
                "ignoredLinesCount is not supported by the emulator.", code="storage.tables.validation"
            )
        job = self._new_job(
            token,
            "tableImport",
            table.id,
            {
                "params": {
                    "incremental": incremental,
                    "withoutHeaders": without_headers,
                    "columns": columns,
                    "delimiter": delimiter,
                    "enclosure": enclosure,
                    "escapedBy": escaped_by,
                },
                "source": {"fileId": str(file_id), "type": "file"},
                "queue": "main",
            },
            run_id,
            fault,
        )
        project = self.projects[token.project_id]

        def work(job: Job) -> dict:
            return self._import(
                project, table, file_id, incremental, without_headers, columns, delimiter, enclosure, job.id
            )

        return self._submit(job, work, key=table.id)

    def _live_table(self, table: Table) -> Table:
        with self.lock:
            bucket = self.projects[table.project_id].buckets.get(table.bucket_id)
            if bucket is None or bucket.tables.get(table.name) is not table:
                raise TableNotFound(table.id)
            return table

    def _import(
        self,
        project: Project,
        table: Table,
        file_id: int,
        incremental: bool,
        without_headers: bool,
        columns: list[str],
        delimiter: str,
        enclosure: str,
        job_id,
    ) -> dict:
        self._live_table(table)
        with self._job_dir(job_id) as tmp:
            file, paths = self._fetch_for_load(project, file_id, tmp)
            if columns:
                file_columns, has_header = list(columns), False
            elif without_headers or file.is_sliced:
                file_columns, has_header = list(table.columns), False
            else:
                file_columns = self.engine.read_header(paths, delimiter=delimiter, enclosure=enclosure)
                has_header = True
                if not file_columns:
                    raise self._columns_not_match(table.columns, table.columns, delimiter)
            seen = set()
            for column in file_columns:
                if column in seen:
                    raise ValidationError(
                        f'Duplicate column "{column}" in the imported file.',
                        code="storage.tables.validation.duplicateColumn",
                    )
                seen.add(column)
                if column not in table.columns and (not _COLUMN_RE.match(column) or len(column) > _MAX_COLUMN_LENGTH):
                    missing = [c for c in table.columns if c not in file_columns]
                    if missing:
                        raise self._columns_not_match(missing, table.columns, delimiter)
                    raise ValidationError(
                        f'Invalid column name "{column}": only alphanumeric characters and underscores are '
                        "allowed and the name must not start with an underscore.",
                        code="storage.tables.validation.invalidColumnName",
                    )
            now = utcnow()
            try:
                result = self.engine.load(
                    table.handle,
                    paths,
                    file_columns=file_columns,
                    has_header=has_header,
                    incremental=incremental,
                    primary_key=list(table.primary_key),
                    timestamp=now,
                    delimiter=delimiter,
                    enclosure=enclosure,
                )
            except ColumnsNotMatch as exc:
                exc.extra.setdefault(
                    "results",
                    {
                        "missingColumns": exc.extra.get("missingColumns"),
                        "expectedColumns": exc.extra.get("expectedColumns"),
                    },
                )
                raise
            rows, size = self.engine.stats(table.handle)
            with self.lock:
                table.columns = list(result.table_columns)
                table.rows_count, table.data_size_bytes = rows, size
                table.last_import_date = table.last_change_date = now
                table.data_version += 1
                bucket = project.buckets.get(table.bucket_id)
                if bucket is not None:
                    bucket.last_change_date = now
            return {
                "importedColumns": list(result.imported_columns),
                "warnings": [],
                "transaction": None,
                "totalDataSizeBytes": size,
                "totalRowsCount": rows,
            }

    @staticmethod
    def _columns_not_match(missing, expected, delimiter) -> ColumnsNotMatch:
        exc = ColumnsNotMatch(list(missing), list(expected), delimiter)
        exc.extra["results"] = {"missingColumns": list(missing), "expectedColumns": list(expected)}
        return exc

    # primary key ----------------------------------------------------------------------------------------------------
    def add_primary_key(self, token: Token, table_id: str, params: dict, *, run_id=None, fault=None) -> dict:
        with self.lock:
            table = self._table(token, table_id, "write")
        columns = params.get("columns")
        if columns is None or columns == []:
            raise ValidationError(
                'Invalid request:\n - columns: "This field is missing."', code="storage.tables.validation"
            )
        columns = _as_list(columns, "columns")
        if any(not isinstance(c, str) or not c for c in columns):
            raise ValidationError(
                'Invalid request:\n - columns: "Each column must be a non-empty string."',
                code="storage.tables.validation",
            )
        job = self._new_job(token, "tablePrimaryKeyAdd", table.id, {"columns": columns, "queue": "main"}, run_id, fault)

        def work(job: Job):
            self._live_table(table)
            if table.primary_key:
                raise ValidationError(
                    f'Primary key already exists on table "{table.id}": {",".join(table.primary_key)}.',
                    code="storage.tables.primaryKeyAlreadyExists",
                )
            unknown = [c for c in columns if c not in table.columns]
            if unknown:
                raise ValidationError(
                    f"Primary key columns {', '.join(unknown)} do not exist in the table. "
                    f"Table columns: {', '.join(table.columns)}.",
                    code="storage.tables.validation.invalidPrimaryKeyColumns",
                )
            if self.engine.has_duplicates(table.handle, list(columns)):
                raise ValidationError(
                    "Cannot create new primary key, duplicate values in primary key columns",
                    code="storage.tables.primaryKeyDuplicateValues",
                )
            with self.lock:
                table.primary_key = list(columns)
                table.last_change_date = utcnow()

        return self._submit(job, work, key=table.id)

    def remove_primary_key(self, token: Token, table_id: str, *, run_id=None, fault=None) -> dict:
        with self.lock:
            table = self._table(token, table_id, "write")
        job = self._new_job(token, "tablePrimaryKeyDelete", table.id, {"queue": "main"}, run_id, fault)

        def work(job: Job):
            self._live_table(table)
            with self.lock:
                table.primary_key = []
                table.last_change_date = utcnow()

        return self._submit(job, work, key=table.id)

    # rows delete ----------------------------------------------------------------------------------------------------
    def delete_rows(self, token: Token, table_id: str, params: dict, *, run_id=None, fault=None) -> dict:
        with self.lock:
            table = self._table(token, table_id, "write")
        now = utcnow()
        query = TableQuery(
            changed_since=parse_time(params.get("changedSince"), "changedSince", now),
            changed_until=parse_time(params.get("changedUntil"), "changedUntil", now),
            where_filters=parse_where(params),
        )
        job = self._new_job(
            token,
            "tableRowsDelete",
            table.id,
            {
                "queue": "main",
                "params": {
                    "changedSince": params.get("changedSince"),
                    "changedUntil": params.get("changedUntil"),
                    "whereFilters": [_filter_json(f) for f in query.where_filters],
                },
            },
            run_id,
            fault,
        )

        def work(job: Job) -> dict:
            self._live_table(table)
            self._check_columns(table, [f.column for f in query.where_filters])
            deleted = self.engine.delete_rows(
                table.handle,
                where_filters=query.where_filters,
                changed_since=query.changed_since,
                changed_until=query.changed_until,
            )
            rows, size = self.engine.stats(table.handle)
            with self.lock:
                table.rows_count, table.data_size_bytes = rows, size
                table.last_change_date = utcnow()
                table.data_version += 1
            return {"deletedRows": deleted}

        return self._submit(job, work, key=table.id)

    @staticmethod
    def _check_columns(table: Table, columns) -> None:
        unknown = [c for c in columns if c not in table.columns]
        if unknown:
            raise ValidationError(
                f'Columns {", ".join(unknown)} do not exist in the table "{table.id}". '
                f"Table columns: {', '.join(table.columns)}.",
                code="storage.tables.validation.columnNotExists",
            )

    # export ------------------------------------------------------------------------------------------------------------
    def export_async(self, token: Token, table_id: str, params: dict, *, run_id=None, fault=None) -> dict:
        with self.lock:
            table = self._table(token, table_id, "read")
        query = parse_table_query(params, export=True)
        job = self._new_job(
            token,
            "tableExport",
            table.id,
            {
                "export": {
                    "tableName": None,
                    "columns": list(query.columns or []),
                    "limit": query.limit,
                    "changedSince": params.get("changedSince") or None,
                    "changedUntil": params.get("changedUntil") or None,
                    "gzipOutput": query.gzip,
                    "format": query.format,
                    "whereFilters": [_filter_json(f) for f in query.where_filters],
                    "orderBy": [{"column": o.column, "order": o.order} for o in query.order_by],
                    "fileType": "csv",
                    "timezone": None,
                },
                "queue": "main_fast",
            },
            run_id,
            fault,
        )
        project = self.projects[token.project_id]
        creator = token

        def work(job: Job) -> dict:
            return self._export(project, table, query, creator, job)

        return self._submit(job, work, key=table.id)

    def _export(self, project: Project, table: Table, query: TableQuery, token: Token, job: Job) -> dict:
        self._live_table(table)
        self._check_columns(table, query.referenced_columns())
        # per token: a token without canReadAllFileUploads may read only the files it created
        cache_key = (table.id, f"{token.id}:{query.cache_key()}")
        with self.lock:
            cached = project.export_cache.get(cache_key)
            if cached is not None:
                file_id, version = cached
                file = project.files.get(file_id)
                if file is not None and not file.deleted and version == table.data_version:
                    if job.run_id:
                        file.run_ids.append(job.run_id)
                    return {"file": {"id": file.id}, "cacheHit": True}
            version = table.data_version
        file_name = f"{table.id}.csv" + (".gz" if query.gzip else "")
        file = self._new_file(
            project,
            token,
            name=file_name,
            sliced=True,
            encrypted=True,
            permanent=False,
            public=False,
            tags=["table-export"],
            run_id=job.run_id,
            max_age_days=EXPORT_MAX_AGE_DAYS,
            key_prefix=f"exp-{EXPORT_MAX_AGE_DAYS}/{project.id}/table-exports/"
            + table.bucket_id.replace(".", "/")
            + f"/{table.name}",
            register=False,
        )
        file.file_type = "csv"
        with self._job_dir(job.id) as tmp:
            slices = self.engine.export(
                table.handle,
                tmp,
                columns=query.columns,
                changed_since=query.changed_since,
                changed_until=query.changed_until,
                where_filters=query.where_filters,
                order_by=query.order_by,
                limit=query.limit,
                gzip=query.gzip,
            )
            entries = []
            total = 0
            for path in sorted(slices, key=lambda p: p.name):
                key = file.key + path.name
                self.storage.put_file(key, path)
                total += path.stat().st_size
                entries.append({"url": self.storage.entry_url(key), "mandatory": True})
            self.storage.put_bytes(file.key + "manifest", json.dumps({"entries": entries}).encode())
        file.size_bytes = total
        with self.lock:
            project.files[file.id] = file
            if table.data_version == version:
                project.export_cache[cache_key] = (file.id, version)
        return {"file": {"id": file.id}, "cacheHit": False}

    # preview ------------------------------------------------------------------------------------------------------------
    def preview(self, token: Token, table_id: str, params: dict) -> tuple[str, list[str], list[list]]:
        """Returns ``(format, columns, rows)``."""
        with self.lock:
            table = self._table(token, table_id, "read")
        query = parse_table_query(params, export=False)
        self._check_columns(table, query.referenced_columns())
        columns, rows = self.engine.preview(
            table.handle,
            columns=query.columns,
            changed_since=query.changed_since,
            changed_until=query.changed_until,
            where_filters=query.where_filters,
            order_by=query.order_by,
            limit=query.limit,
        )
        return query.format, list(columns), [list(r) for r in rows]

    # metadata -----------------------------------------------------------------------------------------------------------
    def post_table_metadata(self, token: Token, table_id: str, params: dict) -> list[dict]:
        provider = params.get("provider")
        if not isinstance(provider, str) or not provider:
            raise ValidationError(
                'Invalid request:\n - provider: "This field is missing."', code="storage.metadata.invalidProvider"
            )
        metadata = _as_list(params.get("metadata"), "metadata", "storage.metadata.validation")
        columns_metadata = params.get("columnsMetadata") or {}
        if isinstance(columns_metadata, list) and not columns_metadata:
            columns_metadata = {}
        if not isinstance(columns_metadata, dict):
            raise ValidationError(
                'Invalid request:\n - columnsMetadata: "This value should be of type object."',
                code="storage.metadata.validation",
            )
        if not metadata and not columns_metadata:
            raise ValidationError(
                'Invalid request:\n - metadata: "This field is missing."', code="storage.metadata.validation"
            )
        items = [_metadata_item(m, f"metadata[{i}]") for i, m in enumerate(metadata)]
        col_items = {
            col: [
                _metadata_item(m, f"columnsMetadata[{col}][{i}]")
                for i, m in enumerate(_as_list(v, f"columnsMetadata[{col}]", "storage.metadata.validation"))
            ]
            for col, v in columns_metadata.items()
        }
        with self.lock:
            table = self._table(token, table_id, "write")
            unknown = [c for c in col_items if c not in table.columns]
            if unknown:
                raise ValidationError(
                    f'Columns {", ".join(unknown)} do not exist in the table "{table.id}".',
                    code="storage.tables.validation.columnNotExists",
                )
            now = fmt_time(utcnow())
            for key, value in items:
                self._upsert_metadata(table.metadata, provider, key, value, now)
            for col, pairs in col_items.items():
                target = table.column_metadata.setdefault(col, [])
                for key, value in pairs:
                    self._upsert_metadata(target, provider, key, value, now)
            return [dict(m) for m in table.metadata]

    def _upsert_metadata(self, target: list[dict], provider: str, key: str, value: str, now: str) -> None:
        for item in target:
            if item["provider"] == provider and item["key"] == key:
                if item["value"] != value:
                    item["value"] = value
                    item["timestamp"] = now
                return
        target.append(
            {"id": str(self._next("metadata")), "key": key, "value": value, "provider": provider, "timestamp": now}
        )

    def list_table_metadata(self, token: Token, table_id: str) -> list[dict]:
        with self.lock:
            return [dict(m) for m in self._table(token, table_id, "read").metadata]

    def delete_table_metadata(self, token: Token, table_id: str, metadata_id: str) -> None:
        with self.lock:
            table = self._table(token, table_id, "write")
            for target in [table.metadata, *table.column_metadata.values()]:
                for item in target:
                    if item["id"] == str(metadata_id):
                        target.remove(item)
                        return
            raise errors.NotFound(f'Metadata "{metadata_id}" not found', code="storage.metadata.notFound")

    # files ----------------------------------------------------------------------------------------------------------
    def _new_file(
        self,
        project: Project,
        token: Token,
        *,
        name: str,
        sliced: bool,
        encrypted: bool,
        permanent: bool,
        public: bool,
        tags: list[str],
        run_id: str | None,
        max_age_days: int | None,
        key_prefix: str | None = None,
        declared_size: int | None = None,
        register: bool = True,
    ) -> StoredFile:
        file_id = self._next("file")
        now = utcnow()
        safe_name = sanitize_file_name(name)
        if key_prefix is None:
            exp = f"exp-{max_age_days}" if max_age_days else "permanent"
            key_prefix = f"{exp}/{project.id}/files/{now:%Y/%m/%d}"
        file = StoredFile(
            id=file_id,
            project_id=project.id,
            name=safe_name,
            key=f"{key_prefix}/{file_id}.{safe_name}",
            created=now,
            is_sliced=sliced,
            is_encrypted=encrypted,
            is_permanent=permanent,
            is_public=public,
            tags=list(tags),
            max_age_days=max_age_days,
            run_id=run_id,
            run_ids=[run_id] if run_id else [],
            creator_token=token.ref(),
            creator_token_id=token.id,
            declared_size=declared_size,
        )
        if register:
            with self.lock:
                project.files[file_id] = file
        return file

    def file_json(self, file: StoredFile, *, federation: bool = False, upload: bool = False) -> dict:
        data = {
            "id": file.id,
            "created": fmt_time(file.created),
            "isPublic": file.is_public,
            "isSliced": file.is_sliced,
            "isEncrypted": file.is_encrypted,
            "name": file.name,
            "url": self.storage.url(file.key, sliced=file.is_sliced),
            "provider": self.storage.provider,
            "region": self.region,
            "sizeBytes": self._file_size(file),
            "tags": list(file.tags),
            "maxAgeDays": file.max_age_days,
            "runId": file.run_id,
            "runIds": list(file.run_ids),
            "creatorToken": dict(file.creator_token),
        }
        if file.file_type:
            data["fileType"] = file.file_type
        if upload:
            data.update(
                self.storage.prepare_block(file.key, name=file.name, sliced=file.is_sliced, encrypted=file.is_encrypted)
            )
        elif federation:
            data.update(self.storage.detail_block(file.key, sliced=file.is_sliced))
        return data

    def _file_size(self, file: StoredFile) -> int | None:
        if file.size_bytes is not None:
            return file.size_bytes
        if not file.is_sliced:
            size = self.storage.size(file.key)
            if size is not None:
                return size
        return file.declared_size

    def prepare_file(self, token: Token, params: dict, *, run_id=None) -> dict:
        name = params.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ValidationError(
                'Invalid request:\n - name: "This field is missing."', code="storage.files.validation"
            )
        tags = _as_list(params.get("tags"), "tags", "storage.files.validation")
        if any(not isinstance(t, str) for t in tags):
            raise ValidationError(
                'Invalid request:\n - tags: "Each tag must be a string."', code="storage.files.validation"
            )
        size = parse_int(params.get("sizeBytes"), "sizeBytes", code="storage.files.validation")
        sliced = parse_bool(params.get("isSliced"), "isSliced")
        encrypted = parse_bool(params.get("isEncrypted"), "isEncrypted", default=True)
        permanent = parse_bool(params.get("isPermanent"), "isPermanent")
        parse_bool(params.get("isPublic"), "isPublic")  # ignored: files are never public (APIB)
        parse_bool(params.get("notify"), "notify")
        parse_bool(params.get("federationToken"), "federationToken")
        if self.storage.provider != "aws":
            encrypted = True  # azure and gcp files are always encrypted (APIB)
        with self.lock:
            project = self.projects[token.project_id]
        file = self._new_file(
            project,
            token,
            name=name.strip(),
            sliced=sliced,
            encrypted=encrypted,
            permanent=permanent,
            public=False,
            tags=list(dict.fromkeys(tags)),
            run_id=run_id,
            max_age_days=None if permanent else UPLOAD_MAX_AGE_DAYS,
            declared_size=size,
        )
        return self.file_json(file, upload=True)

    def _visible_file(self, token: Token, file_id) -> StoredFile:
        try:
            fid = int(file_id)
        except (TypeError, ValueError):
            raise FileNotFound(file_id) from None
        with self.lock:
            file = self.projects[token.project_id].files.get(fid)
            if file is None or file.deleted:
                raise FileNotFound(file_id)
            if not (token.is_master or token.can_read_all_file_uploads or file.creator_token_id == token.id):
                raise AccessDenied(f'You don\'t have access to the file "{fid}".')
            return file

    def get_file(self, token: Token, file_id, params: dict) -> dict:
        file = self._visible_file(token, file_id)
        return self.file_json(file, federation=parse_bool(params.get("federationToken"), "federationToken"))

    def list_files(self, token: Token, params: dict) -> list[dict]:
        limit = parse_int(params.get("limit"), "limit", default=FILES_DEFAULT_LIMIT, code="storage.files.validation")
        offset = parse_int(params.get("offset"), "offset", default=0, code="storage.files.validation")
        tags = _as_list(params.get("tags"), "tags", "storage.files.validation")
        run_id = params.get("runId")
        since_id = parse_int(params.get("sinceId"), "sinceId", code="storage.files.validation")
        max_id = parse_int(params.get("maxId"), "maxId", code="storage.files.validation")
        with self.lock:
            files = [
                f
                for f in self.projects[token.project_id].files.values()
                if not f.deleted
                and (token.is_master or token.can_read_all_file_uploads or f.creator_token_id == token.id)
                and all(t in f.tags for t in tags)
                and (not run_id or run_id == f.run_id or run_id in f.run_ids)
                and (since_id is None or f.id > since_id)
                and (max_id is None or f.id <= max_id)
            ]
        files.sort(key=lambda f: f.id, reverse=True)
        return [self.file_json(f) for f in files[offset : offset + limit]]

    def delete_file(self, token: Token, file_id) -> None:
        file = self._visible_file(token, file_id)
        with self.lock:
            file.deleted = True

    def refresh_file(self, token: Token, file_id) -> dict:
        file = self._visible_file(token, file_id)
        if self.storage.provider != "gcp":
            raise ValidationError(
                "Refreshing file credentials is supported only for GCP file storage.",
                code="storage.files.validation",
            )
        data = self.file_json(file, upload=True)
        data.update(self.storage.detail_block(file.key, sliced=file.is_sliced))  # fresh download token too
        return data

    # seeding (Python API, no HTTP) ------------------------------------------------------------------------------------
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

    def load_table_direct(self, project_id: int, table_id: str, path: Path, *, incremental: bool) -> dict:
        project = self._project(project_id)
        token = self.master_token(project_id)
        with self.lock:
            table = self._table(token, table_id, "write")
        file = self.upload_local_file(project_id, path, tags=["emulator-seed"])
        return self._import(project, table, file.id, incremental, False, [], ",", '"', f"seed-{file.id}")

    def table_for(self, project_id: int, table_id: str) -> Table:
        token = self.master_token(project_id)
        with self.lock:
            return self._table(token, table_id, "read")

    # jobs -----------------------------------------------------------------------------------------------------------
    def _new_job(self, token: Token, operation: str, table_id, operation_params: dict, run_id, fault) -> Job:
        job = Job(
            id=self._next("job"),
            project_id=token.project_id,
            operation_name=operation,
            table_id=table_id,
            operation_params=operation_params,
            created_time=utcnow(),
            creator_token={"id": str(token.id), "description": token.description},
            run_id=run_id or None,
        )
        if fault is not None:
            job.fault_code = fault[0]
            job.fault_message = fault[1]
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

    def list_jobs(self, token: Token, params: dict) -> list[dict]:
        limit = parse_int(params.get("limit"), "limit", default=JOBS_DEFAULT_LIMIT)
        offset = parse_int(params.get("offset"), "offset", default=0)
        with self.lock:
            jobs = [j for j in self.jobs.values() if j.project_id == token.project_id]
        jobs.sort(key=lambda j: j.id, reverse=True)
        return [self.job_json(j) for j in jobs[offset : offset + limit]]

    def wait_job(self, job_id: int, timeout: float | None = None) -> dict:
        job = self.jobs[int(job_id)]
        job.done.wait(timeout)
        return self.job_json(job)


# ---------------------------------------------------------------------------------------------------------------
# request parameter parsing shared by export, preview and rows delete
# ---------------------------------------------------------------------------------------------------------------
def _filter_json(f: WhereFilter) -> dict:
    return {"column": f.column, "operator": f.operator, "values": list(f.values)}


def parse_where(params: dict) -> list[WhereFilter]:
    filters: list[WhereFilter] = []
    where_column = params.get("whereColumn")
    if where_column not in (None, ""):
        operator = params.get("whereOperator") or "eq"
        if operator not in WHERE_OPERATORS:
            raise ValidationError(
                f'Invalid request:\n - whereOperator: "The value "{operator}" is not valid. Allowed: eq, ne."',
                code="storage.tables.validation",
            )
        values = params.get("whereValues")
        values = [values] if isinstance(values, str) else _as_list(values, "whereValues")
        filters.append(WhereFilter(column=str(where_column), operator=operator, values=[_str(v) for v in values]))
    raw_filters = params.get("whereFilters")
    if raw_filters not in (None, ""):
        for index, item in enumerate(_as_list(raw_filters, "whereFilters")):
            prefix = f"whereFilters[{index}]"
            if not isinstance(item, dict):
                raise ValidationError(
                    f'Invalid request:\n - {prefix}: "This value should be of type array."',
                    code="storage.tables.validation",
                )
            problems = []
            if item.get("column") in (None, ""):
                problems.append(f' - {prefix}[column]: "This field is missing."')
            if "values" not in item or item.get("values") is None:
                problems.append(f' - {prefix}[values]: "This field is missing."')
            operator = item.get("operator") or "eq"
            if operator not in FILTER_OPERATORS:
                problems.append(
                    f' - {prefix}[operator]: "The value you selected is not a valid choice. '
                    f'Allowed: {", ".join(FILTER_OPERATORS)}."'
                )
            if problems:
                raise ValidationError("Invalid request:\n" + "\n".join(problems), code="storage.tables.validation")
            values = item["values"]
            values = [values] if isinstance(values, str | int | float) else _as_list(values, f"{prefix}[values]")
            if not values:
                raise ValidationError(
                    f'Invalid request:\n - {prefix}[values]: "This collection should contain 1 element or more."',
                    code="storage.tables.validation",
                )
            filters.append(WhereFilter(column=str(item["column"]), operator=operator, values=[_str(v) for v in values]))
    return filters


def _str(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def parse_order_by(params: dict) -> list[OrderBy]:
    raw = params.get("orderBy")
    if raw in (None, ""):
        return []
    result = []
    for index, item in enumerate(_as_list(raw, "orderBy")):
        if not isinstance(item, dict) or item.get("column") in (None, ""):
            raise ValidationError(
                f'Invalid request:\n - orderBy[{index}][column]: "This field is missing."',
                code="storage.tables.validation",
            )
        order = str(item.get("order") or "ASC").upper()
        if order not in ("ASC", "DESC"):
            raise ValidationError(
                f'Invalid request:\n - orderBy[{index}][order]: "The value you selected is not a valid choice. '
                'Allowed: ASC, DESC."',
                code="storage.tables.validation",
            )
        result.append(OrderBy(column=str(item["column"]), order=order))
    return result


def parse_table_query(params: dict, *, export: bool) -> TableQuery:
    now = utcnow()
    fmt = params.get("format") or "rfc"
    if fmt not in ("rfc", "json"):
        raise ValidationError(
            f'Invalid format "{fmt}". Allowed formats: rfc, json.', code="storage.tables.validation.invalidFormat"
        )
    columns = params.get("columns")
    if columns in (None, ""):
        column_list = None
    elif isinstance(columns, str):
        column_list = [c.strip() for c in columns.split(",") if c.strip()] or None
    else:
        raise ValidationError(
            'Invalid request:\n - columns: "This value should be of type string: a comma-separated list of columns."',
            code="storage.tables.validation",
        )
    if export:
        if fmt == "json":
            raise ValidationError(
                'Export format "json" is not supported by the emulator; use "rfc".',
                code="storage.tables.validation.invalidFormat",
            )
        file_type = params.get("fileType") or "csv"
        if file_type != "csv":
            raise ValidationError(
                f'File type "{file_type}" is not supported by the emulator; use "csv".',
                code="storage.tables.validation",
            )
        limit = parse_int(params.get("limit"), "limit", code="storage.tables.validation")
        gzip = parse_bool(params.get("gzip"), "gzip")
    else:
        limit = parse_int(params.get("limit"), "limit", default=PREVIEW_DEFAULT_LIMIT, code="storage.tables.validation")
        if limit > PREVIEW_MAX_LIMIT:
            raise ValidationError(
                f'Invalid request:\n - limit: "This value should be less than or equal to {PREVIEW_MAX_LIMIT}." '
                f"The data preview returns at most {PREVIEW_MAX_LIMIT} rows; use export-async for more.",
                code="storage.tables.validation",
            )
        gzip = False
    return TableQuery(
        columns=column_list,
        changed_since=parse_time(params.get("changedSince"), "changedSince", now),
        changed_until=parse_time(params.get("changedUntil"), "changedUntil", now),
        where_filters=parse_where(params),
        order_by=parse_order_by(params),
        limit=limit,
        format=fmt,
        gzip=gzip,
    )


def _metadata_item(item, name: str) -> tuple[str, str]:
    if not isinstance(item, dict) or item.get("key") in (None, ""):
        raise ValidationError(
            f'Invalid request:\n - {name}[key]: "This field is missing."', code="storage.metadata.validation"
        )
    value = item.get("value")
    if value is None:
        raise ValidationError(
            f'Invalid request:\n - {name}[value]: "This field is missing."', code="storage.metadata.validation"
        )
    key = str(item["key"])
    if len(key) > 255:
        raise ValidationError(f'Invalid metadata key "{key[:40]}...": too long.', code="storage.metadata.validation")
    return key, value if isinstance(value, str) else json.dumps(value) if isinstance(value, list | dict) else _str(
        value
    )


def _local_name(index: int, name: str) -> str:
    return f"{index:05d}_{sanitize_file_name(name)[-120:]}"


def _by_id(table: Table) -> str:
    return table.id


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


__all__ = ["Bucket", "Project", "StorageBackend", "StorageError", "StoredFile", "Table", "TableQuery", "Token"]

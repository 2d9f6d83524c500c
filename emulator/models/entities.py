"""The data of the emulated Storage API: projects, tokens, buckets, tables, files and the normalised table query."""

from __future__ import annotations

import json
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime

from ..engine import OrderBy, WhereFilter
from ..types import SNOWFLAKE, ColumnType


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


# The dev branch of the request (``/v2/storage/branch/{id}/...``): None = the default branch (production). Set by
# the server per request (and copied into the job threads); the Python API sets it around a call.
BRANCH: ContextVar[int | None] = ContextVar("emulator_branch", default=None)
BRANCHED_STORAGE_FEATURES = ("storage-branches", "protected-default-branch")


@dataclass
class Namespace:
    """The storage of one branch: production, or a dev branch of a project with branched storage."""

    buckets: dict[str, Bucket] = field(default_factory=dict)
    files: dict[int, StoredFile] = field(default_factory=dict)
    export_cache: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    tables_created: dict[str, datetime] = field(default_factory=dict)  # table id -> ``created`` of its last table


@dataclass
class DevBranch:
    id: int
    name: str
    description: str
    created: datetime
    is_default: bool
    creator_token: dict

    def json(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "created": self.created.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "isDefault": self.is_default,
            "creatorToken": self.creator_token,
        }


@dataclass
class Project:
    id: int
    name: str
    created: datetime
    default_backend: str = SNOWFLAKE  # tokens/verify owner.defaultBackend: the backend of a bucket created without one
    backends: list[str] = field(default_factory=lambda: [SNOWFLAKE])  # owner.assignedBackends
    features: list[str] = field(default_factory=list)  # tokens/verify owner.features
    branches: dict[int, DevBranch] = field(default_factory=dict)  # the default branch first
    spaces: dict[int | None, Namespace] = field(default_factory=lambda: {None: Namespace()})

    @property
    def branched_storage(self) -> bool:
        return any(f in self.features for f in BRANCHED_STORAGE_FEATURES)

    @property
    def space(self) -> Namespace:
        """The storage the current branch (``BRANCH``) reads and writes: its own with branched storage, production in
        the legacy model (a dev branch there is production with ``in.c-{branchId}-`` buckets) and for the default
        branch."""
        branch = BRANCH.get()
        if branch is None or not self.branched_storage or branch not in self.branches:
            return self.spaces[None]
        if self.branches[branch].is_default:
            return self.spaces[None]
        return self.spaces.setdefault(branch, Namespace())

    @property
    def buckets(self) -> dict[str, Bucket]:
        return self.space.buckets

    @property
    def files(self) -> dict[int, StoredFile]:
        return self.space.files

    @property
    def export_cache(self) -> dict[tuple[str, str], tuple[int, int]]:
        return self.space.export_cache

    @property
    def tables_created(self) -> dict[str, datetime]:
        return self.space.tables_created


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
    backend: str = SNOWFLAKE
    branch_id: int | None = None  # the dev branch that created it (a dev-branch bucket), None: production


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
    # typed tables (tables-definition with types): column -> native type; None: an untyped table
    column_types: dict[str, ColumnType] | None = None
    definition_options: dict = field(default_factory=dict)  # BigQuery timePartitioning / clustering / ...
    # aliases (addendum section 5): the aliased table; no data of its own (``handle`` is empty)
    alias_source: Table | None = None
    alias_filter: WhereFilter | None = None  # eq / ne on one column
    alias_columns_auto_sync: bool = True  # False: only ``columns`` (fixed at creation), not the source's

    @property
    def is_typed(self) -> bool:
        return self.column_types is not None

    @property
    def is_alias(self) -> bool:
        return self.alias_source is not None

    @property
    def is_simple_alias(self) -> bool:
        """Auto-sync without a filter: the only kind that can be aliased again (addendum section 5)."""
        return self.is_alias and self.alias_columns_auto_sync and self.alias_filter is None


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
    """Normalised (decoded) parameters of export-async / data-preview / rows delete."""

    columns: list[str] | None = None
    changed_since: datetime | None = None
    changed_until: datetime | None = None
    where_filters: list[WhereFilter] = field(default_factory=list)
    order_by: list[OrderBy] = field(default_factory=list)
    limit: int | None = None
    format: str = "rfc"
    gzip: bool = False
    since_param: str | int | None = None  # changedSince / changedUntil as requested (the job's operationParams)
    until_param: str | int | None = None

    def cache_key(self) -> str:
        return json.dumps(
            {
                "columns": self.columns,
                "changedSince": self.changed_since.isoformat() if self.changed_since else None,
                "changedUntil": self.changed_until.isoformat() if self.changed_until else None,
                "whereFilters": [[f.column, f.operator, list(f.values), f.data_type] for f in self.where_filters],
                "orderBy": [[o.column, o.order, o.data_type] for o in self.order_by],
                "limit": self.limit,
                "format": self.format,
                "gzip": self.gzip,
            },
            sort_keys=True,
        )

    def selection(self) -> dict:
        """The row and column selection as the engine's ``export`` / ``preview`` keywords."""
        return {
            "columns": self.columns,
            "changed_since": self.changed_since,
            "changed_until": self.changed_until,
            "where_filters": self.where_filters,
            "order_by": self.order_by,
            "limit": self.limit,
        }

    def referenced_columns(self) -> list[str]:
        cols = list(self.columns or [])
        cols += [f.column for f in self.where_filters]
        cols += [o.column for o in self.order_by]
        return cols

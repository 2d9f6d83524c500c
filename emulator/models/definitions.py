"""Typed tables (addendum §1): ``POST buckets/{id}/tables-definition`` (job ``tableDefinitionCreate``), the
``definition`` of the table detail, the ``KBC.datatype.*`` metadata Storage writes (provider ``storage``) and the
typed column of ``POST tables/{id}/columns``.

A table whose columns carry no type (neither ``definition.type`` nor ``basetype``) is created untyped, exactly like
a ``tables-async`` table (``isTyped: false``, VARCHAR columns).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import BucketNotFound, ValidationError
from ..jobs import Job
from ..types import BIGQUERY, SNOWFLAKE, ColumnType, column_type
from .entities import Bucket, Project, Table, Token
from .helpers import MAX_COLUMN_NAME_LENGTH, fmt_time

STORAGE_PROVIDER = "storage"
_COLUMN_NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")
_BIGQUERY_OPTIONS = ("timePartitioning", "clustering", "rangePartitioning")


@dataclass(frozen=True)
class ColumnRequest:
    """One ``columns[]`` item of a tables-definition request, as decoded (``definition`` / ``basetype`` as sent)."""

    name: str
    definition: dict | None = None
    basetype: str | None = None

    @property
    def has_type(self) -> bool:
        return (self.definition or {}).get("type") not in (None, "") or self.basetype not in (None, "")

    def echo(self) -> dict:
        data: dict = {"name": self.name}
        if self.definition is not None:
            data["definition"] = dict(self.definition)
        if self.basetype is not None:
            data["basetype"] = self.basetype
        return data


@dataclass(frozen=True)
class DefinitionSpec:
    """A checked tables-definition request: the columns in order, their types (None: an untyped table), the
    primary key and the BigQuery options."""

    name: str
    columns: list[str]
    types: dict[str, ColumnType] | None
    primary_key: list[str]
    options: dict


class DefinitionsMixin:
    # -- create -----------------------------------------------------------------------------------------------------
    def create_table_definition(
        self,
        token: Token,
        bucket_id: str,
        *,
        name: str,
        primary_key: list[str],
        columns: list[ColumnRequest],
        timestamp_type: str | None = None,
        options: dict | None = None,
        run_id=None,
    ) -> dict:
        """The ``tableDefinitionCreate`` job; request-shape errors answer 400, the backend's refusals (a bad
        ``default``, a BigQuery clustering field that is no column) end the job."""
        with self.lock:
            bucket = self._bucket(token, bucket_id, "write")
        spec = self._definition_spec(bucket, name, primary_key, columns, timestamp_type, options or {})
        with self.lock:
            self._check_table_name_free(bucket, name)
        params = {
            "name": name,
            "primaryKeysNames": list(spec.primary_key),
            "columns": [c.echo() for c in columns],
            **spec.options,
            "queue": "main",
        }
        job = self._new_job(token, "tableDefinitionCreate", f"{bucket.id}.{name}", params, run_id)
        project = self.projects[token.project_id]

        def work(_job: Job) -> dict:
            return self._create_defined_table(project, bucket, spec)

        return self._submit(job, work, key=f"{bucket.id}.{name}")

    def _definition_spec(
        self,
        bucket: Bucket,
        name,
        primary_key: list[str],
        columns: list[ColumnRequest],
        timestamp_type: str | None,
        options: dict,
    ) -> DefinitionSpec:
        """The request checked as the API checks it (400s); the types normalised for the bucket's backend."""
        if not isinstance(name, str) or not name:
            raise ValidationError(
                'Invalid request:\n - name: "This field is missing."', code="storage.tables.validation"
            )
        self._validate_table_name(name)
        if timestamp_type not in (None, "", "MANAGED"):
            if timestamp_type == "NONE":
                raise ValidationError(
                    'timestampType "NONE" is not supported by the emulator (changedSince needs the _timestamp '
                    'column); use "MANAGED".',
                    code="storage.tables.validation",
                )
            raise ValidationError(
                f'Invalid request:\n - timestampType: "The value "{timestamp_type}" is not valid. Allowed: MANAGED."',
                code="storage.tables.validation",
            )
        if not columns:
            raise ValidationError(
                'Invalid request:\n - columns: "This collection should contain 1 element or more."',
                code="storage.tables.validation",
            )
        names: list[str] = []
        for index, column in enumerate(columns):
            if not _COLUMN_NAME_RE.match(column.name) or len(column.name) > MAX_COLUMN_NAME_LENGTH:
                raise ValidationError(
                    f'Invalid column name "{column.name}" (columns[{index}][name]): only alphanumeric characters and '
                    f"underscores are allowed, at most {MAX_COLUMN_NAME_LENGTH} characters.",
                    code="storage.tables.validation.invalidColumnName",
                )
            if column.definition is not None and not isinstance(column.definition, dict):
                raise ValidationError(
                    f'Invalid request:\n - columns[{index}][definition]: "This value should be of type array."',
                    code="storage.tables.validation",
                )
            if column.name.lower() == "_timestamp":
                raise ValidationError(
                    'Invalid column name "_timestamp": the column is managed by Storage.',
                    code="storage.tables.validation.invalidColumnName",
                )
            if column.name.lower() in (n.lower() for n in names):
                raise ValidationError(
                    f'Duplicate column name "{column.name}" (columns[{index}][name]).',
                    code="storage.tables.validation.duplicateColumn",
                )
            names.append(column.name)
        unknown = [c for c in primary_key if c not in names]
        if unknown:
            raise ValidationError(
                f"Primary key columns {', '.join(unknown)} are not present in the table columns ({', '.join(names)}).",
                code="storage.tables.validation.invalidPrimaryKeyColumns",
            )
        if len(set(primary_key)) != len(primary_key):
            raise ValidationError(
                "Invalid request:\n - primaryKeysNames: the primary key lists a column twice.",
                code="storage.tables.validation",
            )
        for key, value in options.items():
            if key not in _BIGQUERY_OPTIONS:
                continue
            if bucket.backend != BIGQUERY:
                raise ValidationError(
                    f'Invalid parameters - {key}: This field is supported on the backend "bigquery" only.',
                    code="storage.tables.validation",
                )
            if not isinstance(value, dict):
                raise ValidationError(
                    f'Invalid request:\n - {key}: "This value should be of type array."',
                    code="storage.tables.validation",
                )
        typed = [c for c in columns if c.has_type]
        if not typed:  # "If there is no column datatype specified ... a non-typed table" (APIB)
            return DefinitionSpec(name, names, None, list(primary_key), {})
        if len(typed) != len(columns):
            untyped = next(c.name for c in columns if not c.has_type)
            raise ValidationError(
                f'Column "{untyped}" has no data type: set "definition.type" or "basetype" on every column of a typed '
                "table (or on none: a non-typed table).",
                code="storage.tables.validation",
            )
        types: dict[str, ColumnType] = {}
        for index, column in enumerate(columns):
            in_key = column.name in primary_key
            ct = column_type(
                bucket.backend,
                column.name,
                definition=column.definition,
                basetype=column.basetype,
                nullable_default=not in_key,  # PK columns default to NOT NULL (APIB, PHPT testPrimaryKeys)
                where=f"columns[{index}]",
            )
            if in_key and ct.nullable:  # MIG StorageModifier::createTypedTable
                raise ValidationError(
                    "Primary keys columns must be set nullable false", code="storage.tables.validation"
                )
            types[column.name] = ct
        bigquery_options = {key: options[key] for key in _BIGQUERY_OPTIONS if key in options}
        return DefinitionSpec(name, names, types, list(primary_key), bigquery_options)

    def _create_defined_table(self, project: Project, bucket: Bucket, spec: DefinitionSpec) -> dict:
        """Create the (empty) table; the table detail (the job's ``results``)."""
        for ct in (spec.types or {}).values():
            problem = ct.default_error()
            if problem is not None:  # PHPT testCreateTableDefaults
                raise ValidationError(problem, code="storage.tables.validation")
        fields = (spec.options.get("clustering") or {}).get("fields") or []
        if bucket.backend == BIGQUERY and any(field not in spec.columns for field in fields):
            # PHPT Bigquery/TableDefinitionOperationsPartitioningTest::testErrorWhenCreatingTableWithPartitioning
            raise ValidationError(
                f'Failed to create table "{spec.name}" in dataset "{_dataset(bucket)}". Exception: The field specified '
                "for clustering cannot be found in the schema.",
                code="storage.tables.validation",
            )
        with self.lock:
            if project.buckets.get(bucket.id) is not bucket:
                raise BucketNotFound(bucket.id)
            self._check_table_name_free(bucket, spec.name)
            handle = f"t{self._next('table')}"
            now = self._creation_time(project, f"{bucket.id}.{spec.name}")
        self.engine.create(handle, list(spec.columns), types=spec.types)
        table = Table(
            id=f"{bucket.id}.{spec.name}",
            project_id=project.id,
            bucket_id=bucket.id,
            name=spec.name,
            display_name=spec.name,
            handle=handle,
            columns=list(spec.columns),
            primary_key=list(spec.primary_key),
            created=now,
            column_types=dict(spec.types) if spec.types is not None else None,
            definition_options=dict(spec.options),
        )
        with self.lock:
            if project.buckets.get(bucket.id) is not bucket:
                self.engine.drop(handle)
                raise BucketNotFound(bucket.id)
            if table.is_typed:
                self._upsert_metadata(table.metadata, STORAGE_PROVIDER, "KBC.dataTypesEnabled", "true", fmt_time(now))
                for name in table.columns:
                    self._write_type_metadata(table, table.column_types[name])
            bucket.tables[spec.name] = table
            bucket.last_change_date = now
            return self.table_json(table, detail=True)

    def _write_type_metadata(self, table: Table, ct: ColumnType) -> None:
        """The ``KBC.datatype.*`` column metadata of a typed column (provider ``storage``). Call with the lock held."""
        now = fmt_time(self.now())
        target = table.column_metadata.setdefault(ct.name, [])
        for key, value in ct.metadata():
            self._upsert_metadata(target, STORAGE_PROVIDER, key, value, now)

    # -- detail -----------------------------------------------------------------------------------------------------
    def definition_json(self, table: Table) -> dict:
        """``definition`` of a typed table's detail (addendum §1c). Snowflake lists the columns sorted by name
        (case-insensitively, PHPT ``testCreateTableBasetypes``), BigQuery in the table's order; ``columns`` of the
        detail keeps the table's order either way."""
        types = table.column_types or {}
        columns = [types[name].column_json() for name in table.columns if name in types]
        bucket = self.projects[table.project_id].buckets.get(table.bucket_id)
        backend = bucket.backend if bucket is not None else SNOWFLAKE
        if backend == SNOWFLAKE:
            columns.sort(key=lambda c: c["name"].lower())
        data: dict = {"primaryKeysNames": list(table.primary_key), "columns": columns}
        options = table.definition_options
        if backend == BIGQUERY and options:
            if "timePartitioning" in options:
                partitioning = dict(options["timePartitioning"])
                if "expirationMs" in partitioning:
                    partitioning["expirationMs"] = str(partitioning["expirationMs"])
                data["timePartitioning"] = partitioning
            if "rangePartitioning" in options:
                data["rangePartitioning"] = dict(options["rangePartitioning"])
            if "clustering" in options:
                data["clustering"] = dict(options["clustering"])
            data["requirePartitionFilter"] = False
            data["partitions"] = []
        return data

    # -- columns ----------------------------------------------------------------------------------------------------
    def _typed_column_for_add(self, table: Table, column: str, definition, basetype) -> ColumnType:
        """The type of a column added to a typed table (addendum §4; 400s for the request's faults)."""
        if definition in (None, {}, []) and basetype in (None, ""):  # PHPT testAddTypedColumnToNonTypedTableShouldFail
            raise ValidationError('Column "definition" or "basetype" must be set.', code="storage.tables.validation")
        if definition is not None and not isinstance(definition, dict):
            raise ValidationError(
                'Invalid request:\n - definition: "This value should be of type array."',
                code="storage.tables.validation",
            )
        bucket = self.projects[table.project_id].buckets.get(table.bucket_id)
        backend = bucket.backend if bucket is not None else SNOWFLAKE
        ct = column_type(backend, column, definition=definition or None, basetype=basetype)
        if backend == BIGQUERY:
            if not ct.nullable:  # PHPT Bigquery/TableDefinitionOperationsTest::testAddRequiredColumn
                raise ValidationError(
                    "Invalid parameters - definition[nullable]: BigQuery cannot add required columns.",
                    code="storage.tables.validation",
                )
            if ct.default is not None:  # APIB: BigQuery has no DEFAULT on add
                raise ValidationError(
                    "Invalid parameters - definition[default]: BigQuery cannot add a column with a default value.",
                    code="storage.tables.validation",
                )
        elif ct.default is not None:
            # PHPT testAddColumnOnTypedTableFailsWithExpresssionDefaultValue: a date / time default is refused
            problem = ct.default_error()
            if problem is None and ct.kind in ("date", "time", "timestamp", "timestamp_text"):
                problem = f'default value "{ct.default}" of type {ct.type} cannot be set on an added column.'
            if problem is not None:
                raise ValidationError(
                    f'Invalid default value for column "{column}" of type "{ct.type}". Validation: {problem}',
                    code="storage.tables.invalidDefaultValueForType",
                )
        return ct


def _dataset(bucket: Bucket) -> str:
    """The BigQuery dataset of a bucket: ``in.c-main`` -> ``in_c_main``."""
    return re.sub(r"[^A-Za-z0-9_]", "_", bucket.id)

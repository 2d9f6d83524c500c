"""Tables: lookup with permission checks, detail and list shapes, delete, table name and column checks."""

from __future__ import annotations

from datetime import datetime, timedelta

from ..errors import BucketNotFound, TableNotFound, ValidationError
from .entities import Bucket, Project, Table, Token
from .helpers import NAME_RE, fmt_time, php_map

_MAX_TABLE_NAME_LENGTH = 96


class TablesMixin:
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

    def check_access(self, token: Token, level: str, *, bucket_id=None, table_id=None) -> None:
        """404 / 403 unless the token may ``level`` (read / write / manage) the table, else the bucket."""
        with self.lock:
            if table_id is not None:
                self._table(token, table_id, level)
            elif bucket_id is not None:
                self._bucket(token, bucket_id, level)

    def _live_table(self, table: Table) -> Table:
        with self.lock:
            bucket = self.projects[table.project_id].buckets.get(table.bucket_id)
            if bucket is None or bucket.tables.get(table.name) is not table:
                raise TableNotFound(table.id)
            return table

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
            "isTyped": table.is_typed,
            "tableType": "table",
            "timestampType": "MANAGED",
        }
        if table.is_typed:  # present only for typed tables (APIB l.3668)
            data["definition"] = self.definition_json(table)
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
        if table.is_alias:  # aliases.py: mirrors the source
            data.update(self.alias_json(table, columns="columns" in include))
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

    def delete_table(self, token: Token, table_id: str, *, force=False, is_async=False, run_id=None):
        """Returns None (sync, 204) or a job dict (``async=true``, 202)."""
        with self.lock:
            table = self._table(token, table_id, "write")
        if not is_async:
            self._drop_table(table, force=force)
            return None
        job = self._new_job(token, "tableDrop", table.id, {"force": force}, run_id)
        return self._submit(job, lambda _job: self._drop_table(table, force=force), key=table.id)

    def _drop_table(self, table: Table, *, force: bool = False) -> None:
        """Drops ``table``; a table with aliases only with ``force``, which drops the aliases too (aliases.py)."""
        for alias in self._check_drop_with_aliases(table, force):
            self._drop_table(alias, force=True)
        with self.lock:
            bucket = self.projects[table.project_id].buckets.get(table.bucket_id)
            if bucket is None or bucket.tables.get(table.name) is not table:
                raise TableNotFound(table.id)
            del bucket.tables[table.name]
            bucket.last_change_date = self.now()
            project = self.projects[table.project_id]
            for key in [k for k in project.export_cache if k[0] == table.id]:
                del project.export_cache[key]
        if table.handle:  # an alias has no data of its own
            self.engine.drop(table.handle)

    def _creation_time(self, project: Project, table_id: str) -> datetime:
        """``created`` of a new table: now, but a table dropped and created again under the same id within one
        second (the resolution of API timestamps) is one second younger than the one before, so ``created`` always
        tells a recreated table apart (the API exposes no other table identity). Call with the lock held."""
        now = self.now()
        previous = project.tables_created.get(table_id)
        if previous is not None and now.replace(microsecond=0) <= previous.replace(microsecond=0):
            now = previous.replace(microsecond=0) + timedelta(seconds=1)
        project.tables_created[table_id] = now
        return now

    @staticmethod
    def _validate_table_name(name: str) -> None:
        if "." in name or not NAME_RE.match(name) or len(name) > _MAX_TABLE_NAME_LENGTH:
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
    def _check_columns(table: Table, columns, available: list[str] | None = None) -> None:
        """``columns`` must be columns of ``table`` (``available``: its columns when it is not ``table.columns``, as
        an alias's)."""
        available = table.columns if available is None else available
        unknown = [c for c in columns if c not in available]
        if unknown:
            raise ValidationError(
                f'Columns {", ".join(unknown)} do not exist in the table "{table.id}". '
                f"Table columns: {', '.join(available)}.",
                code="storage.tables.validation.columnNotExists",
            )


def _by_id(table: Table) -> str:
    return table.id

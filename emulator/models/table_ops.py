"""Table changes that load no file: primary key add / remove and rows delete (each a storage job)."""

from __future__ import annotations

from ..errors import ValidationError
from ..jobs import Job
from .entities import TableQuery, Token
from .parsing import _as_list, _filter_json, parse_time, parse_where, utcnow


class TableOpsMixin:
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

"""Table changes that load no file: primary key add / remove, rows delete, column add / delete (each a storage
job)."""

from __future__ import annotations

from ..errors import ValidationError
from ..jobs import Job
from .entities import Table, TableQuery, Token
from .helpers import checked_column_name, filter_json, webalize_column_name


class TableOpsMixin:
    def add_primary_key(self, token: Token, table_id: str, columns: list[str], *, run_id=None) -> dict:
        with self.lock:
            table = self._table(token, table_id, "write")
            self._refuse_alias_write(table, "change the primary key of")
        columns = list(columns)
        job = self._new_job(token, "tablePrimaryKeyAdd", table.id, {"columns": columns, "queue": "main"}, run_id)

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
                    code="storage.validation.primaryKey",  # PHPT AlterTableTest::testAddInvalidPrimaryKey
                )
            if self.engine.has_duplicates(table.handle, list(columns)):
                raise ValidationError(
                    "Cannot create new primary key, duplicate values in primary key columns",
                    code="storage.tables.primaryKeyDuplicateValues",
                )
            with self.lock:
                table.primary_key = list(columns)
                table.last_change_date = self.now()

        return self._submit(job, work, key=table.id)

    def remove_primary_key(self, token: Token, table_id: str, *, run_id=None) -> dict:
        with self.lock:
            table = self._table(token, table_id, "write")
            self._refuse_alias_write(table, "remove the primary key of")
        job = self._new_job(token, "tablePrimaryKeyDelete", table.id, {"queue": "main"}, run_id)

        def work(job: Job):
            self._live_table(table)
            with self.lock:
                table.primary_key = []
                table.last_change_date = self.now()

        return self._submit(job, work, key=table.id)

    def delete_rows(self, token: Token, table_id: str, query: TableQuery, *, allow_truncate=False, run_id=None) -> dict:
        """``DELETE tables/{id}/rows`` (addendum §2): whereFilters (eq / ne, ANDed), the deprecated whereColumn,
        changedSince / changedUntil on ``_timestamp`` (all in ``query``); no filter at all truncates only with
        ``allow_truncate``."""
        with self.lock:
            table = self._table(token, table_id, "write")
            self._refuse_alias_write(table, "delete rows of")
        unfiltered = not query.where_filters and query.changed_since is None and query.changed_until is None
        if unfiltered and not allow_truncate:
            raise ValidationError(
                "No filters have been specified, which will truncate the table, but the `allowTruncate` parameter "
                "was not set.",
                code="storage.tables.validation.unintendedTruncation",
            )
        request = {
            "changedSince": query.since_param,
            "changedUntil": query.until_param,
            "whereFilters": [filter_json(f) for f in query.where_filters],
        }
        job = self._new_job(token, "tableRowsDelete", table.id, {"queue": "main", "request": request}, run_id)

        def work(job: Job) -> dict:
            self._live_table(table)
            for flt in query.where_filters:
                if flt.column not in table.columns:
                    raise ValidationError(
                        f'Filter validation: Cannot filter by column "{flt.column}", column does not exist',
                        code="storage.tables.columnNotExists",
                    )
            deleted = self.engine.delete_rows(
                table.handle,
                where_filters=query.where_filters,
                changed_since=query.changed_since,
                changed_until=query.changed_until,
            )
            self._table_changed(table)
            return {"deletedRows": deleted}

        return self._submit(job, work, key=table.id)

    # columns ------------------------------------------------------------------------------------------------
    def add_column(
        self, token: Token, table_id: str, name: str, *, definition=None, basetype=None, run_id=None
    ) -> dict:
        """``POST tables/{id}/columns`` (addendum §4): ``name`` is webalized and appended. A typed table needs
        ``definition`` or ``basetype`` (the column's type, its ``KBC.datatype.*`` metadata; stored rows get the
        default, else NULL); an untyped table refuses them."""
        with self.lock:
            table = self._table(token, table_id, "write")
            self._refuse_alias_write(table, "add a column to")
        column_type = None
        if not table.is_typed:
            for field, value in (("definition", definition), ("basetype", basetype)):
                if value is not None:  # untyped table (PHPT testAddTypedColumnOnNonTypedTable)
                    raise ValidationError(
                        f"Invalid parameters - {field}: This field was not expected.", code="storage.tables.validation"
                    )
        column = checked_column_name(name, webalize_column_name(name), "storage.tables.invalidColumnName")
        if table.is_typed:
            column_type = self._typed_column_for_add(table, column, definition, basetype)
        # operationParams echo the request (the name as sent); the table detail shows the webalized column
        job = self._new_job(token, "tableColumnAdd", table.id, {"name": name, "queue": "main"}, run_id)

        def work(job: Job) -> None:
            self._live_table(table)
            clash = next((c for c in table.columns if c.lower() == column.lower()), None)
            if clash is not None:
                raise ValidationError(
                    f'Column "{clash}" already exists in table "{table.id}".', code="storage.tables.columnAlreadyExists"
                )
            required = column_type is not None and not column_type.nullable and column_type.default is None
            if required and self.engine.stats(table.handle)[0]:  # PHPT testAddNullableColumn
                raise ValidationError(
                    f'Non-nullable column "{column}" cannot be added to non-empty table "{table.name}" unless it has '
                    "a non-null default value.",
                    code="storage.tables.validation.cannotAddColumn",
                )
            self.engine.add_column(table.handle, column, column_type=column_type)
            with self.lock:
                table.columns.append(column)
                if column_type is not None:
                    table.column_types[column] = column_type
                    self._write_type_metadata(table, column_type)
            self._table_changed(table)

        return self._submit(job, work, key=table.id)

    def delete_column(self, token: Token, table_id: str, name: str, *, force: bool = False, run_id=None) -> dict:
        """``DELETE tables/{id}/columns/{name}`` (addendum §4): not a primary key column, not the last column.
        A column an alias uses only with ``force``, which drops it from auto-sync aliases too (aliases.py)."""
        with self.lock:
            table = self._table(token, table_id, "write")
            self._refuse_alias_write(table, "delete a column of")
        job = self._new_job(
            token, "tableColumnDelete", table.id, {"name": name, "force": force, "queue": "main"}, run_id
        )

        def work(job: Job) -> None:
            self._live_table(table)
            if name not in table.columns:
                raise ValidationError(
                    f'Column "{name}" does not exist in table "{table.id}".', code="storage.tables.columnNotExists"
                )
            if name in table.primary_key:
                raise ValidationError(
                    f'Cannot delete column "{name}": it is part of the primary key of table "{table.id}". '
                    "Remove the primary key first.",
                    code="storage.tables.cannotDeletePrimaryKeyColumn",
                )
            if len(table.columns) == 1:
                raise ValidationError(
                    f'Cannot delete column "{name}": it is the last column of table "{table.id}".',
                    code="storage.tables.cannotDeleteLastColumn",
                )
            self._check_referenced_column(table, name, force)
            self.engine.drop_column(table.handle, name)
            with self.lock:
                table.columns.remove(name)
                table.column_metadata.pop(name, None)
                if table.column_types is not None:
                    table.column_types.pop(name, None)
            self._table_changed(table)

        return self._submit(job, work, key=table.id)

    def _table_changed(self, table: Table) -> None:
        """After a change of the stored rows or columns: size, lastChangeDate, a new data version (export cache)."""
        rows, size = self.engine.stats(table.handle)
        with self.lock:
            table.rows_count, table.data_size_bytes = rows, size
            table.last_change_date = self.now()
            table.data_version += 1

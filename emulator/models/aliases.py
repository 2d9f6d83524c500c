"""Table aliases (addendum section 5): ``POST buckets/{id}/table-aliases``, the alias part of the table detail, reads
through an alias, refused writes, the rules of chaining, backends, dev branches and dropping, ``alias-filter`` and
``alias-columns-auto-sync``.

An alias is a ``Table`` without data of its own (``handle`` is empty) whose ``alias_source`` is the aliased table.
Its rows are the source's rows matching ``alias_filter``; its columns are the source's (``aliasColumnsAutoSync``)
or the ones fixed at creation (``aliasColumns``). ``rowsCount``, ``dataSizeBytes``, ``lastImportDate``,
``lastChangeDate``, ``columns`` and ``primaryKey`` of the detail mirror the source, so they follow it without being
copied. Reads (export, preview) run the source table's own path with the alias's filter and columns added.

Only simple aliases (auto-sync, no filter) can be aliased again; a chain always ends at a real table.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..engine import WhereFilter
from ..errors import ValidationError
from .entities import Project, Table, TableQuery, Token
from .helpers import filter_json, fmt_time, php_map

ALIAS_FILTER_OPERATORS = ("eq", "ne")


class AliasNotWritable(ValidationError):
    """A write into an alias ("Alias tables are read-only", APIB). The code is the one PHPT asserts for removing the
    primary key of an alias (``AlterTableTest::testPrimaryKeyDelete``); that imports, row deletes and column changes
    answer the same code, and the messages, are not confirmed."""

    code = "storage.tables.aliasImportNotAllowed"

    def __init__(self, table: Table, action: str):
        super().__init__(f'Cannot {action} the table "{table.id}": it is an alias, and alias tables are read-only.')


@dataclass(frozen=True)
class AliasView:
    """What reading an alias reads: the real table at the end of the chain, the visible columns, the row filters."""

    data: Table
    columns: list[str]
    filters: list[WhereFilter]


class AliasesMixin:
    def create_alias(
        self,
        token: Token,
        bucket_id: str,
        *,
        source_table: str,
        name: str | None = None,
        alias_columns: list[str] | None = None,
        alias_filter: WhereFilter | None = None,
    ) -> dict:
        """``POST buckets/{id}/table-aliases``: the alias's detail (201). ``alias_columns``: a fixed column list (no
        auto-sync); ``alias_filter``: eq / ne on one column."""
        with self.lock:
            project = self.projects[token.project_id]
            bucket = self._bucket(token, bucket_id, "write")
            source = self._table(token, source_table, "read")
            source_bucket = project.buckets[source.bucket_id]
            # codes of the rules below are not confirmed (the messages of the dev-branch and advanced-alias rules are
            # PHPT's); the source is checked before the target bucket
            if source_bucket.branch_id is not None:
                raise ValidationError(
                    "Creating aliases from Dev/Branch tables is not supported yet.", code="storage.tables.validation"
                )
            if bucket.branch_id is not None:
                raise ValidationError(
                    "Creating aliases in Dev/Branch buckets is not supported yet.", code="storage.tables.validation"
                )
            if source.is_alias and not source.is_simple_alias:
                raise ValidationError("Aliasing an advanced alias is not allowed.", code="storage.tables.validation")
            if source_bucket.backend != bucket.backend:  # APIB: only between buckets of the same backend
                raise ValidationError(
                    f'Cannot create an alias of table "{source.id}" (backend {source_bucket.backend}) in bucket '
                    f'"{bucket.id}" (backend {bucket.backend}): aliases need buckets of the same backend.',
                    code="storage.tables.validation",
                )
            name = name or source.name
            self._validate_table_name(name)
            self._check_table_name_free(bucket, name)
            view = self._alias_view(source)
            columns = list(dict.fromkeys(alias_columns or ()))
            self._check_columns(source, columns, view.columns)
            if alias_filter is not None:
                self._check_alias_filter(source, alias_filter, columns or view.columns)
            table_id = f"{bucket.id}.{name}"
            now = self._creation_time(project, table_id)
            alias = Table(
                id=table_id,
                project_id=project.id,
                bucket_id=bucket.id,
                name=name,
                display_name=name,
                handle="",
                columns=columns,
                primary_key=[],
                created=now,
                alias_source=source,
                alias_filter=alias_filter,
                alias_columns_auto_sync=not columns,
            )
            bucket.tables[name] = alias
            bucket.last_change_date = now
            return self.table_json(alias, detail=True)

    def _check_alias_filter(self, source: Table, flt: WhereFilter, columns: list[str]) -> None:
        if flt.operator not in ALIAS_FILTER_OPERATORS:
            raise ValidationError(
                f'Invalid alias filter operator "{flt.operator}". Allowed: {", ".join(ALIAS_FILTER_OPERATORS)}.',
                code="storage.tables.validation",
            )
        self._check_columns(source, [flt.column], columns)
        view = self._alias_view(source)
        self.engine.count_rows(view.data.handle, [*view.filters, flt])  # a value the column's type refuses: 400

    # reading -------------------------------------------------------------------------------------------------------
    @staticmethod
    def _alias_view(table: Table) -> AliasView:
        filters: list[WhereFilter] = []
        columns: list[str] | None = None
        node = table
        while node.alias_source is not None:
            if node.alias_filter is not None:
                filters.append(node.alias_filter)
            if not node.alias_columns_auto_sync and columns is None:
                columns = list(node.columns)
            node = node.alias_source
        return AliasView(node, list(node.columns) if columns is None else columns, filters)

    def _read_view(self, table: Table, query: TableQuery) -> tuple[Table, TableQuery]:
        """The table holding the rows ``table`` reads, and ``query`` on it: ``table`` itself, or an alias's source with
        the alias's filter and columns added (after the query's columns are checked against the alias's)."""
        if table.alias_source is None:
            self._check_columns(table, query.referenced_columns())
            return table, query
        view = self._alias_view(table)
        self._check_columns(table, query.referenced_columns(), view.columns)
        return view.data, replace(
            query, columns=query.columns or view.columns, where_filters=[*view.filters, *query.where_filters]
        )

    def alias_json(self, table: Table, *, columns: bool) -> dict:
        """The detail keys of an alias (the rest is a table's)."""
        view = self._alias_view(table)
        source, data = table.alias_source, view.data
        rows = self.engine.count_rows(data.handle, view.filters) if view.filters else data.rows_count
        project = self.projects[table.project_id]
        source_json = {
            "id": source.id,
            "uri": f"{self.base_url}/v2/storage/tables/{source.id}",
            "isAlias": source.is_alias,
            "project": {"id": project.id, "name": project.name},
            "columnMetadata": php_map(
                {col: [dict(m) for m in items] for col, items in source.column_metadata.items() if items}
            ),
        }
        if data.is_typed:  # the alias of a typed table (Snowflake ...::testResponseDefinition)
            source_json["definition"] = self.definition_json(data)
        fields = {
            "isAlias": True,
            "isAliasable": table.is_simple_alias,
            "isTyped": data.is_typed,
            "primaryKey": list(data.primary_key),
            "rowsCount": rows,
            "dataSizeBytes": data.data_size_bytes,
            "lastImportDate": fmt_time(data.last_import_date),
            "lastChangeDate": fmt_time(data.last_change_date),
            "sourceTable": source_json,
            "aliasColumnsAutoSync": table.alias_columns_auto_sync,
        }
        if table.alias_filter is not None:
            fields["aliasFilter"] = filter_json(table.alias_filter)
        if columns:
            fields["columns"] = list(view.columns)
        return fields

    # writing -------------------------------------------------------------------------------------------------------
    @staticmethod
    def _refuse_alias_write(table: Table, action: str) -> None:
        if table.alias_source is not None:
            raise AliasNotWritable(table, action)

    def _aliases_of(self, table: Table) -> list[Table]:
        """The aliases of ``table`` (one level), in every storage of its project. Call with the lock held."""
        project: Project = self.projects[table.project_id]
        return [
            other
            for space in project.spaces.values()
            for bucket in space.buckets.values()
            for other in bucket.tables.values()
            if other.alias_source is table
        ]

    def _check_drop_with_aliases(self, table: Table, force: bool) -> list[Table]:
        """The aliases to drop with ``table``; without ``force`` a table with aliases cannot be dropped (PHPT
        ``testTableWithAliasShouldNotBeDeletableWithoutForce``; the message's end is not confirmed)."""
        with self.lock:
            aliases = self._aliases_of(table)
        if aliases and not force:
            raise ValidationError(
                f"The table {table.name} cannot be deleted because an alias exists. Delete the aliases first, or "
                "use force to delete the table with its aliases.",
                code="tables.cannotDeletedTableWithAliases",
                aliases=[a.id for a in aliases],
            )
        return aliases

    def _drop_aliases_of(self, tables: list[Table]) -> None:
        """Drop the aliases (and their aliases) of tables being dropped (a forced bucket drop)."""
        with self.lock:
            aliases = [alias for table in tables for alias in self._aliases_of(table) if alias not in tables]
        for alias in aliases:
            self._drop_table(alias, force=True)

    def _check_referenced_column(self, table: Table, column: str, force: bool) -> None:
        """A source column that an alias uses cannot be dropped (addendum section 4): a filter column or a member of
        fixed ``aliasColumns`` even with ``force``, an auto-sync alias's column only with ``force`` (the column then
        goes from the alias too)."""
        with self.lock:
            pending = self._aliases_of(table)
            while pending:
                alias = pending.pop()
                filtered = alias.alias_filter is not None and alias.alias_filter.column == column
                fixed = not alias.alias_columns_auto_sync and column in alias.columns
                if filtered or fixed or not force:
                    hint = "" if filtered or fixed else " Use force to drop it from the auto-sync aliases too."
                    raise ValidationError(
                        f'Cannot delete column "{column}" of table "{table.id}": alias "{alias.id}" uses it.{hint}',
                        code="storage.tables.cannotDeleteReferencedColumn",
                    )
                if alias.alias_columns_auto_sync:
                    pending.extend(self._aliases_of(alias))

    # alias-filter, alias-columns-auto-sync -------------------------------------------------------------------------
    def _alias(self, token: Token, table_id: str) -> Table:
        table = self._table(token, table_id, "write")
        if table.alias_source is None:
            raise ValidationError(f'Table "{table.id}" is not an alias.', code="storage.tables.notAlias")
        if self._aliases_of(table):  # it would stop being a simple alias (not confirmed)
            raise ValidationError(
                f'Alias "{table.id}" has aliases of its own; only a simple alias can be aliased, so its filter and '
                "columns cannot change.",
                code="storage.tables.validation",
            )
        return table

    def set_alias_filter(self, token: Token, table_id: str, alias_filter: WhereFilter | None) -> dict:
        """``POST tables/{id}/alias-filter`` (the alias's detail; not confirmed) and ``DELETE`` (None)."""
        with self.lock:
            alias = self._alias(token, table_id)
            if alias_filter is not None:
                self._check_alias_filter(alias.alias_source, alias_filter, self._alias_view(alias).columns)
            alias.alias_filter = alias_filter
            return self.table_json(alias, detail=True)

    def set_alias_columns_auto_sync(self, token: Token, table_id: str, enabled: bool) -> None:
        """``POST`` (on) / ``DELETE`` (off) ``tables/{id}/alias-columns-auto-sync``: off fixes the current columns."""
        with self.lock:
            alias = self._alias(token, table_id)
            if enabled:
                alias.columns = []
            elif alias.alias_columns_auto_sync:
                alias.columns = list(self._alias_view(alias).columns)
            alias.alias_columns_auto_sync = enabled

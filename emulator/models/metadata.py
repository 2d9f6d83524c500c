"""Table and column metadata: post (upsert per provider and key), list, delete."""

from __future__ import annotations

from .. import errors
from ..errors import ValidationError
from .entities import Table, Token
from .helpers import fmt_time

_STORAGE_PROVIDER = "storage"


def _storage_metadata_denied(table: Table) -> errors.Forbidden:
    """Storage's own metadata of a typed table (``KBC.datatype.*``, ``KBC.dataTypesEnabled``) is not the user's to
    write or delete (PHPT ``Common/MetadataTest::testTypedTableMetadataRestrictions``)."""
    return errors.Forbidden(
        f'Metadata with "{_STORAGE_PROVIDER}" provider cannot be edited by user.',
        code="storage.metadata.invalidProvider",
    )


class MetadataMixin:
    def post_table_metadata(
        self,
        token: Token,
        table_id: str,
        *,
        provider: str,
        metadata: list[tuple[str, str]] = (),
        columns: dict[str, list[tuple[str, str]]] | None = None,
    ) -> list[dict]:
        """Upsert ``(key, value)`` items of ``provider`` on the table and on its ``columns``; returns the table
        metadata."""
        items, col_items = list(metadata), dict(columns or {})
        with self.lock:
            table = self._table(token, table_id, "write")
            if provider == _STORAGE_PROVIDER and table.is_typed:
                raise _storage_metadata_denied(table)
            unknown = [c for c in col_items if c not in table.columns]
            if unknown:
                raise ValidationError(
                    f'Columns {", ".join(unknown)} do not exist in the table "{table.id}".',
                    code="storage.tables.validation.columnNotExists",
                )
            now = fmt_time(self.now())
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
                        if item["provider"] == _STORAGE_PROVIDER and table.is_typed:
                            raise _storage_metadata_denied(table)
                        target.remove(item)
                        return
            raise errors.NotFound(f'Metadata "{metadata_id}" not found', code="storage.metadata.notFound")

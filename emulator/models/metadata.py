"""Table and column metadata: post (upsert per provider and key), list, delete."""

from __future__ import annotations

import json

from .. import errors
from ..errors import ValidationError
from .entities import Token
from .parsing import _as_list, _str, fmt_time


class MetadataMixin:
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
                        target.remove(item)
                        return
            raise errors.NotFound(f'Metadata "{metadata_id}" not found', code="storage.metadata.notFound")


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

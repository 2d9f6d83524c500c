"""Table and column metadata carried from a source (Storage metadata or an input manifest) to a destination."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def metadata_pairs(metadata: Any) -> list[dict]:
    """``[{key, value}]`` from Storage metadata (list of ``{key, value, provider, ...}``) or a ``{key: value}``
    dict; system entries (``provider: system``) are skipped, later keys win."""
    pairs: dict[str, str] = {}
    if isinstance(metadata, Mapping):
        items = [{"key": k, "value": v} for k, v in metadata.items()]
    elif isinstance(metadata, list):
        items = metadata
    else:
        items = []
    for entry in items:
        if not isinstance(entry, Mapping) or entry.get("provider") == "system":
            continue
        key, value = entry.get("key"), entry.get("value")
        if isinstance(key, str) and key and value is not None:
            pairs[key] = str(value)
    return [{"key": k, "value": v} for k, v in pairs.items()]


def column_metadata_pairs(column_metadata: Any, columns: Sequence[str] | None = None) -> dict[str, list[dict]]:
    """``{column: [{key, value}]}`` for the given columns (all when None)."""
    if not isinstance(column_metadata, Mapping):
        return {}
    allowed = set(columns) if columns is not None else None
    out = {}
    for column, metadata in column_metadata.items():
        if allowed is not None and column not in allowed:
            continue
        pairs = metadata_pairs(metadata)
        if pairs:
            out[str(column)] = pairs
    return out

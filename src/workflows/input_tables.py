"""Input tables of an import: ``in/tables`` files and sliced folders with their manifests."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keboola.component.exceptions import UserException

from configuration import TABLE_ID_RE, table_name
from workflows.files import is_gzip
from workflows.metadata import column_metadata_pairs, metadata_pairs
from workflows.types import TableTypes, from_manifest

logger = logging.getLogger(__name__)

FINGERPRINT_CHUNK = 4 * 2**20


@dataclass(frozen=True)
class InputTable:
    """A table in in/tables: a CSV file with a header, or a folder of headerless slices (``columns`` in manifest)."""

    file_name: str
    path: Path
    manifest: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def sliced(self) -> bool:
        return self.path.is_dir()

    @property
    def headerless(self) -> bool:
        return self.sliced or self.manifest.get("has_header") is False

    @property
    def manifest_columns(self) -> list[str] | None:
        columns = self.manifest.get("columns")
        if isinstance(columns, list) and columns:
            return [str(c) for c in columns]
        schema = self.manifest.get("schema")
        if isinstance(schema, list) and schema:
            return [str(s.get("name")) for s in schema if isinstance(s, Mapping) and s.get("name")]
        return None

    @property
    def manifest_primary_key(self) -> list[str]:
        pk = self.manifest.get("primary_key")
        if isinstance(pk, list):
            return [str(c) for c in pk]
        schema = self.manifest.get("schema")
        if isinstance(schema, list):
            return [str(s["name"]) for s in schema if isinstance(s, Mapping) and s.get("primary_key") and s.get("name")]
        return []

    @property
    def source_id(self) -> str | None:
        table_id = self.manifest.get("id")
        return table_id if isinstance(table_id, str) and TABLE_ID_RE.match(table_id) else None

    @property
    def stem(self) -> str:
        name = self.file_name
        for suffix in (".csv.gz", ".gz", ".csv"):
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        return table_name(name) if TABLE_ID_RE.match(name) else name

    def slices(self) -> list[Path]:
        return sorted(p for p in self.path.rglob("*") if p.is_file() and not p.name.startswith("."))

    @property
    def delimiter(self) -> str:
        value = self.manifest.get("delimiter")
        return value if isinstance(value, str) and value else ","

    @property
    def enclosure(self) -> str:
        """The quote character; "" when the CSV has none (the manifest says so explicitly)."""
        value = self.manifest.get("enclosure")
        return value if isinstance(value, str) else '"'

    def _dialect(self) -> dict[str, Any]:
        dialect: dict[str, Any] = {"delimiter": self.delimiter}
        dialect.update({"quotechar": self.enclosure} if self.enclosure else {"quoting": csv.QUOTE_NONE})
        return dialect

    def read_header(self) -> list[str]:
        opener = gzip.open if is_gzip(self.path) else open
        try:
            with opener(self.path, "rt", encoding="utf-8", newline="") as f:
                header = next(csv.reader(f, **self._dialect()), None)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise UserException(
                f"The header of input table in/tables/{self.file_name} cannot be read ({exc}); the file must be "
                f"UTF-8 CSV text: fix the input file."
            ) from None
        if not header:
            raise UserException(
                f"Input table in/tables/{self.file_name} is empty (no header row); fix the input mapping."
            )
        return header

    def find_value(self, columns: Sequence[str], value: str | None, candidates: Sequence[str]) -> str | None:
        """The first of ``candidates`` that holds ``value`` (None: an empty field) in some row of the data, read in
        order (``columns``: the data's columns); None when no row has it there or the file cannot be read."""
        indexes = {columns.index(c): c for c in candidates if c in columns}
        try:
            for path in self.slices() if self.sliced else [self.path]:
                opener = gzip.open if is_gzip(path) else open
                with opener(path, "rt", encoding="utf-8", newline="") as f:
                    reader = csv.reader(f, **self._dialect())
                    if not self.headerless:
                        next(reader, None)
                    for row in reader:
                        for index, column in indexes.items():
                            cell = row[index] if index < len(row) else ""
                            if cell == ("" if value is None else value):
                                return column
        except (OSError, UnicodeDecodeError, csv.Error):
            return None
        return None

    def fingerprint(self, *extra: Any) -> str:
        """A digest of the data (every byte, streamed) and ``extra``: the same input loaded the same way."""
        digest = hashlib.sha1(json.dumps([self.file_name, *extra], default=str).encode(), usedforsecurity=False)
        for path in self.slices() if self.sliced else [self.path]:
            with path.open("rb") as f:
                while chunk := f.read(FINGERPRINT_CHUNK):
                    digest.update(chunk)
        return digest.hexdigest()

    def metadata(self) -> list[dict]:
        pairs = metadata_pairs(self.manifest.get("metadata") or self.manifest.get("table_metadata"))
        description = self.manifest.get("description")
        if isinstance(description, str) and description and not any(p["key"] == "KBC.description" for p in pairs):
            pairs.append({"key": "KBC.description", "value": description})
        return pairs

    def types(self, columns: Sequence[str]) -> TableTypes | None:
        """The column types the manifest states (``schema`` data types, or legacy ``KBC.datatype.*`` column
        metadata); None when it states none (an untyped input)."""
        return from_manifest(self.manifest, columns)

    def column_metadata(self, columns: Sequence[str]) -> dict[str, list[dict]]:
        result = column_metadata_pairs(self.manifest.get("column_metadata"), columns)
        schema = self.manifest.get("schema")
        if not result and isinstance(schema, list):
            for item in schema:
                if not isinstance(item, Mapping) or item.get("name") not in columns:
                    continue
                pairs = metadata_pairs(item.get("metadata") or {})
                if isinstance(item.get("description"), str) and item["description"]:
                    pairs.append({"key": "KBC.description", "value": item["description"]})
                if pairs:
                    result[item["name"]] = pairs
        return result


def discover_inputs(tables_in: Path) -> dict[str, InputTable]:
    """Input tables by file name; folders without a manifest are skipped (as keboola.component does)."""
    found: dict[str, InputTable] = {}
    if not tables_in.is_dir():
        return found
    for path in sorted(tables_in.iterdir()):
        if path.name.startswith(".") or path.name.endswith(".manifest"):
            continue
        manifest_path = path.with_name(path.name + ".manifest")
        manifest: dict = {}
        if manifest_path.is_file():
            try:
                manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            except ValueError:
                raise UserException(
                    f"The manifest of input table in/tables/{path.name} is not valid JSON; fix the input mapping."
                ) from None
        elif path.is_dir():
            logger.warning("Folder in/tables/%s has no manifest; it is ignored.", path.name)
            continue
        found[path.name] = InputTable(path.name, path, manifest if isinstance(manifest, dict) else {})
    return found

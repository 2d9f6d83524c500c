"""Native data types of typed tables (storage-api-addendum section 1): what a table's definition says, what it
becomes in another backend, whether two definitions differ, and the manifest forms (``schema`` and the legacy
``KBC.datatype.*`` column metadata).

A column's type is its **base type** (Keboola's backend-independent STRING, INTEGER, NUMERIC, FLOAT, BOOLEAN, DATE,
TIMESTAMP, with the length where it carries meaning: NUMERIC precision and scale, a string's maximum length) plus
the **native type** of every backend it is known for (a Snowflake table's columns in Snowflake types; a manifest
``schema`` may carry several). ``TableTypes.for_backend`` maps a table to the backend of a destination bucket:

- a backend the native type is known for: the same type, length, nullability and default (RST
  ``buildTypedTableDefinition``, "same backend");
- another backend: the base type as that backend's type (addendum 1b), keeping what the length means: NUMERIC
  precision and scale (Snowflake NUMBER(p,s) <-> BigQuery NUMERIC(p,s), or BIGNUMERIC(p,s) when NUMERIC cannot hold
  it; never the silent NUMBER(38,9) of a bare ``basetype``), a string's length when it is below the backend's
  maximum; nullability kept; defaults dropped (they are backend SQL); every such column is a ``note`` (logged);
- no backend known: the base type only (Storage then picks the type and the nullability).

Primary-key columns are always NOT NULL (Storage refuses a nullable key column).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

logger = logging.getLogger(__name__)

SNOWFLAKE = "snowflake"
BIGQUERY = "bigquery"
BACKENDS = (SNOWFLAKE, BIGQUERY)
BACKEND_NAMES = {SNOWFLAKE: "Snowflake", BIGQUERY: "BigQuery"}
BASETYPES = ("STRING", "INTEGER", "NUMERIC", "FLOAT", "BOOLEAN", "DATE", "TIMESTAMP")

DATATYPE_PREFIX = "KBC.datatype."
BACKEND_KEY = "KBC.datatype.backend"
TYPED_TABLE_KEY = "KBC.dataTypesEnabled"

SNOWFLAKE_MAX_VARCHAR = 16777216
SNOWFLAKE_MAX_PRECISION = 38

# alias -> (canonical type, forced length or None)
_SNOWFLAKE_ALIASES: dict[str, tuple[str, str | None]] = {
    **dict.fromkeys(("DECIMAL", "NUMERIC", "DEC"), ("NUMBER", None)),
    **dict.fromkeys(("INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "BYTEINT"), ("NUMBER", "38,0")),
    **dict.fromkeys(("FLOAT4", "FLOAT8", "DOUBLE", "DOUBLE PRECISION", "REAL"), ("FLOAT", None)),
    **dict.fromkeys(("STRING", "TEXT", "CHAR VARYING", "NCHAR VARYING", "NVARCHAR", "NVARCHAR2"), ("VARCHAR", None)),
    **dict.fromkeys(("DATETIME", "TIMESTAMP"), ("TIMESTAMP_NTZ", None)),
    "VARBINARY": ("BINARY", None),
}
_SNOWFLAKE_DEFAULT_LENGTH = {
    "NUMBER": "38,0",
    "VARCHAR": str(SNOWFLAKE_MAX_VARCHAR),
    "BINARY": "8388608",
    "TIMESTAMP_NTZ": "9",
    "TIMESTAMP_LTZ": "9",
    "TIMESTAMP_TZ": "9",
    "TIME": "9",
}
_BIGQUERY_ALIASES: dict[str, tuple[str, str | None]] = {
    **dict.fromkeys(("INT64", "INT", "SMALLINT", "BIGINT", "TINYINT", "BYTEINT"), ("INTEGER", None)),
    "FLOAT": ("FLOAT64", None),
    "BOOLEAN": ("BOOL", None),
    "DECIMAL": ("NUMERIC", None),
    "BIGDECIMAL": ("BIGNUMERIC", None),
}
_BIGQUERY_DEFAULT_LENGTH = {"NUMERIC": "38,9", "BIGNUMERIC": "76,38"}


@dataclass(frozen=True)
class NativeType:
    """A backend's type of a column: ``type`` upper-case, ``length`` as Storage writes it ("38,0", "255")."""

    type: str
    length: str | None = None
    default: str | None = None

    def text(self) -> str:
        return f"{self.type}({self.length})" if self.length else self.type


@dataclass(frozen=True)
class ColumnType:
    name: str
    basetype: str  # one of BASETYPES
    length: str | None = None  # of the base type: NUMERIC "p,s", STRING "n"; None: the backend's default
    nullable: bool = True
    native: Mapping[str, NativeType] = field(default_factory=dict)  # backend -> its type of this column

    def base_text(self) -> str:
        return f"{self.basetype}({self.length})" if self.length else self.basetype

    def text(self, backend: str | None = None) -> str:
        """The type as a user reads it: the native type of ``backend`` (else of the first backend known), else the
        base type; "NOT NULL" when the column is required."""
        known = self.native.get(backend) if backend else next(iter(self.native.values()), None)
        text = known.text() if known else self.base_text()
        return text if self.nullable else f"{text} NOT NULL"


@dataclass(frozen=True)
class TableTypes:
    """The types of a table's columns, in the table's column order."""

    columns: tuple[ColumnType, ...]
    backend: str | None = None  # where the types come from (a source table's backend), for messages

    def column(self, name: str) -> ColumnType | None:
        return next((c for c in self.columns if c.name == name), None)

    def select(self, names: Iterable[str]) -> TableTypes:
        by_name = {c.name: c for c in self.columns}
        return replace(self, columns=tuple(by_name[n] for n in names if n in by_name))

    def for_backend(self, backend: str | None, primary_key: Sequence[str] = ()) -> tuple[TableTypes, list[str]]:
        """The types a table in ``backend`` gets (only that backend's native types), and one note per column
        whose type was mapped (another backend, a base type, a key column made NOT NULL)."""
        columns, notes = [], []
        for column in self.columns:
            mapped, note = _map_column(column, backend, column.name in primary_key, self.backend)
            columns.append(mapped)
            if note:
                notes.append(note)
        return TableTypes(tuple(columns), backend), notes


# names ----------------------------------------------------------------------------------------------------------
def normalize_backend(value: Any) -> str | None:
    text = str(value or "").strip().lower()
    return text if text in BACKENDS else None


def backend_name(backend: str | None) -> str:
    return BACKEND_NAMES.get(backend or "", backend or "unknown backend")


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    return text or None


def normalize_length(value: Any) -> str | None:
    """Storage's length as a string ("38,0"; the API may also answer a number); None when there is none."""
    text = _text(value)
    return re.sub(r"\s+", "", text) if text else None


def _flag(value: Any, default: bool) -> bool:
    """A nullable flag: a bool, or Storage metadata ("1" / ""), or "true" / "false"."""
    if isinstance(value, bool):
        return value
    if value is None:
        return default
    text = str(value).strip().lower()
    if text in ("1", "true", "yes"):
        return True
    if text in ("", "0", "false", "no"):
        return False
    return default


def _precision_scale(length: str | None) -> tuple[int, int] | None:
    if not length:
        return None
    parts = length.split(",")
    try:
        precision = int(parts[0])
        scale = int(parts[1]) if len(parts) > 1 and parts[1] != "" else 0
    except ValueError:
        return None
    return precision, scale


def canonical(backend: str | None, type_: str, length: str | None = None) -> NativeType:
    """The type without aliases and with the length the backend gives it by default (for comparisons: NUMBER,
    NUMBER(38,0) and INT are one type in Snowflake; INT64 and INTEGER in BigQuery)."""
    name = re.sub(r"\s+", " ", str(type_).strip().upper())
    length = normalize_length(length)
    if backend == SNOWFLAKE:
        alias = _SNOWFLAKE_ALIASES.get(name)
        if name in ("CHAR", "CHARACTER", "NCHAR"):
            return NativeType("VARCHAR", length or "1")
        if alias:
            name, forced = alias
            length = forced or length
        if name == "NUMBER" and length and "," not in length:
            length += ",0"
        return NativeType(name, length or _SNOWFLAKE_DEFAULT_LENGTH.get(name))
    if backend == BIGQUERY:
        alias = _BIGQUERY_ALIASES.get(name)
        if alias:
            name = alias[0]
        if name in ("NUMERIC", "BIGNUMERIC") and length and "," not in length:
            length += ",0"
        return NativeType(name, length or _BIGQUERY_DEFAULT_LENGTH.get(name))
    return NativeType(name, length)


def basetype_of(backend: str | None, type_: str | None, length: str | None = None) -> str:
    """Keboola's base type of a native type (php-datatypes ``getBasetype``); STRING for anything else."""
    if not type_:
        return "STRING"
    if backend is None:  # the names barely overlap: try both
        snowflake = basetype_of(SNOWFLAKE, type_, length)
        return snowflake if snowflake != "STRING" else basetype_of(BIGQUERY, type_, length)
    native = canonical(backend, type_, length)
    name = native.type
    if backend == SNOWFLAKE:
        if name == "NUMBER":
            ps = _precision_scale(native.length)
            return "INTEGER" if ps is None or ps[1] == 0 else "NUMERIC"
        if name == "FLOAT":
            return "FLOAT"
        if name.startswith("TIMESTAMP"):
            return "TIMESTAMP"
        return name if name in ("BOOLEAN", "DATE") else "STRING"
    table = {
        "INTEGER": "INTEGER",
        "NUMERIC": "NUMERIC",
        "BIGNUMERIC": "NUMERIC",
        "FLOAT64": "FLOAT",
        "BOOL": "BOOLEAN",
        "DATE": "DATE",
        "TIMESTAMP": "TIMESTAMP",
        "DATETIME": "TIMESTAMP",
    }
    return table.get(name, "STRING")


def base_length(basetype: str, backend: str | None, type_: str | None, length: str | None) -> str | None:
    """The part of a native length that the base type keeps: NUMERIC precision and scale, a string's length
    below the backend's maximum."""
    length = normalize_length(length)
    if basetype == "NUMERIC":
        native = canonical(backend, type_, length) if type_ else NativeType("", length)
        ps = _precision_scale(native.length)
        return f"{ps[0]},{ps[1]}" if ps else None
    if basetype == "STRING" and length and length.isdigit():
        if type_ and canonical(backend, type_).type not in ("VARCHAR", "STRING", ""):
            return None  # e.g. BINARY(8388608): not a string length
        return length if int(length) < SNOWFLAKE_MAX_VARCHAR else None
    return None


# mapping --------------------------------------------------------------------------------------------------------
def native_for_base(column: ColumnType, backend: str) -> tuple[NativeType, str | None]:
    """The type of ``backend`` for the column's base type (addendum 1b) keeping precision/scale and string lengths;
    the second item says what could not be kept (None when everything was)."""
    base, length = column.basetype.upper(), column.length
    ps = _precision_scale(length)
    if backend == SNOWFLAKE:
        if base == "STRING":
            keep = length if length and length.isdigit() and 0 < int(length) <= SNOWFLAKE_MAX_VARCHAR else None
            return NativeType("VARCHAR", keep), None
        if base == "INTEGER":
            return NativeType("NUMBER", "38,0"), None
        if base == "NUMERIC":
            if ps is None:
                return NativeType("NUMBER", "38,9"), None
            precision, scale = min(ps[0], SNOWFLAKE_MAX_PRECISION), ps[1]
            scale = min(scale, 37, precision)
            lost = None if (precision, scale) == ps else f"precision/scale {ps[0]},{ps[1]} exceed Snowflake's"
            return NativeType("NUMBER", f"{precision},{scale}"), lost
        simple = {"FLOAT": "FLOAT", "BOOLEAN": "BOOLEAN", "DATE": "DATE"}
        if base in simple:
            return NativeType(simple[base]), None
        if base == "TIMESTAMP":
            return NativeType("TIMESTAMP_NTZ", "9"), None
        return NativeType("VARCHAR"), None
    if backend == BIGQUERY:
        if base == "STRING":
            return NativeType("STRING", length if length and length.isdigit() and int(length) > 0 else None), None
        if base == "INTEGER":
            return NativeType("INTEGER"), None
        if base == "NUMERIC":
            if ps is None:
                return NativeType("NUMERIC"), None
            precision, scale = ps
            if 0 <= scale <= 9 and max(1, scale) <= precision <= scale + 29:
                return NativeType("NUMERIC", f"{precision},{scale}"), None
            if 0 <= scale <= 38 and max(1, scale) <= precision <= scale + 38:
                return NativeType("BIGNUMERIC", f"{precision},{scale}"), None
            return NativeType("BIGNUMERIC"), f"precision/scale {precision},{scale} exceed BigQuery's"
        simple = {"FLOAT": "FLOAT64", "BOOLEAN": "BOOL", "DATE": "DATE", "TIMESTAMP": "TIMESTAMP"}
        return NativeType(simple.get(base, "STRING")), None
    raise ValueError(f"unknown backend {backend!r}")


def _map_column(
    column: ColumnType, backend: str | None, in_key: bool, source_backend: str | None
) -> tuple[ColumnType, str | None]:
    nullable = column.nullable and not in_key
    extra = ["NOT NULL as a primary key column"] if column.nullable and in_key else []
    if backend and backend in column.native:
        mapped = replace(column, nullable=nullable, native={backend: column.native[backend]})
        return mapped, (f"column {column.name}: {mapped.text(backend)} ({extra[0]})" if extra else None)
    if backend is None:
        mapped = replace(column, nullable=nullable, native={})
        extra.insert(0, "the destination backend is unknown")
        return mapped, f"column {column.name}: base type {column.base_text()} ({'; '.join(extra)})"
    native, lost = native_for_base(column, backend)
    mapped = replace(column, nullable=nullable, native={backend: native})
    if column.native:
        source = source_backend if source_backend in column.native else next(iter(column.native))
        was = f"{column.native[source].text()} ({backend_name(source)})"
    else:
        was = f"base type {column.base_text()}"
    dropped = [n.default for n in column.native.values() if n.default not in (None, "")]
    if dropped:
        extra.insert(0, f"default {dropped[0]} dropped")
    if lost:
        extra.insert(0, lost)
    note = (
        f"column {column.name}: {was} -> {mapped.text(backend)} ({backend_name(backend)}), base type {column.basetype}"
    )
    return mapped, note + (f" ({'; '.join(extra)})" if extra else "")


def differences(
    expected: TableTypes, existing: TableTypes, backend: str | None, columns: Iterable[str]
) -> list[tuple[str, str, str]]:
    """``(column, expected type, existing type)`` for the ``columns`` whose existing type cannot hold the
    expected one exactly: another type or length (aliases and default lengths aside), or NOT NULL where the
    expected column takes NULLs (a nullable existing column for a NOT NULL one is fine: every value fits)."""
    out = []
    for name in columns:
        want, have = expected.column(name), existing.column(name)
        if want is None or have is None:
            continue
        if backend and backend in want.native and backend in have.native:
            a, b = want.native[backend], have.native[backend]
            a, b = canonical(backend, a.type, a.length), canonical(backend, b.type, b.length)
            same = (a.type, a.length) == (b.type, b.length)
        else:
            same = want.basetype == have.basetype
        if not same or (want.nullable and not have.nullable):
            out.append((name, want.text(backend), have.text(backend)))
    return out


# requests -------------------------------------------------------------------------------------------------------
def definition_columns(types: TableTypes, backend: str | None) -> list[dict]:
    """``columns`` of ``POST buckets/{id}/tables-definition`` (addendum 1a) for types mapped to ``backend``."""
    return [{"name": c.name, **column_request(c, backend)} for c in types.columns]


def column_request(column: ColumnType, backend: str | None, *, nullable: bool | None = None) -> dict:
    """``definition`` (native type) or ``basetype`` of one column, for tables-definition and ``POST columns``."""
    native = column.native.get(backend) if backend else None
    if native is None:
        return {"basetype": column.basetype}
    definition: dict[str, Any] = {"type": native.type}
    if native.length:
        definition["length"] = native.length
    definition["nullable"] = column.nullable if nullable is None else nullable
    if native.default not in (None, ""):
        definition["default"] = native.default
    return {"definition": definition}


# reading --------------------------------------------------------------------------------------------------------
def is_typed(detail: Mapping[str, Any] | None) -> bool:
    return bool(detail) and detail.get("isTyped") is True


def table_definition(detail: Mapping[str, Any]) -> Mapping[str, Any]:
    """A typed table's ``definition``; an alias carries its source table's under ``sourceTable`` (addendum 5)."""
    for holder in (detail, detail.get("sourceTable")):
        if isinstance(holder, Mapping) and isinstance(holder.get("definition"), Mapping):
            return holder["definition"]
    return {}


def table_backend(detail: Mapping[str, Any] | None) -> str | None:
    """The backend of a table detail's bucket (``bucket.backend``), when the detail carries it."""
    bucket = (detail or {}).get("bucket")
    return normalize_backend(bucket.get("backend")) if isinstance(bucket, Mapping) else None


def from_table_detail(detail: Mapping[str, Any], backend: str | None) -> TableTypes | None:
    """The types of a typed table (``isTyped`` + ``definition``, addendum 1c) in its column order; None for an
    untyped table. ``definition.columns`` come in no particular order; ``columns`` gives it."""
    if not is_typed(detail):
        return None
    definition = table_definition(detail)
    entries = {str(c.get("name")): c for c in definition.get("columns") or () if isinstance(c, Mapping)}
    order = [str(c) for c in detail.get("columns") or ()] or list(entries)
    columns = []
    for name in order:
        entry = entries.get(name) or {}
        native_def = entry.get("definition") if isinstance(entry.get("definition"), Mapping) else {}
        columns.append(
            _stored_column(
                name,
                backend,
                type_=_text(native_def.get("type")),
                length=native_def.get("length"),
                basetype=entry.get("basetype"),
                nullable=native_def.get("nullable"),
                default=native_def.get("default"),
            )
        )
    return TableTypes(tuple(columns), backend)


def _stored_column(
    name: str, backend: str | None, *, type_: str | None, length: Any, basetype: Any, nullable: Any, default: Any
) -> ColumnType:
    """A column as Storage keeps it (a definition, or ``KBC.datatype.*`` metadata): the native type only when the
    backend is known, the base type Storage gave (else derived from the native type)."""
    length = normalize_length(length)
    base = (_text(basetype) or "").upper()
    derived = basetype_of(backend, type_, length) if type_ else "STRING"
    if base not in BASETYPES or (base, derived) == ("NUMERIC", "INTEGER"):
        # Storage reports every Snowflake NUMBER as NUMERIC; NUMBER(p,0) is Keboola's INTEGER (base INTEGER is
        # created as NUMBER(38,0)), and maps to another backend's integer type, not to a decimal one
        base = derived
    native = {backend: NativeType(type_.upper(), length, _text(default))} if type_ and backend else {}
    return ColumnType(name, base, base_length(base, backend, type_, length), _flag(nullable, True), native)


def from_manifest(manifest: Mapping[str, Any], columns: Sequence[str]) -> TableTypes | None:
    """The types an input manifest states for ``columns``: the new ``schema`` (``data_type`` with ``base`` and
    backend types, ``nullable``), else the legacy ``column_metadata`` ``KBC.datatype.*`` (native only with a
    ``KBC.datatype.backend``, as output mapping reads it). None when the manifest states no types: no column
    with a type other than a plain STRING (a schema of plain strings is what untyped tables are described as)."""
    schema = manifest.get("schema")
    if isinstance(schema, list) and schema:
        types = _from_schema(schema, columns)
    else:
        types = _from_column_metadata(manifest, columns)
    if types is None or not any(_states_a_type(c) for c in types.columns):
        return None
    return types


def _states_a_type(column: ColumnType) -> bool:
    return column.basetype != "STRING" or bool(column.native) or bool(column.length) or not column.nullable


def _from_schema(schema: list, columns: Sequence[str]) -> TableTypes | None:
    items = {str(i.get("name")): i for i in schema if isinstance(i, Mapping) and i.get("name")}
    out = []
    for name in columns:
        item = items.get(name) or {}
        data_type = item.get("data_type") if isinstance(item.get("data_type"), Mapping) else {}
        base = data_type.get("base") if isinstance(data_type.get("base"), Mapping) else {}
        native = {}
        for key, value in data_type.items():
            backend = normalize_backend(key)
            if backend and isinstance(value, Mapping) and _text(value.get("type")):
                native[backend] = NativeType(
                    str(value["type"]).upper(), normalize_length(value.get("length")), _text(value.get("default"))
                )
        basetype = (_text(base.get("type")) or "").upper()
        length = normalize_length(base.get("length"))
        if basetype not in BASETYPES:
            backend, first = next(iter(native.items()), (None, None))
            basetype = basetype_of(backend, first.type, first.length) if first else "STRING"
        if length is None and native:
            backend, first = next(iter(native.items()))
            length = base_length(basetype, backend, first.type, first.length)
        nullable = _flag(item.get("nullable"), True)
        out.append(ColumnType(name, basetype, length, nullable, native))
    return TableTypes(tuple(out), next((b for c in out for b in c.native), None))


def _from_column_metadata(manifest: Mapping[str, Any], columns: Sequence[str]) -> TableTypes | None:
    column_metadata = manifest.get("column_metadata")
    if not isinstance(column_metadata, Mapping):
        return None
    table_meta = _datatype_entries(manifest.get("metadata") or manifest.get("table_metadata"))
    table_backend_ = normalize_backend(table_meta.get(BACKEND_KEY))
    out, stated = [], False
    for name in columns:
        meta = _datatype_entries(column_metadata.get(name))
        type_ = _text(meta.get("KBC.datatype.type"))
        stated = stated or bool(type_ or _text(meta.get("KBC.datatype.basetype")))
        out.append(
            _stored_column(
                name,
                normalize_backend(meta.get(BACKEND_KEY)) or table_backend_,
                type_=type_,
                length=meta.get("KBC.datatype.length"),
                basetype=meta.get("KBC.datatype.basetype"),
                nullable=meta.get("KBC.datatype.nullable"),
                default=meta.get("KBC.datatype.default"),
            )
        )
    return TableTypes(tuple(out), table_backend_) if stated else None


def _datatype_entries(metadata: Any) -> dict[str, Any]:
    """``KBC.datatype.*`` (and other) keys of a metadata list or dict; Storage's own (``provider: storage``)
    entries win over a component's."""
    if isinstance(metadata, Mapping):
        return dict(metadata)
    found: dict[str, Any] = {}
    storage: dict[str, Any] = {}
    for entry in metadata if isinstance(metadata, list) else ():
        if isinstance(entry, Mapping) and isinstance(entry.get("key"), str):
            (storage if entry.get("provider") == "storage" else found)[entry["key"]] = entry.get("value")
    return {**found, **storage}


def without_type_metadata(pairs: Sequence[Mapping[str, str]]) -> list[dict]:
    """Metadata pairs without the type entries Storage writes on typed tables (``KBC.datatype.*``,
    ``KBC.dataTypesEnabled``): the types travel as the definition, and the copy would describe another backend."""
    return [dict(p) for p in pairs if not (p["key"].startswith(DATATYPE_PREFIX) or p["key"] == TYPED_TABLE_KEY)]


def legacy_column_metadata(column: ColumnType, backend: str | None) -> dict[str, Any]:
    """The column's type as the legacy ``KBC.datatype.*`` column metadata (php-datatypes ``toMetadata``)."""
    native = column.native.get(backend) if backend else None
    meta: dict[str, Any] = {}
    if native:
        meta["KBC.datatype.type"] = native.type
    meta["KBC.datatype.nullable"] = column.nullable
    meta["KBC.datatype.basetype"] = column.basetype
    if native and native.length:
        meta["KBC.datatype.length"] = native.length
    if native and native.default not in (None, ""):
        meta["KBC.datatype.default"] = native.default
    return meta


def resolve_backend(client: Any, detail: Mapping[str, Any]) -> str | None:
    """The backend of a table: its detail's ``bucket.backend``, else the bucket's detail, else the project's default
    backend (``owner.defaultBackend``); None when nothing says."""
    backend = table_backend(detail)
    if backend:
        return backend
    bucket = detail.get("bucket")
    bucket_id = bucket.get("id") if isinstance(bucket, Mapping) else None
    bucket_id = bucket_id or ".".join(str(detail.get("id") or "").split(".")[:2]) or None
    if bucket_id:
        backend = normalize_backend((client.buckets.detail(bucket_id) or {}).get("backend"))
        if backend:
            return backend
    owner = (client.verify_token() or {}).get("owner") or {}
    return normalize_backend(owner.get("defaultBackend"))


def resolve_table_types(client: Any, detail: Mapping[str, Any]) -> TableTypes | None:
    """``from_table_detail`` with the table's backend resolved through ``client`` (None for an untyped table)."""
    if not is_typed(detail):
        return None
    return from_table_detail(detail, resolve_backend(client, detail))


FRACTIONAL_SECONDS_FEATURE = "snowflake-export-fractional-seconds"
TEXT_UNSTABLE_BASETYPES = ("NUMERIC", "FLOAT", "TIMESTAMP")


def fractions_cut(column_types: TableTypes | None, features: Iterable[str]) -> list[str]:
    """Columns whose fractional seconds a Snowflake export cuts (its unload prints ``YYYY-MM-DD HH24:MI:SS`` unless
    the project has ``snowflake-export-fractional-seconds``, addendum 1e): TIMESTAMP_* and TIME of a precision > 0."""
    if column_types is None or column_types.backend != SNOWFLAKE or FRACTIONAL_SECONDS_FEATURE in set(features):
        return []
    cut = []
    for column in column_types.columns:
        native = column.native.get(SNOWFLAKE)
        if native is None:
            continue
        canon = canonical(SNOWFLAKE, native.type, native.length)
        if (canon.type.startswith("TIMESTAMP") or canon.type == "TIME") and canon.length not in ("0", None):
            cut.append(column.name)
    return cut


def warn_fractions_cut(client: Any, table_id: str, column_types: TableTypes, what: str) -> list[str]:
    """Log a warning when an export of the table cuts fractional seconds (``fractions_cut`` with the project's
    features from tokens/verify); returns the columns."""
    if column_types.backend != SNOWFLAKE:
        return []
    features = ((client.verify_token() or {}).get("owner") or {}).get("features") or ()
    cut = fractions_cut(column_types, features)
    if cut:
        logger.warning(
            "Table %s: Snowflake exports timestamps without fractional seconds unless the project has the feature "
            "%s, so column(s) %s are %s to whole seconds.",
            table_id,
            FRACTIONAL_SECONDS_FEATURE,
            ", ".join(cut),
            what,
        )
    return cut


def key_text_differs(column_types: TableTypes | None, key: Sequence[str], backend: str | None) -> str | None:
    """A key column whose values the source's backend and ``backend`` export in different text (NUMERIC trailing
    zeros, FLOAT digits, TIMESTAMP forms), so that keys exported from both cannot be compared as text; None when
    none (same backend, or integer / string / date / boolean keys)."""
    source = column_types.backend if column_types else None
    backend = normalize_backend(backend)
    if not source or not backend or source == backend:
        return None
    for name in key:
        column = column_types.column(name)
        if column is not None and column.basetype in TEXT_UNSTABLE_BASETYPES:
            return name
    return None

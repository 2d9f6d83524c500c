"""Request parameter parsing and small shared helpers: bools, ints, dates, CSV options, where filters, order by,
the table query of export / preview / rows delete, name sanitising, timestamps.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta

from ..engine import OrderBy, WhereFilter
from ..errors import ValidationError
from .entities import TableQuery

PREVIEW_MAX_LIMIT = 1000
PREVIEW_DEFAULT_LIMIT = 100
WHERE_OPERATORS = ("eq", "ne")
FILTER_OPERATORS = ("eq", "ne", "gt", "ge", "lt", "le")
FILTER_DATA_TYPES = ("INTEGER", "DOUBLE", "BIGINT", "REAL", "DECIMAL")  # whereFilters[].dataType (APIB)
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
MAX_COLUMN_NAME_LENGTH = 64


def fmt_time(value: datetime | None) -> str | None:
    """``2017-02-13T16:41:18+0100``: ISO-8601 with a ``+hhmm`` offset, no fraction (APIB examples)."""
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S%z")


def php_map(value: dict) -> dict | list:
    """PHP's json_encode turns an empty associative array into ``[]``."""
    return value if value else []


def sanitize_column_name(name: str) -> str:
    """Column name sanitising of table create: ``"with spaces"`` -> ``with_spaces``, ``ščř`` -> ``scr``,
    ``_x`` -> ``x`` (PHPT ``testTableColumnNamesSanitize``)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^A-Za-z0-9_]", "_", ascii_name).lstrip("_")


def webalize_column_name(name: str) -> str:
    """Column name of ``POST tables/{id}/columns``: ``_abc-def----ghi_`` -> ``abc_def_ghi``, ``žluťoučký    kůň``
    -> ``zlutoucky_kun``, ``lot__of_____underscores____`` -> ``lot__of_____underscores`` (PHPT
    ``AlterTableTest::testTableColumnNameShouldBeWebalized``): a run of other characters becomes one ``_``,
    underscores are kept, leading and trailing ones stripped."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^A-Za-z0-9_]+", "_", ascii_name).strip("_")


def checked_column_name(raw: str, column: str, code: str) -> str:
    """``column`` (the sanitized ``raw``) if it is a valid column name, else a ValidationError with ``code``."""
    if not column or len(column) > MAX_COLUMN_NAME_LENGTH:
        raise ValidationError(
            f'Invalid column name "{raw}": a column name must contain an alphanumeric character and be at most '
            f"{MAX_COLUMN_NAME_LENGTH} characters long.",
            code=code,
        )
    return column


def sanitize_file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def parse_bool(value, name: str, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off", ""):
            return False
    raise ValidationError(f'Invalid request:\n - {name}: "This value should be of type bool."')


def parse_int(value, name: str, *, default=None, minimum: int | None = 0, code="storage.validation"):
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise ValidationError(f'Invalid request:\n - {name}: "This value should be of type int."', code=code)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationError(f'Invalid request:\n - {name}: "This value should be of type int."', code=code) from None
    if isinstance(value, float) and value != number:
        raise ValidationError(f'Invalid request:\n - {name}: "This value should be of type int."', code=code)
    if minimum is not None and number < minimum:
        raise ValidationError(
            f'Invalid request:\n - {name}: "This value should be greater than or equal to {minimum}."', code=code
        )
    return number


_RELATIVE_RE = re.compile(
    r"^([+-]?\s*\d+)\s*(sec|secs|second|seconds|min|mins|minute|minutes|hour|hours|day|days|week|weeks|"
    r"month|months|year|years)(\s+ago)?$"
)


_UNIT_SECONDS = {"sec": 1, "min": 60, "hour": 3600, "day": 86400, "week": 7 * 86400, "month": 30 * 86400}


def parse_time(value, name: str, now: datetime) -> datetime | None:
    """A unix timestamp, an ISO-8601 date or a relative strtotime-like string (``-2 days``, ``-1 hour``, relative
    to ``now``, the server clock)."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return datetime.fromtimestamp(float(text), UTC)
    low = text.lower()
    if low == "now":
        return now
    if low in ("today", "midnight"):
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    if low == "yesterday":
        return now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    match = _RELATIVE_RE.match(low)
    if match:
        amount = int(match.group(1).replace(" ", ""))
        unit = match.group(2).rstrip("s") if match.group(2) not in ("secs",) else "sec"
        unit = {"second": "sec", "minute": "min"}.get(unit, unit)
        if match.group(3):
            amount = -abs(amount)
        if unit == "year":
            return now - timedelta(days=365 * -amount) if amount < 0 else now + timedelta(days=365 * amount)
        return now + timedelta(seconds=amount * _UNIT_SECONDS[unit])
    try:
        parsed = datetime.fromisoformat(text.replace(" ", "T", 1) if re.match(r"^\d{4}-\d\d-\d\d \d", text) else text)
    except ValueError:
        raise ValidationError(
            f'Invalid request:\n - {name}: "Invalid date "{text}": use a unix timestamp, an ISO-8601 date '
            'or a relative date like "-2 days"."',
            code="storage.tables.validation",
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _as_list(value, name: str, code: str = "storage.tables.validation") -> list:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and all(str(k).isdigit() for k in value):
        return [value[k] for k in sorted(value, key=int)]
    raise ValidationError(f'Invalid request:\n - {name}: "This value should be of type array."', code=code)


def _csv_options(params: dict) -> tuple[str, str, str]:
    delimiter = params.get("delimiter")
    delimiter = "," if delimiter in (None, "") else delimiter
    enclosure = params.get("enclosure")
    enclosure = '"' if enclosure is None else enclosure
    escaped_by = params.get("escapedBy") or ""
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise ValidationError(
            f'Invalid delimiter "{delimiter}". The delimiter must be a single character.', code="invalidCsv"
        )
    if not isinstance(enclosure, str) or len(enclosure) > 1:
        raise ValidationError(
            f'Invalid enclosure "{enclosure}". The enclosure must be a single character or empty.', code="invalidCsv"
        )
    if not isinstance(escaped_by, str) or len(escaped_by) > 1:
        raise ValidationError(f'Invalid escapedBy "{escaped_by}".', code="invalidCsv")
    if enclosure and escaped_by:
        raise ValidationError("Use either enclosure or escapedBy, not both.", code="invalidCsv")
    if escaped_by:
        raise ValidationError(
            "escapedBy is not supported by the emulator (Snowflake projects use enclosure).", code="invalidCsv"
        )
    return delimiter, enclosure, escaped_by


def _filter_json(f: WhereFilter) -> dict:
    data = {"column": f.column, "operator": f.operator, "values": list(f.values)}
    if f.data_type:
        data["dataType"] = f.data_type
    return data


def parse_where(
    params: dict, *, operators: tuple[str, ...] = FILTER_OPERATORS, require_values=False
) -> list[WhereFilter]:
    """``whereColumn`` + ``whereValues[]`` + ``whereOperator`` (deprecated) and ``whereFilters[]`` -> filters (ANDed).

    ``operators``: what ``whereFilters[].operator`` may be (rows delete: eq, ne only). ``require_values``: a
    ``whereColumn`` without ``whereValues`` is refused (rows delete, PHPT ``DeleteRowsTest``)."""
    filters: list[WhereFilter] = []
    where_column = params.get("whereColumn")
    if where_column not in (None, ""):
        operator = params.get("whereOperator") or "eq"
        if operator not in WHERE_OPERATORS:
            raise ValidationError(
                f'Invalid request:\n - whereOperator: "The value "{operator}" is not valid. Allowed: eq, ne."',
                code="storage.tables.validation",
            )
        values = params.get("whereValues")
        if require_values and values in (None, "", []):
            raise ValidationError(
                'Invalid request:\n - whereColumn: "To use "whereColumn" specify "whereValues"."',
                code="validation.failed",
            )
        values = [values] if isinstance(values, str) else _as_list(values, "whereValues")
        filters.append(WhereFilter(column=str(where_column), operator=operator, values=[_str(v) for v in values]))
    raw_filters = params.get("whereFilters")
    if raw_filters not in (None, ""):
        for index, item in enumerate(_as_list(raw_filters, "whereFilters")):
            filters.append(_parse_filter(index, item, operators))
    return filters


def _parse_filter(index: int, item, operators: tuple[str, ...]) -> WhereFilter:
    prefix = f"whereFilters[{index}]"
    if not isinstance(item, dict):
        raise ValidationError(
            f'Invalid request:\n - {prefix}: "This value should be of type array."', code="storage.tables.validation"
        )
    for source in ("valuesByTableInWorkspace", "valuesByTableInStorage"):
        if source in item:
            raise ValidationError(
                f"{prefix}[{source}] is not supported by the emulator (no workspaces); use values.",
                code="storage.tables.validation",
            )
    problems = []
    if item.get("column") in (None, ""):
        problems.append(f' - {prefix}[column]: "This field is missing."')
    if "values" not in item or item.get("values") is None:
        problems.append(f' - {prefix}[values]: "This field is missing."')
    operator = item.get("operator") or "eq"
    if operator not in operators:
        problems.append(
            f' - {prefix}[operator]: "The value you selected is not a valid choice. Allowed: {", ".join(operators)}."'
        )
    data_type = item.get("dataType")
    if data_type in (None, ""):
        data_type = None
    elif not isinstance(data_type, str) or data_type.upper() not in FILTER_DATA_TYPES:
        problems.append(
            f' - {prefix}[dataType]: "The value you selected is not a valid choice. '
            f'Allowed: {", ".join(FILTER_DATA_TYPES)}."'
        )
    else:
        data_type = data_type.upper()
    if problems:
        raise ValidationError("Invalid request:\n" + "\n".join(problems), code="storage.tables.validation")
    values = item["values"]
    values = [values] if isinstance(values, str | int | float) else _as_list(values, f"{prefix}[values]")
    if not values:
        raise ValidationError(
            f'Invalid request:\n - {prefix}[values]: "This collection should contain 1 element or more."',
            code="storage.tables.validation",
        )
    return WhereFilter(
        column=str(item["column"]), operator=operator, values=[_str(v) for v in values], data_type=data_type
    )


def _str(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def parse_order_by(params: dict) -> list[OrderBy]:
    raw = params.get("orderBy")
    if raw in (None, ""):
        return []
    result = []
    for index, item in enumerate(_as_list(raw, "orderBy")):
        if not isinstance(item, dict) or item.get("column") in (None, ""):
            raise ValidationError(
                f'Invalid request:\n - orderBy[{index}][column]: "This field is missing."',
                code="storage.tables.validation",
            )
        order = str(item.get("order") or "ASC").upper()
        if order not in ("ASC", "DESC"):
            raise ValidationError(
                f'Invalid request:\n - orderBy[{index}][order]: "The value you selected is not a valid choice. '
                'Allowed: ASC, DESC."',
                code="storage.tables.validation",
            )
        result.append(OrderBy(column=str(item["column"]), order=order))
    return result


def parse_table_query(params: dict, *, export: bool, now: datetime) -> TableQuery:
    fmt = params.get("format") or "rfc"
    if fmt not in ("rfc", "json"):
        raise ValidationError(
            f'Invalid format "{fmt}". Allowed formats: rfc, json.', code="storage.tables.validation.invalidFormat"
        )
    columns = params.get("columns")
    if columns in (None, ""):
        column_list = None
    elif isinstance(columns, str):
        column_list = [c.strip() for c in columns.split(",") if c.strip()] or None
    else:
        raise ValidationError(
            'Invalid request:\n - columns: "This value should be of type string: a comma-separated list of columns."',
            code="storage.tables.validation",
        )
    if export:
        if fmt == "json":
            raise ValidationError(
                'Export format "json" is not supported by the emulator; use "rfc".',
                code="storage.tables.validation.invalidFormat",
            )
        file_type = params.get("fileType") or "csv"
        if file_type != "csv":
            raise ValidationError(
                f'File type "{file_type}" is not supported by the emulator; use "csv".',
                code="storage.tables.validation",
            )
        limit = parse_int(params.get("limit"), "limit", code="storage.tables.validation")
        gzip = parse_bool(params.get("gzip"), "gzip")
    else:
        limit = parse_int(params.get("limit"), "limit", default=PREVIEW_DEFAULT_LIMIT, code="storage.tables.validation")
        if limit > PREVIEW_MAX_LIMIT:
            raise ValidationError(
                f'Invalid request:\n - limit: "This value should be less than or equal to {PREVIEW_MAX_LIMIT}." '
                f"The data preview returns at most {PREVIEW_MAX_LIMIT} rows; use export-async for more.",
                code="storage.tables.validation",
            )
        gzip = False
    return TableQuery(
        columns=column_list,
        changed_since=parse_time(params.get("changedSince"), "changedSince", now),
        changed_until=parse_time(params.get("changedUntil"), "changedUntil", now),
        where_filters=parse_where(params),
        order_by=parse_order_by(params),
        limit=limit,
        format=fmt,
        gzip=gzip,
    )

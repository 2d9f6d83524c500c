"""Request handlers, after moto's ``responses.py``: decode the request (query string, form-urlencoded or JSON body)
into typed values, call the ``StorageBackend`` with them, shape the HTTP response. The models never see a raw
request; the URL map (``routes.py``) points at the handlers here.

The real clients send parameters in several encodings and the emulator accepts them all, like the API does:

- PHP: JSON bodies (``apiPostJson``); GET parameters via ``http_build_query``;
- kbcstorage (PY): form fields such as ``tags[]``, ``whereValues[]``, ``primaryKey[]``;
- GO: ``whereFilters[0][column]=...&whereFilters[0][values][0]=...`` in the query string.

``nest_params`` turns such PHP-style keys into nested lists and dicts; the ``parse_*`` functions turn values into
bools, ints, datetimes (relative to the server clock), where filters, order by and the ``TableQuery``, answering
400 for malformed ones.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property

from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Request, Response

from .engine import OrderBy, WhereFilter
from .errors import ValidationError
from .models import JSON_VALUE_LIMIT, ColumnRequest, StorageBackend, TableQuery, Token
from .models.files import FILES_DEFAULT_LIMIT
from .models.helpers import fmt_time
from .models.job_records import JOBS_DEFAULT_LIMIT

_KEY_RE = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEGMENT_RE = re.compile(r"\[([^\[\]]*)\]")
PREVIEW_MAX_LIMIT = 1000
PREVIEW_DEFAULT_LIMIT = 100
WHERE_OPERATORS = ("eq", "ne")
FILTER_OPERATORS = ("eq", "ne", "gt", "ge", "lt", "le")
FILTER_DATA_TYPES = ("INTEGER", "DOUBLE", "BIGINT", "REAL", "DECIMAL")  # whereFilters[].dataType (APIB)


# ---------------------------------------------------------------------------------------------------------------
# decoding: PHP-style keys
# ---------------------------------------------------------------------------------------------------------------
def nest_params(pairs) -> dict:
    """PHP-style decoding of ``[(key, value), ...]``: ``a[]=1&a[]=2`` -> ``{"a": ["1", "2"]}``,
    ``f[0][column]=x&f[0][values][0]=y`` -> ``{"f": [{"column": "x", "values": ["y"]}]}``. A repeated plain key
    keeps the last value (PHP semantics)."""
    root: dict = {}
    counters: dict[int, int] = {}  # id(node) -> next index for "[]" (keeps decoding linear)
    for key, value in pairs:
        match = _KEY_RE.match(key)
        if not match:
            root[key] = value
            continue
        path = [match.group(1)] + _SEGMENT_RE.findall(match.group(2))
        node = root
        for depth, segment in enumerate(path):
            last = depth == len(path) - 1
            if segment == "":
                segment = _next_index(node, counters)
            elif segment.isdigit():
                counters[id(node)] = max(counters.get(id(node), 0), int(segment) + 1)
            if last:
                node[segment] = value
            else:
                child = node.get(segment)
                if not isinstance(child, dict):
                    child = {}
                    node[segment] = child
                node = child
    return _listify(root)


def _next_index(node: dict, counters: dict[int, int]) -> str:
    index = counters.get(id(node), 0)
    counters[id(node)] = index + 1
    return str(index)


def _listify(value):
    if isinstance(value, dict):
        converted = {k: _listify(v) for k, v in value.items()}
        if converted and all(isinstance(k, str) and k.isdigit() for k in converted):
            return [converted[k] for k in sorted(converted, key=int)]
        return converted
    return value


def request_params(request: Request) -> dict:
    """Query string merged with the body (form-urlencoded, multipart or JSON object); the body wins."""
    params = nest_params(request.args.items(multi=True))
    if request.method in ("POST", "PUT", "DELETE", "PATCH"):
        mimetype = request.mimetype or ""
        if mimetype == "application/json" or mimetype.endswith("+json"):
            raw = request.get_data(cache=True)
            if raw.strip():
                try:
                    body = json.loads(raw)
                except ValueError:
                    raise ValidationError("Invalid JSON in the request body.", code="storage.validation") from None
                if not isinstance(body, dict):
                    raise ValidationError("The JSON request body must be an object.", code="storage.validation")
                params.update(body)
        elif mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form: MultiDict = request.form
            params.update(nest_params(form.items(multi=True)))
    return params


# ---------------------------------------------------------------------------------------------------------------
# decoding: values
# ---------------------------------------------------------------------------------------------------------------
_RELATIVE_RE = re.compile(
    r"^([+-]?\s*\d+)\s*(sec|secs|second|seconds|min|mins|minute|minutes|hour|hours|day|days|week|weeks|"
    r"month|months|year|years)(\s+ago)?$"
)


_UNIT_SECONDS = {"sec": 1, "min": 60, "hour": 3600, "day": 86400, "week": 7 * 86400, "month": 30 * 86400}


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


def as_list(value, name: str, code: str = "storage.tables.validation") -> list:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and all(str(k).isdigit() for k in value):
        return [value[k] for k in sorted(value, key=int)]
    raise ValidationError(f'Invalid request:\n - {name}: "This value should be of type array."', code=code)


def csv_options(params: dict) -> dict:
    """``delimiter``, ``enclosure``, ``escapedBy`` of create / import, as the models' keyword arguments."""
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
    return {"delimiter": delimiter, "enclosure": enclosure, "escaped_by": escaped_by}


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
        values = [values] if isinstance(values, str) else as_list(values, "whereValues")
        filters.append(WhereFilter(column=str(where_column), operator=operator, values=[as_text(v) for v in values]))
    raw_filters = params.get("whereFilters")
    if raw_filters not in (None, ""):
        for index, item in enumerate(_filter_items(raw_filters)):
            filters.append(_parse_filter(index, item, operators))
    return filters


def _filter_items(raw) -> list:
    """``whereFilters`` as a list of objects, with the API's messages otherwise (PHPT ``WhereFilterTest``)."""
    if isinstance(raw, dict) and raw and all(str(k).isdigit() for k in raw):
        raw = as_list(raw, "whereFilters")  # form / query string: whereFilters[0][column]=...
    if not isinstance(raw, list | dict):
        raise ValidationError(
            f'Parameter "whereFilters" should be an array, but parameter contains:\n{_php_json(raw)}',
            code="storage.tables.validation",
        )
    if isinstance(raw, dict) or not all(isinstance(item, dict) for item in raw):
        raise ValidationError(
            f'All items in param "whereFilters" should be an arrays, but parameter contains:\n{_php_json(raw)}',
            code="storage.tables.validation",
        )
    return raw


def _php_json(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _parse_filter(index: int, item, operators: tuple[str, ...]) -> WhereFilter:
    prefix = f"whereFilters[{index}]"
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
        problems.append(f' - {prefix}[operator]: "Invalid where operator {operator}. Allowed: {", ".join(operators)}."')
    data_type = item.get("dataType")
    if data_type in (None, ""):
        data_type = None
    elif not isinstance(data_type, str) or data_type.upper() not in FILTER_DATA_TYPES:
        problems.append(
            f' - {prefix}[dataType]: "Data type {data_type} not recognized. Allowed: {", ".join(FILTER_DATA_TYPES)}."'
        )
    else:
        data_type = data_type.upper()
    if problems:
        raise ValidationError("Invalid request:\n" + "\n".join(problems), code="storage.tables.validation")
    values = item["values"]
    values = [values] if isinstance(values, str | int | float) else as_list(values, f"{prefix}[values]")
    if not values:
        raise ValidationError(
            f'Invalid request:\n - {prefix}[values]: "This collection should contain 1 element or more."',
            code="storage.tables.validation",
        )
    return WhereFilter(
        column=str(item["column"]), operator=operator, values=[as_text(v) for v in values], data_type=data_type
    )


def as_text(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def parse_order_by(params: dict) -> list[OrderBy]:
    raw = params.get("orderBy")
    if raw in (None, ""):
        return []
    result = []
    for index, item in enumerate(as_list(raw, "orderBy")):
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
        data_type = item.get("dataType")
        result.append(OrderBy(column=str(item["column"]), order=order, data_type=data_type or None))
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
        since_param=params.get("changedSince") or None,
        until_param=params.get("changedUntil") or None,
    )


def required_text(params: dict, name: str, code: str) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value:
        raise ValidationError(f'Invalid request:\n - {name}: "This field is missing."', code=code)
    return value


def column_list(value, name: str = "columns") -> list[str]:
    """``columns[]`` of import / primary key: a list of non-empty strings."""
    columns = as_list(value, name)
    if any(not isinstance(c, str) or not c for c in columns):
        raise ValidationError(
            f'Invalid request:\n - {name}: "Each column must be a non-empty string."', code="storage.tables.validation"
        )
    return columns


def data_file_id(params: dict) -> int:
    value = params.get("dataFileId")
    if value is None or value == "":
        raise ValidationError(
            'Invalid request:\n - dataFileId: "This field is missing."', code="storage.tables.validation"
        )
    return parse_int(value, "dataFileId", minimum=1, code="storage.tables.validation")


def create_primary_key(value) -> list[str]:
    """``primaryKey`` of tables-async: a comma-separated string; an array is a 400 (PHPT
    ``testTableCreateInvalidPkType``)."""
    if value is None or value == "":
        return []
    if not isinstance(value, str):
        raise ValidationError(
            'Invalid request:\n - primaryKey: "This value should be of type string."',
            code="storage.validation.primaryKey",
        )
    return [part.strip() for part in value.split(",") if part.strip()]


def metadata_items(value, name: str) -> list[tuple[str, str]]:
    """``[{key, value}, ...]`` -> ``[(key, value)]``; a non-string value is stored as its JSON / text."""
    items = []
    for index, item in enumerate(as_list(value, name, "storage.metadata.validation")):
        prefix = f"{name}[{index}]"
        if not isinstance(item, dict) or item.get("key") in (None, ""):
            raise ValidationError(
                f'Invalid request:\n - {prefix}[key]: "This field is missing."', code="storage.metadata.validation"
            )
        text = item.get("value")
        if text is None:
            raise ValidationError(
                f'Invalid request:\n - {prefix}[value]: "This field is missing."', code="storage.metadata.validation"
            )
        key = str(item["key"])
        if len(key) > 255:
            raise ValidationError(
                f'Invalid metadata key "{key[:40]}...": too long.', code="storage.metadata.validation"
            )
        if not isinstance(text, str):
            text = json.dumps(text) if isinstance(text, list | dict) else as_text(text)
        items.append((key, text))
    return items


# ---------------------------------------------------------------------------------------------------------------
# context and response helpers
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Context:
    """One request: the werkzeug request, the backend, the authenticated token (None on control routes) and the
    ``X-KBC-RunId``."""

    request: Request
    backend: StorageBackend
    token: Token | None
    run_id: str | None

    @cached_property
    def params(self) -> dict:
        """Query string merged with the body (write endpoints)."""
        return request_params(self.request)

    @cached_property
    def query(self) -> dict:
        """The query string only (GET endpoints)."""
        return nest_params(self.request.args.items(multi=True))

    def now(self) -> datetime:
        return self.backend.now()


def json_response(data, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(data, ensure_ascii=False), status=status, mimetype="application/json", headers=headers)


def empty_response(status: int = 204) -> Response:
    return Response(b"", status=status)


def job_response(job: dict | None) -> Response:
    """202 with the job, or 204 for the synchronous variant of an endpoint (``job is None``)."""
    return empty_response() if job is None else json_response(job, 202)


# ---------------------------------------------------------------------------------------------------------------
# handlers: function(ctx, **url_args) -> Response, listed once in routes.py
# ---------------------------------------------------------------------------------------------------------------
def verify_token(ctx: Context) -> Response:
    return json_response(ctx.backend.verify_token(ctx.token))


def list_buckets(ctx: Context) -> Response:
    include = [p.strip() for p in (ctx.request.args.get("include") or "").split(",") if p.strip()]
    return json_response(ctx.backend.list_buckets(ctx.token, include))


def get_bucket(ctx: Context, bucket_id: str) -> Response:
    return json_response(ctx.backend.get_bucket(ctx.token, bucket_id, ctx.request.args.get("include")))


def create_bucket(ctx: Context) -> Response:
    p = ctx.params
    bucket = ctx.backend.create_bucket(
        ctx.token,
        name=p.get("name"),
        stage=p.get("stage"),
        display_name=p.get("displayName"),
        description=p.get("description"),
        backend=p.get("backend"),
    )
    return json_response(bucket, 201)


def delete_bucket(ctx: Context, bucket_id: str) -> Response:
    p = ctx.params
    force, is_async = parse_bool(p.get("force"), "force"), parse_bool(p.get("async"), "async")
    return job_response(
        ctx.backend.delete_bucket(ctx.token, bucket_id, force=force, is_async=is_async, run_id=ctx.run_id)
    )


def list_bucket_tables(ctx: Context, bucket_id: str) -> Response:
    return json_response(ctx.backend.list_tables(ctx.token, ctx.request.args.get("include"), bucket_id=bucket_id))


def create_table_async(ctx: Context, bucket_id: str) -> Response:
    p = ctx.params
    name = required_text(p, "name", "storage.tables.validation")
    job = ctx.backend.create_table_async(
        ctx.token,
        bucket_id,
        name=name,
        primary_key=create_primary_key(p.get("primaryKey")),
        data_file_id=data_file_id(p),
        **csv_options(p),
        run_id=ctx.run_id,
    )
    return json_response(job, 202)


def list_tables(ctx: Context) -> Response:
    return json_response(ctx.backend.list_tables(ctx.token, ctx.request.args.get("include")))


def get_table(ctx: Context, table_id: str) -> Response:
    return json_response(ctx.backend.get_table(ctx.token, table_id))


def delete_table(ctx: Context, table_id: str) -> Response:
    p = ctx.params
    force, is_async = parse_bool(p.get("force"), "force"), parse_bool(p.get("async"), "async")
    return job_response(
        ctx.backend.delete_table(ctx.token, table_id, force=force, is_async=is_async, run_id=ctx.run_id)
    )


def import_async(ctx: Context, table_id: str) -> Response:
    p = ctx.params
    file_id = data_file_id(p)
    incremental = parse_bool(p.get("incremental"), "incremental")
    without_headers = parse_bool(p.get("withoutHeaders"), "withoutHeaders")
    columns = column_list(p.get("columns"))
    options = csv_options(p)
    treat_null = p.get("treatValuesAsNull")
    null_values = None
    if treat_null is not None:
        null_values = [as_text(v) for v in as_list(treat_null, "treatValuesAsNull")]
        if len(null_values) > 1:
            raise ValidationError(
                'Invalid request:\n - treatValuesAsNull: "This collection should contain 1 element or less."',
                code="storage.tables.validation",
            )
    if parse_int(p.get("ignoredLinesCount"), "ignoredLinesCount", default=0):
        raise ValidationError("ignoredLinesCount is not supported by the emulator.", code="storage.tables.validation")
    job = ctx.backend.import_async(
        ctx.token,
        table_id,
        data_file_id=file_id,
        incremental=incremental,
        without_headers=without_headers,
        columns=columns,
        **options,
        treat_values_as_null=null_values,
        run_id=ctx.run_id,
    )
    return json_response(job, 202)


def create_table_definition(ctx: Context, bucket_id: str) -> Response:
    """``POST buckets/{id}/tables-definition`` (addendum §1a): JSON ``{name, primaryKeysNames, columns[{name,
    definition?, basetype?}], timestampType?, timePartitioning? / clustering? / rangePartitioning? (BigQuery)}``."""
    p = ctx.params
    primary_key = as_list(p.get("primaryKeysNames"), "primaryKeysNames")
    if any(not isinstance(c, str) or not c for c in primary_key):
        raise ValidationError(
            'Invalid request:\n - primaryKeysNames: "Each column must be a non-empty string."',
            code="storage.tables.validation",
        )
    columns = []
    for index, item in enumerate(as_list(p.get("columns"), "columns")):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise ValidationError(
                f'Invalid request:\n - columns[{index}][name]: "This field is missing."',
                code="storage.tables.validation",
            )
        basetype, definition = item.get("basetype"), item.get("definition")
        if definition is not None and not isinstance(definition, dict):
            raise ValidationError(
                f'Invalid request:\n - columns[{index}][definition]: "This value should be of type array."',
                code="storage.tables.validation",
            )
        if basetype is not None and not isinstance(basetype, str):
            raise ValidationError(
                f'Invalid request:\n - columns[{index}][basetype]: "This value should be of type string."',
                code="storage.tables.validation",
            )
        columns.append(ColumnRequest(name=item["name"], definition=definition, basetype=basetype))
    job = ctx.backend.create_table_definition(
        ctx.token,
        bucket_id,
        name=p.get("name"),
        primary_key=primary_key,
        columns=columns,
        timestamp_type=p.get("timestampType"),
        options={k: p[k] for k in ("timePartitioning", "clustering", "rangePartitioning") if p.get(k) is not None},
        run_id=ctx.run_id,
    )
    return json_response(job, 202)


def export_async(ctx: Context, table_id: str) -> Response:
    query = parse_table_query(ctx.params, export=True, now=ctx.now())
    return json_response(ctx.backend.export_async(ctx.token, table_id, query, run_id=ctx.run_id), 202)


def data_preview(ctx: Context, table_id: str) -> Response:
    query = parse_table_query(ctx.query, export=False, now=ctx.now())
    columns, rows = ctx.backend.preview(ctx.token, table_id, query)
    if query.format == "json":
        return json_response({"columns": columns, "rows": [_json_row(columns, row) for row in rows]})
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        if None in row:  # a typed table's NULL: an empty unquoted field, as in its exports
            buffer.write(",".join("" if v is None else _quoted(v) for v in row) + "\n")
        else:
            writer.writerow(row)
    return Response(buffer.getvalue().encode("utf-8"), status=200, content_type="text/csv; charset=UTF-8")


def _quoted(value) -> str:
    return '"' + str(value).replace('"', '""') + '"'


def _json_row(columns: list[str], row: list) -> list[dict]:
    """A typed table's NULL is JSON ``null`` (PHPT ``ImportTypedTableTest::testImportEmptyValues``); untyped tables
    hold none."""
    cells = []
    for name, value in zip(columns, row, strict=False):
        text = None if value is None else str(value)
        truncated = text is not None and len(text) > JSON_VALUE_LIMIT
        cells.append(
            {
                "columnName": name,
                "value": text[:JSON_VALUE_LIMIT] if text is not None else None,
                "isTruncated": truncated,
            }
        )
    return cells


# ---------------------------------------------------------------------------------------------------------------
# table aliases (addendum section 5)
# ---------------------------------------------------------------------------------------------------------------
def create_table_alias(ctx: Context, bucket_id: str) -> Response:
    """``POST buckets/{id}/table-aliases``: ``{sourceTable, name?, aliasColumns?[], aliasFilter?{column, operator,
    values[]}}`` (JSON or form: ``aliasColumns[]``, ``aliasFilter[values][]``) -> 201 with the alias's detail."""
    p = ctx.params
    name = p.get("name")
    if name is not None and not isinstance(name, str):
        raise ValidationError('Invalid request:\n - name: "This value should be of type string."')
    alias = ctx.backend.create_alias(
        ctx.token,
        bucket_id,
        source_table=required_text(p, "sourceTable", "storage.tables.validation"),
        name=name or None,
        alias_columns=column_list(p.get("aliasColumns"), "aliasColumns"),
        alias_filter=parse_alias_filter(p.get("aliasFilter"), "aliasFilter"),
    )
    return json_response(alias, 201)


def parse_alias_filter(value, name: str) -> WhereFilter | None:
    """``{column, operator eq|ne (default eq), values[]}``; None when not sent."""
    if value in (None, "", []):
        return None
    if not isinstance(value, dict):
        raise ValidationError(
            f'Invalid request:\n - {name}: "This value should be of type array."', code="storage.tables.validation"
        )
    column, operator = value.get("column"), value.get("operator") or "eq"
    values = value.get("values")
    values = [values] if isinstance(values, str | int | float) else as_list(values, f"{name}[values]")
    problems = []
    if not isinstance(column, str) or not column:
        problems.append(f' - {name}[column]: "This field is missing."')
    if operator not in WHERE_OPERATORS:
        problems.append(f' - {name}[operator]: "The value "{operator}" is not valid. Allowed: eq, ne."')
    if not values:
        problems.append(f' - {name}[values]: "This collection should contain 1 element or more."')
    if problems:
        raise ValidationError("Invalid request:\n" + "\n".join(problems), code="storage.tables.validation")
    return WhereFilter(column=column, operator=operator, values=[as_text(v) for v in values])


def set_alias_filter(ctx: Context, table_id: str) -> Response:
    """``POST tables/{id}/alias-filter`` ``{column, operator, values[]}``: the alias's detail (not confirmed)."""
    flt = parse_alias_filter(ctx.params, "filter")
    return json_response(ctx.backend.set_alias_filter(ctx.token, table_id, flt))


def remove_alias_filter(ctx: Context, table_id: str) -> Response:
    ctx.backend.set_alias_filter(ctx.token, table_id, None)
    return empty_response()


def enable_alias_columns_auto_sync(ctx: Context, table_id: str) -> Response:
    ctx.backend.set_alias_columns_auto_sync(ctx.token, table_id, True)
    return empty_response()


def disable_alias_columns_auto_sync(ctx: Context, table_id: str) -> Response:
    ctx.backend.set_alias_columns_auto_sync(ctx.token, table_id, False)
    return empty_response()


def add_primary_key(ctx: Context, table_id: str) -> Response:
    columns = ctx.params.get("columns")
    if columns is None or columns == []:  # PHPT AlterTableTest::testPrimaryKeyAddRequiredParam
        raise ValidationError(
            'Invalid request:\n - columns: "This field is missing."', code="storage.validation.primaryKey"
        )
    job = ctx.backend.add_primary_key(ctx.token, table_id, column_list(columns), run_id=ctx.run_id)
    return json_response(job, 202)


def remove_primary_key(ctx: Context, table_id: str) -> Response:
    return json_response(ctx.backend.remove_primary_key(ctx.token, table_id, run_id=ctx.run_id), 202)


def delete_rows(ctx: Context, table_id: str) -> Response:
    p, now = ctx.params, ctx.now()
    query = TableQuery(
        changed_since=parse_time(p.get("changedSince"), "changedSince", now),
        changed_until=parse_time(p.get("changedUntil"), "changedUntil", now),
        where_filters=parse_where(p, operators=WHERE_OPERATORS, require_values=True),
        since_param=p.get("changedSince") or None,
        until_param=p.get("changedUntil") or None,
    )
    allow_truncate = parse_bool(p.get("allowTruncate"), "allowTruncate")
    job = ctx.backend.delete_rows(ctx.token, table_id, query, allow_truncate=allow_truncate, run_id=ctx.run_id)
    return json_response(job, 202)


def add_column(ctx: Context, table_id: str) -> Response:
    p = ctx.params
    name = p.get("name")
    if not isinstance(name, str):
        raise ValidationError('Invalid request:\n - name: "This field is missing."', code="storage.tables.validation")
    job = ctx.backend.add_column(
        ctx.token, table_id, name, definition=p.get("definition"), basetype=p.get("basetype"), run_id=ctx.run_id
    )
    return json_response(job, 202)


def delete_column(ctx: Context, table_id: str, column: str) -> Response:
    force = parse_bool(ctx.params.get("force"), "force")
    return json_response(ctx.backend.delete_column(ctx.token, table_id, column, force=force, run_id=ctx.run_id), 202)


def list_table_metadata(ctx: Context, table_id: str) -> Response:
    return json_response(ctx.backend.list_table_metadata(ctx.token, table_id))


def post_table_metadata(ctx: Context, table_id: str) -> Response:
    p = ctx.params
    provider = required_text(p, "provider", "storage.metadata.invalidProvider")
    metadata = metadata_items(p.get("metadata"), "metadata")
    raw_columns = _columns_metadata_by_column(p.get("columnsMetadata") or {})
    if not isinstance(raw_columns, dict):
        raise ValidationError(
            'Invalid request:\n - columnsMetadata: "This value should be of type object."',
            code="storage.metadata.validation",
        )
    if not metadata and not raw_columns:
        raise ValidationError(
            'Invalid request:\n - metadata: "This field is missing."', code="storage.metadata.validation"
        )
    columns = {col: metadata_items(items, f"columnsMetadata[{col}]") for col, items in raw_columns.items()}
    return json_response(
        ctx.backend.post_table_metadata(ctx.token, table_id, provider=provider, metadata=metadata, columns=columns)
    )


def _columns_metadata_by_column(value):
    """``columnsMetadata``: an object ``{column: [{key, value}]}`` (PHP), or a list of ``{columnName, key, value}``
    (sapi-python-client ``TablesMetadata.create``), grouped by column here."""
    if not isinstance(value, list):
        return value
    grouped: dict[str, list] = {}
    for index, item in enumerate(value):
        column = item.get("columnName") if isinstance(item, dict) else None
        if not isinstance(column, str) or not column:
            raise ValidationError(
                f'Invalid request:\n - columnsMetadata[{index}][columnName]: "This field is missing."',
                code="storage.metadata.validation",
            )
        grouped.setdefault(column, []).append({k: v for k, v in item.items() if k != "columnName"})
    return grouped


def delete_table_metadata(ctx: Context, table_id: str, metadata_id: str) -> Response:
    ctx.backend.delete_table_metadata(ctx.token, table_id, metadata_id)
    return empty_response()


def prepare_file(ctx: Context) -> Response:
    p = ctx.params
    name = p.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValidationError('Invalid request:\n - name: "This field is missing."', code="storage.files.validation")
    tags = as_list(p.get("tags"), "tags", "storage.files.validation")
    if any(not isinstance(t, str) for t in tags):
        raise ValidationError(
            'Invalid request:\n - tags: "Each tag must be a string."', code="storage.files.validation"
        )
    size = parse_int(p.get("sizeBytes"), "sizeBytes", code="storage.files.validation")
    sliced = parse_bool(p.get("isSliced"), "isSliced")
    encrypted = parse_bool(p.get("isEncrypted"), "isEncrypted", default=True)
    permanent = parse_bool(p.get("isPermanent"), "isPermanent")
    for ignored in ("isPublic", "notify", "federationToken"):  # validated, then ignored: files are never public
        parse_bool(p.get(ignored), ignored)
    file = ctx.backend.prepare_file(
        ctx.token,
        name=name.strip(),
        tags=list(dict.fromkeys(tags)),
        size_bytes=size,
        sliced=sliced,
        encrypted=encrypted,
        permanent=permanent,
        run_id=ctx.run_id,
    )
    return json_response(file, 201)


def list_files(ctx: Context) -> Response:
    q, code = ctx.query, "storage.files.validation"
    files = ctx.backend.list_files(
        ctx.token,
        limit=parse_int(q.get("limit"), "limit", default=FILES_DEFAULT_LIMIT, code=code),
        offset=parse_int(q.get("offset"), "offset", default=0, code=code),
        tags=as_list(q.get("tags"), "tags", code),
        run_id=q.get("runId") or None,
        since_id=parse_int(q.get("sinceId"), "sinceId", code=code),
        max_id=parse_int(q.get("maxId"), "maxId", code=code),
    )
    return json_response(files)


def get_file(ctx: Context, file_id: str) -> Response:
    federation = parse_bool(ctx.query.get("federationToken"), "federationToken")
    return json_response(ctx.backend.get_file(ctx.token, file_id, federation=federation))


def delete_file(ctx: Context, file_id: str) -> Response:
    ctx.backend.delete_file(ctx.token, file_id)
    return empty_response()


def refresh_file(ctx: Context, file_id: str) -> Response:
    return json_response(ctx.backend.refresh_file(ctx.token, file_id))


def list_jobs(ctx: Context) -> Response:
    q = ctx.query
    limit = parse_int(q.get("limit"), "limit", default=JOBS_DEFAULT_LIMIT)
    offset = parse_int(q.get("offset"), "offset", default=0)
    return json_response(ctx.backend.list_jobs(ctx.token, limit=limit, offset=offset))


def get_job(ctx: Context, job_id: str) -> Response:
    return json_response(ctx.backend.get_job(ctx.token, job_id))


# test-harness control (``/_emulator``, no token) ---------------------------------------------------------------
def get_clock(ctx: Context) -> Response:
    """``{"now", "offsetSeconds"}`` of the server clock."""
    clock = ctx.backend.clock
    return json_response({"now": fmt_time(clock.now()), "offsetSeconds": clock.offset_seconds})


def advance_clock(ctx: Context) -> Response:
    """``{"advanceSeconds": N}``: let N seconds pass on the server clock."""
    try:
        ctx.backend.clock.advance(float(ctx.params.get("advanceSeconds")))
    except (TypeError, ValueError):
        raise ValidationError('Invalid request:\n - advanceSeconds: "This value should be a number >= 0."') from None
    return get_clock(ctx)


# ---------------------------------------------------------------------------------------------------------------
# dev branches (addendum §3)
# ---------------------------------------------------------------------------------------------------------------
def list_dev_branches(ctx: Context) -> Response:
    return json_response(ctx.backend.list_branches(ctx.token))


def get_dev_branch(ctx: Context, branch_id: str) -> Response:
    return json_response(ctx.backend.get_branch(ctx.token, branch_id))


def create_dev_branch(ctx: Context) -> Response:
    p = ctx.params
    name = required_text(p, "name", "validation.failed")
    description = p.get("description") or ""
    return job_response(ctx.backend.create_branch(ctx.token, name, str(description), run_id=ctx.run_id))


def delete_dev_branch(ctx: Context, branch_id: str) -> Response:
    return job_response(ctx.backend.delete_branch(ctx.token, branch_id, run_id=ctx.run_id))

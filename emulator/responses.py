"""Request handlers: decode the request (query string, form-urlencoded or JSON body), call the backend, shape the
HTTP response.

The real clients send parameters in several encodings and the emulator accepts them all, like the API does:

- PHP: JSON bodies (``apiPostJson``); GET parameters via ``http_build_query``;
- kbcstorage (PY): form fields such as ``tags[]``, ``whereValues[]``, ``primaryKey[]``;
- GO: ``whereFilters[0][column]=...&whereFilters[0][values][0]=...`` in the query string.

``nest_params`` turns such PHP-style keys into nested lists and dicts.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass

from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Request, Response

from .errors import ValidationError
from .models import JSON_VALUE_LIMIT, StorageBackend, Token
from .models.parsing import parse_bool

_KEY_RE = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEGMENT_RE = re.compile(r"\[([^\[\]]*)\]")


@dataclass
class Context:
    request: Request
    backend: StorageBackend
    token: Token
    run_id: str | None
    fault: tuple[str, str] | None  # injected job_error: (code, message)


# ---------------------------------------------------------------------------------------------------------------
# parameter decoding
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
# response helpers
# ---------------------------------------------------------------------------------------------------------------
def json_response(data, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(data, ensure_ascii=False), status=status, mimetype="application/json", headers=headers)


def empty_response(status: int = 204) -> Response:
    return Response(b"", status=status)


def _include(ctx: Context) -> str | None:
    value = ctx.request.args.get("include")
    return value


# ---------------------------------------------------------------------------------------------------------------
# handlers (endpoint name -> function(ctx, **url_args) -> Response)
# ---------------------------------------------------------------------------------------------------------------
def verify_token(ctx: Context) -> Response:
    return json_response(ctx.backend.verify_token(ctx.token))


def list_buckets(ctx: Context) -> Response:
    include = [p.strip() for p in (_include(ctx) or "").split(",") if p.strip()]
    return json_response(ctx.backend.list_buckets(ctx.token, include))


def get_bucket(ctx: Context, bucket_id: str) -> Response:
    return json_response(ctx.backend.get_bucket(ctx.token, bucket_id))


def create_bucket(ctx: Context) -> Response:
    return json_response(ctx.backend.create_bucket(ctx.token, request_params(ctx.request)), 201)


def delete_bucket(ctx: Context, bucket_id: str) -> Response:
    job = ctx.backend.delete_bucket(
        ctx.token, bucket_id, request_params(ctx.request), run_id=ctx.run_id, fault=ctx.fault
    )
    return empty_response() if job is None else json_response(job, 202)


def list_bucket_tables(ctx: Context, bucket_id: str) -> Response:
    return json_response(ctx.backend.list_tables(ctx.token, _include(ctx), bucket_id=bucket_id))


def create_table_async(ctx: Context, bucket_id: str) -> Response:
    job = ctx.backend.create_table_async(
        ctx.token, bucket_id, request_params(ctx.request), run_id=ctx.run_id, fault=ctx.fault
    )
    return json_response(job, 202)


def list_tables(ctx: Context) -> Response:
    return json_response(ctx.backend.list_tables(ctx.token, _include(ctx)))


def get_table(ctx: Context, table_id: str) -> Response:
    return json_response(ctx.backend.get_table(ctx.token, table_id))


def delete_table(ctx: Context, table_id: str) -> Response:
    job = ctx.backend.delete_table(ctx.token, table_id, request_params(ctx.request), run_id=ctx.run_id, fault=ctx.fault)
    return empty_response() if job is None else json_response(job, 202)


def import_async(ctx: Context, table_id: str) -> Response:
    job = ctx.backend.import_async(ctx.token, table_id, request_params(ctx.request), run_id=ctx.run_id, fault=ctx.fault)
    return json_response(job, 202)


def export_async(ctx: Context, table_id: str) -> Response:
    job = ctx.backend.export_async(ctx.token, table_id, request_params(ctx.request), run_id=ctx.run_id, fault=ctx.fault)
    return json_response(job, 202)


def data_preview(ctx: Context, table_id: str) -> Response:
    fmt, columns, rows = ctx.backend.preview(ctx.token, table_id, nest_params(ctx.request.args.items(multi=True)))
    if fmt == "json":
        return json_response({"columns": columns, "rows": [_json_row(columns, row) for row in rows]})
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return Response(buffer.getvalue().encode("utf-8"), status=200, content_type="text/csv; charset=UTF-8")


def _json_row(columns: list[str], row: list) -> list[dict]:
    cells = []
    for name, value in zip(columns, row, strict=False):
        text = "" if value is None else str(value)
        truncated = len(text) > JSON_VALUE_LIMIT
        cells.append({"columnName": name, "value": text[:JSON_VALUE_LIMIT], "isTruncated": truncated})
    return cells


def add_primary_key(ctx: Context, table_id: str) -> Response:
    job = ctx.backend.add_primary_key(
        ctx.token, table_id, request_params(ctx.request), run_id=ctx.run_id, fault=ctx.fault
    )
    return json_response(job, 202)


def remove_primary_key(ctx: Context, table_id: str) -> Response:
    job = ctx.backend.remove_primary_key(ctx.token, table_id, run_id=ctx.run_id, fault=ctx.fault)
    return json_response(job, 202)


def delete_rows(ctx: Context, table_id: str) -> Response:
    job = ctx.backend.delete_rows(ctx.token, table_id, request_params(ctx.request), run_id=ctx.run_id, fault=ctx.fault)
    return json_response(job, 202)


def add_column(ctx: Context, table_id: str) -> Response:
    params = request_params(ctx.request)
    job = ctx.backend.add_column(
        ctx.token,
        table_id,
        params.get("name"),
        definition=params.get("definition"),
        basetype=params.get("basetype"),
        run_id=ctx.run_id,
        fault=ctx.fault,
    )
    return json_response(job, 202)


def delete_column(ctx: Context, table_id: str, column: str) -> Response:
    force = parse_bool(request_params(ctx.request).get("force"), "force")
    job = ctx.backend.delete_column(ctx.token, table_id, column, force=force, run_id=ctx.run_id, fault=ctx.fault)
    return json_response(job, 202)


def list_table_metadata(ctx: Context, table_id: str) -> Response:
    return json_response(ctx.backend.list_table_metadata(ctx.token, table_id))


def post_table_metadata(ctx: Context, table_id: str) -> Response:
    return json_response(ctx.backend.post_table_metadata(ctx.token, table_id, request_params(ctx.request)))


def delete_table_metadata(ctx: Context, table_id: str, metadata_id: str) -> Response:
    ctx.backend.delete_table_metadata(ctx.token, table_id, metadata_id)
    return empty_response()


def prepare_file(ctx: Context) -> Response:
    return json_response(ctx.backend.prepare_file(ctx.token, request_params(ctx.request), run_id=ctx.run_id), 201)


def list_files(ctx: Context) -> Response:
    return json_response(ctx.backend.list_files(ctx.token, nest_params(ctx.request.args.items(multi=True))))


def get_file(ctx: Context, file_id: str) -> Response:
    return json_response(ctx.backend.get_file(ctx.token, file_id, nest_params(ctx.request.args.items(multi=True))))


def delete_file(ctx: Context, file_id: str) -> Response:
    ctx.backend.delete_file(ctx.token, file_id)
    return empty_response()


def refresh_file(ctx: Context, file_id: str) -> Response:
    return json_response(ctx.backend.refresh_file(ctx.token, file_id))


def list_jobs(ctx: Context) -> Response:
    return json_response(ctx.backend.list_jobs(ctx.token, nest_params(ctx.request.args.items(multi=True))))


def get_job(ctx: Context, job_id: str) -> Response:
    return json_response(ctx.backend.get_job(ctx.token, job_id))


HANDLERS = {
    name: globals()[name]
    for name in (
        "verify_token",
        "list_buckets",
        "get_bucket",
        "create_bucket",
        "delete_bucket",
        "list_bucket_tables",
        "create_table_async",
        "list_tables",
        "get_table",
        "delete_table",
        "import_async",
        "export_async",
        "data_preview",
        "add_primary_key",
        "remove_primary_key",
        "delete_rows",
        "add_column",
        "delete_column",
        "list_table_metadata",
        "post_table_metadata",
        "delete_table_metadata",
        "prepare_file",
        "list_files",
        "get_file",
        "delete_file",
        "refresh_file",
        "list_jobs",
        "get_job",
    )
}

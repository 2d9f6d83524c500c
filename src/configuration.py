"""Typed configuration of Storage Sync, built from the ``parameters`` of config.json.

Every invalid input raises ``UserException`` with one sentence that says what is wrong and how to fix it.
Token values never appear in messages; every parsed token is registered so that logs can redact it
(see ``redact``).
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from keboola.component.exceptions import UserException

logger = logging.getLogger(__name__)

MODES = ("export", "import", "sync")
OPERATORS = ("eq", "ne", "gt", "ge", "lt", "le")
DEFAULT_JOB_TIMEOUT = 3600
MAX_JOB_TIMEOUT = 14400
DEFAULT_REQUEST_TIMEOUT = 120

# Bucket ids carry the legacy "c-" prefix that the Storage API adds to every bucket name.
BUCKET_ID_RE = re.compile(r"^(in|out)\.c-[A-Za-z0-9_-]+$")
TABLE_ID_RE = re.compile(r"^(in|out)\.c-[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
TABLE_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_RELATIVE_RE = re.compile(
    r"^(?:-\s*(?P<n1>\d+)\s*(?P<u1>[a-z]+)|(?P<n2>\d+)\s*(?P<u2>[a-z]+)\s+ago)$",
)
_UNITS = {
    "second": 1,
    "sec": 1,
    "minute": 60,
    "min": 60,
    "hour": 3600,
    "day": 86400,
    "week": 7 * 86400,
}

ROOT_KEYS = {
    "mode",
    "source",
    "destination",
    "tables",
    "table",
    "incremental",
    "primaryKey",
    "changedSince",
    "columns",
    "whereFilters",
    "limit",
    "timeouts",
    "debug",
    "mergedOutput",
    "test_connection",  # the UI's test-connection button (holds no value)
}
ITEM_KEYS = {"source", "destination", "columns", "whereFilters", "primaryKey", "incremental", "changedSince", "limit"}
OVERRIDABLE_KEYS = ("columns", "whereFilters", "primaryKey", "incremental", "changedSince", "limit")

# ---------------------------------------------------------------------------------------------------------------
# secrets


_SECRETS: set[str] = set()
HIDDEN = "[hidden]"


def register_secret(value: str | None) -> None:
    """Remember a secret so that ``redact`` hides it (tokens shorter than 4 chars are not worth redacting)."""
    if value and len(value) >= 4:
        _SECRETS.add(value)


def redact(text: str) -> str:
    """Replace every registered secret in ``text`` with ``[hidden]``."""
    if not text or not _SECRETS:
        return text
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, HIDDEN)
    return text


def registered_secrets() -> frozenset[str]:
    return frozenset(_SECRETS)


# ---------------------------------------------------------------------------------------------------------------
# model


@dataclass(frozen=True)
class Connection:
    """A Storage API endpoint: stack URL and token (and, for a destination, the default bucket)."""

    url: str
    token: str = field(repr=False)
    bucket: str | None = None


@dataclass(frozen=True)
class WhereFilter:
    column: str
    operator: str
    values: tuple[str, ...]

    def to_api(self) -> dict:
        return {"column": self.column, "operator": self.operator, "values": list(self.values)}


@dataclass(frozen=True)
class ChangedSince:
    """A parsed ``changedSince``: an absolute unix time, a relative offset, or ``last`` (from the state)."""

    kind: str  # "absolute" | "relative" | "last"
    seconds: int = 0  # unix time for absolute, offset in seconds for relative
    text: str = ""

    @property
    def is_last(self) -> bool:
        return self.kind == "last"

    def resolve(self, now: datetime | None = None) -> int:
        """Unix timestamp; relative values are computed against ``now`` (default: the current clock)."""
        if self.kind == "absolute":
            return self.seconds
        if self.kind == "relative":
            now = now or datetime.now(UTC)
            return int(now.timestamp()) - self.seconds
        raise ValueError("changedSince 'last' is resolved from the state, not from the clock")


@dataclass(frozen=True)
class TableSettings:
    """One item of ``tables`` with the top-level defaults applied."""

    source: str
    destination: str | None = None
    columns: tuple[str, ...] | None = None
    where_filters: tuple[WhereFilter, ...] = ()
    primary_key: tuple[str, ...] | None = None  # None = not configured (use the source's / existing one)
    incremental: bool = False
    changed_since: ChangedSince | None = None
    limit: int | None = None

    @property
    def source_is_bucket(self) -> bool:
        return bool(BUCKET_ID_RE.match(self.source))


@dataclass(frozen=True)
class Timeouts:
    job: float = DEFAULT_JOB_TIMEOUT
    request: float = DEFAULT_REQUEST_TIMEOUT


@dataclass(frozen=True)
class Configuration:
    mode: str | None
    source: Connection | None = None
    destination: Connection | None = None
    tables: tuple[TableSettings, ...] = ()
    # the top-level table settings (used for input tables that 'tables' does not list, in import mode)
    defaults: TableSettings = TableSettings(source="")
    timeouts: Timeouts = Timeouts()
    debug: bool = False
    merged_output: bool = False
    # problems with connections that the mode does not need (only kept for sync actions)
    connection_errors: Mapping[str, str] = field(default_factory=dict, repr=False)

    def require(self, which: str) -> Connection:
        """The ``source`` or ``destination`` connection, or UserException saying why it is unusable."""
        conn = getattr(self, which)
        if conn is None:
            raise UserException(self.connection_errors.get(which) or f"The {which} connection is not configured.")
        return conn

    @classmethod
    def from_parameters(
        cls, parameters: Mapping[str, Any] | None, env: Mapping[str, str] | None = None, *, for_action: bool = False
    ) -> Configuration:
        """Build the configuration.

        ``for_action=True`` is used by sync actions: the mode and the tables may be incomplete (the UI calls
        actions while the user is still filling in the form) and a connection error is raised only when the
        action needs that connection.
        """
        return _Parser(parameters, env or {}, for_action).parse()


# ---------------------------------------------------------------------------------------------------------------
# parsing


def _type_name(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _describe(value: Any) -> str:
    """Short repr of a bad value for a message (secrets redacted)."""
    text = redact(repr(value))
    return text if len(text) <= 60 else text[:57] + "..."


class _Parser:
    def __init__(self, parameters: Mapping[str, Any] | None, env: Mapping[str, str], for_action: bool):
        if parameters is None:
            parameters = {}
        if not isinstance(parameters, Mapping):
            raise UserException("The configuration parameters must be a JSON object; fix the configuration.")
        self.p = dict(parameters)
        self.env = env
        self.for_action = for_action
        # register secrets first, so that nothing below can leak them
        for conn in ("source", "destination"):
            raw = self.p.get(conn)
            if isinstance(raw, Mapping) and isinstance(raw.get("#token"), str):
                register_secret(raw["#token"].strip())
        register_secret((env.get("KBC_TOKEN") or "").strip())

    # -- entry point --------------------------------------------------------------------------------------
    def parse(self) -> Configuration:
        for key in sorted(set(self.p) - ROOT_KEYS):
            logger.warning("Unknown configuration parameter '%s' is ignored.", key)

        mode = self._mode()
        timeouts = self._timeouts()
        debug = self._bool(self.p, "debug", False)
        merged = self._bool(self.p, "mergedOutput", False)

        needs = {"export": ("source",), "import": ("destination",), "sync": ("source", "destination")}.get(mode, ())
        conns: dict[str, Connection | None] = {}
        errors: dict[str, str] = {}
        for which in ("source", "destination"):
            try:
                conns[which] = self._connection(which)
            except UserException as exc:
                if which in needs and not self.for_action:
                    raise
                conns[which] = None
                errors[which] = str(exc)

        if self.for_action:
            try:
                tables, defaults = self._tables(mode) if mode else ((), TableSettings(source=""))
            except UserException:
                tables, defaults = (), TableSettings(source="")
        else:
            tables, defaults = self._tables(mode)

        return Configuration(
            mode=mode,
            source=conns["source"],
            destination=conns["destination"],
            tables=tables,
            defaults=defaults,
            timeouts=timeouts,
            debug=debug,
            merged_output=merged,
            connection_errors=errors,
        )

    # -- scalars ------------------------------------------------------------------------------------------
    def _mode(self) -> str | None:
        mode = self.p.get("mode")
        valid = ", ".join(MODES)
        if mode is None or mode == "":
            if self.for_action:
                return None
            raise UserException(f"The parameter 'mode' is missing; set it to one of: {valid}.")
        if not isinstance(mode, str) or mode.strip().lower() not in MODES:
            if self.for_action:
                return None
            raise UserException(f"The mode {_describe(mode)} is not supported; use one of: {valid}.")
        return mode.strip().lower()

    @staticmethod
    def _bool(obj: Mapping[str, Any], key: str, default: bool | None, where: str = "") -> bool | None:
        value = obj.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise UserException(f"The parameter '{where}{key}' must be true or false, not {_type_name(value)}.")
        return value

    def _timeouts(self) -> Timeouts:
        raw = self.p.get("timeouts")
        if raw is None:
            return Timeouts()
        if not isinstance(raw, Mapping):
            raise UserException(
                f'The parameter \'timeouts\' must be an object like {{"job": 3600, "request": 120}}, '
                f"not {_type_name(raw)}."
            )
        for key in sorted(set(raw) - {"job", "request"}):
            logger.warning("Unknown configuration parameter 'timeouts.%s' is ignored.", key)
        job = self._positive_number(raw, "job", DEFAULT_JOB_TIMEOUT, "timeouts.")
        request = self._positive_number(raw, "request", DEFAULT_REQUEST_TIMEOUT, "timeouts.")
        if job > MAX_JOB_TIMEOUT:
            raise UserException(
                f"timeouts.job is {job:g} s; the maximum is {MAX_JOB_TIMEOUT} s (4 hours); set a lower value."
            )
        return Timeouts(job=job, request=request)

    @staticmethod
    def _positive_number(obj: Mapping[str, Any], key: str, default: float, where: str) -> float:
        value = obj.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserException(f"The parameter '{where}{key}' must be a number of seconds, not {_type_name(value)}.")
        if value <= 0:
            raise UserException(f"The parameter '{where}{key}' must be a positive number of seconds, not {value:g}.")
        return float(value)

    # -- connections --------------------------------------------------------------------------------------
    def _string_or_env(self, raw: Mapping[str, Any], which: str, key: str, env_key: str, when_missing: str) -> str:
        """``which.key`` as a trimmed string, else the value Keboola forwards in ``env_key``."""
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            raise UserException(f"The parameter '{which}.{key}' must be a string, not {_type_name(value)}.")
        value = (value or "").strip() or (self.env.get(env_key) or "").strip()
        if not value:
            raise UserException(f"The parameter '{which}.{key}' is missing and {when_missing}")
        return value

    def _connection(self, which: str) -> Connection:
        raw = self.p.get(which)
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise UserException(
                f"The parameter '{which}' must be an object with 'url' and '#token', not {_type_name(raw)}."
            )
        allowed = {"url", "#token", "bucket"} if which == "destination" else {"url", "#token"}
        for key in sorted(set(raw) - allowed):
            logger.warning("Unknown configuration parameter '%s.%s' is ignored.", which, key)

        url = self._string_or_env(
            raw,
            which,
            "url",
            "KBC_URL",
            f"Keboola forwarded no URL; set it to the Storage API URL of the {which} stack, "
            "e.g. https://connection.keboola.com.",
        )
        url = normalize_url(url, f"{which}.url")
        token = self._string_or_env(
            raw,
            which,
            "#token",
            "KBC_TOKEN",
            f"Keboola forwarded no token; enter a Storage API token of the {which} project.",
        )

        bucket = None
        if which == "destination":
            bucket = raw.get("bucket")
            if bucket is not None and not isinstance(bucket, str):
                raise UserException(f"The parameter 'destination.bucket' must be a string, not {_type_name(bucket)}.")
            bucket = (bucket or "").strip() or None
            if bucket and not BUCKET_ID_RE.match(bucket):
                raise UserException(
                    f"destination.bucket {_describe(bucket)} is not a bucket id; use the form 'in.c-name' or "
                    f"'out.c-name'."
                )
        return Connection(url=url, token=token, bucket=bucket)

    # -- tables -------------------------------------------------------------------------------------------
    def _tables(self, mode: str) -> tuple[tuple[TableSettings, ...], TableSettings]:
        items = self._raw_items()
        defaults = self._overrides(self.p, "", mode)
        default_settings = TableSettings(source="", **{k: v for k, v in defaults.items() if v is not _UNSET})
        settings = []
        for index, item in enumerate(items):
            where = f"tables[{index}]."
            if not isinstance(item, Mapping):
                raise UserException(
                    f"The item tables[{index}] must be an object with at least 'source', not {_type_name(item)}."
                )
            for key in sorted(set(item) - ITEM_KEYS):
                logger.warning("Unknown configuration parameter '%s%s' is ignored.", where, key)
            own = self._overrides(item, where, mode)
            merged = {**defaults, **{k: v for k, v in own.items() if v is not _UNSET}}
            source = self._source(item, where, mode)
            destination = self._destination(item, where, mode, source)
            settings.append(
                TableSettings(
                    source=source,
                    destination=destination,
                    **{k: v for k, v in merged.items() if v is not _UNSET},
                )
            )
        if not settings and mode in ("export", "sync"):
            raise UserException(f"No tables are selected for {mode}; add at least one table or bucket id to 'tables'.")
        return tuple(settings), default_settings

    def _raw_items(self) -> list:
        row_table = self.p.get("table")
        tables = self.p.get("tables")
        if row_table is not None:
            if not isinstance(row_table, Mapping):
                raise UserException(f"The parameter 'table' must be an object, not {_type_name(row_table)}.")
            if tables:
                logger.warning("Both 'table' (row) and 'tables' are set; only the row's 'table' is used.")
            return [row_table]
        if tables is None:
            return []
        if not isinstance(tables, list):
            raise UserException(f"The parameter 'tables' must be a list, not {_type_name(tables)}.")
        return tables

    @staticmethod
    def _source(item: Mapping[str, Any], where: str, mode: str) -> str:
        source = item.get("source")
        if not isinstance(source, str) or not source.strip():
            if source is None or source == "":
                what = "an input table file name, e.g. 'data.csv'" if mode == "import" else "a table or bucket id"
                raise UserException(f"The parameter '{where}source' is missing; set it to {what}.")
            raise UserException(f"The parameter '{where}source' must be a string, not {_type_name(source)}.")
        source = source.strip()
        if mode == "import":
            if "/" in source or source.startswith("."):
                raise UserException(
                    f"{where}source {_describe(source)} must be a file name in in/tables (e.g. 'data.csv'), not a path."
                )
            return source
        if not (TABLE_ID_RE.match(source) or BUCKET_ID_RE.match(source)):
            raise UserException(
                f"{where}source {_describe(source)} is not a table or bucket id; use 'in.c-bucket.table' or "
                f"'in.c-bucket' (stage 'in' or 'out')."
            )
        return source

    @staticmethod
    def _destination(item: Mapping[str, Any], where: str, mode: str, source: str) -> str | None:
        dest = item.get("destination")
        if dest is None or dest == "":
            return None
        if not isinstance(dest, str):
            raise UserException(f"The parameter '{where}destination' must be a string, not {_type_name(dest)}.")
        dest = dest.strip()
        source_is_bucket = mode != "import" and bool(BUCKET_ID_RE.match(source))
        if source_is_bucket:
            if not BUCKET_ID_RE.match(dest):
                raise UserException(
                    f"{where}destination {_describe(dest)} must be a bucket id (e.g. 'in.c-target') because the "
                    f"source {source} is a whole bucket."
                )
        elif not (TABLE_ID_RE.match(dest) or BUCKET_ID_RE.match(dest)):
            raise UserException(
                f"{where}destination {_describe(dest)} is not a table id; use the form 'in.c-bucket.table' "
                f"(or a bucket id to keep the table name)."
            )
        return dest

    def _overrides(self, obj: Mapping[str, Any], where: str, mode: str) -> dict[str, Any]:
        """Settings that an item may override; ``_UNSET`` where ``obj`` does not set them."""
        out: dict[str, Any] = {}
        out["incremental"] = (
            self._bool(obj, "incremental", None, where) if obj.get("incremental") is not None else _UNSET
        )
        out["primary_key"] = self._str_list(obj, "primaryKey", where)
        out["columns"] = self._str_list(obj, "columns", where)
        out["where_filters"] = self._where_filters(obj, where)
        out["changed_since"] = self._changed_since(obj, where, mode)
        out["limit"] = self._limit(obj, where)

        if where == "" and out["incremental"] is _UNSET:  # top level: the mode's default
            out["incremental"] = mode == "sync"
        self._check_mode_support(out, where, mode)
        return out

    @staticmethod
    def _check_mode_support(values: Mapping[str, Any], where: str, mode: str) -> None:
        def is_set(key: str) -> bool:
            value = values.get(key, _UNSET)
            return value is not _UNSET and value not in (None, ())

        if mode == "import":
            for key, name in (
                ("columns", "columns"),
                ("where_filters", "whereFilters"),
                ("changed_since", "changedSince"),
                ("limit", "limit"),
            ):
                if is_set(key):
                    raise UserException(
                        f"The parameter '{where}{name}' is not supported in import mode (input tables are loaded "
                        f"whole); remove it."
                    )
        if mode == "sync":
            if is_set("changed_since"):
                raise UserException(
                    f"The parameter '{where}changedSince' is not used in sync mode because the watermark in the "
                    f"state decides which rows to copy; remove it."
                )
            if is_set("limit"):
                raise UserException(
                    f"The parameter '{where}limit' is not supported in sync mode because rows beyond the limit "
                    f"would never be copied; remove it."
                )

    @staticmethod
    def _str_list(obj: Mapping[str, Any], key: str, where: str) -> Any:
        value = obj.get(key)
        if value is None:
            return _UNSET
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise UserException(
                f"The parameter '{where}{key}' must be a list of column names (strings), not {_describe(value)}."
            )
        names = tuple(v.strip() for v in value)
        if len(set(names)) != len(names):
            raise UserException(f"The parameter '{where}{key}' lists a column twice; list each column once.")
        return names or _UNSET  # an empty list (the UI default) means "not set"

    @staticmethod
    def _limit(obj: Mapping[str, Any], where: str) -> Any:
        value = obj.get("limit")
        if value is None:
            return _UNSET
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise UserException(
                f"The parameter '{where}limit' must be a positive whole number, not {_describe(value)}."
            )
        return value

    @staticmethod
    def _where_filters(obj: Mapping[str, Any], where: str) -> Any:
        value = obj.get("whereFilters")
        if value is None:
            return _UNSET
        if not isinstance(value, list):
            raise UserException(f"The parameter '{where}whereFilters' must be a list, not {_type_name(value)}.")
        filters = []
        for i, raw in enumerate(value):
            name = f"{where}whereFilters[{i}]"
            if not isinstance(raw, Mapping):
                raise UserException(
                    f"The item '{name}' must be an object with 'column', 'operator' and 'values', "
                    f"not {_type_name(raw)}."
                )
            column = raw.get("column")
            if not isinstance(column, str) or not column.strip():
                raise UserException(f"The item '{name}' needs 'column': the name of the column to filter on.")
            operator = raw.get("operator", "eq")
            if not isinstance(operator, str) or operator.strip().lower() not in OPERATORS:
                raise UserException(
                    f"The operator {_describe(operator)} in '{name}' is not supported; use one of: "
                    f"{', '.join(OPERATORS)}."
                )
            values = raw.get("values")
            if isinstance(values, (str, int, float)) and not isinstance(values, bool):
                values = [values]
            if (
                not isinstance(values, list)
                or not values
                or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values)
            ):
                raise UserException(
                    f"The item '{name}' needs 'values': a non-empty list of strings, not {_describe(values)}."
                )
            for key in sorted(set(raw) - {"column", "operator", "values"}):
                logger.warning("Unknown configuration parameter '%s.%s' is ignored.", name, key)
            filters.append(WhereFilter(column.strip(), operator.strip().lower(), tuple(str(v) for v in values)))
        return tuple(filters) or _UNSET

    @staticmethod
    def _changed_since(obj: Mapping[str, Any], where: str, mode: str) -> Any:
        value = obj.get("changedSince")
        if value is None or value == "":
            return _UNSET
        parsed = parse_changed_since(value, f"{where}changedSince")
        if parsed.is_last and mode != "export":
            raise UserException(
                f"'{where}changedSince': 'last' is only available in export mode; use a timestamp or a relative "
                f"value like '-2 days'."
            )
        return parsed


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Any = _Unset()


# ---------------------------------------------------------------------------------------------------------------
# helpers used by the parser and by the workflows


def normalize_url(url: str, name: str = "url") -> str:
    """Validate a Storage API URL (https, or http on a loopback host) and strip trailing slashes/``/v2/storage``."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise UserException(
            f"{name} {_describe(url)} is not a URL; use the stack URL, e.g. https://connection.keboola.com."
        )
    if parts.scheme != "https" and not _is_loopback(host):
        raise UserException(
            f"{name} {_describe(url)} must use https (plain http is only allowed for localhost); "
            f"change it to https://{parts.netloc}."
        )
    url = url.rstrip("/")
    if url.endswith("/v2/storage"):
        url = url[: -len("/v2/storage")].rstrip("/")
    return url


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_changed_since(value: Any, name: str = "changedSince") -> ChangedSince:
    """Parse a unix timestamp, ISO-8601 date/time, relative value (``-2 days``) or ``last``."""
    hint = "use a unix timestamp, an ISO-8601 date such as 2024-05-01T00:00:00Z, a relative value such as '-2 days'"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise UserException(f"The parameter '{name}' must be a string or a number, not {_type_name(value)}; {hint}.")
    if isinstance(value, (int, float)):
        if value < 0:
            raise UserException(f"{name} {value:g} is a negative unix timestamp; {hint}.")
        return ChangedSince("absolute", int(value), str(value))
    text = value.strip()
    lowered = text.lower()
    if lowered == "last":
        return ChangedSince("last", 0, text)
    if re.fullmatch(r"\d+", text):
        return ChangedSince("absolute", int(text), text)
    match = _RELATIVE_RE.match(re.sub(r"\s+", " ", lowered))
    if match:
        number = int(match.group("n1") or match.group("n2"))
        unit = (match.group("u1") or match.group("u2")).rstrip("s") or "s"
        seconds = _UNITS.get(unit)
        if seconds is None:
            raise UserException(
                f"{name} {_describe(text)} has an unknown unit '{unit}'; use seconds, minutes, hours, days or weeks."
            )
        return ChangedSince("relative", number * seconds, text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise UserException(f"{name} {_describe(text)} is not a valid date; {hint}, or 'last' (export).") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return ChangedSince("absolute", int(parsed.timestamp()), text)


def table_name(table_id: str) -> str:
    return table_id.rsplit(".", 1)[-1]


def bucket_of(table_id: str) -> str:
    return table_id.rsplit(".", 1)[0]


def with_source(settings: TableSettings, source: str) -> TableSettings:
    """A copy of ``settings`` for one table of a bucket selection."""
    return replace(settings, source=source)

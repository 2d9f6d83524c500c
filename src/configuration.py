"""Typed configuration of Storage Sync, built from the ``parameters`` of config.json with pydantic v2 models.

Two layers of models:

- input models (``_OptionsIn``, ``_ConnectionIn``, ``_SettingsIn``, ``_TableIn``, ...) validate the parameters as
  written: aliases (``#token``, ``primaryKey``), types, values and what the mode supports. Each validator raises
  ``_Bad`` with one sentence; ``_validate`` turns the first error of a ``ValidationError`` into a ``UserException``
  that names the dotted path of the key (``tables[0].incremental``);
- the resolved, frozen (hashable) models the workflows use (``Configuration``, ``TableSettings``, ``Connection``,
  ``WhereFilter``, ``ChangedSince``, ``Timeouts``): top-level settings applied to every table, the mode's defaults,
  the URL and token Keboola forwards.

Every invalid input raises ``UserException`` with one sentence that says what is wrong and how to fix it. Token
values never appear in messages: every token is registered (``redaction.register_secret``) before validation.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from keboola.component.exceptions import UserException
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from redaction import _SECRETS, HIDDEN, redact, register_secret, registered_secrets  # noqa: F401 - re-exported

logger = logging.getLogger(__name__)

MODES = ("export", "import", "sync")
OPERATORS = ("eq", "ne", "gt", "ge", "lt", "le")
DATA_TYPES = ("INTEGER", "DOUBLE", "BIGINT", "REAL", "DECIMAL")  # whereFilters[].dataType of the Storage API
DELETES = ("propagate", "keep")
SCHEMA_CHANGES = ("follow", "rebuild")
DEFAULT_JOB_TIMEOUT = 3600
MAX_JOB_TIMEOUT = 14400
DEFAULT_REQUEST_TIMEOUT = 120
DEFAULT_PARALLELISM = 8  # tables in flight: within the 10 storage jobs a stack processes per project at once
MAX_PARALLELISM = 16

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

Mode = Literal["export", "import", "sync"]
Deletes = Literal["propagate", "keep"]
Aliases = Literal["copy", "skip"]
ALIASES = ("copy", "skip")  # a source alias: its data copied into a real table (default), or not at all
SchemaChanges = Literal["follow", "rebuild"]


# ---------------------------------------------------------------------------------------------------------------
# resolved model (what the workflows use)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Connection(_Frozen):
    """A Storage API endpoint: stack URL and token (and, for a destination, the default bucket)."""

    url: str
    token: str = Field(repr=False)
    bucket: str | None = None


class WhereFilter(_Frozen):
    column: str
    operator: str = "eq"
    values: tuple[str, ...]
    data_type: str | None = None  # one of DATA_TYPES; None compares as text

    def to_api(self) -> dict:
        api = {"column": self.column, "operator": self.operator, "values": list(self.values)}
        if self.data_type:
            api["dataType"] = self.data_type
        return api


class ChangedSince(_Frozen):
    """A parsed ``changedSince``: an absolute unix time, a relative offset, or ``last`` (from the state)."""

    kind: Literal["absolute", "relative", "last"]
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


class TableSettings(_Frozen):
    """One item of ``tables`` with the top-level settings applied."""

    source: str
    destination: str | None = None
    columns: tuple[str, ...] | None = None
    where_filters: tuple[WhereFilter, ...] = ()
    primary_key: tuple[str, ...] | None = None  # None = not configured (use the source's / existing one)
    incremental: bool = False
    changed_since: ChangedSince | None = None
    limit: int | None = None
    deletes: Deletes | None = None  # sync: "propagate" (default) or "keep"; None in export and import
    schema_changes: SchemaChanges = "follow"
    aliases: Aliases = "copy"

    @property
    def source_is_bucket(self) -> bool:
        return bool(BUCKET_ID_RE.match(self.source))


class Timeouts(_Frozen):
    job: float = DEFAULT_JOB_TIMEOUT
    request: float = DEFAULT_REQUEST_TIMEOUT


class Configuration(_Frozen):
    mode: Mode | None
    source: Connection | None = None
    destination: Connection | None = None
    tables: tuple[TableSettings, ...] = ()
    # the top-level table settings (used for input tables that 'tables' does not list, in import mode)
    defaults: TableSettings = Field(default_factory=lambda: TableSettings(source=""))
    timeouts: Timeouts = Field(default_factory=Timeouts)
    debug: bool = False
    merged_output: bool = False
    verify: bool = False  # sync: compare each destination table with its source after writing it
    parallelism: int = DEFAULT_PARALLELISM  # transfers (slices, tables) at once
    # problems with connections that the mode does not need (only kept for sync actions): (which, message)
    connection_errors: tuple[tuple[str, str], ...] = Field(default=(), repr=False)

    def require(self, which: str) -> Connection:
        """The ``source`` or ``destination`` connection, or UserException saying why it is unusable."""
        conn = getattr(self, which)
        if conn is None:
            raise UserException(dict(self.connection_errors).get(which) or f"The {which} connection is not configured.")
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
        return _build(parameters, env or {}, for_action)


def table_name(table_id: str) -> str:
    return table_id.rsplit(".", 1)[-1]


def bucket_of(table_id: str) -> str:
    return table_id.rsplit(".", 1)[0]


def with_source(settings: TableSettings, source: str) -> TableSettings:
    """A copy of ``settings`` for one table of a bucket selection (or one input table)."""
    return settings.model_copy(update={"source": source})


# ---------------------------------------------------------------------------------------------------------------
# messages


class _Bad(ValueError):
    """A validator's one-sentence message. The template may name the key by its dotted path: ``{path}`` (the key),
    ``{item}`` (the object holding the key), ``{at}`` (the object as a prefix, ``tables[0].`` or empty)."""

    def __init__(self, template: str, **values: Any):
        super().__init__(template)
        self.template, self.values = template, values

    def render(self, path: str, item: str = "") -> str:
        return self.template.format(path=path, item=item, at=f"{path}." if path else "", **self.values)


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


def _dotted(parts: tuple) -> str:
    """``("tables", 0, "primary_key")`` -> ``tables[0].primaryKey`` (keys as config.json spells them)."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part:
            part = _ALIASES.get(part, part)  # pydantic names a missing key by its field name
            text += f".{part}" if text else str(part)
    return text


def _validate(model: type[BaseModel], raw: Any, where: str, context: Mapping[str, Any]) -> Any:
    """``model`` validated from ``raw`` (found at the dotted path ``where``), or UserException for its first error."""
    try:
        return model.model_validate(raw, context=dict(context))
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        loc = tuple(error["loc"])
        prefix = (where,) if where else ()
        path, item = _dotted(prefix + loc), _dotted(prefix + loc[:-1])
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, _Bad):
            raise UserException(cause.render(path, item)) from None
        raise UserException(  # a check without its own sentence (not expected): pydantic's, redacted
            f"The parameter '{path or 'parameters'}' is invalid ({redact(error['msg'])}); fix the configuration."
        ) from None


def _warn_unknown(raw: Any, known: set[str], where: str) -> None:
    if isinstance(raw, Mapping):
        for key in sorted(set(raw) - known):
            logger.warning("Unknown configuration parameter '%s%s' is ignored.", where, key)


# ---------------------------------------------------------------------------------------------------------------
# value checks shared by the input models


def _flag(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise _Bad("The parameter '{path}' must be true or false, not {kind}.", kind=_type_name(value))


def _column_names(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise _Bad(
            "The parameter '{path}' must be a list of column names (strings), not {value}.", value=_describe(value)
        )
    names = tuple(v.strip() for v in value)
    if len(set(names)) != len(names):
        raise _Bad("The parameter '{path}' lists a column twice; list each column once.")
    return names or None  # an empty list (the UI default) means "not set"


def _choice(value: Any, choices: tuple[str, ...]) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().lower() in choices:
        return value.strip().lower()
    raise _Bad(
        "The parameter '{path}' must be {options}, not {value}.",
        options=" or ".join(f"'{c}'" for c in choices),
        value=_describe(value),
    )


def _positive_seconds(value: Any, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad("The parameter '{path}' must be a number of seconds, not {kind}.", kind=_type_name(value))
    if value <= 0:
        raise _Bad("The parameter '{path}' must be a positive number of seconds, not {value:g}.", value=value)
    return float(value)


def _is_set(value: Any) -> bool:
    return value is not None and value != ()


# ---------------------------------------------------------------------------------------------------------------
# input models (config.json as written)


class _In(BaseModel):
    """Validates a config.json object; keys it does not declare are ignored (with a warning, see ``keys``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    # the sentence for a value that is not a JSON object (``{path}`` and ``{kind}`` are filled in)
    not_an_object: ClassVar[str] = "The parameter '{path}' must be an object, not {kind}."
    null_is_empty: ClassVar[bool] = False  # null stands for {} (else it is not an object)

    @model_validator(mode="before")
    @classmethod
    def _object(cls, value: Any) -> Any:
        if value is None and cls.null_is_empty:
            return {}
        if not isinstance(value, Mapping):
            raise _Bad(cls.not_an_object, kind=_type_name(value))
        return value

    @classmethod
    def keys(cls) -> set[str]:
        return {field.alias or name for name, field in cls.model_fields.items()}


class _TimeoutsIn(_In):
    not_an_object: ClassVar[str] = (
        'The parameter \'{path}\' must be an object like {{"job": 3600, "request": 120}}, not {kind}.'
    )
    null_is_empty: ClassVar[bool] = True
    job: float = Field(DEFAULT_JOB_TIMEOUT, validate_default=True)
    request: float = Field(DEFAULT_REQUEST_TIMEOUT, validate_default=True)

    @field_validator("job", mode="plain")
    @classmethod
    def _job(cls, value: Any) -> float:
        return _positive_seconds(value, DEFAULT_JOB_TIMEOUT)

    @field_validator("request", mode="plain")
    @classmethod
    def _request(cls, value: Any) -> float:
        return _positive_seconds(value, DEFAULT_REQUEST_TIMEOUT)

    @model_validator(mode="after")
    def _job_maximum(self) -> _TimeoutsIn:
        if self.job > MAX_JOB_TIMEOUT:
            raise _Bad(
                "{at}job is {job:g} s; the maximum is {maximum} s (4 hours); set a lower value.",
                job=self.job,
                maximum=MAX_JOB_TIMEOUT,
            )
        return self


class _OptionsIn(_In):
    """Top-level options of the run."""

    timeouts: _TimeoutsIn = Field(default_factory=_TimeoutsIn)
    debug: bool | None = None
    merged_output: bool | None = Field(None, alias="mergedOutput")
    verify: bool | None = None
    parallelism: int = Field(DEFAULT_PARALLELISM, validate_default=True)

    @field_validator("debug", "merged_output", "verify", mode="plain")
    @classmethod
    def _flags(cls, value: Any) -> bool | None:
        return _flag(value)

    @field_validator("parallelism", mode="plain")
    @classmethod
    def _parallelism(cls, value: Any) -> int:
        if value is None:
            return DEFAULT_PARALLELISM
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PARALLELISM:
            raise _Bad(
                "The parameter '{path}' must be a whole number from 1 to {maximum}, not {value}.",
                maximum=MAX_PARALLELISM,
                value=_describe(value),
            )
        return value

    @model_validator(mode="after")
    def _mode_support(self, info: ValidationInfo) -> _OptionsIn:
        mode = (info.context or {}).get("mode")
        if self.verify and mode in ("export", "import"):
            raise _Bad(
                "The parameter '{at}verify' is only supported in sync mode (an {mode} has no source table to compare "
                "with); remove it or set it to false.",
                mode=mode,
            )
        return self


class _ConnectionIn(_In):
    """``source`` / ``destination``: url and #token, each defaulting to what Keboola forwards (KBC_URL, KBC_TOKEN)."""

    not_an_object: ClassVar[str] = "The parameter '{path}' must be an object with 'url' and '#token', not {kind}."
    null_is_empty: ClassVar[bool] = True
    url: str = Field(None, validate_default=True)
    token: str = Field(None, alias="#token", repr=False, validate_default=True)

    @staticmethod
    def _string_or_env(value: Any, info: ValidationInfo, env_key: str, when_missing: str) -> str:
        if value is not None and not isinstance(value, str):
            raise _Bad("The parameter '{path}' must be a string, not {kind}.", kind=_type_name(value))
        value = (value or "").strip() or ((info.context or {}).get("env", {}).get(env_key) or "").strip()
        if not value:
            raise _Bad("The parameter '{path}' is missing and " + when_missing, which=(info.context or {})["which"])
        return value

    @field_validator("url", mode="plain")
    @classmethod
    def _url(cls, value: Any, info: ValidationInfo) -> str:
        url = cls._string_or_env(
            value,
            info,
            "KBC_URL",
            "Keboola forwarded no URL; set it to the Storage API URL of the {which} stack, "
            "e.g. https://connection.keboola.com.",
        )
        return _normalize_url(url)

    @field_validator("token", mode="plain")
    @classmethod
    def _token(cls, value: Any, info: ValidationInfo) -> str:
        return cls._string_or_env(
            value, info, "KBC_TOKEN", "Keboola forwarded no token; enter a Storage API token of the {which} project."
        )


class _DestinationIn(_ConnectionIn):
    bucket: str | None = None

    @field_validator("bucket", mode="plain")
    @classmethod
    def _bucket(cls, value: Any) -> str | None:
        if value is not None and not isinstance(value, str):
            raise _Bad("The parameter '{path}' must be a string, not {kind}.", kind=_type_name(value))
        bucket = (value or "").strip() or None
        if bucket and not BUCKET_ID_RE.match(bucket):
            raise _Bad(
                "{path} {value} is not a bucket id; use the form 'in.c-name' or 'out.c-name'.", value=_describe(bucket)
            )
        return bucket


class _WhereFilterIn(_In):
    not_an_object: ClassVar[str] = (
        "The item '{path}' must be an object with 'column', 'operator' and 'values', not {kind}."
    )
    column: str = Field(None, validate_default=True)
    operator: str = Field("eq", validate_default=True)
    values: tuple[str, ...] = Field(None, validate_default=True)
    data_type: str | None = Field(None, alias="dataType")

    @field_validator("column", mode="plain")
    @classmethod
    def _column(cls, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise _Bad("The item '{item}' needs 'column': the name of the column to filter on.")
        return value.strip()

    @field_validator("operator", mode="plain")
    @classmethod
    def _operator(cls, value: Any) -> str:
        if not isinstance(value, str) or value.strip().lower() not in OPERATORS:
            raise _Bad(
                "The operator {value} in '{item}' is not supported; use one of: {options}.",
                value=_describe(value),
                options=", ".join(OPERATORS),
            )
        return value.strip().lower()

    @field_validator("values", mode="plain")
    @classmethod
    def _values(cls, value: Any) -> tuple[str, ...]:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value)
        ):
            raise _Bad(
                "The item '{item}' needs 'values': a non-empty list of strings, not {value}.", value=_describe(value)
            )
        return tuple(str(v) for v in value)

    @field_validator("data_type", mode="plain")
    @classmethod
    def _data_type(cls, value: Any) -> str | None:
        if value is None or value == "":
            return None  # the UI's "Text": compare as text
        if not isinstance(value, str) or value.strip().upper() not in DATA_TYPES:
            raise _Bad(
                "The data type {value} in '{item}' is not supported; use one of: {options} (or leave it empty to "
                "compare as text).",
                value=_describe(value),
                options=", ".join(DATA_TYPES),
            )
        return value.strip().upper()

    def resolved(self) -> WhereFilter:
        return WhereFilter(column=self.column, operator=self.operator, values=self.values, data_type=self.data_type)


class _SettingsIn(_In):
    """Table settings: at the top level (defaults for every table) and in each item of ``tables``."""

    incremental: bool | None = None
    primary_key: tuple[str, ...] | None = Field(None, alias="primaryKey")
    columns: tuple[str, ...] | None = None
    where_filters: tuple[_WhereFilterIn, ...] | None = Field(None, alias="whereFilters")
    changed_since: ChangedSince | None = Field(None, alias="changedSince")
    limit: int | None = None
    deletes: Deletes | None = None
    schema_changes: SchemaChanges | None = Field(None, alias="schemaChanges")
    aliases: Aliases | None = None

    @field_validator("incremental", mode="plain")
    @classmethod
    def _incremental(cls, value: Any) -> bool | None:
        return _flag(value)

    @field_validator("primary_key", "columns", mode="plain")
    @classmethod
    def _columns(cls, value: Any) -> tuple[str, ...] | None:
        return _column_names(value)

    @field_validator("where_filters", mode="before")
    @classmethod
    def _where_filters(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, list):
            raise _Bad("The parameter '{path}' must be a list, not {kind}.", kind=_type_name(value))
        return value or None  # an empty list means "not set"

    @field_validator("changed_since", mode="plain")
    @classmethod
    def _changed_since(cls, value: Any, info: ValidationInfo) -> ChangedSince | None:
        if value is None or value == "":
            return None
        parsed = _parse_changed_since(value)
        if parsed.is_last and (info.context or {}).get("mode") != "export":
            raise _Bad(
                "'{path}': 'last' is only available in export mode; use a timestamp or a relative value like '-2 days'."
            )
        return parsed

    @field_validator("limit", mode="plain")
    @classmethod
    def _limit(cls, value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise _Bad("The parameter '{path}' must be a positive whole number, not {value}.", value=_describe(value))
        return value

    @field_validator("deletes", mode="plain")
    @classmethod
    def _deletes(cls, value: Any) -> str | None:
        return _choice(value, DELETES)

    @field_validator("schema_changes", mode="plain")
    @classmethod
    def _schema_changes(cls, value: Any) -> str | None:
        return _choice(value, SCHEMA_CHANGES)

    @field_validator("aliases", mode="plain")
    @classmethod
    def _aliases(cls, value: Any) -> str | None:
        return _choice(value, ALIASES)

    @model_validator(mode="after")
    def _mode_support(self, info: ValidationInfo) -> _SettingsIn:
        mode = (info.context or {}).get("mode")
        if mode == "import":
            for name in ("columns", "where_filters", "changed_since", "limit"):
                if _is_set(getattr(self, name)):
                    raise _Bad(
                        "The parameter '{at}{key}' is not supported in import mode (input tables are loaded whole); "
                        "remove it.",
                        key=type(self).model_fields[name].alias or name,
                    )
        if mode == "sync":
            if _is_set(self.changed_since):
                raise _Bad(
                    "The parameter '{at}changedSince' is not used in sync mode because the watermark in the state "
                    "decides which rows to copy; remove it."
                )
            if _is_set(self.limit):
                raise _Bad(
                    "The parameter '{at}limit' is not supported in sync mode because rows beyond the limit would "
                    "never be copied; remove it."
                )
        if self.deletes == "keep" and mode in ("export", "import"):
            raise _Bad(
                "The parameter '{at}deletes' is only supported in sync mode (an {mode} deletes no rows in a copy); "
                "remove it.",
                mode=mode,
            )
        if self.schema_changes == "rebuild" and mode == "export":
            raise _Bad(
                "The parameter '{at}schemaChanges' is not supported in export mode (an export writes no destination "
                "table); remove it."
            )
        return self


class _TableIn(_SettingsIn):
    """One item of ``tables`` (or the row's ``table``)."""

    not_an_object: ClassVar[str] = "The item {path} must be an object with at least 'source', not {kind}."
    source: str = Field(None, validate_default=True)
    destination: str | None = None

    @field_validator("source", mode="plain")
    @classmethod
    def _source(cls, value: Any, info: ValidationInfo) -> str:
        mode = (info.context or {}).get("mode")
        if not isinstance(value, str) or not value.strip():
            if value is None or value == "":
                what = "an input table file name, e.g. 'data.csv'" if mode == "import" else "a table or bucket id"
                raise _Bad("The parameter '{path}' is missing; set it to {what}.", what=what)
            raise _Bad("The parameter '{path}' must be a string, not {kind}.", kind=_type_name(value))
        source = value.strip()
        if mode == "import":
            if "/" in source or source.startswith("."):
                raise _Bad(
                    "{path} {value} must be a file name in in/tables (e.g. 'data.csv'), not a path.",
                    value=_describe(source),
                )
            return source
        if not (TABLE_ID_RE.match(source) or BUCKET_ID_RE.match(source)):
            raise _Bad(
                "{path} {value} is not a table or bucket id; use 'in.c-bucket.table' or 'in.c-bucket' (stage 'in' or "
                "'out').",
                value=_describe(source),
            )
        return source

    @field_validator("destination", mode="plain")
    @classmethod
    def _destination(cls, value: Any, info: ValidationInfo) -> str | None:
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise _Bad("The parameter '{path}' must be a string, not {kind}.", kind=_type_name(value))
        dest = value.strip()
        source = info.data.get("source")
        if source is None:  # the source is invalid: that error is reported
            return dest
        if (info.context or {}).get("mode") != "import" and BUCKET_ID_RE.match(source):
            if not BUCKET_ID_RE.match(dest):
                raise _Bad(
                    "{path} {value} must be a bucket id (e.g. 'in.c-target') because the source {source} is a whole "
                    "bucket.",
                    value=_describe(dest),
                    source=source,
                )
        elif not (TABLE_ID_RE.match(dest) or BUCKET_ID_RE.match(dest)):
            raise _Bad(
                "{path} {value} is not a table id; use the form 'in.c-bucket.table' (or a bucket id to keep the table "
                "name).",
                value=_describe(dest),
            )
        return dest


# The keys of config.json (``test_connection`` and ``verify_copy`` are the UI's sync-action buttons, which hold
# no value).
_ROOT_ONLY_KEYS = {"mode", "source", "destination", "tables", "table", "test_connection", "verify_copy"}
ROOT_KEYS = _ROOT_ONLY_KEYS | _OptionsIn.keys() | _SettingsIn.keys()
ITEM_KEYS = _TableIn.keys()
_ALIASES = {
    name: field.alias
    for model in (_OptionsIn, _ConnectionIn, _DestinationIn, _WhereFilterIn, _TableIn)
    for name, field in model.model_fields.items()
    if field.alias
}
OVERRIDABLE_KEYS = tuple(sorted(_SettingsIn.keys()))


# ---------------------------------------------------------------------------------------------------------------
# building the configuration


def _build(parameters: Mapping[str, Any] | None, env: Mapping[str, str], for_action: bool) -> Configuration:
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, Mapping):
        raise UserException("The configuration parameters must be a JSON object; fix the configuration.")
    p = dict(parameters)
    # register secrets first, so that nothing below can leak them
    for which in ("source", "destination"):
        raw = p.get(which)
        if isinstance(raw, Mapping) and isinstance(raw.get("#token"), str):
            register_secret(raw["#token"].strip())
    register_secret((env.get("KBC_TOKEN") or "").strip())

    _warn_unknown(p, ROOT_KEYS, "")
    mode = _mode(p.get("mode"), for_action)
    if isinstance(p.get("timeouts"), Mapping):
        _warn_unknown(p["timeouts"], _TimeoutsIn.keys(), "timeouts.")
    options = _validate(_OptionsIn, p, "", {"mode": mode})

    needs = {"export": ("source",), "import": ("destination",), "sync": ("source", "destination")}.get(mode, ())
    connections: dict[str, Connection | None] = {}
    errors: list[tuple[str, str]] = []
    for which in ("source", "destination"):
        try:
            connections[which] = _connection(p, which, env)
        except UserException as exc:
            if which in needs and not for_action:
                raise
            connections[which] = None
            errors.append((which, str(exc)))

    empty = ((), TableSettings(source=""))
    if for_action:
        try:
            tables, defaults = _tables(p, mode) if mode else empty
        except UserException:
            tables, defaults = empty
    else:
        tables, defaults = _tables(p, mode)

    return Configuration(
        mode=mode,
        source=connections["source"],
        destination=connections["destination"],
        tables=tables,
        defaults=defaults,
        timeouts=Timeouts(job=options.timeouts.job, request=options.timeouts.request),
        debug=bool(options.debug),
        merged_output=bool(options.merged_output),
        verify=bool(options.verify),
        parallelism=options.parallelism,
        connection_errors=tuple(errors),
    )


def _mode(mode: Any, for_action: bool) -> str | None:
    valid = ", ".join(MODES)
    if mode is None or mode == "":
        if for_action:
            return None
        raise UserException(f"The parameter 'mode' is missing; set it to one of: {valid}.")
    if not isinstance(mode, str) or mode.strip().lower() not in MODES:
        if for_action:
            return None
        raise UserException(f"The mode {_describe(mode)} is not supported; use one of: {valid}.")
    return mode.strip().lower()


def _connection(p: Mapping[str, Any], which: str, env: Mapping[str, str]) -> Connection:
    model = _DestinationIn if which == "destination" else _ConnectionIn
    _warn_unknown(p.get(which), model.keys(), f"{which}.")
    raw = _validate(model, p.get(which), which, {"which": which, "env": env})
    return Connection(url=raw.url, token=raw.token, bucket=getattr(raw, "bucket", None))


def _tables(p: Mapping[str, Any], mode: str) -> tuple[tuple[TableSettings, ...], TableSettings]:
    items = _raw_items(p)
    context = {"mode": mode}
    _warn_unknown_filters(p, "")
    top = _validate(_SettingsIn, p, "", context)
    settings = []
    for index, item in enumerate(items):
        where = f"tables[{index}]"
        if isinstance(item, Mapping):
            _warn_unknown(item, ITEM_KEYS, f"{where}.")
            _warn_unknown_filters(item, f"{where}.")
        own = _validate(_TableIn, item, where, context)
        settings.append(_resolve(top, own, mode, source=own.source, destination=own.destination))
    if not settings and mode in ("export", "sync"):
        raise UserException(f"No tables are selected for {mode}; add at least one table or bucket id to 'tables'.")
    return tuple(settings), _resolve(top, None, mode, source="")


def _raw_items(p: Mapping[str, Any]) -> list:
    row_table = p.get("table")
    tables = p.get("tables")
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


def _warn_unknown_filters(obj: Mapping[str, Any], where: str) -> None:
    filters = obj.get("whereFilters")
    if isinstance(filters, list):
        for index, raw in enumerate(filters):
            _warn_unknown(raw, _WhereFilterIn.keys(), f"{where}whereFilters[{index}].")


def _resolve(top: _SettingsIn, own: _SettingsIn | None, mode: str, **identity: Any) -> TableSettings:
    """The settings of one table: the item's own values, else the top-level ones, else the mode's defaults."""

    def pick(name: str) -> Any:
        value = getattr(own, name) if own is not None else None
        return value if value is not None else getattr(top, name)

    incremental = pick("incremental")
    filters = pick("where_filters") or ()
    changed_since = pick("changed_since")
    if mode == "export" and changed_since is not None and changed_since.is_last and pick("limit") is not None:
        raise UserException(
            f"The selection {identity.get('source') or ''} has changedSince 'last' and a limit: the rows beyond the limit "
            f"would never be exported, because the next run starts after this one; remove 'limit' or use a fixed "
            f"changedSince."
        )
    if incremental is None:
        # sync upserts changes; an export of changed rows only must not replace the whole target table
        incremental = mode == "sync" or (mode == "export" and changed_since is not None)
    return TableSettings(
        **identity,
        columns=pick("columns"),
        where_filters=tuple(f.resolved() for f in filters),
        primary_key=pick("primary_key"),
        incremental=incremental,
        changed_since=changed_since,
        limit=pick("limit"),
        deletes=(pick("deletes") or "propagate") if mode == "sync" else None,
        schema_changes=pick("schema_changes") or "follow",
        aliases=pick("aliases") or "copy",
    )


# ---------------------------------------------------------------------------------------------------------------
# helpers used by the parser and by the workflows


def normalize_url(url: str, name: str = "url") -> str:
    """Validate a Storage API URL (https, or http on a loopback host) and strip trailing slashes/``/v2/storage``."""
    try:
        return _normalize_url(url)
    except _Bad as bad:
        raise UserException(bad.render(name)) from None


def _normalize_url(url: str) -> str:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise _Bad(
            "{path} {value} is not a URL; use the stack URL, e.g. https://connection.keboola.com.", value=_describe(url)
        )
    if parts.scheme != "https" and not _is_loopback(host):
        raise _Bad(
            "{path} {value} must use https (plain http is only allowed for localhost); change it to https://{netloc}.",
            value=_describe(url),
            netloc=parts.netloc,
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
    try:
        return _parse_changed_since(value)
    except _Bad as bad:
        raise UserException(bad.render(name)) from None


def _parse_changed_since(value: Any) -> ChangedSince:
    hint = "use a unix timestamp, an ISO-8601 date such as 2024-05-01T00:00:00Z, a relative value such as '-2 days'"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _Bad(
            "The parameter '{path}' must be a string or a number, not {kind}; {hint}.",
            kind=_type_name(value),
            hint=hint,
        )
    if isinstance(value, (int, float)):
        if value < 0:
            raise _Bad("{path} {value:g} is a negative unix timestamp; {hint}.", value=value, hint=hint)
        return ChangedSince(kind="absolute", seconds=int(value), text=str(value))
    text = value.strip()
    lowered = text.lower()
    if lowered == "last":
        return ChangedSince(kind="last", seconds=0, text=text)
    if re.fullmatch(r"\d+", text):
        return ChangedSince(kind="absolute", seconds=int(text), text=text)
    match = _RELATIVE_RE.match(re.sub(r"\s+", " ", lowered))
    if match:
        number = int(match.group("n1") or match.group("n2"))
        unit = (match.group("u1") or match.group("u2")).rstrip("s") or "s"
        seconds = _UNITS.get(unit)
        if seconds is None:
            raise _Bad(
                "{path} {value} has an unknown unit '{unit}'; use seconds, minutes, hours, days or weeks.",
                value=_describe(text),
                unit=unit,
            )
        return ChangedSince(kind="relative", seconds=number * seconds, text=text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise _Bad(
            "{path} {value} is not a valid date; {hint}, or 'last' (export).", value=_describe(text), hint=hint
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return ChangedSince(kind="absolute", seconds=int(parsed.timestamp()), text=text)

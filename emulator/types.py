"""Native column types of typed tables (addendum §1), per backend: Snowflake and BigQuery.

A column of a typed table is a ``ColumnType``: the native type after alias normalisation (``INT`` ->
``NUMBER(38,0)``, BigQuery ``INT64`` -> ``INTEGER``), its length as a string, nullability, default and the basetype
Storage reports. ``column_type`` builds one from a ``tables-definition`` / ``POST tables/{id}/columns`` request
(``definition`` and / or ``basetype``), raising the API's validation errors.

The engine stores typed values in DuckDB types (``ColumnType.storage_sql``) and asks the type for the SQL that
applies the load's NULL rules (``null_sql``), finds values the backend would refuse (``checks``), converts the CSV
text (``cast_sql``) and prints a stored value as the backend does (``output_sql``: ``preview`` for data-preview,
``export`` for export-async). ``load_error`` / ``filter_error`` word the failures as the backend does.

Known simplifications (README "Known differences"): Snowflake TIMESTAMP_LTZ / TIMESTAMP_TZ, BigQuery BIGNUMERIC
and the semi-structured / binary / geo types are stored as their (checked) text; timestamps keep microseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ValidationError

SNOWFLAKE, BIGQUERY = "snowflake", "bigquery"
BACKENDS = (SNOWFLAKE, BIGQUERY)
BACKEND_NAMES = {SNOWFLAKE: "Snowflake", BIGQUERY: "Bigquery"}
BASETYPES = ("STRING", "INTEGER", "NUMERIC", "FLOAT", "BOOLEAN", "DATE", "TIMESTAMP")

# value kinds: how the engine checks, stores and prints a value
NUMBER, INTEGER, FLOAT, STRING, BOOLEAN, DATE, TIME = "number", "integer", "float", "string", "boolean", "date", "time"
TIMESTAMP, TIMESTAMP_UTC, TIMESTAMP_TEXT, DECIMAL_TEXT, BINARY, OTHER = (
    "timestamp",  # naive timestamp (Snowflake TIMESTAMP_NTZ, BigQuery DATETIME)
    "timestamp_utc",  # BigQuery TIMESTAMP: an instant, stored in UTC
    "timestamp_text",  # Snowflake TIMESTAMP_LTZ / TIMESTAMP_TZ: checked, stored as text
    "decimal_text",  # BigQuery BIGNUMERIC: checked, stored as text
    "binary",  # Snowflake BINARY: hex text
    "other",  # semi-structured, geo, JSON, ...: stored as text, not checked
)


@dataclass(frozen=True)
class _Native:
    """A native type after alias normalisation: ``name`` as Storage reports it, what a length may be."""

    name: str
    kind: str
    basetype: str
    length: str = "none"  # none | number | chars | precision | bytes | free | required
    default_length: str | None = None
    fixed_length: str | None = None  # aliases like INT: the length is implied and may not be given
    filterable: bool = True


def _sf_number(alias: str) -> _Native:
    return _Native("NUMBER", NUMBER, "NUMERIC", "number", "38,0")


def _sf_int(alias: str) -> _Native:
    return _Native("NUMBER", NUMBER, "NUMERIC", "number", fixed_length="38,0")


_SF_FLOAT = _Native("FLOAT", FLOAT, "FLOAT")
_SF_VARCHAR = _Native("VARCHAR", STRING, "STRING", "chars", "16777216")
_SF_CHAR = _Native("VARCHAR", STRING, "STRING", "chars", "1")
_SF_NTZ = _Native("TIMESTAMP_NTZ", TIMESTAMP, "TIMESTAMP", "precision", "9")
_SF_LTZ = _Native("TIMESTAMP_LTZ", TIMESTAMP_TEXT, "TIMESTAMP", "precision", "9")
_SF_TZ = _Native("TIMESTAMP_TZ", TIMESTAMP_TEXT, "TIMESTAMP", "precision", "9")

# Snowflake (php-datatypes Definition\Snowflake, PHPT Snowflake/TableDefinitionOperationsTest): a NUMBER reports the
# basetype NUMERIC whatever its scale (an INTEGER basetype column comes back as NUMBER(38,0) / NUMERIC)
SNOWFLAKE_TYPES: dict[str, _Native] = {
    **{alias: _sf_number(alias) for alias in ("NUMBER", "DECIMAL", "DEC", "NUMERIC")},
    **{alias: _sf_int(alias) for alias in ("INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "BYTEINT")},
    **dict.fromkeys(("FLOAT", "FLOAT4", "FLOAT8", "DOUBLE", "DOUBLE PRECISION", "REAL"), _SF_FLOAT),
    **dict.fromkeys(("VARCHAR", "STRING", "TEXT", "NVARCHAR", "NVARCHAR2", "CHAR VARYING"), _SF_VARCHAR),
    **dict.fromkeys(("CHAR", "CHARACTER", "NCHAR"), _SF_CHAR),
    "BOOLEAN": _Native("BOOLEAN", BOOLEAN, "BOOLEAN"),
    "DATE": _Native("DATE", DATE, "DATE"),
    "TIME": _Native("TIME", TIME, "STRING", "precision", "9"),
    **dict.fromkeys(("DATETIME", "TIMESTAMP", "TIMESTAMP_NTZ", "TIMESTAMPNTZ"), _SF_NTZ),
    **dict.fromkeys(("TIMESTAMP_LTZ", "TIMESTAMPLTZ"), _SF_LTZ),
    **dict.fromkeys(("TIMESTAMP_TZ", "TIMESTAMPTZ"), _SF_TZ),
    **{name: _Native(name, OTHER, "STRING", filterable=False) for name in ("VARIANT", "OBJECT", "ARRAY")},
    **{name: _Native(name, OTHER, "STRING", filterable=False) for name in ("GEOGRAPHY", "GEOMETRY")},
    **dict.fromkeys(("BINARY", "VARBINARY"), _Native("BINARY", BINARY, "STRING", "bytes", "8388608", filterable=False)),
    "VECTOR": _Native("VECTOR", OTHER, "STRING", "required", filterable=False),
}

_BQ_INTEGER = _Native("INTEGER", INTEGER, "INTEGER")
# BigQuery (php-datatypes Definition\Bigquery::getBackendBasetype; PHPT Bigquery/TableDefinitionOperations*Test)
BIGQUERY_TYPES: dict[str, _Native] = {
    **dict.fromkeys(("INT64", "INT", "SMALLINT", "INTEGER", "BIGINT", "TINYINT", "BYTEINT"), _BQ_INTEGER),
    **dict.fromkeys(("NUMERIC", "DECIMAL"), _Native("NUMERIC", NUMBER, "NUMERIC", "bq_numeric")),
    **dict.fromkeys(("BIGNUMERIC", "BIGDECIMAL"), _Native("BIGNUMERIC", DECIMAL_TEXT, "NUMERIC", "bq_bignumeric")),
    **dict.fromkeys(("FLOAT64", "FLOAT"), _Native("FLOAT64", FLOAT, "FLOAT")),
    **dict.fromkeys(("BOOL", "BOOLEAN"), _Native("BOOL", BOOLEAN, "BOOLEAN")),
    "STRING": _Native("STRING", STRING, "STRING", "chars"),
    "BYTES": _Native("BYTES", OTHER, "STRING", "chars", filterable=False),
    "DATE": _Native("DATE", DATE, "DATE"),
    "DATETIME": _Native("DATETIME", TIMESTAMP, "TIMESTAMP"),
    "TIME": _Native("TIME", TIME, "TIMESTAMP"),
    "TIMESTAMP": _Native("TIMESTAMP", TIMESTAMP_UTC, "TIMESTAMP"),
    **{name: _Native(name, OTHER, "STRING", filterable=False) for name in ("GEOGRAPHY", "INTERVAL", "JSON")},
    **{name: _Native(name, OTHER, "STRING", "free", filterable=False) for name in ("ARRAY", "STRUCT")},
}

NATIVE_TYPES = {SNOWFLAKE: SNOWFLAKE_TYPES, BIGQUERY: BIGQUERY_TYPES}

# basetype -> (native type, length) when a column has only a basetype (addendum §1b)
BASETYPE_NATIVE = {
    SNOWFLAKE: {
        "STRING": ("VARCHAR", "16777216"),
        "INTEGER": ("NUMBER", "38,0"),
        "NUMERIC": ("NUMBER", "38,9"),
        "FLOAT": ("FLOAT", None),
        "BOOLEAN": ("BOOLEAN", None),
        "DATE": ("DATE", None),
        "TIMESTAMP": ("TIMESTAMP_NTZ", "9"),
    },
    BIGQUERY: {
        "STRING": ("STRING", None),
        "INTEGER": ("INTEGER", None),
        "NUMERIC": ("NUMERIC", None),
        "FLOAT": ("FLOAT64", None),
        "BOOLEAN": ("BOOL", None),
        "DATE": ("DATE", None),
        "TIMESTAMP": ("TIMESTAMP", None),
    },
}

_BOOL_TRUE = ("true", "t", "yes", "y", "on", "1")
_BOOL_FALSE = ("false", "f", "no", "n", "off", "0")
_NUMBER_RE = r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?"
_INTEGER_RE = r"[+-]?\d+"
_DATE_RE = r"\d{4}-\d{1,2}-\d{1,2}"
_TIME_RE = r"\d{1,2}:\d{2}(:\d{2}(\.\d{1,9})?)?"
_OFFSET_RE = r"(\s*(Z|UTC|[+-]\d{2}(:?\d{2})?))?"
_TIMESTAMP_RE = _DATE_RE + r"([ T]" + _TIME_RE + _OFFSET_RE + r")?"
_DATETIME_RE = _DATE_RE + r"([ T]" + _TIME_RE + r")?"
_HEX_RE = r"([0-9a-fA-F]{2})*"
# ColumnType.load_sql: a full match implies the kind's checks but its TRY_CAST (TIMESTAMP: a subset of the
# Snowflake pattern, without an offset)
_USUAL_PATTERNS = {
    NUMBER: _NUMBER_RE,
    INTEGER: _INTEGER_RE,
    FLOAT: _NUMBER_RE,
    DATE: _DATE_RE,
    TIME: _TIME_RE,
    TIMESTAMP: _DATETIME_RE,
}
_SF_COPY_HINT = (
    "  If you would like to continue loading when an error is encountered, use other values such as 'SKIP_FILE' or "
    "'CONTINUE' for the ON_ERROR option. For more information on loading options, please run 'info loading_data' "
    "in a SQL client."
)
_BQ_TIMESTAMP_FORMAT = "YYYY-MM-DD HH:MM[:SS[.SSSSSS]] or YYYY/MM/DD HH:MM[:SS[.SSSSSS]]"
VALUE_CONVERSION = "valueConversion"  # best guess (the storage driver's ERR_VALUE_CONVERSION), README
ROW_TOO_LARGE = "rowTooLarge"  # PHPT Snowflake testDataPreviewForTableDefinitionWithDecimalType (out of range)
FILTER_ERROR = "storage.backend.exception"  # PHPT testDataPreviewExoticTypes


@dataclass(frozen=True)
class ColumnType:
    """One typed column: the normalised native type of ``backend``."""

    name: str
    backend: str
    type: str
    length: str | None
    nullable: bool
    default: str | None
    basetype: str

    # -- shapes -----------------------------------------------------------------------------------------------------
    @property
    def native(self) -> _Native:
        return NATIVE_TYPES[self.backend][self.type]

    @property
    def kind(self) -> str:
        return self.native.kind

    @property
    def can_be_filtered(self) -> bool:
        return self.native.filterable

    def definition_json(self) -> dict:
        """``definition`` of the column in the table detail: ``length`` / ``default`` only when set (PHPT
        ``testResponseDefinition``, ``testCreateTableBasetypes``); the length is a string."""
        data: dict = {"type": self.type, "nullable": self.nullable}
        if self.length is not None:
            data["length"] = self.length
        if self.default is not None:
            data["default"] = self.default
        return data

    def column_json(self) -> dict:
        return {
            "name": self.name,
            "definition": self.definition_json(),
            "basetype": self.basetype,
            "canBeFiltered": self.can_be_filtered,
        }

    def metadata(self) -> list[tuple[str, str]]:
        """The ``KBC.datatype.*`` column metadata Storage writes (provider ``storage``), in its order: type,
        nullable (``"1"`` / ``""``), basetype, length when the type has one (PHPT ``testAddColumnOnTypedTable``,
        ``testCreateSnapshotOnTypedTable``, ``testEmptyZeroLength``)."""
        items = [
            ("KBC.datatype.type", self.type),
            ("KBC.datatype.nullable", "1" if self.nullable else ""),
            ("KBC.datatype.basetype", self.basetype),
        ]
        if self.length is not None:
            items.append(("KBC.datatype.length", self.length))
        return items

    def with_name(self, name: str) -> ColumnType:
        return ColumnType(name, self.backend, self.type, self.length, self.nullable, self.default, self.basetype)

    # -- storage ----------------------------------------------------------------------------------------------------
    @property
    def precision_scale(self) -> tuple[int, int]:
        if self.length:
            parts = self.length.split(",")
            return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0
        return (38, 9) if self.backend == BIGQUERY else (38, 0)

    @property
    def storage_sql(self) -> str:
        """The DuckDB type that stores the values."""
        kind = self.kind
        if kind == NUMBER:
            return "DECIMAL({}, {})".format(*self.precision_scale)
        return {
            INTEGER: "BIGINT",
            FLOAT: "DOUBLE",
            BOOLEAN: "BOOLEAN",
            DATE: "DATE",
            TIME: "TIME",
            TIMESTAMP: "TIMESTAMP",
            TIMESTAMP_UTC: "TIMESTAMP",
        }.get(kind, "VARCHAR")

    @property
    def max_chars(self) -> int | None:
        if self.kind == STRING and self.length:
            return int(self.length)
        return None

    def null_sql(self, raw: str, markers: str | None, empty_is_null: bool) -> str:
        """``raw`` (the CSV value: NULL for an unquoted empty field, ``''`` for a quoted one) after the load's NULL
        rules. ``markers``: an SQL list of the non-empty ``treatValuesAsNull`` values (None: none);
        ``empty_is_null``: ``''`` is one of them (the default ``['']``).

        Snowflake (``NULL_IF`` = treatValuesAsNull, ``EMPTY_FIELD_AS_NULL``): an unquoted empty field is NULL, a
        value in the list is NULL (default ``['']``: ``""`` too). BigQuery (``nullMarker``): an unquoted empty field
        is NULL only when ``''`` is the marker (else ``''``); a quoted ``""`` stays ``''`` in STRING columns and is
        NULL in the others (addendum §1d; PHPT ``ImportTreatValuesAsNullTest`` of both backends)."""
        marked = f" OR {raw} IN ({markers})" if markers else ""
        if self.backend == SNOWFLAKE:
            empty = f" OR {raw} = ''" if empty_is_null else ""
            return f"CASE WHEN {raw} IS NULL{empty}{marked} THEN NULL ELSE {raw} END"
        if self.kind == STRING:
            unquoted_empty = "NULL" if empty_is_null else "''"
            return f"CASE WHEN {raw} IS NULL THEN {unquoted_empty} WHEN FALSE{marked} THEN NULL ELSE {raw} END"
        return f"CASE WHEN {raw} IS NULL OR {raw} = ''{marked} THEN NULL ELSE {raw} END"

    def checks(self, value: str) -> list[tuple[str, str]]:
        """``[(problem, condition)]``: SQL conditions on a non-NULL ``value`` the backend refuses, in the order it
        finds them; problems: ``invalid`` (not recognized), ``range`` (out of range), ``length`` (too long)."""
        kind, v = self.kind, f"trim({value})"
        checks: list[tuple[str, str]] = []
        if kind == NUMBER:
            checks.append(("invalid", f"NOT regexp_full_match({v}, '{_NUMBER_RE}')"))
            checks.append(("range", f"TRY_CAST({v} AS {self.storage_sql}) IS NULL"))
        elif kind == INTEGER:
            checks.append(("invalid", f"NOT regexp_full_match({v}, '{_INTEGER_RE}')"))
            checks.append(("range", f"TRY_CAST({v} AS BIGINT) IS NULL"))
        elif kind == DECIMAL_TEXT:
            checks.append(("invalid", f"NOT regexp_full_match({v}, '{_NUMBER_RE}')"))
        elif kind == FLOAT:
            special = f"lower({v}) IN ('nan', 'inf', '-inf', '+inf', 'infinity', '-infinity', '+infinity')"
            checks.append(("invalid", f"NOT (regexp_full_match({v}, '{_NUMBER_RE}') OR {special})"))
        elif kind == BOOLEAN:
            words = ", ".join(f"'{w}'" for w in _BOOL_TRUE + _BOOL_FALSE)
            checks.append(("invalid", f"lower({v}) NOT IN ({words})"))
        elif kind == DATE:
            checks.append(("invalid", f"NOT regexp_full_match({v}, '{_DATE_RE}') OR TRY_CAST({v} AS DATE) IS NULL"))
        elif kind == TIME:
            checks.append(("invalid", f"NOT regexp_full_match({v}, '{_TIME_RE}') OR TRY_CAST({v} AS TIME) IS NULL"))
        elif kind in (TIMESTAMP, TIMESTAMP_UTC, TIMESTAMP_TEXT):
            pattern = _DATETIME_RE if (kind == TIMESTAMP and self.backend == BIGQUERY) else _TIMESTAMP_RE
            parsed = self._timestamp_sql(v) if kind != TIMESTAMP_TEXT else f"TRY_CAST(left({v}, 10) AS DATE)"
            checks.append(("invalid", f"NOT regexp_full_match({v}, '{pattern}') OR ({parsed}) IS NULL"))
        elif kind == BINARY:
            checks.append(("invalid", f"NOT regexp_full_match({value}, '{_HEX_RE}')"))
        limit = self.max_chars
        if limit is not None:
            checks.append(("length", f"length({value}) > {limit}"))
        return checks

    def _timestamp_sql(self, v: str, *, strict: bool = False) -> str:
        """A naive TIMESTAMP from the text ``v``: Snowflake TIMESTAMP_NTZ ignores an offset, BigQuery TIMESTAMP
        converts to UTC (no offset: UTC)."""
        cast = "CAST" if strict else "TRY_CAST"
        after_time = r"(\d:\d{2}(:\d{2}(\.\d+)?)?)\s*(Z|UTC|[+-]\d{2}(:?\d{2})?)$"
        if self.kind == TIMESTAMP_UTC:
            zoned = f"regexp_replace({v}, '\\s*UTC$', 'Z')"
            text = f"CASE WHEN regexp_matches({v}, '{after_time}') THEN {zoned} ELSE {v} || '+00' END"
            return f"timezone('UTC', {cast}({text} AS TIMESTAMPTZ))"
        return f"{cast}(regexp_replace({v}, '{after_time}', '\\1') AS TIMESTAMP)"

    def cast_sql(self, value: str) -> str:
        """The checked, non-NULL text ``value`` as the stored value (NULL stays NULL)."""
        kind, v = self.kind, f"trim({value})"
        if kind in (NUMBER, INTEGER, FLOAT, DATE, TIME):
            return f"CAST({v} AS {self.storage_sql})"
        if kind == BOOLEAN:
            words = ", ".join(f"'{w}'" for w in _BOOL_TRUE)
            return f"(lower({v}) IN ({words}))"
        if kind in (TIMESTAMP, TIMESTAMP_UTC):
            return self._timestamp_sql(v, strict=True)
        if kind == DECIMAL_TEXT:
            return v
        return value

    def load_sql(self, value: str, fail: str) -> str:
        """One-pass load: ``cast_sql`` of the text ``value`` (after the NULL rules), or ``fail`` (SQL that raises)
        where the NULL check or one of ``checks`` refuses it: the same values, in one expression.

        The usual values take a shortcut that implies the checks: a value fully matching the kind's pattern starts and
        ends with no (Unicode) space, so ``trim`` is a no-op and the pattern plus the TRY_CAST are the checks (an
        offset-free timestamp leaves ``_timestamp_sql`` nothing to cut); a string of at most ``max_chars`` bytes has
        at most as many characters. Other values take the exact checks."""
        conditions = [condition for _, condition in self.checks(value)]
        exact = self.cast_sql(value)
        if not conditions and self.nullable:
            return exact  # NULL stays NULL
        if conditions:
            exact = f"CASE WHEN {' OR '.join(f'({c})' for c in conditions)} THEN {fail} ELSE {exact} END"
        kind, usual = self.kind, ""
        pattern = _USUAL_PATTERNS.get(kind)
        if pattern is not None:
            cast = f"CAST({value} AS {self.storage_sql})"
            if kind != FLOAT:  # the range / parse check is this TRY_CAST being NULL
                cast = f"coalesce(TRY_CAST({value} AS {self.storage_sql}), {fail})"
            usual = f" WHEN regexp_full_match({value}, '{pattern}') THEN {cast}"
        elif kind == STRING and self.max_chars is not None:
            usual = f" WHEN strlen({value}) <= {self.max_chars} THEN {value}"
        return f"CASE WHEN {value} IS NULL THEN {'NULL' if self.nullable else fail}{usual} ELSE {exact} END"

    def output_sql(self, column: str, style: str) -> str:
        """The stored value as the backend prints it (NULL stays NULL): ``style`` ``preview`` (data-preview) or
        ``export`` (export-async). Snowflake (addendum §1e, PHPT ``testDataPreviewForTableDefinition*``): NUMBER with
        all its scale digits, FLOAT like ``3.14`` / ``123``, ``true`` / ``false``, TIMESTAMP_NTZ
        ``1989-08-31 00:00:00.000`` in the preview and ``YYYY-MM-DD HH24:MI:SS`` (fraction cut) in exports.
        BigQuery: NUMERIC without trailing zeros, TIMESTAMP ``2022-02-22 00:00:00.000000+00:00``, DATETIME /
        TIME with microseconds (exports print as the preview does, a best guess)."""
        kind, sf = self.kind, self.backend == SNOWFLAKE
        if kind == NUMBER:
            text = f"CAST({column} AS VARCHAR)"
            return text if sf else f"regexp_replace({text}, '\\.0*$|(\\.\\d*[1-9])0+$', '\\1')"
        if kind in (INTEGER, BOOLEAN):
            return f"CAST({column} AS VARCHAR)"
        if kind == FLOAT:
            if sf:
                return (
                    f"CASE WHEN isnan({column}) THEN 'NaN' WHEN isinf({column}) THEN "
                    f"(CASE WHEN {column} > 0 THEN 'inf' ELSE '-inf' END) ELSE printf('%.15g', {column}) END"
                )
            return (
                f"CASE WHEN isnan({column}) THEN 'NaN' WHEN isinf({column}) THEN "
                f"(CASE WHEN {column} > 0 THEN 'Infinity' ELSE '-Infinity' END) "
                f"WHEN {column} = trunc({column}) AND abs({column}) < 1e15 THEN CAST(CAST({column} AS BIGINT) AS VARCHAR) "
                f"ELSE CAST({column} AS VARCHAR) END"
            )
        if kind == DATE:
            return f"strftime({column}, '%Y-%m-%d')"
        if kind == TIME:
            fmt = "%H:%M:%S" if sf else "%H:%M:%S.%f"
            return f"strftime(DATE '2000-01-01' + {column}, '{fmt}')"
        if kind == TIMESTAMP:
            if sf:
                fmt = "%Y-%m-%d %H:%M:%S.%g" if style == "preview" else "%Y-%m-%d %H:%M:%S"
            else:
                fmt = "%Y-%m-%d %H:%M:%S.%f"
            return f"strftime({column}, '{fmt}')"
        if kind == TIMESTAMP_UTC:
            return f"strftime({column}, '%Y-%m-%d %H:%M:%S.%f+00:00')"
        return column

    def filter_check_sql(self, value: str) -> str:
        """SQL true when the filter value (a parameter) is no value of this type."""
        conditions = [condition for problem, condition in self.checks(value) if problem != "length"]
        return " OR ".join(f"({c})" for c in conditions) if conditions else "FALSE"

    # -- errors -----------------------------------------------------------------------------------------------------
    def load_error(self, problem: str, value: str | None, where: LoadPosition | None) -> ValidationError:
        """The job error of a load that meets a value the column refuses (``problem``: ``null``, ``invalid``,
        ``range``, ``length``), worded as the backend words it (addendum §1d)."""
        if self.backend == BIGQUERY:
            return self._bigquery_load_error(problem, value, where)
        prefix = "Load error: An exception occurred while executing a query: "
        if problem == "null":  # the INSERT from the stage (as a conversion error, without a file position)
            return ValidationError(
                f"Table import error: {prefix}NULL result in a non-nullable column", code=VALUE_CONVERSION
            )
        if problem == "invalid":  # PHPT testLoadTypedTablesConversionError: exactly this, no file position
            return ValidationError(f"Table import error: {prefix}{self._not_recognized(value)}", code=VALUE_CONVERSION)
        if problem == "range":
            reason = f"Numeric value '{value}' is out of range"
        else:
            reason = f"User character length limit ({self.max_chars}) exceeded by string '{value}'"
        # the COPY into the typed stage: file position and the column as Snowflake reports it
        # (PHPT testDataPreviewForTableDefinitionWithDecimalType, testLoadTypedTablesLengthOverflowError)
        position = ""
        if where is not None:
            position = (
                f"\n  File '{where.file}', line {where.line}, character {where.character}\n"
                f'  Row {where.row}, column ""__temp_csvimport""["{self.name}":{where.column_index + 1}]\n'
            ) + _SF_COPY_HINT
        return ValidationError(f"{prefix}{reason}{position}", code=ROW_TOO_LARGE)

    def needs_position(self, problem: str) -> bool:
        """Whether the backend's message of a refused value gives its file position."""
        if self.backend == BIGQUERY:
            return problem != "null"
        return problem in ("range", "length")

    def _not_recognized(self, value) -> str:
        if self.kind == BINARY:
            return f"The following string is not a legal hex-encoded value: '{value}'"
        what = {
            NUMBER: "Numeric value",
            INTEGER: "Numeric value",
            FLOAT: "Numeric value",
            DECIMAL_TEXT: "Numeric value",
            BOOLEAN: "Boolean value",
            DATE: "Date",
            TIME: "Time",
        }.get(self.kind, "Timestamp")
        return f"{what} '{value}' is not recognized"

    def _bigquery_load_error(self, problem: str, value, where: LoadPosition | None) -> ValidationError:
        if problem == "null":  # PHPT Bigquery testLoadingNullValuesToNotNullTypedColumnsFromFile
            return ValidationError(f"Load error: Required field {self.name} cannot be null", code=VALUE_CONVERSION)
        line = where.line if where else 0
        offset = where.offset if where else 0
        index = where.column_index if where else 0
        details = (
            f"line_number: {line} byte_offset_to_start_of_line: {offset} column_index: {index} column_name: "
            f'"{self.name}" column_type: {self._bq_sql_type()} value: "{value}"'
        )
        if where is not None:
            details += f" File: {where.file}"
        if problem == "length":
            reason = f"Field {self.name}: STRING({self.max_chars}) has maximum length {self.max_chars} but got a value with length {len(value or '')}"
        elif self.kind == TIMESTAMP_UTC:  # PHPT Bigquery testInsertInvalidTypestampIsUserError
            reason = f"Could not parse '{value}' as a timestamp. Required format is {_BQ_TIMESTAMP_FORMAT}"
        else:
            reason = f"Could not parse '{value}' as {self._bq_sql_type()} for field {self.name} (position {index})"
        return ValidationError(
            f"Load error: Error while reading data, error message: {reason}; {details}", code=VALUE_CONVERSION
        )

    def _bq_sql_type(self) -> str:
        return {"INTEGER": "INT64"}.get(self.type, self.type)

    def filter_error(self, value: str) -> ValidationError:
        """A filter value that is no value of the column's type (PHPT ``testColumnTypesInTableDefinition``)."""
        if self.backend == SNOWFLAKE:
            return ValidationError(self._not_recognized(value), code=FILTER_ERROR)
        if self.kind in (DATE, TIME, TIMESTAMP, TIMESTAMP_UTC):
            word = {DATE: "date", TIME: "time string", TIMESTAMP: "datetime string"}.get(self.kind, "timestamp")
            return ValidationError(
                f"Invalid {word}: '{value}'; while executing the filter on column '{self.name}'", code=FILTER_ERROR
            )
        return ValidationError(
            f'Invalid filter value, expected:"{self._bq_sql_type()}", actual:"STRING".', code=FILTER_ERROR
        )

    def not_filterable_error(self) -> ValidationError:
        return ValidationError(
            f'Filtering by column "{self.name}" of type "{self.type}" is not supported by the backend '
            f'"{BACKEND_NAMES[self.backend]}".',
            code=FILTER_ERROR,
        )

    def default_error(self) -> str | None:
        """Why the backend refuses the column's ``default`` when it creates the table (PHPT
        ``testCreateTableDefaults``), or None."""
        value, kind = self.default, self.kind
        if value is None:
            return None
        syntax = (
            'Table creation ended with a syntax exception, probably due to an invalid "default" column specification. '
            f"Original exception is: SQL compilation error: syntax error line 1 unexpected '{value}'."
        )
        if kind == BOOLEAN:
            return None if value.lower() in ("true", "false") else f'Boolean default value "{value}" is not boolean.'
        if kind in (NUMBER, INTEGER, FLOAT, DECIMAL_TEXT):
            return None if re.fullmatch(_NUMBER_RE, value.strip()) else syntax
        if kind == DATE:
            return None if re.fullmatch(_DATE_RE, value) else syntax
        if kind in (TIME, TIMESTAMP, TIMESTAMP_UTC, TIMESTAMP_TEXT):
            function = re.fullmatch(r"(?i)current_(timestamp|time|date|datetime)(\(\))?", value)
            literal = re.fullmatch(_TIME_RE if kind == TIME else _TIMESTAMP_RE, value)
            return None if function or literal else syntax
        if kind == OTHER or kind == BINARY:
            return syntax if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value) else None
        return None

    def default_sql(self) -> str | None:
        """The default as a DuckDB literal of the storage type (fills the stored rows of an added column)."""
        if self.default is None:
            return None
        literal = "'" + self.default.replace("'", "''") + "'"
        if self.kind in (STRING, OTHER, BINARY, DECIMAL_TEXT, TIMESTAMP_TEXT):
            return literal
        return self.cast_sql(literal)


@dataclass(frozen=True)
class LoadPosition:
    """Where a load met a refused value: the file (its name), the 1-based physical line and character of the value,
    the 1-based data row, the 0-based column index in the file and the byte offset of the line."""

    file: str
    line: int
    character: int
    row: int
    column_index: int
    offset: int


# -- requests ------------------------------------------------------------------------------------------------------
def normalize_basetype(value, field: str) -> str:
    if not isinstance(value, str) or value.upper() not in BASETYPES:
        raise ValidationError(
            f'Invalid parameters - {field}: Base type "{value}" is not valid. Allowed: {", ".join(BASETYPES)}.',
            code="storage.tables.validation",
        )
    return value.upper()  # a lower-case basetype is accepted (PHPT testCreateTableBasetypes)


def _field(where: str, name: str) -> str:
    return f"{where}[{name}]" if where else name


def column_type(
    backend: str,
    name: str,
    *,
    definition: dict | None,
    basetype: str | None,
    nullable_default: bool = True,
    where: str = "",
) -> ColumnType:
    """A ``ColumnType`` from a request column: ``definition`` ``{type, length?, nullable?, default?}`` and / or
    ``basetype``; with only a basetype the native type comes from ``BASETYPE_NATIVE`` (a ``definition.length``
    still applies). ``nullable_default``: what ``nullable`` is when not given (False for primary key columns).
    ``where``: the request path of the column in messages (``columns[0]``; empty for ``POST tables/{id}/columns``)."""
    definition = dict(definition or {})
    defined = _field(where, "definition")
    unknown = sorted(set(definition) - {"type", "length", "nullable", "default", "description"})
    if unknown:
        raise ValidationError(
            f"Invalid parameters - {defined}[{unknown[0]}]: This field was not expected.",
            code="storage.tables.validation",
        )
    nullable = definition.get("nullable")
    if nullable is None:
        nullable = nullable_default
    elif not isinstance(nullable, bool):
        raise ValidationError(
            f"Invalid parameters - {defined}[nullable]: This value should be of type bool.",
            code="storage.tables.validation",
        )
    default = definition.get("default")
    if isinstance(default, bool):
        default = "true" if default else "false"
    elif isinstance(default, int | float):
        default = str(default)
    elif default is not None and not isinstance(default, str):
        raise ValidationError(
            f"Invalid parameters - {defined}[default]: This value should be a string.",
            code="storage.tables.validation",
        )
    if default == "":
        default = None  # an empty default is no default (PHPT testCreateTableDefaults "empty")
    raw_type = definition.get("type")
    length = definition.get("length")
    if raw_type in (None, ""):
        if basetype in (None, ""):
            raise ValidationError(
                f'Column "{name}": "definition.type" or "basetype" must be set.', code="storage.tables.validation"
            )
        base = normalize_basetype(basetype, _field(where, "basetype"))
        raw_type, base_length = BASETYPE_NATIVE[backend][base]
        if length in (None, ""):
            length = base_length
    if not isinstance(raw_type, str) or raw_type.strip().upper() not in NATIVE_TYPES[backend]:
        raise ValidationError(
            f'Invalid parameters - {defined}[type]: Type "{raw_type}" is not a valid type for the backend '
            f'"{BACKEND_NAMES[backend]}".',
            code="storage.tables.validation",
        )
    native = NATIVE_TYPES[backend][raw_type.strip().upper()]
    return ColumnType(
        name=name,
        backend=backend,
        type=native.name,
        length=_normalize_length(native, raw_type, length, f"{defined}[length]"),
        nullable=nullable,
        default=default,
        basetype=native.basetype,
    )


def _normalize_length(native: _Native, raw_type: str, length, field: str) -> str | None:
    if isinstance(length, bool) or (length is not None and not isinstance(length, str | int)):
        raise _bad_length(length, raw_type, field)
    text = None if length is None or length == "" else str(length).strip()
    if native.fixed_length is not None:
        if text is not None:
            raise _bad_length(length, raw_type, field)
        return native.fixed_length
    rule = native.length
    if text is None:
        if rule == "required":
            raise _bad_length(length, raw_type, field)
        return native.default_length
    if rule == "none":
        raise _bad_length(length, raw_type, field)
    if rule in ("free", "required"):
        return ", ".join(part.strip() for part in text.split(","))
    if rule in ("number", "bq_numeric", "bq_bignumeric"):
        match = re.fullmatch(r"(\d+)\s*(?:,\s*(\d+))?", text)
        if not match:
            raise _bad_length(length, raw_type, field)
        precision, scale = int(match.group(1)), int(match.group(2) or 0)
        if rule == "number":
            valid = 1 <= precision <= 38 and scale <= precision
        elif rule == "bq_numeric":
            valid = scale <= 9 and max(1, scale) <= precision <= scale + 29
        else:
            valid = scale <= 38 and max(1, scale) <= precision <= scale + 38
        if not valid:
            raise _bad_length(length, raw_type, field)
        if rule == "number" or match.group(2) is not None:
            return f"{precision},{scale}"
        return str(precision)
    if not re.fullmatch(r"\d+", text):
        raise _bad_length(length, raw_type, field)
    number = int(text)
    limits = {"chars": (1, 16777216 if native.kind == STRING and native.name == "VARCHAR" else 2**63 - 1)}
    low, high = limits.get(rule, (0, 9) if rule == "precision" else (1, 8388608))
    if not low <= number <= high:
        raise _bad_length(length, raw_type, field)
    return str(number)


def _bad_length(length, raw_type, field: str) -> ValidationError:
    return ValidationError(
        f"Invalid parameters - {field}: '{length}' is not valid length for {raw_type}.",
        code="storage.tables.validation",
    )

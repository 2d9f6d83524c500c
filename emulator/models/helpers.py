"""Helpers the models share: name rules (sanitising, webalizing), timestamps and PHP-style shapes."""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime

from ..engine import WhereFilter
from ..errors import ValidationError

NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")  # bucket and table names
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


def filter_json(f: WhereFilter) -> dict:
    """A where filter as the job's ``operationParams`` show it."""
    data = {"column": f.column, "operator": f.operator, "values": list(f.values)}
    if f.data_type:
        data["dataType"] = f.data_type
    return data

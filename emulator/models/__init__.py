"""The rules and the data of the emulated Storage API, one module per resource (after moto's ``models.py``).

No HTTP here. Handlers (``responses.py``) decode the request and pass typed arguments and a token; every method
checks the token's permissions first and raises the typed errors of ``errors.py``. Table data lives in the DuckDB
``TableEngine``; file contents in the ``FileStorage`` (S3 via moto). Work that the real API does in a storage job
(create, import, export, primary key changes, row deletes) runs on the ``JobRunner``.

Shapes follow the Storage API contract (APIB examples): ids of tokens are strings, job/file ids integers,
timestamps ``2017-02-13T16:41:18+0100``. PHP serialises an empty associative array as ``[]``: the emulator
does the same for ``bucketPermissions`` and ``columnMetadata``.

- ``entities.py``: the dataclasses (Token, Project, Bucket, Table, StoredFile, TableQuery)
- ``helpers.py``: name rules (sanitising, webalizing), timestamps, PHP shapes
- ``core.py``: state, id sequences, engine / file storage / job runner
- ``tokens.py``, ``buckets.py``, ``tables.py``, ``definitions.py`` (typed tables: tables-definition, the
  ``definition`` of the detail, ``KBC.datatype.*`` metadata), ``loads.py`` (create table, import), ``table_ops.py``
  (primary key, rows delete, columns), ``exports.py`` (export, preview), ``aliases.py`` (table aliases: create,
  detail, reads through the source, refused writes, drop rules), ``metadata.py``, ``files.py``,
  ``job_records.py``, ``seeding.py`` (Python API): the rules, each a mixin of ``StorageBackend``
"""

from __future__ import annotations

from ..errors import StorageError
from .aliases import AliasesMixin
from .branches import BranchesMixin
from .buckets import BucketsMixin
from .core import BackendCore
from .definitions import ColumnRequest, DefinitionsMixin
from .entities import BRANCH, Bucket, Project, StoredFile, Table, TableQuery, Token
from .exports import JSON_VALUE_LIMIT, ExportsMixin
from .files import FilesMixin
from .helpers import fmt_time
from .job_records import JobRecordsMixin
from .loads import LoadsMixin
from .metadata import MetadataMixin
from .seeding import SeedingMixin
from .table_ops import TableOpsMixin
from .tables import TablesMixin
from .tokens import TokensMixin


class StorageBackend(
    TokensMixin,
    BranchesMixin,
    BucketsMixin,
    TablesMixin,
    DefinitionsMixin,
    LoadsMixin,
    TableOpsMixin,
    ExportsMixin,
    AliasesMixin,
    MetadataMixin,
    FilesMixin,
    SeedingMixin,
    JobRecordsMixin,
    BackendCore,
):
    """Projects, tokens, buckets, tables, files and jobs of the emulated Storage API."""


__all__ = [
    "BRANCH",
    "JSON_VALUE_LIMIT",
    "Bucket",
    "ColumnRequest",
    "Project",
    "StorageBackend",
    "StorageError",
    "StoredFile",
    "Table",
    "TableQuery",
    "Token",
    "fmt_time",
]

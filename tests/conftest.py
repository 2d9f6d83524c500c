"""The component runs as ``python src/component.py``: its packages are importable from ``src``.

Shared fixtures for the unit tests: a narrow fake of the Storage client (only what planning uses) and a clean
registry of secrets.
"""

import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))


class FakeTables:
    """``tables.list_in_bucket`` and ``tables.detail`` over a dict of table details; counts detail calls."""

    def __init__(self, tables: dict[str, dict], errors: dict[str, Exception] | None = None):
        self._tables = tables
        self._errors = errors or {}
        self.detail_calls: list[str] = []

    def list_in_bucket(self, bucket_id: str) -> list[dict]:
        if bucket_id in self._errors:
            raise self._errors[bucket_id]
        return [{"id": t} for t in self._tables if t.rsplit(".", 1)[0] == bucket_id]

    def detail(self, table_id: str) -> dict | None:
        self.detail_calls.append(table_id)
        if table_id in self._errors:
            raise self._errors[table_id]
        table = self._tables.get(table_id)
        return dict(table, id=table_id) if table is not None else None


class FakeClient:
    def __init__(self, tables: dict[str, dict], errors: dict[str, Exception] | None = None):
        self.tables = FakeTables(tables, errors)


@pytest.fixture
def fake_client():
    """Factory: ``fake_client({"in.c-a.t": {"columns": [...], "primaryKey": [...]}})``."""
    return FakeClient


@pytest.fixture
def clean_secrets():
    """Forget the secrets registered by earlier tests (the registry is process-wide)."""
    import configuration

    saved = set(configuration._SECRETS)
    configuration._SECRETS.clear()
    yield configuration._SECRETS
    configuration._SECRETS.clear()
    configuration._SECRETS.update(saved)

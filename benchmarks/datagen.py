"""Synthetic tables: CSV with a header, about 100 bytes a row, written by DuckDB (fast, deterministic)."""

from __future__ import annotations

from pathlib import Path

import duckdb

COLUMNS = ["id", "name", "email", "country", "amount", "created_at", "note"]
PRIMARY_KEY = ["id"]


def _select(first_id: int, rows: int, variant: str) -> str:
    return f"""
        SELECT i AS id,
               'customer_' || (i * 7919 % 1000003) AS name,
               'user' || i || '@example.com' AS email,
               ['CZ','SK','DE','AT','PL','US','GB','FR'][1 + i % 8] AS country,
               round((i * 37 % 100000) / 100.0, 2) AS amount,
               TIMESTAMP '2020-01-01' + to_seconds(i % 100000000) AS created_at,
               '{variant}' || md5(i::VARCHAR)[:20] AS note
        FROM range({first_id}, {first_id + rows}) t(i)
    """


def write_csv(path: Path, rows: int, *, first_id: int = 0, variant: str = "v1-") -> int:
    """Write ``rows`` rows (ids first_id..) with a header; returns the file size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as con:
        con.execute("SET preserve_insertion_order = false")
        con.execute(f"COPY ({_select(first_id, rows, variant)}) TO '{path}' (HEADER, DELIMITER ',')")
    return path.stat().st_size

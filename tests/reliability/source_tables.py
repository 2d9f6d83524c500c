"""Source tables of the sync parts (4 and 5): five shapes of primary key, and a seeded stream of the changes users
make to them (upserts, row deletes, non-key columns added and dropped).

Shapes: ``items`` (key ``id``), ``lines`` (``ord, line``), ``stock`` (``site, sku, day``), and two without a key,
``log`` and ``events``, whose ``grp`` column the changes delete by (and never drop). Values carry quotes, commas
and non-ASCII text.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from emulator import Emulator
from tests.reliability.conftest import add_column, csv_text, delete_rows, drop_column

SHAPES = {  # shape -> (primary key, columns when created)
    "items": (["id"], ["id", "v"]),
    "lines": (["ord", "line"], ["ord", "line", "qty"]),
    "stock": (["site", "sku", "day"], ["site", "sku", "day", "amount", "note"]),
    "log": ([], ["grp", "n"]),
    "events": ([], ["grp", "what", "who"]),
}
GROUPS = 5  # values of grp in a table without a key
INITIAL_ROWS = 60
MAX_EXTRA_COLUMNS = 4


@dataclass(frozen=True)
class SourceTable:
    id: str
    shape: str

    @property
    def primary_key(self) -> list[str]:
        return SHAPES[self.shape][0]

    @property
    def base_columns(self) -> list[str]:
        return SHAPES[self.shape][1]

    def key(self, i: int) -> list[str]:
        """The ``i``-th key (distinct for every ``i``); for a table without a key, its group."""
        if self.shape == "items":
            return [str(i)]
        if self.shape == "lines":
            return [f"o{i // 4}", str(i % 4)]
        if self.shape == "stock":
            return [f"s{i % 3}", f"k{i // 3 % 7}", f"2024-01-{i // 21 + 1:02d}"]
        return [f"g{i % GROUPS}"]

    def row(self, columns: list[str], i: int, tag: str) -> list[str]:
        key = dict(zip(self.primary_key or ["grp"], self.key(i), strict=True))
        return [key.get(c, f'{c} "{tag}", {i} ✓') for c in columns]


def source_tables(bucket: str, count: int = len(SHAPES)) -> list[SourceTable]:
    """``count`` tables of ``bucket`` (``in.c-...``) cycling through the shapes: items, lines, stock, log, events,
    items_2, ..."""
    shapes = list(SHAPES)
    out = []
    for n in range(count):
        shape = shapes[n % len(shapes)]
        suffix = f"_{n // len(shapes) + 1}" if n >= len(shapes) else ""
        out.append(SourceTable(f"{bucket}.{shape}{suffix}", shape))
    return out


def create_source_tables(emu: Emulator, project, tables: list[SourceTable], rows: int = INITIAL_ROWS) -> None:
    bucket = tables[0].id.rsplit(".", 1)[0]
    emu.create_bucket(project.id, bucket.removeprefix("in.c-"))
    for table in tables:
        body = [table.row(table.base_columns, i, "initial") for i in range(rows)]
        emu.create_table(project.id, table.id, csv_text(table.base_columns, body), primary_key=table.primary_key)


class SourceChanges:
    """A seeded stream of source changes through the emulator's own job paths; ``counts`` says what was done."""

    def __init__(self, emu: Emulator, project, tables: list[SourceTable], seed, *, rows: int = INITIAL_ROWS):
        self.emu, self.project, self.tables = emu, project, tables
        self.rng = random.Random(seed)
        self.keys = {t.id: rows for t in tables}  # keys handed out per table
        self.columns_added = 0
        self.counts = {"upserts": 0, "deletes": 0, "rows_deleted": 0, "columns_added": 0, "columns_dropped": 0}

    def columns(self, table: SourceTable) -> list[str]:
        return self.emu.table_detail(self.project.id, table.id)["columns"]

    def step(self, *, columns: bool = True) -> None:
        """One change of a random table: an upsert (60 %), a row delete (20 %), a column added or dropped."""
        table = self.rng.choice(self.tables)
        roll = self.rng.random()
        if roll < 0.6 or (not columns and roll < 0.75):
            self.upsert(table)
        elif roll < 0.8 or not columns:
            self.delete(table)
        elif roll < 0.9:
            self.add_column(table)
        else:
            self.drop_column(table)

    def upsert(self, table: SourceTable) -> None:
        """Three existing keys updated (or inserted again after a delete) and two new ones; five appended rows in a
        table without a key."""
        columns = self.columns(table)
        tag = f"w{sum(self.counts.values())}"
        known = self.keys[table.id]
        picked = [self.rng.randrange(known) for _ in range(3)] + [known, known + 1]
        self.keys[table.id] += 2
        body = [table.row(columns, i, tag) for i in picked]
        self.emu.load_table(self.project.id, table.id, csv_text(columns, body), incremental=True)
        self.counts["upserts"] += 1

    def delete(self, table: SourceTable) -> None:
        """A ``DELETE tables/{id}/rows``: some keys, a group of a composite key's first column (or some of its keys
        by the second column, a cross product), or a whole ``grp`` of a table without a key."""
        pk, known = table.primary_key, self.keys[table.id]
        if not pk:
            filters = {"grp": table.key(self.rng.randrange(known))}
        elif len(pk) == 1:
            filters = {pk[0]: [table.key(self.rng.randrange(known))[0] for _ in range(3)]}
        else:
            keys = [table.key(self.rng.randrange(known)) for _ in range(3)]
            filters = {pk[0]: [keys[0][0]]}
            if self.rng.random() < 0.5:
                filters[pk[1]] = sorted({k[1] for k in keys})
        self.counts["rows_deleted"] += delete_rows(self.emu, self.project, table.id, filters)
        self.counts["deletes"] += 1

    def add_column(self, table: SourceTable) -> None:
        """A new non-key column (a name never used before: see part 5's xfail tests); at most 4 extra columns."""
        columns = self.columns(table)
        if len(columns) - len(table.base_columns) >= MAX_EXTRA_COLUMNS:
            self.drop_column(table)
            return
        self.columns_added += 1
        add_column(self.emu, self.project, table.id, f"x{self.columns_added}")
        self.counts["columns_added"] += 1

    def drop_column(self, table: SourceTable) -> None:
        """A non-key column (never ``grp``), when the table has one."""
        droppable = [c for c in self.columns(table) if c not in table.primary_key and c != "grp"]
        if droppable:
            drop_column(self.emu, self.project, table.id, self.rng.choice(droppable))
            self.counts["columns_dropped"] += 1

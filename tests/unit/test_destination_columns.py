"""Which columns of an existing destination table are dropped and added again so that its columns end in the
source's order (Storage appends every column it adds)."""

import logging

import pytest

from workflows.destination import Destination, TableTarget


def _moved(columns, present, primary_key=(), *, follows_source=True):
    target = TableTarget(
        "in.c-a.t", "source table in.c-a.t", tuple(columns), tuple(primary_key), follows_source=follows_source
    )
    return Destination._columns_to_move(target, {"primaryKey": list(primary_key)}, list(present))


@pytest.mark.parametrize(
    ("source", "destination", "moved"),
    [
        (["id", "a", "b"], ["id", "a", "b"], []),  # in order
        (["id", "a", "b", "new"], ["id", "a", "b"], []),  # a new column is appended: nothing moves
        (["id", "b", "a"], ["id", "a", "b"], ["a"]),  # a dropped and added again in the source
        (["id", "new", "a"], ["id", "a"], ["a"]),  # a new column before an existing one (a configured order)
        (["b", "a"], ["a", "b"], ["a"]),
        (["id", "c", "a", "b"], ["id", "a", "b", "c"], ["a", "b"]),
    ],
)
def test_the_columns_that_stand_elsewhere_move_and_the_longest_start_stays(source, destination, moved):
    assert _moved(source, destination) == moved
    kept = [c for c in destination if c not in moved]
    assert kept + [c for c in source if c not in kept] == source, "after the moves the order is the source's"


def test_a_key_column_or_every_column_cannot_move_and_the_order_is_left_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        assert _moved(["a", "id"], ["id", "a"], primary_key=["id"]) == []
        assert _moved(["new", "a", "b"], ["a", "b"]) == [], "a table keeps one column"
    assert "key column" not in caplog.text and "column id cannot be moved" in caplog.text
    assert "column a cannot be moved" in caplog.text


def test_an_import_never_moves_columns():
    assert _moved(["b", "a"], ["a", "b"], follows_source=False) == []

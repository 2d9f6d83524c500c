"""Table aliases end to end (README "Development branches", addendum section 5): an alias in the source is copied
into a real table (``aliases: "copy"``, the default) equal to the alias's data, or skipped with a log line
(``"skip"``); an export of an alias holds its filtered data; a destination table that is an alias fails that table
with one sentence and nothing is written."""

import json

import pytest

from emulator.errors import NotFound
from tests.e2e.harness import as_dicts, read_output_table, sorted_dicts
from tests.e2e.test_sync_fidelity import _first_sync, _params, _run, assert_copy_equal

CUSTOMERS = "in.c-sales.customers"
TEN_ROWS = "id,name,city,segment\n" + "".join(
    f"{i},name{i},{'Prague' if i % 2 else 'Brno'},s{i % 3}\n" for i in range(1, 11)
)
VIEWS = "out.c-views"
SIMPLE = f"{VIEWS}.customers"
PRAGUE = f"{VIEWS}.prague"


@pytest.fixture
def aliases(emulator, source):
    """In the source: out.c-views.customers (a simple alias of in.c-sales.customers, ten rows) and out.c-views.prague
    (its Prague rows, columns id, name and city)."""
    emulator.delete_table(source.id, CUSTOMERS)
    emulator.create_table(source.id, CUSTOMERS, TEN_ROWS, primary_key=["id"])
    emulator.create_bucket(source.id, "views", stage="out")
    emulator.create_alias(source.id, VIEWS, CUSTOMERS)
    emulator.create_alias(
        source.id,
        VIEWS,
        CUSTOMERS,
        name="prague",
        alias_filter={"column": "city", "operator": "eq", "values": ["Prague"]},
        alias_columns=["id", "name", "city"],
    )
    return source


def _assert_real_copies(emulator, source, destination, prague_rows: int):
    for table_id in (SIMPLE, PRAGUE):
        assert emulator.table_detail(destination.id, table_id)["isAlias"] is False
    assert_copy_equal(emulator, source, destination, SIMPLE)
    assert_copy_equal(emulator, source, destination, PRAGUE)
    assert len(emulator.table_rows(destination.id, PRAGUE)) == prague_rows


def test_sync_copies_aliases_into_real_tables_and_keeps_them_equal(
    emulator, aliases, source, destination, data_dir, env
):
    first = _first_sync(emulator, data_dir, env, _params(emulator, source, destination, [{"source": VIEWS}]))
    assert f"Table {PRAGUE} is an alias of {CUSTOMERS}; its data is copied into a real table." in first.output
    assert emulator.table_detail(destination.id, PRAGUE)["columns"] == ["id", "name", "city"]
    assert emulator.table_detail(destination.id, PRAGUE)["primaryKey"] == ["id"]
    _assert_real_copies(emulator, source, destination, 5)
    # the source changes: row 2 moves into the filter, row 3 leaves it, row 11 is new, row 5 is renamed
    emulator.load_table(
        source.id,
        CUSTOMERS,
        "id,name,city,segment\n2,name2,Prague,s2\n3,name3,Brno,s0\n5,renamed,Prague,s2\n11,name11,Prague,s2\n",
        incremental=True,
    )
    second = _run(data_dir, env)
    assert "copying rows changed since" in second.output  # incremental: the aliases' dates follow their source
    _assert_real_copies(emulator, source, destination, 6)
    prague = {r["id"]: r["name"] for r in emulator.table_rows(destination.id, PRAGUE)}
    assert prague == {"1": "name1", "2": "name2", "5": "renamed", "7": "name7", "9": "name9", "11": "name11"}


def test_aliases_skip_copies_no_alias(emulator, aliases, source, destination, data_dir, env):
    tables = [{"source": "in.c-sales"}, {"source": VIEWS}]
    data_dir.write_config(_params(emulator, source, destination, tables, aliases="skip"))
    run = _run(data_dir, env)
    for alias in (SIMPLE, PRAGUE):
        assert f"Table {alias} is an alias of {CUSTOMERS}; skipped (aliases: skip)." in run.output
        with pytest.raises(NotFound):
            emulator.table_detail(destination.id, alias)
    assert_copy_equal(emulator, source, destination, CUSTOMERS)


def test_export_of_a_filtered_alias_holds_its_data(emulator, aliases, source, data_dir, env):
    params = {"mode": "export", "source": {"url": emulator.url, "#token": source.token}, "tables": [{"source": PRAGUE}]}
    data_dir.write_config(params)
    run = data_dir.run(env)
    assert run.returncode == 0, run.output
    out = data_dir.root / "out" / "tables" / "prague.csv"
    columns, rows = read_output_table(out)
    assert columns == ["id", "name", "city"]
    assert as_dicts(columns, rows) == sorted_dicts(emulator.table_rows(source.id, PRAGUE))
    assert sorted(int(r[0]) for r in rows) == [1, 3, 5, 7, 9]
    manifest = json.loads((out.parent / "prague.csv.manifest").read_text())
    assert manifest["primary_key"] == ["id"]


def _destination_alias(emulator, destination):
    """In the destination: in.c-sales.customers is an alias of in.c-sales.base."""
    emulator.create_bucket(destination.id, "sales")
    emulator.create_table(destination.id, "in.c-sales.base", "id,name,city\n9,Zed,Zlin\n", primary_key=["id"])
    emulator.create_alias(destination.id, "in.c-sales", "in.c-sales.base", name="customers")


def _assert_alias_failure(emulator, destination, run, before):
    sentence = (
        f"Table {CUSTOMERS} in the destination is an alias of in.c-sales.base and cannot be written; "
        "choose another destination table or drop the alias."
    )
    assert run.returncode == 1, run.output
    assert sentence in " ".join(run.error_lines()), run.stderr
    assert emulator.table_detail(destination.id, CUSTOMERS)["isAlias"] is True
    assert emulator.table_rows(destination.id, "in.c-sales.base") == [{"id": "9", "name": "Zed", "city": "Zlin"}]
    assert emulator.table_detail(destination.id, "in.c-sales.base")["lastChangeDate"] == before


def test_sync_into_a_destination_alias_fails_with_one_sentence(emulator, source, destination, data_dir, env):
    _destination_alias(emulator, destination)
    before = emulator.table_detail(destination.id, "in.c-sales.base")["lastChangeDate"]
    data_dir.write_config(_params(emulator, source, destination, [{"source": CUSTOMERS}]))
    _assert_alias_failure(emulator, destination, data_dir.run(env), before)


def test_import_into_a_destination_alias_fails_with_one_sentence(emulator, destination, data_dir, env):
    _destination_alias(emulator, destination)
    before = emulator.table_detail(destination.id, "in.c-sales.base")["lastChangeDate"]
    data_dir.add_input_table("customers.csv", ["id", "name", "city"], [["1", "Alice", "Prague"]])
    params = {
        "mode": "import",
        "destination": {"url": emulator.url, "#token": destination.token},
        "tables": [{"source": "customers.csv", "destination": CUSTOMERS}],
    }
    data_dir.write_config(params)
    _assert_alias_failure(emulator, destination, data_dir.run(env), before)

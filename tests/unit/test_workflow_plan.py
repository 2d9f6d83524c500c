"""workflows/plan.py: bucket expansion, destination ids, column and primary-key validation."""

import logging

import pytest
from keboola.component.exceptions import UserException

from configuration import Configuration
from storage_api.errors import StorageApiError
from workflows.context import describe_failure
from workflows.plan import destination_id, plan_tables

TABLES = {
    "in.c-sales.customers": {"columns": ["id", "name", "city"], "primaryKey": ["id"], "rowsCount": 3},
    "in.c-sales.events": {"columns": ["ts", "kind"], "primaryKey": []},
    "in.c-crm.customers": {"columns": ["id", "email"], "primaryKey": ["id"]},
    "out.c-empty-ish.only": {"columns": ["a"], "primaryKey": []},
}


def settings(mode, tables, **extra):
    params = {
        "mode": mode,
        "source": {"url": "https://connection.keboola.com", "#token": "t-123456"},
        "destination": {"url": "https://connection.keboola.com", "#token": "t-654321"},
        "tables": tables,
        **extra,
    }
    return Configuration.from_parameters(params, {}).tables


def plan(fake_client, mode, tables, default_bucket=None, catalog=TABLES, errors=None, **extra):
    client = fake_client(catalog, errors)
    planned = plan_tables(client, settings(mode, tables, **extra), mode=mode, default_bucket=default_bucket)
    return planned, client


def test_bucket_id_expands_to_its_tables_and_each_detail_is_fetched_once(fake_client):
    planned, client = plan(fake_client, "export", [{"source": "in.c-sales"}])
    assert [p.source_id for p in planned] == ["in.c-sales.customers", "in.c-sales.events"]
    assert sorted(client.tables.detail_calls) == ["in.c-sales.customers", "in.c-sales.events"]
    customers = planned[0]
    assert customers.columns == ("id", "name", "city") and customers.primary_key == ("id",)
    assert customers.destination_id == "in.c-sales.customers" and customers.name == "customers"


def test_explicit_table_settings_win_over_its_bucket_selection(fake_client):
    tables = [{"source": "in.c-sales"}, {"source": "in.c-sales.customers", "columns": ["id", "city"]}]
    planned, client = plan(fake_client, "export", tables)
    by_id = {p.source_id: p for p in planned}
    assert set(by_id) == {"in.c-sales.customers", "in.c-sales.events"}
    assert by_id["in.c-sales.customers"].columns == ("id", "city")
    assert client.tables.detail_calls.count("in.c-sales.customers") == 1


def test_table_selected_twice_is_an_error(fake_client):
    with pytest.raises(UserException, match="in.c-sales.events is selected twice"):
        plan(fake_client, "export", [{"source": "in.c-sales.events"}, {"source": "in.c-sales.events"}])


def test_empty_bucket_selection_is_an_error(fake_client):
    with pytest.raises(UserException, match="no tables"):
        plan(fake_client, "export", [{"source": "in.c-nothing"}])


def test_missing_table_names_the_table(fake_client):
    with pytest.raises(UserException, match=r"Table in\.c-sales\.gone was not found .* bucket in\.c-sales"):
        plan(fake_client, "export", [{"source": "in.c-sales.gone"}])


def test_client_errors_while_planning_name_the_table(fake_client):
    denied = StorageApiError("The Storage API token for https://x is not allowed to GET tables/in.c-sales.events.")
    with pytest.raises(UserException) as info:
        plan(fake_client, "export", [{"source": "in.c-sales.events"}], errors={"in.c-sales.events": denied})
    assert str(info.value).startswith("Reading table in.c-sales.events failed: The Storage API token")


# -- destination ids --------------------------------------------------------------------------------------------------


def test_destination_defaults(fake_client):
    tables = [
        {"source": "in.c-sales.customers"},
        {"source": "in.c-sales.events", "destination": "out.c-copy.log"},
        {"source": "in.c-crm", "destination": "in.c-crm-copy"},
    ]
    exported, _ = plan(fake_client, "export", tables)
    assert [p.destination_id for p in exported] == ["in.c-sales.customers", "out.c-copy.log", "in.c-crm-copy.customers"]

    synced, _ = plan(fake_client, "sync", [{"source": "in.c-sales"}], default_bucket="in.c-mirror")
    assert [p.destination_id for p in synced] == ["in.c-mirror.customers", "in.c-mirror.events"]


def test_item_destination_wins_over_the_destination_bucket():
    (item,) = settings("sync", [{"source": "in.c-a.t", "destination": "out.c-x.y"}])
    assert destination_id(item, "in.c-a.t", default_bucket="in.c-mirror") == "out.c-x.y"
    (item,) = settings("sync", [{"source": "in.c-a.t", "destination": "out.c-x"}])
    assert destination_id(item, "in.c-a.t", default_bucket="in.c-mirror") == "out.c-x.t"


def test_two_tables_into_one_destination_is_an_error(fake_client):
    with pytest.raises(UserException, match="would both be written to in.c-all.customers"):
        plan(fake_client, "sync", [{"source": "in.c-sales.customers"}, {"source": "in.c-crm.customers"}], "in.c-all")


def test_colliding_output_names_are_qualified(fake_client):
    planned, _ = plan(fake_client, "export", [{"source": "in.c-sales.customers"}, {"source": "in.c-crm.customers"}])
    assert [p.name for p in planned] == ["in_c-sales_customers", "in_c-crm_customers"]


# -- validation -------------------------------------------------------------------------------------------------------


def test_primary_key_column_not_in_table(fake_client):
    with pytest.raises(UserException) as info:
        plan(fake_client, "sync", [{"source": "in.c-sales.customers", "primaryKey": ["nope"]}])
    assert str(info.value).startswith("The primary key column nope is not a column of table in.c-sales.customers")
    assert "id, name, city" in str(info.value)


def test_configured_primary_key_overrides_the_source_one(fake_client):
    (planned,), _ = plan(fake_client, "export", [{"source": "in.c-sales.events", "primaryKey": ["ts", "kind"]}])
    assert planned.primary_key == ("ts", "kind")


def test_configured_primary_key_must_be_among_the_selected_columns(fake_client):
    with pytest.raises(UserException, match="primary key column name .* not among the selected 'columns'"):
        plan(fake_client, "export", [{"source": "in.c-sales.customers", "columns": ["id"], "primaryKey": ["name"]}])


def test_unknown_column_and_filter_column(fake_client):
    with pytest.raises(UserException, match="Column zip is not a column of table in.c-sales.customers"):
        plan(fake_client, "export", [{"source": "in.c-sales.customers", "columns": ["id", "zip"]}])
    filters = [{"column": "zip", "operator": "eq", "values": ["1"]}]
    with pytest.raises(UserException, match="whereFilters column zip is not a column of table in.c-sales.customers"):
        plan(fake_client, "export", [{"source": "in.c-sales.customers", "whereFilters": filters}])


def test_export_of_columns_without_the_primary_key_drops_the_key(fake_client, caplog):
    with caplog.at_level(logging.WARNING):
        (planned,), _ = plan(fake_client, "export", [{"source": "in.c-sales.customers", "columns": ["name"]}])
    assert planned.primary_key == () and planned.columns == ("name",)
    assert "primary key" in caplog.text


def test_sync_columns_must_include_the_primary_key(fake_client):
    with pytest.raises(UserException, match="must include its primary key"):
        plan(fake_client, "sync", [{"source": "in.c-sales.customers", "columns": ["name", "city"]}])


def test_describe_failure_is_one_sentence():
    message = describe_failure(StorageApiError("Storage job 5 (tableImport of in.c-a.b) failed: boom"), "syncing", "x")
    assert message == "Syncing table x failed: Storage job 5 (tableImport of in.c-a.b) failed: boom."


def test_failures_name_a_bucket_as_a_bucket():
    exc = StorageApiError("Access denied.")
    assert describe_failure(exc, "checking bucket", "in.c-sales") == "Checking bucket in.c-sales failed: Access denied."
    assert (
        describe_failure(exc, "reading", "in.c-sales.orders")
        == "Reading table in.c-sales.orders failed: Access denied."
    )

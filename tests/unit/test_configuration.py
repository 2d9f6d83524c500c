"""configuration.py: every bad input is a UserException with one clear line and no token; defaults; overrides."""

import logging
from datetime import UTC, datetime

import pytest
from freezegun import freeze_time
from keboola.component.exceptions import UserException

from configuration import (
    MAX_JOB_TIMEOUT,
    Configuration,
    TableSettings,
    parse_changed_since,
    redact,
    with_source,
)
from redaction import install_log_redaction, register_secret

TOKEN = "123-456-SecretTokenValue"
URL = "https://connection.keboola.com"


def export_params(**extra):
    params = {"mode": "export", "source": {"url": URL, "#token": TOKEN}, "tables": [{"source": "in.c-sales.orders"}]}
    params.update(extra)
    return params


def sync_params(**extra):
    params = {
        "mode": "sync",
        "source": {"url": URL, "#token": TOKEN},
        "destination": {"url": "https://connection.eu-central-1.keboola.com", "#token": "999-888-OtherSecret"},
        "tables": [{"source": "in.c-sales"}],
    }
    params.update(extra)
    return params


def import_params(**extra):
    params = {"mode": "import", "destination": {"url": URL, "#token": TOKEN, "bucket": "in.c-target"}, "tables": []}
    params.update(extra)
    return params


def user_error(params, env=None) -> str:
    with pytest.raises(UserException) as info:
        Configuration.from_parameters(params, env or {})
    message = str(info.value)
    assert "\n" not in message, "one line"
    assert TOKEN not in message and "OtherSecret" not in message, "never the token"
    assert message.endswith("."), message
    return message


# -- valid configurations and defaults --------------------------------------------------------------------------


def test_minimal_export():
    config = Configuration.from_parameters(export_params(), {})
    assert config.mode == "export"
    assert config.source.url == URL and config.source.token == TOKEN
    assert config.destination is None
    assert config.timeouts.job == 3600 and config.timeouts.request == 120
    assert config.merged_output is False and config.debug is False
    (table,) = config.tables
    assert table.source == "in.c-sales.orders" and table.destination is None
    assert table.incremental is False and table.primary_key is None and table.changed_since is None


def test_connection_defaults_come_from_the_forwarded_token(monkeypatch):
    monkeypatch.setenv("KBC_URL", "https://connection.north-europe.azure.keboola.com/")
    monkeypatch.setenv("KBC_TOKEN", "forwarded-token-1234")
    import os

    params = {"mode": "sync", "tables": [{"source": "in.c-a.b"}], "destination": {"bucket": "out.c-copy"}}
    config = Configuration.from_parameters(params, os.environ)
    assert config.source.url == "https://connection.north-europe.azure.keboola.com"
    assert config.source.token == "forwarded-token-1234"
    assert config.destination.token == "forwarded-token-1234"
    assert config.destination.bucket == "out.c-copy"


def test_token_is_not_in_repr():
    config = Configuration.from_parameters(export_params(), {})
    assert TOKEN not in repr(config)


@pytest.mark.parametrize(
    "url, expected",
    [
        ("https://connection.keboola.com///", "https://connection.keboola.com"),
        ("https://connection.keboola.com/v2/storage/", "https://connection.keboola.com"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("http://localhost:5000", "http://localhost:5000"),
        ("http://[::1]:5000", "http://[::1]:5000"),
    ],
)
def test_urls_are_normalised_and_loopback_may_use_http(url, expected):
    config = Configuration.from_parameters(export_params(source={"url": url, "#token": TOKEN}), {})
    assert config.source.url == expected


def test_sync_mode_defaults_to_incremental_and_import_allows_empty_tables():
    assert Configuration.from_parameters(sync_params(), {}).tables[0].incremental is True
    config = Configuration.from_parameters(import_params(incremental=True, primaryKey=["id"]), {})
    assert config.tables == ()
    assert config.defaults.incremental is True and config.defaults.primary_key == ("id",)


def test_item_settings_override_top_level_ones():
    params = export_params(
        incremental=True,
        primaryKey=["id"],
        columns=["id", "name"],
        limit=10,
        changedSince="1700000000",
        whereFilters=[{"column": "country", "operator": "eq", "values": ["CZ"]}],
        tables=[
            {"source": "in.c-a.one"},
            {
                "source": "in.c-a.two",
                "incremental": False,
                "primaryKey": ["code"],
                "columns": [],  # the UI's empty default does not override
                "limit": 5,
                "whereFilters": [{"column": "x", "operator": "gt", "values": [1]}],
                "destination": "out.c-b.renamed",
            },
        ],
    )
    one, two = Configuration.from_parameters(params, {}).tables
    assert one.incremental is True and one.primary_key == ("id",) and one.columns == ("id", "name")
    assert one.limit == 10 and one.changed_since.resolve() == 1700000000
    assert one.where_filters[0].to_api() == {"column": "country", "operator": "eq", "values": ["CZ"]}
    assert two.incremental is False and two.primary_key == ("code",) and two.columns == ("id", "name")
    assert two.limit == 5 and two.destination == "out.c-b.renamed"
    assert two.where_filters[0].to_api() == {"column": "x", "operator": "gt", "values": ["1"]}


def test_row_form_single_table_object():
    params = export_params(table={"source": "in.c-a.one", "primaryKey": ["id"]})
    del params["tables"]
    (table,) = Configuration.from_parameters(params, {}).tables
    assert table.source == "in.c-a.one" and table.primary_key == ("id",)


def test_row_table_wins_over_tables(caplog):
    params = export_params(table={"source": "in.c-a.row"})
    with caplog.at_level(logging.WARNING):
        (table,) = Configuration.from_parameters(params, {}).tables
    assert table.source == "in.c-a.row"
    assert "only the row's 'table' is used" in caplog.text


def test_unknown_keys_are_ignored_with_a_warning(caplog):
    params = export_params(futureOption=1, source={"url": URL, "#token": TOKEN, "region": "eu"})
    params["tables"][0]["someday"] = True
    with caplog.at_level(logging.WARNING):
        Configuration.from_parameters(params, {})
    assert "'futureOption'" in caplog.text and "'source.region'" in caplog.text
    assert "'tables[0].someday'" in caplog.text


def test_bucket_source_and_destination_bucket():
    params = sync_params(tables=[{"source": "out.c-sales", "destination": "in.c-mirror"}])
    (table,) = Configuration.from_parameters(params, {}).tables
    assert table.source_is_bucket and table.destination == "in.c-mirror"


def test_timeouts():
    config = Configuration.from_parameters(export_params(timeouts={"job": MAX_JOB_TIMEOUT, "request": 2.5}), {})
    assert config.timeouts.job == 14400 and config.timeouts.request == 2.5


# -- settings for the workflows being rewritten (deletes, schemaChanges, verify, parallelism, dataType) -----------


def test_new_settings_default():
    sync = Configuration.from_parameters(sync_params(), {})
    assert sync.verify is False and sync.parallelism == 8
    assert sync.tables[0].deletes == "propagate" and sync.tables[0].schema_changes == "follow"
    assert sync.defaults.deletes == "propagate"
    export = Configuration.from_parameters(export_params(), {})
    assert export.tables[0].deletes is None and export.tables[0].schema_changes == "follow"
    imported = Configuration.from_parameters(import_params(), {})
    assert imported.defaults.deletes is None and imported.defaults.schema_changes == "follow"


def test_deletes_and_schema_changes_top_level_and_per_table():
    params = sync_params(
        deletes="keep",
        schemaChanges="Rebuild",
        verify=True,
        parallelism=16,
        tables=[{"source": "in.c-a.one"}, {"source": "in.c-a.two", "deletes": "propagate", "schemaChanges": "follow"}],
    )
    config = Configuration.from_parameters(params, {})
    one, two = config.tables
    assert (one.deletes, one.schema_changes) == ("keep", "rebuild")
    assert (two.deletes, two.schema_changes) == ("propagate", "follow")
    assert config.verify is True and config.parallelism == 16


def test_ui_defaults_of_sync_only_settings_are_accepted_in_every_mode():
    """The row form saves deletes/schemaChanges and the root form verify: false whatever the mode."""
    defaults = {"deletes": "propagate", "schemaChanges": "follow"}
    for params in (export_params(), import_params(tables=[{"source": "a.csv"}])):
        params.update(verify=False, parallelism=8)
        params["tables"][0].update(defaults)
        (table,) = Configuration.from_parameters(params, {}).tables
        assert table.deletes is None and table.schema_changes == "follow"


@pytest.mark.parametrize(
    "params, needle",
    [
        (export_params(deletes="keep"), "'deletes' is only supported in sync mode"),
        (import_params(tables=[{"source": "a.csv", "deletes": "keep"}]), "'tables[0].deletes' is only supported"),
        (export_params(verify=True), "'verify' is only supported in sync mode"),
        (import_params(verify=True), "'verify' is only supported in sync mode"),
        (export_params(schemaChanges="rebuild"), "'schemaChanges' is not supported in export mode"),
        (sync_params(deletes="remove"), "'deletes' must be 'propagate' or 'keep', not 'remove'"),
        (sync_params(tables=[{"source": "in.c-a", "deletes": True}]), "'tables[0].deletes' must be 'propagate'"),
        (sync_params(schemaChanges="ignore"), "'schemaChanges' must be 'follow' or 'rebuild', not 'ignore'"),
        (sync_params(tables=[{"source": "in.c-a", "schemaChanges": 1}]), "'tables[0].schemaChanges' must be"),
        (sync_params(verify="yes"), "'verify' must be true or false, not a string"),
        (sync_params(parallelism=0), "'parallelism' must be a whole number from 1 to 16, not 0"),
        (sync_params(parallelism=17), "'parallelism' must be a whole number from 1 to 16, not 17"),
        (sync_params(parallelism="4"), "'parallelism' must be a whole number from 1 to 16, not '4'"),
        (sync_params(parallelism=True), "'parallelism' must be a whole number"),
        (sync_params(parallelism=2.5), "'parallelism' must be a whole number"),
    ],
)
def test_bad_new_settings(params, needle):
    assert needle in user_error(params)


def test_schema_changes_rebuild_is_accepted_in_import():
    params = import_params(schemaChanges="rebuild", tables=[{"source": "a.csv"}])
    assert Configuration.from_parameters(params, {}).tables[0].schema_changes == "rebuild"


def test_where_filter_data_type_is_passed_to_the_api():
    filters = [
        {"column": "n", "operator": "gt", "values": [5], "dataType": "integer"},
        {"column": "c", "values": ["CZ"], "dataType": ""},  # the UI's "Text"
    ]
    numeric, text = Configuration.from_parameters(export_params(whereFilters=filters), {}).tables[0].where_filters
    assert numeric.data_type == "INTEGER"
    assert numeric.to_api() == {"column": "n", "operator": "gt", "values": ["5"], "dataType": "INTEGER"}
    assert text.data_type is None and "dataType" not in text.to_api()


@pytest.mark.parametrize("data_type", ["TEXT", 3, "float"])
def test_bad_where_filter_data_type(data_type):
    filters = [{"column": "n", "values": ["1"], "dataType": data_type}]
    message = user_error(export_params(tables=[{"source": "in.c-a.b", "whereFilters": filters}]))
    assert "in 'tables[0].whereFilters[0]' is not supported" in message
    assert "INTEGER, DOUBLE, BIGINT, REAL, DECIMAL" in message


def test_models_are_frozen_and_hashable_and_with_source_copies():
    config = Configuration.from_parameters(sync_params(tables=[{"source": "in.c-a", "primaryKey": ["id"]}]), {})
    (bucket,) = config.tables
    table = with_source(bucket, "in.c-a.t")
    assert table.source == "in.c-a.t" and not table.source_is_bucket and bucket.source == "in.c-a"
    assert table.primary_key == ("id",) and table.deletes == bucket.deletes
    assert isinstance(table, TableSettings) and table is not bucket
    assert hash(config) == hash(
        Configuration.from_parameters(sync_params(tables=[{"source": "in.c-a", "primaryKey": ["id"]}]), {})
    )
    assert {table, with_source(bucket, "in.c-a.t")} == {table}
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        table.source = "in.c-b.t"


# -- bad input ------------------------------------------------------------------------------------------------------


def test_missing_token():
    message = user_error(export_params(source={"url": URL}))
    assert "source.#token" in message and "token" in message


def test_missing_destination_token_in_sync():
    params = sync_params()
    params["destination"] = {"url": URL}
    assert "destination.#token" in user_error(params)


def test_missing_url():
    assert "source.url" in user_error(export_params(source={"#token": TOKEN}))


@pytest.mark.parametrize("mode", ["copy", "EXPORTS", 3])
def test_unknown_mode(mode):
    message = user_error(export_params(mode=mode))
    assert "export, import, sync" in message


def test_missing_mode():
    params = export_params()
    del params["mode"]
    assert "'mode' is missing" in user_error(params)


@pytest.mark.parametrize(
    "table_id",
    ["sales", "in.sales.customers", "x.c-a.b", "in.c-sales.customers.extra", "in.c-sales.", "in.c-a b.c"],
)
def test_malformed_table_id(table_id):
    message = user_error(export_params(tables=[{"source": table_id}]))
    assert table_id in message and "in.c-bucket.table" in message


def test_import_source_must_be_a_file_name():
    assert "file name" in user_error(import_params(tables=[{"source": "../etc/passwd"}]))


def test_empty_tables_for_export_and_sync():
    assert "No tables are selected for export" in user_error(export_params(tables=[]))
    params = sync_params()
    del params["tables"]
    assert "No tables are selected for sync" in user_error(params)


def test_destination_of_a_bucket_selection_must_be_a_bucket():
    message = user_error(sync_params(tables=[{"source": "in.c-sales", "destination": "in.c-x.table"}]))
    assert "must be a bucket id" in message


def test_destination_bucket_must_be_a_bucket_id():
    params = sync_params()
    params["destination"]["bucket"] = "target"
    assert "destination.bucket" in user_error(params)


def test_job_timeout_over_the_maximum():
    message = user_error(export_params(timeouts={"job": 20000}))
    assert message.startswith("timeouts.job is 20000 s; the maximum is 14400 s (4 hours)")


@pytest.mark.parametrize(
    "timeouts, needle",
    [
        ({"job": 0}, "timeouts.job"),
        ({"request": -1}, "timeouts.request"),
        ({"job": "10"}, "timeouts.job"),
        ({"request": True}, "timeouts.request"),
        (60, "timeouts"),
    ],
)
def test_bad_timeouts(timeouts, needle):
    assert needle in user_error(export_params(timeouts=timeouts))


@pytest.mark.parametrize("url", ["http://connection.keboola.com", "http://10.0.0.5:8080", "ftp://x.example.com"])
def test_non_https_url_is_refused_unless_loopback(url):
    message = user_error(export_params(source={"url": url, "#token": TOKEN}))
    assert "https" in message or "not a URL" in message


def test_not_a_url():
    assert "not a URL" in user_error(export_params(source={"url": "connection.keboola.com", "#token": TOKEN}))


@pytest.mark.parametrize(
    "extra, needle",
    [
        ({"tables": {"source": "in.c-a.b"}}, "'tables' must be a list"),
        ({"tables": ["in.c-a.b"]}, "tables[0]"),
        ({"incremental": "yes"}, "'incremental' must be true or false"),
        ({"mergedOutput": 1}, "'mergedOutput'"),
        ({"debug": "true"}, "'debug'"),
        ({"primaryKey": "id"}, "'primaryKey' must be a list"),
        ({"columns": [1, 2]}, "'columns' must be a list"),
        ({"columns": ["a", "a"]}, "twice"),
        ({"limit": -1}, "'limit' must be a positive whole number"),
        ({"limit": "10"}, "'limit'"),
        ({"source": "https://x"}, "'source' must be an object"),
        ({"source": {"url": URL, "#token": 42}}, "'source.#token' must be a string"),
    ],
)
def test_wrong_types_name_the_key(extra, needle):
    assert needle in user_error(export_params(**extra))


def test_wrong_type_inside_an_item_names_the_item():
    message = user_error(export_params(tables=[{"source": "in.c-a.b", "incremental": "no"}]))
    assert "'tables[0].incremental'" in message


@pytest.mark.parametrize("value", ["yesterday", "-2 fortnights", "2024-13-01", {"days": 2}, True, -5, "last week"])
def test_bad_changed_since(value):
    assert "changedSince" in user_error(export_params(changedSince=value))


def test_changed_since_last_is_export_only():
    params = import_params(tables=[{"source": "a.csv", "changedSince": "last"}])
    assert "only available in export mode" in user_error(params)


def test_sync_refuses_changed_since_and_limit():
    assert "watermark" in user_error(sync_params(changedSince="-1 days"))
    assert "limit" in user_error(sync_params(tables=[{"source": "in.c-a.b", "limit": 5}]))


def test_import_refuses_filters():
    params = import_params(tables=[{"source": "a.csv", "whereFilters": [{"column": "a", "values": ["1"]}]}])
    assert "not supported in import mode" in user_error(params)


@pytest.mark.parametrize(
    "filters, needle",
    [
        ({"column": "a", "values": ["1"]}, "must be a list"),
        ([{"column": "a", "operator": "neq", "values": ["1"]}], "operator 'neq'"),
        ([{"column": "a", "operator": "eq"}], "needs 'values'"),
        ([{"column": "a", "operator": "eq", "values": []}], "needs 'values'"),
        ([{"column": "a", "operator": "eq", "values": [None]}], "needs 'values'"),
        ([{"operator": "eq", "values": ["1"]}], "needs 'column'"),
        (["a = 1"], "whereFilters[0]"),
    ],
)
def test_bad_where_filters(filters, needle):
    assert needle in user_error(export_params(whereFilters=filters))


def test_where_filter_defaults_to_eq_and_accepts_a_single_value():
    config = Configuration.from_parameters(export_params(whereFilters=[{"column": "a", "values": "x"}]), {})
    assert config.tables[0].where_filters[0].to_api() == {"column": "a", "operator": "eq", "values": ["x"]}


def test_parameters_must_be_an_object():
    with pytest.raises(UserException, match="JSON object"):
        Configuration.from_parameters(["mode", "export"], {})


# -- changedSince -----------------------------------------------------------------------------------------------------


@freeze_time("2024-05-10T12:00:00Z")
@pytest.mark.parametrize(
    "text, seconds",
    [
        ("-2 days", 2 * 86400),
        ("-3 hours", 3 * 3600),
        ("-15 minutes", 15 * 60),
        ("-1 week", 7 * 86400),
        ("-30 seconds", 30),
        ("2 days ago", 2 * 86400),
        ("-1 Day", 86400),
    ],
)
def test_relative_changed_since_is_resolved_against_the_clock(text, seconds):
    now = int(datetime(2024, 5, 10, 12, tzinfo=UTC).timestamp())
    parsed = parse_changed_since(text)
    assert parsed.kind == "relative"
    assert parsed.resolve() == now - seconds


def test_relative_changed_since_is_resolved_at_planning_time_not_parse_time():
    with freeze_time("2024-05-10T12:00:00Z"):
        parsed = parse_changed_since("-1 hours")
    with freeze_time("2024-05-11T12:00:00Z"):
        assert parsed.resolve() == int(datetime(2024, 5, 11, 11, tzinfo=UTC).timestamp())


@pytest.mark.parametrize(
    "value, expected",
    [
        (1700000000, 1700000000),
        ("1700000000", 1700000000),
        ("2024-05-01T00:00:00Z", 1714521600),
        ("2024-05-01T02:00:00+0200", 1714521600),
        ("2024-05-01T02:00:00+02:00", 1714521600),
        ("2024-05-01", 1714521600),
        ("2024-05-01 00:00:00", 1714521600),
    ],
)
def test_absolute_changed_since(value, expected):
    parsed = parse_changed_since(value)
    assert parsed.kind == "absolute" and parsed.resolve() == expected


def test_changed_since_last():
    config = Configuration.from_parameters(export_params(changedSince="last"), {})
    assert config.tables[0].changed_since.is_last


# -- sync actions: incomplete configurations ------------------------------------------------------------------------


def test_action_configuration_tolerates_an_incomplete_form():
    config = Configuration.from_parameters({"source": {"url": URL, "#token": TOKEN}}, {}, for_action=True)
    assert config.mode is None and config.tables == ()
    assert config.require("source").token == TOKEN
    with pytest.raises(UserException, match="destination.url"):
        config.require("destination")


def test_run_configuration_ignores_problems_of_an_unused_connection():
    params = export_params(destination={"url": "http://insecure.example.com", "#token": TOKEN})
    config = Configuration.from_parameters(params, {})
    assert config.destination is None


# -- secrets --------------------------------------------------------------------------------------------------------


def test_parsed_tokens_are_redacted(clean_secrets):
    Configuration.from_parameters(sync_params(), {"KBC_TOKEN": "forwarded-secret-xyz"})
    text = f"a {TOKEN} b 999-888-OtherSecret c forwarded-secret-xyz"
    assert redact(text) == "a [hidden] b [hidden] c [hidden]"


def test_log_records_never_carry_a_token(clean_secrets, caplog):
    register_secret(TOKEN)
    install_log_redaction()
    log = logging.getLogger("test.redaction")
    with caplog.at_level(logging.INFO):
        log.info("token is %s", TOKEN)
        try:
            raise RuntimeError(f"failed with {TOKEN}")
        except RuntimeError:
            log.exception("boom %s", TOKEN)
    assert TOKEN not in caplog.text
    assert "token is [hidden]" in caplog.text and "failed with [hidden]" in caplog.text


def test_an_export_of_changed_rows_is_incremental_unless_the_user_says_otherwise():
    changed = Configuration.from_parameters(export_params(changedSince="-2 days"), {})
    assert changed.tables[0].incremental is True
    explicit = Configuration.from_parameters(export_params(changedSince="-2 days", incremental=False), {})
    assert explicit.tables[0].incremental is False
    assert Configuration.from_parameters(export_params(), {}).tables[0].incremental is False


def test_export_refuses_changed_since_last_with_a_limit():
    with pytest.raises(UserException, match=r"changedSince 'last' and a limit: the rows beyond the limit"):
        Configuration.from_parameters(export_params(changedSince="last", limit=5), {})

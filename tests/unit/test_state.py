"""state.py: commit per table, carry-over, failed tables keep their watermark, watermarks from server time."""

import json
import logging
from dataclasses import replace

import pytest
from freezegun import freeze_time
from keboola.component.exceptions import UserException

from state import (
    STATE_VERSION,
    Lineage,
    StateStore,
    job_watermark,
    parse_server_time,
    watermark_from_server_time,
)

PREVIOUS = {
    "version": 1,
    "tables": {
        "in.c-a.kept": {"watermark": 1000, "destination": "in.c-a.kept", "lastSuccess": "2024-01-01T00:00:00+00:00"},
        "in.c-a.one": {"watermark": 2000, "destination": "in.c-a.one", "lastSuccess": "2024-01-01T00:00:00+00:00"},
        "in.c-a.two": {"watermark": 3000, "destination": "in.c-a.two", "lastSuccess": "2024-01-01T00:00:00+00:00"},
    },
}


class Writer:
    """Records every state written (as out/state.json would hold it)."""

    def __init__(self):
        self.writes: list[dict] = []

    def __call__(self, state: dict) -> None:
        self.writes.append(json.loads(json.dumps(state)))

    @property
    def last(self) -> dict:
        return self.writes[-1]


def test_commit_writes_the_whole_state_after_each_table():
    writer = Writer()
    store = StateStore(PREVIOUS, writer)
    store.commit("in.c-a.one", watermark=2500, destination="in.c-a.one", last_success="2024-02-01T00:00:00+00:00")
    assert len(writer.writes) == 1
    assert writer.last["version"] == STATE_VERSION
    assert writer.last["tables"]["in.c-a.one"] == {
        "watermark": 2500,
        "destination": "in.c-a.one",
        "lastSuccess": "2024-02-01T00:00:00+00:00",
    }
    store.commit("in.c-a.new", watermark=10, destination="out.c-b.new")
    assert len(writer.writes) == 2
    assert writer.last["tables"]["in.c-a.new"]["watermark"] == 10


def test_entries_of_tables_not_processed_are_carried_over():
    writer = Writer()
    store = StateStore(PREVIOUS, writer)
    store.save()
    assert writer.last == {**PREVIOUS, "version": 2}
    store.commit("in.c-a.one", watermark=2500, destination="in.c-a.one")
    assert writer.last["tables"]["in.c-a.kept"] == PREVIOUS["tables"]["in.c-a.kept"]
    assert writer.last["tables"]["in.c-a.two"] == PREVIOUS["tables"]["in.c-a.two"]


def test_failed_table_keeps_its_old_watermark_and_earlier_commits_survive(tmp_path):
    path = tmp_path / "state.json"

    def write(state):
        path.write_text(json.dumps(state))

    store = StateStore(PREVIOUS, write)
    tables = ["in.c-a.one", "in.c-a.two"]
    with pytest.raises(RuntimeError):
        for table in tables:
            if table == "in.c-a.two":
                raise RuntimeError("load job failed")  # interrupted before commit
            store.commit(table, watermark=9999, destination=table)
    on_disk = json.loads(path.read_text())
    assert on_disk["tables"]["in.c-a.one"]["watermark"] == 9999, "earlier table's progress is kept"
    assert on_disk["tables"]["in.c-a.two"]["watermark"] == 3000, "failed table keeps its watermark"
    assert store.get("in.c-a.two").watermark == 3000


def test_in_memory_state_is_not_changed_by_the_caller_copy():
    store = StateStore(PREVIOUS, Writer())
    snapshot = store.to_dict()
    snapshot["tables"]["in.c-a.one"]["watermark"] = 1
    assert store.get("in.c-a.one").watermark == 2000


LINEAGE = Lineage(
    source="https://connection.keboola.com#1",
    source_created="2024-01-01T00:00:00+0000",
    destination="https://connection.eu-central-1.keboola.com#2",
    destination_table="in.c-a.one",
    destination_created="2024-01-02T00:00:00+0000",
    selection={"columns": ["id", "name"], "whereFilters": []},
)


def test_watermark_applies_only_to_what_it_measured():
    store = StateStore({}, Writer())
    store.commit("in.c-a.one", watermark=2000, destination="in.c-a.one", lineage=LINEAGE)
    assert store.resume_point("in.c-a.one", LINEAGE) == (2000, "")
    changes = {
        "source": ("https://connection.keboola.com#9", "another project"),
        "source_created": ("2024-03-01T00:00:00+0000", "source table was recreated"),
        "destination": ("https://connection.keboola.com#2", "destination is another project"),
        "destination_table": ("out.c-b.one", "destination table changed"),
        "destination_created": ("2024-03-01T00:00:00+0000", "destination table was recreated"),
        "selection": ({"columns": ["id", "name", "city"], "whereFilters": []}, "new column(s) city"),
    }
    reordered = ({"columns": ["name", "id"], "whereFilters": []}, "columns changed their order")
    changes["selection (order)"] = reordered
    for field_name, (value, reason) in changes.items():
        changed = replace(LINEAGE, **{field_name.split()[0]: value})
        watermark, why = store.resume_point("in.c-a.one", changed)
        assert watermark is None and reason in why, field_name
    filtered = {"columns": ["id", "name"], "whereFilters": [{"column": "id", "operator": "eq", "values": ["1"]}]}
    assert store.resume_point("in.c-a.one", replace(LINEAGE, selection=filtered))[0] is None
    narrower = replace(LINEAGE, selection={"columns": ["id"], "whereFilters": []})
    assert store.resume_point("in.c-a.one", narrower) == (2000, ""), "dropping a column needs no new copy"
    missing = replace(LINEAGE, destination_created=None)
    assert store.resume_point("in.c-a.one", missing) == (None, "the destination table does not exist")
    assert store.resume_point("in.c-a.other", LINEAGE) == (None, "first run")


def test_a_withdrawn_watermark_is_written_at_once_and_the_next_run_copies_in_full_saying_why():
    writer = Writer()
    store = StateStore({}, writer)
    store.commit("in.c-a.one", watermark=2000, destination="in.c-a.one", lineage=LINEAGE)
    store.require_full_copy("in.c-a.one", "column(s) city added to the destination table")
    assert "watermark" not in writer.last["tables"]["in.c-a.one"], "persisted before the destination changes"
    again = StateStore(writer.last, Writer())  # the next run, after a stop
    assert again.resume_point("in.c-a.one", LINEAGE) == (None, "column(s) city added to the destination table")
    recreated = replace(LINEAGE, source_created="2024-03-01T00:00:00+0000")
    assert "recreated" in again.resume_point("in.c-a.one", recreated)[1], "the lineage's reason comes first"
    again.commit("in.c-a.one", watermark=3000, destination="in.c-a.one", lineage=LINEAGE)
    assert again.resume_point("in.c-a.one", LINEAGE) == (3000, "")
    store.require_full_copy("in.c-a.other", "no entry: nothing to withdraw")
    assert "in.c-a.other" not in writer.last["tables"]


def test_version_1_state_is_read_and_its_entries_copy_fully_once():
    writer = Writer()
    store = StateStore(PREVIOUS, writer)
    assert store.get("in.c-a.one").watermark == 2000
    watermark, why = store.resume_point("in.c-a.one", LINEAGE)
    assert watermark is None and "older version" in why
    store.commit("in.c-a.one", watermark=2500, destination="in.c-a.one", lineage=LINEAGE)
    assert writer.last["version"] == 2
    assert writer.last["tables"]["in.c-a.one"]["lineage"]["source"] == LINEAGE.source
    assert writer.last["tables"]["in.c-a.kept"] == PREVIOUS["tables"]["in.c-a.kept"]
    reread = StateStore(writer.last, Writer())
    assert reread.resume_point("in.c-a.one", LINEAGE) == (2500, "")


@pytest.mark.parametrize("initial", [None, {}])
def test_first_run_starts_empty(initial):
    writer = Writer()
    StateStore(initial, writer).save()
    assert writer.last == {"version": 2, "tables": {}}


@pytest.mark.parametrize("initial", [{"watermark": 5}, {"version": 99, "tables": {}}, {"version": 1, "tables": []}])
def test_unknown_state_format_starts_without_watermarks(initial, caplog):
    with caplog.at_level(logging.WARNING):
        store = StateStore(initial, Writer())
    assert store.to_dict() == {"version": 2, "tables": {}}
    assert "unknown format" in caplog.text


def test_invalid_watermark_value_reads_as_none():
    store = StateStore({"version": 1, "tables": {"in.c-a.b": {"watermark": "soon"}}}, Writer())
    assert store.get("in.c-a.b").watermark is None


def test_unknown_top_level_keys_are_kept():
    writer = Writer()
    StateStore({**PREVIOUS, "future": {"x": 1}}, writer).save()
    assert writer.last["future"] == {"x": 1}


# -- server time ------------------------------------------------------------------------------------------------------


def test_parse_server_time_with_hhmm_offset():
    parsed = parse_server_time("2017-02-13T16:41:18+0100")
    assert parsed.isoformat() == "2017-02-13T15:41:18+00:00"


@freeze_time("2030-01-01T00:00:00Z")
def test_watermark_comes_from_the_server_timestamp_minus_the_overlap_not_the_local_clock():
    # 2017-02-13T15:41:18Z = 1487000478
    assert watermark_from_server_time("2017-02-13T16:41:18+0100", 300) == 1487000478 - 300
    assert watermark_from_server_time("2017-02-13T15:41:18Z", 60) == 1487000478 - 60


@freeze_time("2030-01-01T00:00:00Z")
def test_job_watermark_uses_start_time_then_created_time():
    job = {"id": 7, "createdTime": "2017-02-13T16:40:00+0100", "startTime": "2017-02-13T16:41:18+0100"}
    assert job_watermark(job, 300, "in.c-a.b") == 1487000478 - 300
    job["startTime"] = None
    assert job_watermark(job, 0, "in.c-a.b") == 1487000400


def test_job_watermark_without_server_time_is_a_user_error():
    with pytest.raises(UserException, match=r"in\.c-a\.b .*job 7"):
        job_watermark({"id": 7, "startTime": None}, 300, "in.c-a.b")


@freeze_time("2030-01-01T00:00:00Z")
def test_commit_with_server_watermark_is_independent_of_the_clock():
    writer = Writer()
    store = StateStore({}, writer)
    job = {"id": 1, "startTime": "2024-05-01T10:00:00+0200"}
    store.commit("in.c-a.b", watermark=job_watermark(job, 300, "in.c-a.b"), destination="in.c-a.b")
    assert writer.last["tables"]["in.c-a.b"]["watermark"] == 1714550400 - 300
    assert writer.last["tables"]["in.c-a.b"]["lastSuccess"].startswith("2030-01-01")

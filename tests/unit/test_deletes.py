"""Row-delete propagation (workflows.deletes): the filters delete exactly the keys gone from the source, chunking,
the choice of the free column, and ``propagate_deletes`` over in-memory projects (tests/unit/test_keys.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage_api.errors import StorageApiError
from storage_api.jobs import Jobs
from storage_api.tables import Tables
from tests.unit.test_keys import _matches, client_for, slices_of
from workflows.deletes import (
    choose_free_column,
    delete_filters,
    ordered_keys_sql,
    propagate_deletes,
)
from workflows.keys import KeyDiff


def _sorted_rows(keys, free: int):
    """Rows as ``ordered_keys_sql`` returns them: the other columns, then the free one, sorted."""
    return sorted(tuple(k[i] for i in range(len(k)) if i != free) + (k[free],) for k in keys)


def _deleted_by(filters_list, universe, columns):
    """Evaluate every filter list against the universe of destination keys, as the API would (AND of IN lists)."""
    hits = []
    for filters, _ in filters_list:
        hits.append({key for key in universe if _matches(dict(zip(columns, key, strict=True)), filters)})
    return hits


# chunking -------------------------------------------------------------------------------------------------------
def test_single_column_keys_are_chunked():
    rows = [(str(i),) for i in range(25)]
    out = list(delete_filters(rows, ["id"], 0, chunk_size=10))
    assert [size for _, size in out] == [10, 10, 5]
    assert out[0][0] == [{"column": "id", "operator": "eq", "values": [str(i) for i in range(10)]}]
    assert [v for filters, _ in out for v in filters[0]["values"]] == [r[0] for r in rows]


def test_composite_groups_are_chunked_within_the_group():
    keys = [("a", str(i), "x") for i in range(5)] + [("b", "0", "x")]
    out = list(delete_filters(_sorted_rows(keys, 1), ["p", "q", "r"], 1, chunk_size=2))
    assert [size for _, size in out] == [2, 2, 1, 1]
    assert out[0][0] == [
        {"column": "p", "operator": "eq", "values": ["a"]},
        {"column": "q", "operator": "eq", "values": ["0", "1"]},
        {"column": "r", "operator": "eq", "values": ["x"]},
    ]
    assert out[3][0][0]["values"] == ["b"]


def test_no_rows_no_filters_and_a_bad_chunk_size():
    assert list(delete_filters([], ["id"], 0)) == []
    with pytest.raises(ValueError):
        list(delete_filters([("1",)], ["id"], 0, chunk_size=0))


# the filters delete exactly the keys: evaluated against a universe of destination keys ---------------------------
_values = st.sampled_from(["1", "2", "3", "", "a,b", 'q"'])
_widths = st.integers(min_value=1, max_value=3)


@st.composite
def _universe_and_gone(draw):
    width = draw(_widths)
    universe = draw(st.sets(st.tuples(*[_values] * width), min_size=1, max_size=60))
    gone = draw(st.sets(st.sampled_from(sorted(universe)), max_size=len(universe)))
    return width, universe, gone


@settings(max_examples=300, deadline=None)
@given(data=_universe_and_gone(), free_seed=st.integers(0, 2), chunk=st.integers(1, 5))
def test_filters_delete_exactly_the_gone_keys_for_every_free_column(data, free_seed, chunk):
    width, universe, gone = data
    columns = [f"c{i}" for i in range(width)]
    free = free_seed % width
    out = list(delete_filters(_sorted_rows(gone, free), columns, free, chunk_size=chunk))
    hits = _deleted_by(out, universe, columns)
    assert set().union(*hits) == gone  # all of them, nothing else (no cross product)
    assert sum(len(h) for h in hits) == len(gone)  # every key in exactly one job
    assert all(size <= chunk for _, size in out)
    assert sum(size for _, size in out) == len(gone)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=_universe_and_gone(), chunk=st.integers(1, 4))
def test_duckdb_plan_deletes_exactly_the_gone_keys(tmp_path_factory, data, chunk):
    width, universe, gone = data
    columns = [f"c{i}" for i in range(width)]
    root = tmp_path_factory.mktemp("plan")
    dest = slices_of(root / "dest", sorted(universe), columns=columns, slices=2)
    source = slices_of(root / "source", sorted(universe - gone), columns=columns, slices=2)
    with KeyDiff(root, threads=1) as diff:
        assert diff.difference("gone", dest, source) == len(gone)
        plan = choose_free_column(diff, "gone", width, chunk)
        rows = list(diff.fetch(ordered_keys_sql("gone", width, plan.free)))
    out = list(delete_filters(rows, columns, plan.free, chunk_size=chunk))
    hits = _deleted_by(out, universe, columns)
    assert set().union(*hits) == gone and sum(len(h) for h in hits) == len(gone)
    assert plan.jobs == len(out)


def test_the_free_column_is_the_one_with_the_fewest_jobs(tmp_path):
    # 3 countries x 50 ids gone: IN lists on id need 3 jobs, IN lists on country 50
    gone = [(str(i), c) for i in range(50) for c in ("CZ", "SK", "DE")]
    dest = slices_of(tmp_path / "d", gone + [("999", "CZ")], columns=("id", "country"))
    source = slices_of(tmp_path / "s", [("999", "CZ")], columns=("id", "country"))
    with KeyDiff(tmp_path) as diff:
        diff.difference("gone", dest, source)
        plan = choose_free_column(diff, "gone", 2, 100)
        assert (plan.free, plan.groups, plan.jobs) == (0, 3, 3)
        assert choose_free_column(diff, "gone", 2, 10).jobs == 15  # 3 groups of 50 ids in chunks of 10


# propagate_deletes over in-memory projects ----------------------------------------------------------------------
def _rows(keys, columns=("id", "kind")):
    return [dict(zip(columns, k, strict=True)) | {"note": "n"} for k in keys]


def _projects(tmp_path: Path, source_keys, dest_keys, columns=("id", "kind")):
    table = {"columns": [*columns, "note"], "primaryKey": list(columns)}
    source = client_for(tmp_path / "src", {"in.c-s.t": table | {"rows": _rows(source_keys, columns)}})
    dest = client_for(tmp_path / "dst", {"in.c-d.t": table | {"rows": _rows(dest_keys, columns)}})
    return source, dest


def _propagate(source, dest, tmp_path, **kwargs):
    return propagate_deletes(source, dest, source_id="in.c-s.t", destination_id="in.c-d.t", work_dir=tmp_path, **kwargs)


def test_propagate_deletes_composite_key_with_where_filters(tmp_path, caplog):
    dest_keys = [(str(i), k) for i in range(20) for k in ("a", "b")]
    source_keys = [key for key in dest_keys if key[0] not in ("3", "4")]
    source, dest = _projects(tmp_path, source_keys, dest_keys)
    where = [{"column": "kind", "operator": "eq", "values": ["a"]}]
    with caplog.at_level(logging.INFO):
        outcome = _propagate(
            source, dest, tmp_path, key_columns=["id", "kind"], where_filters=where, apply=True, chunk_size=7
        )
    # the selection is kind = a: rows of kind b left it, ids 3 and 4 were deleted
    expected = {(str(i), "a") for i in range(20) if i not in (3, 4)}
    assert {(r["id"], r["kind"]) for r in dest.project.rows["in.c-d.t"]} == expected
    assert (outcome.found, outcome.deleted) == (22, 22)
    assert outcome.free_column == "id" and outcome.jobs == 4  # kind=b: 20 ids in chunks of 7 (3); kind=a: 2 ids
    assert source.project.exports[0]["where_filters"] == where
    assert dest.project.exports[0]["where_filters"] == []
    assert dest.project.exports[0]["columns"] == ["id", "kind"]
    assert "22 row(s) of in.c-d.t are not in the source selection; deleted 22 row(s) in 4 job(s)" in caplog.text
    assert not list(tmp_path.glob("deletes-*"))  # the work folder is removed


def test_keep_only_counts(tmp_path, caplog):
    source, dest = _projects(tmp_path, [("1", "a")], [("1", "a"), ("2", "a")])
    with caplog.at_level(logging.INFO):
        outcome = _propagate(source, dest, tmp_path, key_columns=["id", "kind"], where_filters=[], apply=False)
    assert (outcome.found, outcome.deleted, outcome.jobs, outcome.free_column) == (1, 0, 0, None)
    assert dest.project.deletes == [] and len(dest.project.rows["in.c-d.t"]) == 2
    assert "1 row(s) of in.c-d.t are not in the source selection; kept them (deletes: keep)" in caplog.text


def test_nothing_to_delete_sends_no_job(tmp_path):
    source, dest = _projects(tmp_path, [("1",)], [("1",)], columns=("id",))
    outcome = _propagate(source, dest, tmp_path, key_columns=["id"], where_filters=[], apply=True)
    assert (outcome.found, outcome.deleted, outcome.jobs) == (0, 0, 0) and dest.project.deletes == []


def test_null_keys_are_not_deleted(tmp_path, caplog):
    source, dest = _projects(tmp_path, [("1",)], [("1",), (None,), ("",)], columns=("id",))
    outcome = _propagate(source, dest, tmp_path, key_columns=["id"], where_filters=[], apply=True)
    assert (outcome.found, outcome.deleted, outcome.skipped_null_keys) == (2, 1, 1)
    assert dest.project.deletes == [[{"column": "id", "operator": "eq", "values": [""]}]]
    assert "cannot be written as a delete filter" in caplog.text


def test_a_table_without_key_columns_is_refused(tmp_path):
    source, dest = _projects(tmp_path, [], [], columns=("id",))
    with pytest.raises(ValueError, match="no primary key"):
        _propagate(source, dest, tmp_path, key_columns=[], where_filters=[], apply=True)


# the client: Tables.delete_rows / add_column / delete_column over a fake HTTP seam -------------------------------
class _Response:
    def __init__(self, payload):
        self.payload = payload
        self.content = b"{}"

    def json(self):
        return self.payload


class _Http:
    """Records requests; ``fail_first`` makes the first job-creating request fail ambiguously after the server
    created its job (``created``)."""

    def __init__(self, recent=(), fail_first=None):
        self.requests: list[tuple] = []
        self.recent = list(recent)
        self.fail_first = fail_first

    def request(self, method, path, *, params=None, json=None, idempotent=None):
        self.requests.append((method, path, params, json, idempotent))
        return _Response(self._job(path))

    def post(self, path, json=None, *, idempotent):
        self.requests.append(("POST", path, None, json, idempotent))
        return self._job(path)

    def _job(self, path):
        job = {"id": 100 + len(self.requests), "status": "waiting", "operationName": "x", "tableId": "in.c-d.t"}
        if self.fail_first is not None:
            created, self.fail_first = self.fail_first, None
            self.recent.insert(0, created)
            error = StorageApiError("HTTP 504", status=504, maybe_applied=True)
            error.reason = "HTTP 504"
            raise error
        return job

    def get(self, path, params=None):
        if path == "jobs":
            return list(self.recent)
        return {"id": int(path.split("/")[1]), "status": "success", "results": {"deletedRows": 3}}


def _tables(http) -> Tables:
    return Tables(http, Jobs(http, sleep=lambda s: None, reconcile_delay=0))


def test_delete_rows_sends_a_json_body_on_delete_and_may_be_retried():
    http = _Http()
    filters = [{"column": "id", "operator": "eq", "values": ["1", "2"]}]
    job = _tables(http).delete_rows("in.c-d.t", filters, changed_until=1700000000)
    assert job["results"] == {"deletedRows": 3}
    method, path, params, body, idempotent = http.requests[0]
    assert (method, path, params) == ("DELETE", "tables/in.c-d.t/rows", None)
    assert body == {"whereFilters": filters, "changedUntil": "1700000000"}
    assert idempotent is True  # the same filter twice deletes nothing more: a replay is safe


def test_column_jobs_reconcile_an_ambiguous_failure_with_the_job_it_created():
    name_job = {"operationName": "tableColumnAdd", "tableId": "in.c-d.t", "operationParams": {"name": "c"}}
    earlier = {"id": 5, "status": "success", **name_job}  # the same column added by an earlier run
    created = {"id": 6, "status": "waiting", **name_job}
    http = _Http(recent=[earlier], fail_first=created)
    job = _tables(http).add_column("in.c-d.t", "c")
    assert job["id"] == 6 and [r[0] for r in http.requests] == ["POST"]  # not sent again, not job 5


def test_column_jobs_are_sent_again_when_the_ambiguous_request_created_none():
    earlier = {
        "id": 5,
        "status": "success",
        "operationName": "tableColumnDelete",
        "tableId": "in.c-d.t",
        "operationParams": {"name": "c"},
    }
    other = {"id": 7, "operationName": "tableColumnDelete", "tableId": "in.c-d.t", "operationParams": {"name": "x"}}
    http = _Http(recent=[earlier], fail_first=other)
    _tables(http).delete_column("in.c-d.t", "c", force=True)
    assert [(r[0], r[1], r[2]) for r in http.requests] == [
        ("DELETE", "tables/in.c-d.t/columns/c", {"force": "true"})
    ] * 2

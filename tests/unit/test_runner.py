"""workflows/runner.py: a bounded number of tables at once, failures isolated, table names on every line."""

import logging
import threading
import time

import pytest
from keboola.component.exceptions import UserException

from workflows.runner import TableOutcome, TableRunner, finish


def test_runs_at_most_parallelism_tables_at_once_and_keeps_the_order():
    running, peak, lock = [0], [0], threading.Lock()

    def work(item):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return TableOutcome(item, "full", rows=int(item))

    outcomes = TableRunner(3).run([str(i) for i in range(12)], work, label=str)
    assert [o.table for o in outcomes] == [str(i) for i in range(12)]
    assert peak[0] == 3


def test_a_failing_table_does_not_stop_the_others_and_the_run_names_it():
    def work(item):
        if item == "in.c-a.bad":
            raise UserException("Table in.c-a.bad has no columns; fix it.")
        return TableOutcome(item, "full")

    outcomes = TableRunner(2).run(["in.c-a.one", "in.c-a.bad", "in.c-a.two"], work, label=str)
    assert [o.status for o in outcomes] == ["ok", "failed", "ok"]
    with pytest.raises(UserException, match=r"^1 of 3 table\(s\) failed: in.c-a.bad \(Table in.c-a.bad has no"):
        finish(outcomes, "table(s)")
    with pytest.raises(UserException) as verifying:
        finish(outcomes, "table(s)", verifying=True)
    assert str(verifying.value) == (
        "1 of 3 table(s) could not be verified: in.c-a.bad (Table in.c-a.bad has no columns; fix it); fix what each "
        "reason says and verify again."
    )


def test_an_unexpected_error_is_raised_after_every_table_was_attempted():
    attempted = []

    def work(item):
        attempted.append(item)
        if item == "b":
            raise KeyError("bug")
        return TableOutcome(item, "full")

    with pytest.raises(KeyError):
        TableRunner(1).run(["a", "b", "c"], work, label=str)
    assert attempted == ["a", "b", "c"]


def test_log_lines_of_a_table_name_it_and_the_summary_lists_every_table(caplog):
    def work(item):
        logging.getLogger("storage_api.jobs").info("Still waiting for storage job 7")
        return TableOutcome(item, "incremental", rows=2, total=10, bytes=2**20)

    handler = logging.StreamHandler()
    logging.getLogger().addHandler(handler)
    try:
        with caplog.at_level(logging.INFO):
            outcomes = TableRunner(2).run(["in.c-a.one", "in.c-a.two"], work, label=str)
            finish(outcomes, "table(s)")
    finally:
        logging.getLogger().removeHandler(handler)
    assert "[in.c-a.one] Still waiting for storage job 7" in caplog.text
    summary = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("Summary:"))
    assert "in.c-a.one" in summary and "in.c-a.two" in summary and "incremental" in summary and "1.00" in summary


def test_status_lines_say_done_running_and_waiting(caplog):
    release = threading.Event()

    def work(item):
        release.wait(5)
        return TableOutcome(item, "full")

    runner = TableRunner(1, status_interval=0.2)
    threading.Timer(1.5, release.set).start()
    with caplog.at_level(logging.INFO):
        runner.run(["a", "b"], work, label=str)
    assert "Progress: 0 of 2 table(s) done, 1 running, 1 waiting." in caplog.text


def test_a_stopped_run_starts_no_more_tables():
    runner = TableRunner(1)
    runner.stopping.set()
    with pytest.raises(Exception, match="stopped"):
        runner.check_stop()

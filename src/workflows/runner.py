"""Running the tables of a run: a bounded number at once, each isolated from the others' failures.

- ``parallelism`` tables are in flight at a time (daemon worker threads: a SIGTERM ends the job at once; every
  table that committed before keeps its state, the others are redone by the next run);
- a failing table is logged with its reason and the others go on; the run then ends with one sentence naming
  every failed table (exit 1), or with the first unexpected error (exit 2);
- every log line of a table's work names the table (``[table] ...`` unless the line already starts with it);
- every 30 s a line says how many tables are done, running and waiting; the run ends with a summary table.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from keboola.component.exceptions import UserException

from workflows.files import MB

logger = logging.getLogger(__name__)

STATUS_INTERVAL = 30.0  # seconds between "n done, n running, n waiting" lines
MAX_FAILURES_NAMED = 10

T = TypeVar("T")
current_table: contextvars.ContextVar[str | None] = contextvars.ContextVar("current_table", default=None)


@dataclass
class TableOutcome:
    """What one table's work did: rows moved, bytes moved, and how it ended."""

    table: str
    mode: str  # "full", "incremental", "export", "import", ...
    rows: int | None = None  # rows moved (exported / loaded)
    deleted: int | None = None
    total: int | None = None  # rows in the destination afterwards
    bytes: int = 0
    seconds: float = 0.0
    status: str = "ok"  # ok | failed | stopped
    reason: str = ""


class _Failure(Generic[T]):
    def __init__(self, item: T, error: BaseException):
        self.item = item
        self.error = error


class Stopped(Exception):
    """The run is being stopped (SIGTERM in the main thread): a table that has not loaded yet does not start."""


class TableRunner:
    def __init__(self, parallelism: int, *, what: str = "table(s)", status_interval: float = STATUS_INTERVAL):
        self.parallelism = max(1, int(parallelism))
        self.what = what
        self.status_interval = status_interval
        self.stopping = threading.Event()

    def check_stop(self) -> None:
        """Called by table work before each irreversible step (a load, a delete)."""
        if self.stopping.is_set():
            raise Stopped("the job was stopped before this table was loaded")

    def run(
        self, items: Sequence[T], work: Callable[[T], TableOutcome], label: Callable[[T], str]
    ) -> list[TableOutcome]:
        """Run ``work`` for every item; returns the outcomes in item order (failed ones with status "failed")."""
        install_table_prefix()
        todo: queue.Queue[tuple[int, T] | None] = queue.Queue()
        for index, item in enumerate(items):
            todo.put((index, item))
        done: queue.Queue[tuple[int, TableOutcome, BaseException | None]] = queue.Queue()
        running = [0]
        lock = threading.Lock()

        def worker() -> None:
            while not self.stopping.is_set():
                try:
                    entry = todo.get_nowait()
                except queue.Empty:
                    return
                index, item = entry
                with lock:
                    running[0] += 1
                name = label(item)
                outcome, error = self._run_one(item, name, work)
                with lock:
                    running[0] -= 1
                done.put((index, outcome, error))

        workers = [
            threading.Thread(target=worker, name=f"table-{n}", daemon=True)
            for n in range(min(self.parallelism, len(items)))
        ]
        for thread in workers:
            thread.start()
        outcomes: dict[int, TableOutcome] = {}
        errors: list[BaseException] = []
        last_status = time.monotonic()
        try:
            while len(outcomes) < len(items):
                try:
                    index, outcome, error = done.get(timeout=1.0)
                except queue.Empty:
                    pass
                else:
                    outcomes[index] = outcome
                    if error is not None:
                        errors.append(error)
                if time.monotonic() - last_status >= self.status_interval and len(outcomes) < len(items):
                    last_status = time.monotonic()
                    with lock:
                        in_flight = running[0]
                    waiting = len(items) - len(outcomes) - in_flight
                    logger.info(
                        "Progress: %d of %d %s done, %d running, %d waiting.",
                        len(outcomes),
                        len(items),
                        self.what,
                        in_flight,
                        waiting,
                    )
        except BaseException:
            self.stopping.set()  # SIGTERM / KeyboardInterrupt: no new table starts, none is loaded any more
            raise
        if errors:
            raise errors[0]  # our bug: exit 2 with its traceback, after every table was attempted
        return [outcomes[i] for i in range(len(items))]

    def _run_one(
        self, item: T, name: str, work: Callable[[T], TableOutcome]
    ) -> tuple[TableOutcome, BaseException | None]:
        token = current_table.set(name)
        started = time.monotonic()
        try:
            outcome = work(item)
            outcome.seconds = time.monotonic() - started
            return outcome, None
        except Stopped as exc:
            return TableOutcome(name, "-", status="stopped", reason=str(exc)), None
        except Exception as exc:  # noqa: BLE001 - a table's failure, whatever it is, must not stop the others
            if not self.stopping.is_set():
                return self._failed(name, exc, started)
            # the run is being stopped and its clients closed: what fails now is the interruption, not a bug
            logger.info("Table %s: stopped before it was committed (%s).", name, type(exc).__name__)
            return TableOutcome(name, "-", status="stopped", reason="the job was stopped"), None
        finally:
            current_table.reset(token)

    def _failed(self, name: str, exc: Exception, started: float) -> tuple[TableOutcome, BaseException | None]:
        seconds = time.monotonic() - started
        if isinstance(exc, UserException):
            logger.error("%s", exc) if name in str(exc) else logger.error("Table %s failed: %s", name, exc)
            return TableOutcome(name, "-", seconds=seconds, status="failed", reason=str(exc)), None
        logger.exception("Table %s failed with an unexpected error.", name)
        return TableOutcome(name, "-", seconds=seconds, status="failed", reason=repr(exc)), exc


def finish(outcomes: Sequence[TableOutcome], what: str, *, summary: bool = True, verifying: bool = False) -> None:
    """Log the summary table; raise one UserException naming every failed table (``verifying``: the tables of a
    verification, which commits nothing)."""
    if summary:
        log_summary(outcomes)
    failed = [o for o in outcomes if o.status != "ok"]
    if not failed:
        return
    named = "; ".join(f"{o.table} ({o.reason.rstrip('.')})" for o in failed[:MAX_FAILURES_NAMED])
    more = f"; and {len(failed) - MAX_FAILURES_NAMED} more" if len(failed) > MAX_FAILURES_NAMED else ""
    ok = len(outcomes) - len(failed)
    if verifying:
        raise UserException(
            f"{len(failed)} of {len(outcomes)} {what} could not be verified: {named}{more}; fix what each reason "
            f"says and verify again."
        )
    raise UserException(
        f"{len(failed)} of {len(outcomes)} {what} failed: {named}{more}. The other {ok} were committed; fix the "
        f"failed ones and run again (they are retried in full or from their last watermark)."
    )


def log_summary(outcomes: Sequence[TableOutcome]) -> None:
    if not outcomes:
        return
    rows = [("table", "mode", "rows moved", "deleted", "rows now", "MB", "seconds", "status")]
    for o in outcomes:
        rows.append(
            (
                o.table,
                o.mode,
                _number(o.rows),
                _number(o.deleted),
                _number(o.total),
                f"{o.bytes / MB:.2f}",
                f"{o.seconds:.1f}",
                o.status,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in rows]
    logger.info("Summary:\n%s", "\n".join(lines))


def _number(value: int | None) -> str:
    return "-" if value is None else str(value)


class _TablePrefix(logging.Filter):
    """Prefixes a record made during a table's work with ``[table]`` unless its message names the table first."""

    def filter(self, record: logging.LogRecord) -> bool:
        table = current_table.get()
        if table and not getattr(record, "_table_prefixed", False):
            message = record.getMessage()
            if not message.startswith(f"Table {table}"):
                record.msg = f"[{table}] {message}"
                record.args = ()
            record._table_prefixed = True
        return True


_PREFIX = _TablePrefix()


def install_table_prefix() -> None:
    for handler in logging.getLogger().handlers:
        if _PREFIX not in handler.filters:
            handler.addFilter(_PREFIX)

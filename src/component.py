"""Storage Sync: moves tables between Keboola projects and stacks through the Storage API (export, import, sync)."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from keboola.component.base import ComponentBase, sync_action
from keboola.component.exceptions import UserException
from keboola.component.sync_actions import MessageType, SelectElement, ValidationResult

from configuration import Configuration, Connection
from redaction import install_log_redaction, redact
from state import StateStore
from storage_api import RetryPolicy, StorageClient
from storage_api.errors import StorageApiError
from workflows import WORKFLOWS, RunContext, sync
from workflows.context import DEFAULT_METADATA_PROVIDER, storage_errors
from workflows.files import remove_path

logger = logging.getLogger(__name__)
NOISY_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3", "azure", "google")

ACTIONS = ("testConnection", "listTables", "listBuckets", "verify")  # the sync actions below
# sync actions must answer within 30 s
ACTION_REQUEST_TIMEOUT = 10.0
ACTION_RETRY = RetryPolicy(max_attempts=2, max_total=15.0, backoff_initial=0.5, backoff_max=2.0, retry_after_max=2.0)


class Component(ComponentBase):
    def __init__(self):
        try:
            super().__init__()
        except (AttributeError, TypeError, ValueError, KeyError) as exc:  # the SDK trips over a malformed config.json
            if not logging.getLogger().handlers:
                logging.basicConfig(stream=sys.stderr, format="%(message)s")
            install_log_redaction()
            raise UserException(_config_file_error(exc)) from None
        install_log_redaction()
        keboola_config = self.configuration  # parsed from config.json on every access: read it once
        self.parameters = keboola_config.parameters if isinstance(keboola_config.parameters, dict) else {}
        if not self.parameters.get("debug"):
            for noisy in NOISY_LOGGERS:  # SDK chatter ("Found endpoint for s3 ...") is not for job events
                logging.getLogger(noisy).setLevel(logging.WARNING)
        action = keboola_config.action or "run"
        if action not in ("run", *ACTIONS):
            raise UserException(
                f'The action in config.json must be "run" or one of {", ".join(ACTIONS)}; fix the configuration.'
            )
        is_action = action != "run"
        self.config = Configuration.from_parameters(self.parameters, os.environ, for_action=is_action)
        self._clients: dict[str, StorageClient] = {}
        if _is_debug_run():
            logger.info(
                "Debug run: the HTTP traffic is not recorded (a recording would hold the file-storage credentials and "
                "every slice); this log is the record of the run."
            )

    @staticmethod
    def _should_vcr_record() -> bool:
        """ComponentBase records the HTTP traffic of a Keboola debug run (KBC_COMPONENT_RUN_MODE=debug) with vcrpy
        into out/files; this component does not. vcrpy patches every HTTP connection of the process, so the
        file-storage transfers would be recorded too: the federated credentials (S3 secret key and session token,
        Azure SAS, GCS token) and every slice, read whole into memory, under a frozen clock (SigV4 dates, timeouts),
        and S3 streaming copies fail (the stream is read before it is sent). The log, redacted, is the record."""
        return False

    def run(self):
        """Dispatch on mode: export (storage -> out/tables), import (in/tables -> storage), sync (project -> project)."""
        workflow = WORKFLOWS[self.config.mode]
        try:
            with storage_errors(f"the {self.config.mode}"):
                workflow(self._run_context())
        finally:
            self._close_clients()  # waits for transfer threads, so nothing writes into out/ after the sweep below
            for out in ("tables", "files"):
                _remove_partial_outputs(Path(self.data_folder_path) / "out" / out)

    # sync actions -----------------------------------------------------------------------------------------------
    @sync_action("testConnection")
    def test_connection(self):
        """Verify the source and/or destination token (those the mode needs, else those configured)."""
        needed = {"export": ["source"], "import": ["destination"], "sync": ["source", "destination"]}.get(
            self.config.mode
        ) or [w for w in ("source", "destination") if getattr(self.config, w) is not None]
        if not needed:
            raise UserException("Enter the source or destination URL and token to test the connection.")
        for which in needed:
            conn = self.config.require(which)
            with _action_errors(f"The {which} connection ({conn.url}) failed"):
                self._client(which, action=True).verify_token()

    @sync_action("listTables")
    def list_tables(self):
        conn = self.config.require("source")
        with _action_errors(f"Listing the tables of the source project ({conn.url}) failed"):
            tables = self._client("source", action=True).tables.list(include=())
        return [
            SelectElement(value=t["id"], label=_table_label(t))
            for t in sorted(tables, key=lambda t: t.get("id", ""))
            if t.get("id")
        ]

    @sync_action("verify")
    def verify(self):
        """Compare the configured tables with their destinations (columns, key, rows, keys missing or extra)."""
        with storage_errors("verifying the tables"):
            results = sync.verify_configured(
                self.config, self._client("source", action=True), self._client("destination", action=True)
            )
        bad = [r for r in results if not r.ok]
        lines = [f"{len(results) - len(bad)} of {len(results)} table(s) match their source."]
        for result in results:
            row = result.report_row()
            text = f"- {result.source_table} -> {result.destination_table}: {result.status}"
            if not result.ok:
                text += f" ({row['detail']}; missing e.g. {row['sample_missing']}, extra e.g. {row['sample_extra']})"
            lines.append(text)
        return ValidationResult("\n".join(lines), MessageType.WARNING if bad else MessageType.SUCCESS)

    @sync_action("listBuckets")
    def list_buckets(self):
        conn = self.config.require("destination")
        with _action_errors(f"Listing the buckets of the destination project ({conn.url}) failed"):
            buckets = self._client("destination", action=True).buckets.list()
        return [
            SelectElement(
                value=b["id"], label=b["id"] if not b.get("displayName") else f"{b['id']} ({b['displayName']})"
            )
            for b in sorted(buckets, key=lambda b: b.get("id", ""))
            if b.get("id")
        ]

    # helpers ----------------------------------------------------------------------------------------------------
    def _run_context(self) -> RunContext:
        try:
            initial_state = self.get_state_file()
        except ValueError:
            raise UserException(
                "The state (in/state.json) is not valid JSON; reset the state of the configuration and run again."
            ) from None
        state = StateStore(initial_state, self._write_state)
        env = self.environment_variables
        return RunContext(
            config=self.config,
            data_dir=Path(self.data_folder_path),
            state=state,
            source_client=lambda: self._client("source"),
            destination_client=lambda: self._client("destination"),
            metadata_provider=env.component_id or DEFAULT_METADATA_PROVIDER,
        )

    def _write_state(self, state: dict) -> None:
        """out/state.json, written atomically (a temporary file renamed over it) so it is never half-written."""
        out = Path(self.data_folder_path) / "out"
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / ".state.json.partial"
        tmp.write_text(json.dumps(state, indent=2), encoding="utf-8")
        os.replace(tmp, out / "state.json")

    def _client(self, which: str, *, action: bool = False) -> StorageClient:
        if which not in self._clients:
            conn: Connection = self.config.require(which)
            timeouts = self.config.timeouts
            options = {}
            if action:  # a sync action must answer within 30 s: short timeout, few retries
                options["retry"] = ACTION_RETRY
            self._clients[which] = StorageClient(
                conn.url,
                conn.token,
                run_id=self.environment_variables.run_id or None,
                request_timeout=min(timeouts.request, ACTION_REQUEST_TIMEOUT) if action else timeouts.request,
                job_timeout=timeouts.job,
                max_workers=self.config.parallelism,
                **options,
            )
            self._use_branch(which, conn, self._clients[which])
        return self._clients[which]

    def _use_branch(self, which: str, conn: Connection, client: StorageClient) -> None:
        """``KBC_BRANCHID`` applies to a connection that uses the forwarded token (the job's project); one given its
        own URL and token reads and writes its default branch. One log line says which branch it uses."""
        forwarded_token = (os.environ.get("KBC_TOKEN") or "").strip()
        branch_id = (os.environ.get("KBC_BRANCHID") or "").strip()
        if not forwarded_token or conn.token != forwarded_token:
            logger.info("The %s connection (its own URL and token) uses its default branch.", which)
            return
        if not branch_id:
            logger.info("The %s connection (the job's project) uses the default branch (production).", which)
            return
        try:
            branch = client.use_branch(branch_id)
        except StorageApiError as exc:
            raise UserException(redact(str(exc))) from exc
        # a destination is what the branch writes: a table only production has is created in the branch
        client.reads.fall_back = which == "source"
        reads = "; tables the branch has not written are read from production" if client.reads.fall_back else ""
        logger.info("The %s connection (the job's project) uses %s%s.", which, branch.describe(), reads)

    def _close_clients(self) -> None:
        for client in self._clients.values():
            try:
                client.close()
            except Exception:  # closing must never mask the result of the run
                logger.debug("Closing a Storage client failed.", exc_info=True)
        self._clients.clear()


def _is_debug_run() -> bool:
    return os.environ.get("KBC_COMPONENT_RUN_MODE", "").strip().lower() == "debug"


def _config_file_error(exc: Exception) -> str:
    """One sentence for a config.json that keboola.component cannot read."""
    if isinstance(exc, json.JSONDecodeError):
        return (
            f"The configuration file config.json is not valid JSON ({exc.msg} at line {exc.lineno}, column "
            f"{exc.colno}); fix the configuration."
        )
    if isinstance(exc, UnicodeDecodeError):
        return f"The configuration file config.json is not UTF-8 text (byte {exc.start}); fix the configuration."
    if "config.json not found" in str(exc):
        return "The configuration file config.json is missing from the data folder; check KBC_DATADIR."
    return (
        f"The configuration (config.json) is malformed ({type(exc).__name__}): 'parameters' and 'storage' must be "
        f"JSON objects and 'action' a string; fix the configuration."
    )


def _remove_partial_outputs(out_dir: Path) -> None:
    """Hidden ``.<name>.partial`` files and folders are this component's unfinished outputs: never left behind."""
    if out_dir.is_dir():
        for path in out_dir.glob(".*.partial"):
            remove_path(path)


class JobTerminated(BaseException):
    """SIGTERM (how Keboola stops a job): unwinds the run like KeyboardInterrupt, so every ``finally`` cleans up
    (partial outputs removed, clients closed) and nothing uncommitted reaches the state."""


def _on_sigterm(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the cleanup
    raise JobTerminated()


@contextmanager
def _action_errors(what: str) -> Iterator[None]:
    """Client failures in a sync action -> UserException ("<what>: <reason>")."""
    try:
        yield
    except StorageApiError as exc:
        raise UserException(f"{what}: {redact(str(exc))}") from exc


STOPPED_NEXT_RUN = {  # what the next run does after a SIGTERM, per mode
    "sync": "tables it had not committed keep their previous state and are copied by the next run.",
    "import": "a load it had submitted finishes on the server and the next run checks that job instead of loading "
    "the same input again; input tables it had not loaded are loaded by the next run.",
    "export": "tables it had not exported leave no output behind and are exported by the next run.",
    None: "nothing it had not committed was changed; run the job again.",
}


def _table_label(table: dict) -> str:
    name = table.get("displayName") or table.get("name")
    return f"{table['id']} ({name})" if name and name != table["id"].rsplit(".", 1)[-1] else table["id"]


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _on_sigterm)
    comp = None
    try:
        comp = Component()
        # this triggers the run method by default and is controlled by the configuration.action parameter
        comp.execute_action()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # finished and committed: a late SIGTERM changes nothing
    except JobTerminated:
        mode = getattr(getattr(comp, "config", None), "mode", None)
        logging.error("The job was stopped (SIGTERM) before it finished; %s", STOPPED_NEXT_RUN.get(mode, ""))  # noqa: LOG015
        # Every `finally` has run. Skip interpreter finalisation: a native worker thread still unwinding (DuckDB's
        # diff, an SDK's pool) can abort the process there, which would turn exit 143 into SIGABRT.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(143)
    except UserException as exc:
        logging.exception(exc)  # noqa: LOG015, TRY401 - template entry point; consoles omit the user-error trace
        sys.exit(1)
    except Exception as exc:
        logging.exception(exc)  # noqa: LOG015, TRY401 - template entry point: application error, trace kept
        sys.exit(2)

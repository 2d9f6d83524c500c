"""Storage tables: list, detail, create / load from a file, export to a file, primary key, metadata, delete.

Encodings that differ per endpoint (contract sections 1 and 4): ``columns`` on export and ``primaryKey`` on
create are comma-separated strings, ``columns`` on import is a list.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .errors import StorageApiError
from .jobs import Jobs, is_job


@dataclass(frozen=True)
class ExportResult:
    file_id: int
    cache_hit: bool
    job: dict  # the finished tableExport job: server times (createdTime, startTime), metrics


class Tables:
    def __init__(self, http, jobs: Jobs):
        self.http = http
        self.jobs = jobs

    # reading ------------------------------------------------------------------------------------------------------
    def list(self, include: Iterable[str] = ("columns",)) -> list[dict]:
        return self.http.get("tables", params={"include": ",".join(include)}) or []

    def list_in_bucket(self, bucket_id: str, include: Iterable[str] = ("columns",)) -> list[dict]:
        return self.http.get(f"buckets/{bucket_id}/tables", params={"include": ",".join(include)}) or []

    def detail(self, table_id: str) -> dict | None:
        """The table (always with ``columns``), or None when it or its bucket does not exist."""
        try:
            return self.http.get(f"tables/{table_id}")
        except StorageApiError as exc:
            if exc.status == 404:
                return None
            raise

    # data ---------------------------------------------------------------------------------------------------------
    def create(self, bucket_id: str, name: str, data_file_id, primary_key: list[str] = ()) -> dict:
        """tables-async from an uploaded file; waits for the job and returns the new table."""
        body = {"name": name, "dataFileId": data_file_id}
        if primary_key:
            body["primaryKey"] = ",".join(primary_key)
        table_id = f"{bucket_id}.{name}"

        def matches(job: dict) -> bool:
            if job.get("operationName") != "tableCreate" or job.get("tableId") not in (None, table_id):
                return False
            file_id = _source_file_id(job)
            return str(file_id) == str(data_file_id) if file_id is not None else job.get("tableId") == table_id

        job = self.jobs.wait(self.jobs.submit(f"buckets/{bucket_id}/tables-async", body, matches=matches))
        results = job.get("results") or {}
        return self.detail(results.get("id") or table_id) or results

    def load(
        self,
        table_id: str,
        data_file_id,
        *,
        incremental: bool,
        columns: list[str] | None = None,
        without_headers: bool = False,
    ) -> dict:
        """import-async from an uploaded file; waits and returns the finished job (results: importedColumns...).

        A replayed import would load the data twice, so an ambiguous failure is reconciled against recent jobs.
        """
        body = {"dataFileId": data_file_id, "incremental": incremental, "withoutHeaders": without_headers}
        if columns:
            body["columns"] = list(columns)

        def matches(job: dict) -> bool:
            return (
                job.get("operationName") == "tableImport"
                and job.get("tableId") == table_id
                and str(_source_file_id(job)) == str(data_file_id)
            )

        return self.jobs.wait(self.jobs.submit(f"tables/{table_id}/import-async", body, matches=matches))

    def export(
        self,
        table_id: str,
        *,
        columns: list[str] | None = None,
        changed_since: int | None = None,
        changed_until: int | None = None,
        where_filters: list[dict] = (),
        limit: int | None = None,
        gzip: bool = True,
    ) -> ExportResult:
        """export-async; waits. The result is a file id only: read it with Files.detail + TransferManager.download.

        Exporting is a read, so the POST is safely repeated on any transient failure.
        """
        body: dict = {"gzip": gzip}
        if columns:
            body["columns"] = ",".join(columns)
        if changed_since is not None:
            body["changedSince"] = str(int(changed_since))  # unix seconds: the only documented export format
        if changed_until is not None:
            body["changedUntil"] = str(int(changed_until))
        if where_filters:
            body["whereFilters"] = list(where_filters)
        if limit is not None:
            body["limit"] = int(limit)
        job = self.jobs.wait(self.http.post(f"tables/{table_id}/export-async", body, idempotent=True))
        results = job.get("results") or {}
        file_id = (results.get("file") or {}).get("id")
        if file_id is None:
            raise StorageApiError(f"Storage job {job.get('id')} exported {table_id} but returned no file id.")
        return ExportResult(file_id=file_id, cache_hit=bool(results.get("cacheHit")), job=job)

    # structure ----------------------------------------------------------------------------------------------------
    def add_primary_key(self, table_id: str, columns: list[str]) -> None:
        def matches(job: dict) -> bool:
            return job.get("operationName") == "tablePrimaryKeyAdd" and job.get("tableId") == table_id

        self._wait_if_job(
            self.jobs.submit(f"tables/{table_id}/primary-key", {"columns": list(columns)}, matches=matches)
        )

    def remove_primary_key(self, table_id: str) -> None:
        self._wait_if_job(self.http.delete(f"tables/{table_id}/primary-key"))

    def set_metadata(
        self,
        table_id: str,
        provider: str,
        metadata: list[dict] = (),
        column_metadata: dict[str, list[dict]] | None = None,
    ) -> None:
        """Upsert table and column metadata (``{"key", "value"}`` items; other keys such as id are dropped)."""
        body: dict = {"provider": provider}
        if metadata:
            body["metadata"] = [_key_value(item) for item in metadata]
        columns = {
            name: [_key_value(item) | {"columnName": name} for item in items]
            for name, items in (column_metadata or {}).items()
            if items
        }
        if columns:
            body["columnsMetadata"] = columns
        if len(body) > 1:
            self.http.post(f"tables/{table_id}/metadata", body, idempotent=True)  # an upsert: safe to repeat

    def delete(self, table_id: str) -> None:
        self._wait_if_job(self.http.delete(f"tables/{table_id}"))

    def _wait_if_job(self, payload) -> None:
        if is_job(payload):
            self.jobs.wait(payload)


def _source_file_id(job: dict):
    params = job.get("operationParams") or {}
    source = params.get("source") or {}
    return source.get("fileId") if isinstance(source, dict) else None


def _key_value(item: dict) -> dict:
    return {"key": item["key"], "value": item["value"]}

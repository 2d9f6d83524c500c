"""Storage tables: list, detail, create / load from a file, create a typed table from a definition, export to a
file, delete rows, add / delete columns, primary key, metadata, delete.

Encodings that differ per endpoint (contract sections 1 and 4): ``columns`` on export and ``primaryKey`` on
create are comma-separated strings, ``columns`` on import is a list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import quote

from .branches import Branch, BranchReads
from .errors import StorageApiError
from .jobs import Jobs, is_job

_DEFAULT_BRANCH = Branch()


@dataclass(frozen=True)
class ExportResult:
    file_id: int
    cache_hit: bool
    job: dict  # the finished tableExport job: server times (createdTime, startTime), metrics


class Tables:
    """Table ids are the configuration's ids in every branch: in a legacy prefix branch they are mapped to the
    branch's ``in.c-{id}-name`` buckets here, and the details returned carry the configuration's id again."""

    def __init__(self, http, jobs: Jobs, reads: BranchReads | None = None):
        self.http = http
        self.jobs = jobs
        self.reads = reads or BranchReads()

    @property
    def branch(self) -> Branch:
        return getattr(self.http, "branch", None) or _DEFAULT_BRANCH

    # reading ------------------------------------------------------------------------------------------------------
    def list(self, include: Iterable[str] = ("columns",)) -> list[dict]:
        params = {"include": ",".join(include)}
        branch = self.branch
        if branch.is_default:
            return self.http.get("tables", params=params) or []
        if branch.prefixed:  # the branch's tables live in production buckets: the plain list has them all
            return self.http.get("tables", params=params, plain=True) or []
        tables = self.http.get("tables", params=params) or []
        if self.reads.fall_back:
            tables = _union(tables, self.http.get("tables", params=params, plain=True) or [])
        return tables

    def list_in_bucket(self, bucket_id: str, include: Iterable[str] = ("columns",)) -> list[dict]:
        """The bucket's tables; in a branch those of its branch copy, with (when reads fall back) the production
        tables the branch has no copy of."""
        params = {"include": ",".join(include)}
        branch = self.branch
        if branch.is_default:
            return self.http.get(f"buckets/{bucket_id}/tables", params=params) or []
        try:  # a legacy branch's bucket is a production bucket: listed at the plain path
            own = self.http.get(f"buckets/{branch.bucket_id(bucket_id)}/tables", params=params, plain=branch.prefixed)
            own = [self._logical(t) for t in own or ()]
        except StorageApiError as exc:
            if exc.status != 404 or not self.reads.fall_back:
                raise
            own = None
        if not self.reads.fall_back:
            return own or []
        try:
            production = self.http.get(f"buckets/{bucket_id}/tables", params=params, plain=True) or []
        except StorageApiError as exc:
            if exc.status != 404 or own is None:
                raise
            production = []
        if own is None and not production:
            return []
        return _union(own or [], production)

    def detail(self, table_id: str) -> dict | None:
        """The table (always with ``columns``), or None when it or its bucket does not exist.

        In a development branch: the branch's table; when the branch has none and reads fall back (the client of
        the forwarded connection), the production table, as Keboola's input mapping does (addendum section 3)."""
        branch = self.branch
        if branch.is_default:
            return self._get_detail(f"tables/{table_id}")
        found = self._get_detail(f"tables/{branch.table_id(table_id)}")
        if found is not None or not self.reads.fall_back:
            self.reads.production_tables.discard(table_id)
            return self._logical(found) if found is not None else None
        found = self._get_detail(f"tables/{table_id}", plain=True)
        if found is not None:
            self.reads.production_tables.add(table_id)
        return found

    def _get_detail(self, path: str, *, plain: bool = False) -> dict | None:
        try:
            return self.http.get(path, plain=True) if plain else self.http.get(path)
        except StorageApiError as exc:
            if exc.status == 404:
                return None
            raise

    def _logical(self, detail: dict) -> dict:
        """A legacy branch table's detail under the configuration's ids."""
        branch = self.branch
        if not branch.prefixed or not isinstance(detail, dict) or not detail.get("id"):
            return detail
        detail = dict(detail, id=branch.logical_table_id(detail["id"]))
        if isinstance(detail.get("bucket"), dict) and detail["bucket"].get("id"):
            detail["bucket"] = dict(detail["bucket"], id=branch.logical_bucket_id(detail["bucket"]["id"]))
        return detail

    def _write_id(self, table_id: str) -> str:
        """The id to write ``table_id`` at in this branch (a destination alias is refused before, in
        ``workflows.destination.Destination.prepare``)."""
        return self.branch.table_id(table_id)

    def _read_at(self, table_id: str) -> tuple[str, bool]:
        """(id, plain path) to read ``table_id``'s data at: production when the branch has no copy of it."""
        if table_id in self.reads.production_tables and not self.branch.is_default:
            return table_id, True
        return self.branch.table_id(table_id), False

    # data ---------------------------------------------------------------------------------------------------------
    def create(
        self,
        bucket_id: str,
        name: str,
        data_file_id,
        primary_key: list[str] = (),
        on_submitted: Callable[[dict], None] | None = None,
        **csv_options: str,
    ) -> dict:
        """tables-async from an uploaded file; waits for the job and returns the new table. ``csv_options``:
        ``delimiter``, ``enclosure`` of the file when they are not Keboola's default."""
        body = {"name": name, "dataFileId": data_file_id, **csv_options}
        if primary_key:
            body["primaryKey"] = ",".join(primary_key)
        bucket_id = self.branch.bucket_id(bucket_id)
        table_id = f"{bucket_id}.{name}"

        def matches(job: dict) -> bool:
            if job.get("operationName") != "tableCreate" or job.get("tableId") not in (None, table_id):
                return False
            file_id = _source_file_id(job)
            return str(file_id) == str(data_file_id) if file_id is not None else job.get("tableId") == table_id

        job = self.jobs.submit(f"buckets/{bucket_id}/tables-async", body, matches=matches)
        if on_submitted is not None:
            on_submitted(job)
        job = self.jobs.wait(job)
        results = job.get("results") or {}
        return self.detail(self.branch.logical_table_id(results.get("id") or table_id)) or self._logical(results)

    def create_definition(
        self,
        bucket_id: str,
        name: str,
        columns: list[dict],
        primary_key: list[str] = (),
        on_submitted: Callable[[dict], None] | None = None,
    ) -> dict:
        """``POST buckets/{id}/tables-definition`` (addendum 1a): an empty typed table; waits for the
        ``tableDefinitionCreate`` job and returns the new table's detail.

        ``columns``: ``{name, definition: {type, length?, nullable?, default?}}`` or ``{name, basetype}`` items.
        A replay would fail (the table exists), so an ambiguous failure is reconciled against the jobs created since
        the request was sent (a table of that name dropped and created again has an older job)."""
        body: dict = {"name": name, "primaryKeysNames": list(primary_key), "columns": [dict(c) for c in columns]}
        bucket_id = self.branch.bucket_id(bucket_id)
        table_id = f"{bucket_id}.{name}"

        def matches(job: dict) -> bool:
            params = job.get("operationParams") or {}
            named = params.get("name") if isinstance(params, dict) else None
            return job.get("operationName") == "tableDefinitionCreate" and (
                job.get("tableId") == table_id or (job.get("tableId") is None and named in (None, name))
            )

        job = self._submit_new(f"buckets/{bucket_id}/tables-definition", body, matches)
        if on_submitted is not None:
            on_submitted(job)
        job = self.jobs.wait(job)
        results = job.get("results") or {}
        return self.detail(self.branch.logical_table_id(results.get("id") or table_id)) or self._logical(results)

    def load(
        self,
        table_id: str,
        data_file_id,
        *,
        incremental: bool,
        columns: list[str] | None = None,
        without_headers: bool = False,
        on_submitted: Callable[[dict], None] | None = None,
        treat_values_as_null: list[str] | None = None,
        **csv_options: str,
    ) -> dict:
        """import-async from an uploaded file; waits and returns the finished job (results: importedColumns...).
        ``csv_options``: ``delimiter``, ``enclosure`` of the file when they are not Keboola's default.
        ``on_submitted`` receives the accepted job before the wait (the caller remembers it across runs).
        ``treat_values_as_null``: the values a typed table loads as NULL (Storage's default ``[""]`` makes a quoted
        empty string NULL too; ``[]`` keeps it an empty string and only an empty unquoted field NULL, addendum 1d).

        A replayed import would load the data twice, so an ambiguous failure is reconciled against recent jobs.
        """
        table_id = self._write_id(table_id)
        body = {
            "dataFileId": data_file_id,
            "incremental": incremental,
            "withoutHeaders": without_headers,
            **csv_options,
        }
        if columns:
            body["columns"] = list(columns)
        if treat_values_as_null is not None:
            body["treatValuesAsNull"] = list(treat_values_as_null)

        def matches(job: dict) -> bool:
            return (
                job.get("operationName") == "tableImport"
                and job.get("tableId") == table_id
                and str(_source_file_id(job)) == str(data_file_id)
            )

        job = self.jobs.submit(f"tables/{table_id}/import-async", body, matches=matches)
        if on_submitted is not None:
            on_submitted(job)
        return self.jobs.wait(job)

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
        at, plain = self._read_at(table_id)
        path = f"tables/{at}/export-async"
        posted = (
            self.http.post(path, body, idempotent=True, plain=True)
            if plain
            else self.http.post(path, body, idempotent=True)
        )
        job = self.jobs.wait(posted)
        results = job.get("results") or {}
        file_id = (results.get("file") or {}).get("id")
        if file_id is None:
            raise StorageApiError(f"Storage job {job.get('id')} exported {table_id} but returned no file id.")
        if plain:  # a production file: a branched-storage branch does not see it (files are per branch)
            self.reads.production_files.add(str(file_id))
        return ExportResult(file_id=file_id, cache_hit=bool(results.get("cacheHit")), job=job)

    def delete_rows(
        self,
        table_id: str,
        where_filters: list[dict],
        *,
        changed_since: int | None = None,
        changed_until: int | None = None,
        allow_truncate: bool = False,
    ) -> dict:
        """``DELETE tables/{id}/rows`` (addendum section 2); waits and returns the finished ``tableRowsDelete`` job
        (``results.deletedRows``).

        ``where_filters`` are ``{column, operator: eq|ne, values: [str]}`` items, ANDed; several values in one
        filter are an IN list. Filters on several key columns are a cross product, not a list of key tuples. With
        no filter at all the API refuses (``storage.tables.validation.unintendedTruncation``) unless
        ``allow_truncate``, which empties the table.

        The parameters go in a JSON body on the DELETE, as the PHP client sends them (``apiDeleteParamsJson``).
        Unlike a load, a repeated delete with the same filter is idempotent (the rows it matches are gone after
        the first one), so the request is retried like any idempotent one, ambiguous failures included; the only
        cost of a replay after a lost response is that ``deletedRows`` of the replayed job misses the rows the
        first job deleted.
        """
        table_id = self._write_id(table_id)
        body: dict = {"whereFilters": [dict(f) for f in where_filters]}
        if changed_since is not None:
            body["changedSince"] = str(int(changed_since))
        if changed_until is not None:
            body["changedUntil"] = str(int(changed_until))
        if allow_truncate:
            body["allowTruncate"] = True
        response = self.http.request("DELETE", f"tables/{table_id}/rows", json=body, idempotent=True)
        return self.jobs.wait(response.json())

    # structure ----------------------------------------------------------------------------------------------------
    def add_column(
        self, table_id: str, name: str, *, definition: dict | None = None, basetype: str | None = None
    ) -> dict:
        """``POST tables/{id}/columns`` (addendum section 4); waits and returns the finished ``tableColumnAdd`` job.

        ``definition`` / ``basetype`` are for typed tables only (an untyped table refuses them). Storage webalizes
        the name and appends the column. A replay would fail with ``storage.tables.columnAlreadyExists``, so an
        ambiguous failure is reconciled against the jobs created since the request was sent.
        """
        table_id = self._write_id(table_id)
        body: dict = {"name": name}
        if definition is not None:
            body["definition"] = dict(definition)
        if basetype is not None:
            body["basetype"] = basetype

        def matches(job: dict) -> bool:
            return _is_column_job(job, "tableColumnAdd", table_id, name)

        return self.jobs.wait(self._submit_new(f"tables/{table_id}/columns", body, matches))

    def delete_column(self, table_id: str, name: str, *, force: bool = False) -> dict:
        """``DELETE tables/{id}/columns/{name}?force=`` (addendum section 4); waits and returns the finished
        ``tableColumnDelete`` job. ``force`` also removes the column from auto-sync aliases. A replay would fail
        (the column no longer exists), so an ambiguous failure is reconciled like ``add_column``."""
        table_id = self._write_id(table_id)

        def matches(job: dict) -> bool:
            return _is_column_job(job, "tableColumnDelete", table_id, name)

        path = f"tables/{table_id}/columns/{quote(name, safe='')}"
        params = {"force": "true" if force else "false"}
        return self.jobs.wait(self._submit_new(path, None, matches, method="DELETE", params=params))

    def _submit_new(self, path: str, body: dict | None, matches, *, method: str = "POST", params=None) -> dict:
        """``Jobs.submit`` that reconciles only against jobs created after this call: a matching job of an earlier
        run (the same column added, dropped and added again) is listed first and never taken for this one."""
        earlier = {job.get("id") for job in self.jobs.list() if matches(job)}

        def created_now(job: dict) -> bool:
            return matches(job) and job.get("id") not in earlier

        return self.jobs.submit(path, body, matches=created_now, method=method, params=params)

    def add_primary_key(self, table_id: str, columns: list[str]) -> None:
        table_id = self._write_id(table_id)

        def matches(job: dict) -> bool:
            return job.get("operationName") == "tablePrimaryKeyAdd" and job.get("tableId") == table_id

        self._wait_if_job(
            self.jobs.submit(f"tables/{table_id}/primary-key", {"columns": list(columns)}, matches=matches)
        )

    def remove_primary_key(self, table_id: str) -> None:
        self._wait_if_job(self.http.delete(f"tables/{self._write_id(table_id)}/primary-key"))

    def set_metadata(
        self,
        table_id: str,
        provider: str,
        metadata: list[dict] = (),
        column_metadata: dict[str, list[dict]] | None = None,
    ) -> None:
        """Upsert table and column metadata (``{"key", "value"}`` items; other keys such as id are dropped)."""
        table_id = self._write_id(table_id)
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
        self._wait_if_job(self.http.delete(f"tables/{self._write_id(table_id)}"))

    def _wait_if_job(self, payload) -> None:
        if is_job(payload):
            self.jobs.wait(payload)


def _union(own: list[dict], production: list[dict]) -> list[dict]:
    """The branch's tables, then the production tables it has no copy of."""
    ids = {t.get("id") for t in own}
    return [*own, *(t for t in production if t.get("id") not in ids)]


def _source_file_id(job: dict):
    params = job.get("operationParams") or {}
    source = params.get("source") or {}
    return source.get("fileId") if isinstance(source, dict) else None


def _is_column_job(job: dict, operation: str, table_id: str, name: str) -> bool:
    params = job.get("operationParams") or {}
    return (
        job.get("operationName") == operation
        and job.get("tableId") == table_id
        and (not isinstance(params, dict) or params.get("name") in (None, name))
    )


def _key_value(item: dict) -> dict:
    return {"key": item["key"], "value": item["value"]}

"""Loading files into tables: the create-table and import jobs, fetching the (sliced) file, header and column
rules.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import BucketNotFound, ColumnsNotMatch, FileNotFound, ValidationError
from ..jobs import Job
from .entities import Bucket, Project, StoredFile, Table, Token
from .helpers import (
    MAX_COLUMN_NAME_LENGTH,
    checked_column_name,
    sanitize_column_name,
    sanitize_file_name,
)

_COLUMN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*$")
_FETCH_THREADS = 4


class LoadsMixin:
    def _new_load_job(
        self, token: Token, operation: str, table_id: str, file_id: int, params: dict, run_id, *, name=None
    ) -> Job:
        """A job that loads the storage file ``file_id`` into a table (``tableCreate``, ``tableImport``)."""
        head = {"name": name} if name is not None else {}
        source = {"fileId": str(file_id), "type": "file"}
        return self._new_job(
            token, operation, table_id, {**head, "params": params, "source": source, "queue": "main"}, run_id
        )

    def create_table_async(
        self,
        token: Token,
        bucket_id: str,
        *,
        name: str,
        data_file_id: int,
        primary_key: list[str],
        delimiter: str = ",",
        enclosure: str = '"',
        escaped_by: str = "",
        run_id=None,
    ) -> dict:
        with self.lock:
            bucket = self._bucket(token, bucket_id, "write")
        self._validate_table_name(name)
        with self.lock:
            self._check_table_name_free(bucket, name)
        table_id = f"{bucket.id}.{name}"
        job = self._new_load_job(
            token,
            "tableCreate",
            table_id,
            data_file_id,
            {
                "primaryKey": ",".join(primary_key),
                "enclosure": enclosure,
                "delimiter": delimiter,
                "escapedBy": escaped_by,
            },
            run_id,
            name=name,
        )
        project = self.projects[token.project_id]

        def work(job: Job) -> dict:
            return self._create_table(project, bucket, name, data_file_id, primary_key, delimiter, enclosure, job.id)

        return self._submit(job, work, key=table_id)

    def _create_table(
        self,
        project: Project,
        bucket: Bucket,
        name: str,
        file_id: int,
        primary_key: list[str],
        delimiter: str,
        enclosure: str,
        job_id: int | str,
    ) -> dict:
        with self._job_dir(job_id) as tmp:
            file, paths = self._fetch_for_load(project, file_id, tmp)
            if file.is_sliced:
                raise ValidationError(
                    "Cannot create a table from a sliced file: sliced files have no header row. "
                    "Create the table from a file with a header, then import the slices with columns.",
                    code="storage.tables.validation.invalidColumnName",
                )
            header = self.engine.read_header(paths, delimiter=delimiter, enclosure=enclosure)
            if not header:
                raise ValidationError(
                    "No columns found in the CSV file. The file is empty or has no header row.",
                    code="storage.tables.validation.noColumns",
                )
            columns = []
            for raw in header:
                column = checked_column_name(
                    raw, sanitize_column_name(raw), "storage.tables.validation.invalidColumnName"
                )
                if column in columns:
                    raise ValidationError(
                        f'Duplicate column name "{column}" (after sanitizing "{raw}").',
                        code="storage.tables.validation.invalidColumnName",
                    )
                columns.append(column)
            missing = [c for c in primary_key if c not in columns]
            if missing:
                raise ValidationError(
                    f"Primary key columns {', '.join(missing)} are not present in the table columns "
                    f"({', '.join(columns)}).",
                    code="storage.tables.validation.invalidPrimaryKeyColumns",
                )
            with self.lock:
                if project.buckets.get(bucket.id) is not bucket:
                    raise BucketNotFound(bucket.id)
                self._check_table_name_free(bucket, name)
                handle = f"t{self._next('table')}"
                now = self._creation_time(project, f"{bucket.id}.{name}")
            self.engine.create(handle, columns)
            try:
                self.engine.load(
                    handle,
                    paths,
                    file_columns=columns,
                    has_header=True,
                    incremental=False,
                    primary_key=primary_key,
                    timestamp=now,
                    delimiter=delimiter,
                    enclosure=enclosure,
                )
                rows, size = self.engine.stats(handle)
            except BaseException:
                self.engine.drop(handle)
                raise
            table = Table(
                id=f"{bucket.id}.{name}",
                project_id=project.id,
                bucket_id=bucket.id,
                name=name,
                display_name=name,
                handle=handle,
                columns=columns,
                primary_key=primary_key,
                created=now,
                last_import_date=now,
                last_change_date=now,
                rows_count=rows,
                data_size_bytes=size,
            )
            with self.lock:
                if project.buckets.get(bucket.id) is not bucket:
                    self.engine.drop(handle)
                    raise BucketNotFound(bucket.id)
                bucket.tables[name] = table
                bucket.last_change_date = now
                return self.table_json(table, detail=True)

    def _file_for_job(self, project: Project, file_id: int) -> StoredFile:
        with self.lock:
            file = project.files.get(int(file_id))
            if file is None or file.deleted:
                raise FileNotFound(file_id)
            return file

    def _fetch_for_load(self, project: Project, file_id: int, tmp: Path) -> tuple[StoredFile, list[Path]]:
        file = self._file_for_job(project, file_id)
        if not file.is_sliced:
            if not self.storage.exists(file.key):
                raise ValidationError(
                    f'File "{file.id}" was not uploaded. Upload the file before using it.',
                    code="storage.fileNotUploaded",
                )
            dest = tmp / _local_name(0, file.name)
            try:
                self.storage.fetch(file.key, dest)
            except FileNotFoundError:
                raise ValidationError(f'File "{file.id}" was not uploaded.', code="storage.fileNotUploaded") from None
            return file, [dest]
        try:
            manifest_raw = self.storage.read_bytes(file.key + "manifest")
        except FileNotFoundError:
            raise ValidationError(
                f'Manifest file "{file.key}manifest" of the sliced file "{file.id}" is missing.',
                code="storage.manifestFileMissing",
            ) from None
        try:
            manifest = json.loads(manifest_raw)
            entries = manifest["entries"]
            urls = [entry["url"] for entry in entries]
        except (ValueError, KeyError, TypeError):
            raise ValidationError(
                f'Invalid manifest of the sliced file "{file.id}": expected {{"entries": [{{"url": ...}}]}}.',
                code="storage.invalidManifest",
            ) from None

        def fetch(index: int, url: str) -> Path:
            key = self.storage.entry_key(url)
            dest = tmp / _local_name(index, key.rsplit("/", 1)[-1])
            try:
                self.storage.fetch(key, dest)
            except FileNotFoundError:
                raise ValidationError(
                    f'Import file "{url}" listed in the manifest of file "{file.id}" was not found.',
                    code="storage.importFileMissing",
                ) from None
            return dest

        # slices are fetched in parallel, as a warehouse loads them; the first missing one (in manifest order) is
        # the error
        with ThreadPoolExecutor(max_workers=_FETCH_THREADS) as pool:
            paths = list(pool.map(fetch, range(len(urls)), urls))
        return file, paths

    def import_async(
        self,
        token: Token,
        table_id: str,
        *,
        data_file_id: int,
        incremental: bool = False,
        without_headers: bool = False,
        columns: list[str] = (),
        delimiter: str = ",",
        enclosure: str = '"',
        escaped_by: str = "",
        treat_values_as_null: list[str] | None = None,
        run_id=None,
    ) -> dict:
        """``columns``: the columns of a header-less file, in order (``columns[]``). ``treat_values_as_null``: the
        values loaded as NULL into a typed table (None: the default ``['']``; untyped tables hold no NULL)."""
        with self.lock:
            table = self._table(token, table_id, "write")
            self._refuse_alias_write(table, "import data into")
        columns = list(columns)
        job = self._new_load_job(
            token,
            "tableImport",
            table.id,
            data_file_id,
            {
                "incremental": incremental,
                "withoutHeaders": without_headers,
                "columns": columns,
                "delimiter": delimiter,
                "enclosure": enclosure,
                "escapedBy": escaped_by,
            },
            run_id,
        )
        project = self.projects[token.project_id]

        def work(job: Job) -> dict:
            return self._import(
                project,
                table,
                data_file_id,
                incremental,
                without_headers,
                columns,
                delimiter,
                enclosure,
                job.id,
                null_values=treat_values_as_null,
            )

        return self._submit(job, work, key=table.id)

    def _import(
        self,
        project: Project,
        table: Table,
        file_id: int,
        incremental: bool,
        without_headers: bool,
        columns: list[str],
        delimiter: str,
        enclosure: str,
        job_id,
        *,
        null_values: list[str] | None = None,
    ) -> dict:
        self._live_table(table)
        with self._job_dir(job_id) as tmp:
            file, paths = self._fetch_for_load(project, file_id, tmp)
            if columns:
                file_columns, has_header = list(columns), False
            elif without_headers or file.is_sliced:
                file_columns, has_header = list(table.columns), False
            else:
                file_columns = self.engine.read_header(paths, delimiter=delimiter, enclosure=enclosure)
                has_header = True
                if not file_columns:
                    raise self._columns_not_match(table.columns, table.columns, delimiter)
            seen = set()
            for column in file_columns:
                if column in seen:
                    raise ValidationError(
                        f'Duplicate column "{column}" in the imported file.',
                        code="storage.tables.validation.duplicateColumn",
                    )
                seen.add(column)
                if column not in table.columns and (
                    not _COLUMN_RE.match(column) or len(column) > MAX_COLUMN_NAME_LENGTH
                ):
                    missing = [c for c in table.columns if c not in file_columns]
                    if missing:
                        raise self._columns_not_match(missing, table.columns, delimiter)
                    raise ValidationError(
                        f'Invalid column name "{column}": only alphanumeric characters and underscores are '
                        "allowed and the name must not start with an underscore.",
                        code="storage.tables.validation.invalidColumnName",
                    )
            now = self.now()
            try:
                result = self.engine.load(
                    table.handle,
                    paths,
                    file_columns=file_columns,
                    has_header=has_header,
                    incremental=incremental,
                    primary_key=list(table.primary_key),
                    timestamp=now,
                    delimiter=delimiter,
                    enclosure=enclosure,
                    null_values=null_values if table.is_typed else None,
                )
            except ColumnsNotMatch as exc:
                exc.extra.setdefault(
                    "results",
                    {
                        "missingColumns": exc.extra.get("missingColumns"),
                        "expectedColumns": exc.extra.get("expectedColumns"),
                    },
                )
                raise
            rows, size = self.engine.stats(table.handle)
            with self.lock:
                table.columns = list(result.table_columns)
                table.rows_count, table.data_size_bytes = rows, size
                table.last_import_date = table.last_change_date = now
                table.data_version += 1
                bucket = project.buckets.get(table.bucket_id)
                if bucket is not None:
                    bucket.last_change_date = now
            return {
                "importedColumns": list(result.imported_columns),
                "warnings": [],
                "transaction": None,
                "totalDataSizeBytes": size,
                "totalRowsCount": rows,
            }

    @staticmethod
    def _columns_not_match(missing, expected, delimiter) -> ColumnsNotMatch:
        exc = ColumnsNotMatch(list(missing), list(expected), delimiter)
        exc.extra["results"] = {"missingColumns": list(missing), "expectedColumns": list(expected)}
        return exc


def _local_name(index: int, name: str) -> str:
    return f"{index:05d}_{sanitize_file_name(name)[-120:]}"

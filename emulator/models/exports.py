"""Reading tables: the export job (sliced CSV + manifest, export cache) and the data preview."""

from __future__ import annotations

import json

from ..jobs import Job
from .entities import Project, Table, TableQuery, Token
from .helpers import filter_json

JSON_VALUE_LIMIT = 16384  # longest cell value of a json-format preview; responses.py truncates to it
EXPORT_MAX_AGE_DAYS = 2


class ExportsMixin:
    def export_async(self, token: Token, table_id: str, query: TableQuery, *, run_id=None) -> dict:
        with self.lock:
            table = self._table(token, table_id, "read")
        job = self._new_job(
            token,
            "tableExport",
            table.id,
            {
                "export": {
                    "tableName": None,
                    "columns": list(query.columns or []),
                    "limit": query.limit,
                    "changedSince": query.since_param,
                    "changedUntil": query.until_param,
                    "gzipOutput": query.gzip,
                    "format": query.format,
                    "whereFilters": [filter_json(f) for f in query.where_filters],
                    "orderBy": [{"column": o.column, "order": o.order} for o in query.order_by],
                    "fileType": "csv",
                    "timezone": None,
                },
                "queue": "main_fast",
            },
            run_id,
        )
        project = self.projects[token.project_id]
        creator = token

        def work(job: Job) -> dict:
            return self._export(project, table, query, creator, job)

        return self._submit(job, work, key=table.id)

    def _export(self, project: Project, table: Table, query: TableQuery, token: Token, job: Job) -> dict:
        self._live_table(table)
        data, query = self._read_view(table, query)  # an alias: its source, with the alias's filter and columns
        # per token: a token without canReadAllFileUploads may read only the files it created
        cache_key = (table.id, f"{token.id}:{query.cache_key()}")
        with self.lock:
            cached = project.export_cache.get(cache_key)
            if cached is not None:
                file_id, version = cached
                file = project.files.get(file_id)
                if file is not None and not file.deleted and version == data.data_version:
                    if job.run_id:
                        file.run_ids.append(job.run_id)
                    return {"file": {"id": file.id}, "cacheHit": True}
            version = data.data_version
        file_name = f"{table.id}.csv" + (".gz" if query.gzip else "")
        file = self._new_file(
            project,
            token,
            name=file_name,
            sliced=True,
            encrypted=True,
            permanent=False,
            public=False,
            tags=["table-export"],
            run_id=job.run_id,
            max_age_days=EXPORT_MAX_AGE_DAYS,
            key_prefix=f"exp-{EXPORT_MAX_AGE_DAYS}/{project.id}/table-exports/"
            + table.bucket_id.replace(".", "/")
            + f"/{table.name}",
            register=False,
        )
        file.file_type = "csv"
        with self._job_dir(job.id) as tmp:
            slices = self.engine.export(data.handle, tmp, **query.selection(), gzip=query.gzip)
            entries = []
            total = 0
            for path in sorted(slices, key=lambda p: p.name):
                key = file.key + path.name
                self.storage.put_file(key, path)
                total += path.stat().st_size
                entries.append({"url": self.storage.entry_url(key), "mandatory": True})
            self.storage.put_bytes(file.key + "manifest", json.dumps({"entries": entries}).encode())
        file.size_bytes = total
        with self.lock:
            project.files[file.id] = file
            if data.data_version == version:
                project.export_cache[cache_key] = (file.id, version)
        return {"file": {"id": file.id}, "cacheHit": False}

    def preview(self, token: Token, table_id: str, query: TableQuery) -> tuple[list[str], list[list]]:
        """Returns ``(columns, rows)``; the response format is the handler's business."""
        with self.lock:
            table = self._table(token, table_id, "read")
        data, query = self._read_view(table, query)
        columns, rows = self.engine.preview(data.handle, **query.selection())
        return list(columns), [list(r) for r in rows]

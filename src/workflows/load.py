"""Import mode: input tables (in/tables) -> destination project.

Per input table: destination id -> bucket exists (created when the token may) -> gzip + upload (or upload the
slices of a sliced input) -> create the table or load into it -> table/column metadata from the input manifest.
Loads are never retried here: the client reconciles ambiguous import requests, so data is never loaded twice.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
import os
import shutil
import tempfile
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from keboola.component.exceptions import UserException

from configuration import BUCKET_ID_RE, TABLE_ID_RE, TABLE_NAME_RE, TableSettings, bucket_of, table_name
from workflows.common import (
    BucketEnsurer,
    Progress,
    RunContext,
    column_metadata_pairs,
    copy_metadata,
    copy_stream,
    create_table_from_header,
    is_gzip,
    metadata_pairs,
    pk_text,
    result_rows,
    storage_errors,
)

try:  # isal's igzip is a drop-in, several times faster gzip
    from isal import igzip as _gzip_writer
except ImportError:  # pragma: no cover
    _gzip_writer = gzip
# Level 1: isal level 1 compresses as well as its default level 2 at about twice the speed (BENCHMARKS.md).
GZIP_LEVEL = 1
MB = 2**20
# A plain CSV larger than this is uploaded as gzip slices of about this many CSV bytes each (~30 MB of gzip at the
# usual 3:1): each slice is one PUT (below the multipart threshold), slices upload while the next one is compressed,
# and the server decompresses and loads them in parallel. Smaller files go as one gzip file (fewer requests).
SLICE_BYTES = int(os.environ.get("STORAGE_SYNC_IMPORT_SLICE_BYTES") or 96 * MB)
COMPRESS_WORKERS = min(2, os.cpu_count() or 1)  # slices compressed at a time
SLICES_AHEAD = 2  # finished slices uploading or waiting (disk: about SLICES_AHEAD + COMPRESS_WORKERS + 1 slices)
_READ_CHUNK = 4 * MB

logger = logging.getLogger(__name__)

UPLOAD_TAGS = ("storage-sync",)


@dataclass(frozen=True)
class InputTable:
    """A table in in/tables: a CSV file with a header, or a folder of headerless slices (``columns`` in manifest)."""

    file_name: str
    path: Path
    manifest: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def sliced(self) -> bool:
        return self.path.is_dir()

    @property
    def headerless(self) -> bool:
        return self.sliced or self.manifest.get("has_header") is False

    @property
    def manifest_columns(self) -> list[str] | None:
        columns = self.manifest.get("columns")
        if isinstance(columns, list) and columns:
            return [str(c) for c in columns]
        schema = self.manifest.get("schema")
        if isinstance(schema, list) and schema:
            return [str(s.get("name")) for s in schema if isinstance(s, Mapping) and s.get("name")]
        return None

    @property
    def manifest_primary_key(self) -> list[str]:
        pk = self.manifest.get("primary_key")
        if isinstance(pk, list):
            return [str(c) for c in pk]
        schema = self.manifest.get("schema")
        if isinstance(schema, list):
            return [str(s["name"]) for s in schema if isinstance(s, Mapping) and s.get("primary_key") and s.get("name")]
        return []

    @property
    def source_id(self) -> str | None:
        table_id = self.manifest.get("id")
        return table_id if isinstance(table_id, str) and TABLE_ID_RE.match(table_id) else None

    @property
    def stem(self) -> str:
        name = self.file_name
        for suffix in (".csv.gz", ".gz", ".csv"):
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        return table_name(name) if TABLE_ID_RE.match(name) else name

    def slices(self) -> list[Path]:
        return sorted(p for p in self.path.rglob("*") if p.is_file() and not p.name.startswith("."))

    def read_header(self) -> list[str]:
        opener = gzip.open if is_gzip(self.path) else open
        try:
            with opener(self.path, "rt", encoding="utf-8", newline="") as f:
                header = next(csv.reader(f), None)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise UserException(
                f"The header of input table in/tables/{self.file_name} cannot be read ({exc}); the file must be "
                f"UTF-8 CSV text: fix the input file."
            ) from None
        if not header:
            raise UserException(
                f"Input table in/tables/{self.file_name} is empty (no header row); fix the input mapping."
            )
        return header

    def metadata(self) -> list[dict]:
        pairs = metadata_pairs(self.manifest.get("metadata") or self.manifest.get("table_metadata"))
        description = self.manifest.get("description")
        if isinstance(description, str) and description and not any(p["key"] == "KBC.description" for p in pairs):
            pairs.append({"key": "KBC.description", "value": description})
        return pairs

    def column_metadata(self, columns: Sequence[str]) -> dict[str, list[dict]]:
        result = column_metadata_pairs(self.manifest.get("column_metadata"), columns)
        schema = self.manifest.get("schema")
        if not result and isinstance(schema, list):
            for item in schema:
                if not isinstance(item, Mapping) or item.get("name") not in columns:
                    continue
                pairs = metadata_pairs(item.get("metadata") or {})
                if isinstance(item.get("description"), str) and item["description"]:
                    pairs.append({"key": "KBC.description", "value": item["description"]})
                if pairs:
                    result[item["name"]] = pairs
        return result


def discover_inputs(tables_in: Path) -> dict[str, InputTable]:
    """Input tables by file name; folders without a manifest are skipped (as keboola.component does)."""
    found: dict[str, InputTable] = {}
    if not tables_in.is_dir():
        return found
    for path in sorted(tables_in.iterdir()):
        if path.name.startswith(".") or path.name.endswith(".manifest"):
            continue
        manifest_path = path.with_name(path.name + ".manifest")
        manifest: dict = {}
        if manifest_path.is_file():
            try:
                manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            except ValueError:
                raise UserException(
                    f"The manifest of input table in/tables/{path.name} is not valid JSON; fix the input mapping."
                ) from None
        elif path.is_dir():
            logger.warning("Folder in/tables/%s has no manifest; it is ignored.", path.name)
            continue
        found[path.name] = InputTable(path.name, path, manifest if isinstance(manifest, dict) else {})
    return found


def run(ctx: RunContext) -> None:
    ctx.state.save()  # import keeps no watermarks; carry the state over unchanged
    inputs = discover_inputs(ctx.tables_in)
    selected = _select(inputs, ctx.config.tables, ctx.config.defaults)
    if not selected:
        raise UserException("There are no input tables to import; add tables to the input mapping.")
    client = ctx.destination_client()
    bucket = ctx.config.require("destination").bucket

    plans = [(table, settings, _destination_id(table, settings, bucket)) for table, settings in selected]
    seen: dict[str, str] = {}
    for table, _settings, dest in plans:
        if dest in seen:
            raise UserException(
                f"Input tables {seen[dest]} and {table.file_name} would both be loaded into {dest}; give one of them "
                f"another destination."
            )
        seen[dest] = table.file_name

    logger.info("Importing %d table(s): %s", len(plans), ", ".join(f"{t.file_name} -> {d}" for t, _, d in plans))
    buckets = BucketEnsurer(client)
    for table, settings, dest in plans:
        import_table(ctx, client, buckets, table, settings, dest)
    ctx.state.save()
    logger.info("Import finished: %d table(s).", len(plans))


def _select(
    inputs: Mapping[str, InputTable], items: Sequence[TableSettings], defaults: TableSettings
) -> list[tuple[InputTable, TableSettings]]:
    if not items:
        return [(table, _for_input(defaults, name)) for name, table in inputs.items()]
    selected = []
    for item in items:
        table = inputs.get(item.source)
        if table is None:
            available = ", ".join(inputs) or "none"
            raise UserException(
                f"Input table {item.source} is not in in/tables (available: {available}); add it to the input "
                f"mapping or fix 'source'."
            )
        selected.append((table, item))
    return selected


def _for_input(defaults: TableSettings, name: str) -> TableSettings:
    return replace(defaults, source=name)


def _destination_id(table: InputTable, settings: TableSettings, default_bucket: str | None) -> str:
    name = table_name(table.source_id) if table.source_id else table.stem
    if settings.destination:
        if TABLE_ID_RE.match(settings.destination):
            return settings.destination
        if BUCKET_ID_RE.match(settings.destination):
            return f"{settings.destination}.{_valid_name(name, table)}"
    if default_bucket:
        return f"{default_bucket}.{_valid_name(name, table)}"
    if table.source_id:
        return table.source_id
    raise UserException(
        f"The destination of input table in/tables/{table.file_name} is unknown; set destination.bucket or the "
        f"table's 'destination' (a table id)."
    )


def _valid_name(name: str, table: InputTable) -> str:
    if not TABLE_NAME_RE.match(name):
        raise UserException(
            f"Cannot derive a table name from in/tables/{table.file_name}; set the table's 'destination' to a "
            f"table id such as in.c-bucket.table."
        )
    return name


def import_table(
    ctx: RunContext, client: Any, buckets: BucketEnsurer, table: InputTable, settings: TableSettings, dest: str
) -> None:
    where = f"in/tables/{table.file_name}"
    if table.headerless:
        columns = table.manifest_columns
        if not columns:
            raise UserException(
                f"Input table {where} has no header row and its manifest lists no 'columns'; fix the input mapping."
            )
    else:
        columns = table.read_header()

    configured_pk = list(settings.primary_key) if settings.primary_key is not None else None
    primary_key = configured_pk if configured_pk is not None else table.manifest_primary_key
    for column in primary_key:
        if column not in columns:
            raise UserException(
                f"The primary key column {column} is not a column of input table {where} "
                f"(columns: {', '.join(columns)}); fix 'primaryKey'."
            )

    buckets.ensure(bucket_of(dest), for_table=dest)
    with storage_errors("reading", dest):
        existing = client.tables.detail(dest)
    if existing is not None:
        existing_pk = list(existing.get("primaryKey") or [])
        if configured_pk is not None and sorted(configured_pk) != sorted(existing_pk):
            raise UserException(
                f"Table {dest} has primary key [{', '.join(existing_pk)}]; the configuration asks for "
                f"[{', '.join(configured_pk)}]; remove primaryKey or change it on the table."
            )
        if configured_pk is None and primary_key and sorted(primary_key) != sorted(existing_pk):
            logger.warning(
                "Table %s keeps its primary key [%s]; the input manifest of %s says [%s].",
                dest,
                ", ".join(existing_pk),
                where,
                ", ".join(primary_key),
            )

    progress = Progress(dest, "uploaded")
    with storage_errors("importing", dest):
        file_id, size, headerless = _upload(client, table, progress)
        logger.info("Table %s: uploaded %.2f MB in %.1f s.", dest, size / 2**20, progress.elapsed)
        if existing is None:
            logger.info("Table %s: creating it %s.", dest, pk_text(primary_key))
            if headerless:
                create_table_from_header(client, dest, columns, primary_key, tags=UPLOAD_TAGS)
                job = client.tables.load(dest, file_id, incremental=False, columns=columns)
                rows = result_rows(job)
            else:
                client.tables.create(bucket_of(dest), table_name(dest), file_id, primary_key)
                rows = None
        else:
            mode = "incremental" if settings.incremental else "full"
            logger.info("Table %s: %s load.", dest, mode)
            job = client.tables.load(
                dest, file_id, incremental=settings.incremental, columns=columns if headerless else None
            )
            rows = result_rows(job)
    copy_metadata(client, dest, ctx.metadata_provider, table.metadata(), table.column_metadata(columns))
    logger.info(progress.summary(f"imported from {where},", rows, size))


def _upload(client: Any, table: InputTable, progress: Progress) -> tuple[Any, int, bool]:
    """Upload the input table as one gzip file, as gzip slices cut from a large plain CSV, or its slices as a sliced
    file; returns (file id, bytes, whether the uploaded data is headerless and must be loaded with columns)."""
    name = table_name(table.stem) if table.stem else "table"
    if table.sliced:
        slices = table.slices()
        if not slices:
            raise UserException(f"Input table in/tables/{table.file_name} is an empty folder; fix the input mapping.")
        size = sum(p.stat().st_size for p in slices)
        prepared = client.files.prepare(f"{name}.csv", size_bytes=size, sliced=True, tags=UPLOAD_TAGS)
        client.transfer.upload_slices(prepared, slices, progress)
        return prepared["id"], size, True
    if is_gzip(table.path):
        size = table.path.stat().st_size
        prepared = client.files.prepare(f"{name}.csv.gz", size_bytes=size, tags=UPLOAD_TAGS)
        client.transfer.upload(prepared, table.path, progress)
        return prepared["id"], size, table.headerless
    if not table.headerless and table.path.stat().st_size > SLICE_BYTES:
        return _upload_gzip_slices(client, table, name, progress)
    fd, tmp_name = tempfile.mkstemp(prefix="storage-sync-upload-", suffix=".csv.gz")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with table.path.open("rb") as src, _gzip_writer.open(tmp, "wb", compresslevel=GZIP_LEVEL) as dst:
            copy_stream(src, dst)
        size = tmp.stat().st_size
        prepared = client.files.prepare(f"{name}.csv.gz", size_bytes=size, tags=UPLOAD_TAGS)
        client.transfer.upload(prepared, tmp, progress)
        return prepared["id"], size, table.headerless
    finally:
        tmp.unlink(missing_ok=True)


def _upload_gzip_slices(client: Any, table: InputTable, name: str, progress: Progress) -> tuple[Any, int, bool]:
    """Cut a plain CSV with a header into headerless gzip slices while uploading the finished ones (one PUT each)."""
    # sizeBytes is only informative; the gzip size is not known before the upload, so the CSV size is given
    prepared = client.files.prepare(
        f"{name}.csv.gz", size_bytes=table.path.stat().st_size, sliced=True, tags=UPLOAD_TAGS
    )
    tmp_dir = Path(tempfile.mkdtemp(prefix="storage-sync-slices-"))
    try:
        size = client.transfer.upload_slices_from(
            prepared, gzip_slices(table.path, tmp_dir, SLICE_BYTES), progress, ahead=SLICES_AHEAD, remove=True
        )
        return prepared["id"], size, True
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _last_boundary(data: bytes, odd: bool) -> int:
    """Index just after the last ``\n`` of ``data`` that is outside a quoted value, or -1; ``odd``: whether the
    bytes before ``data`` (since the last record boundary) hold an odd number of quote characters."""
    end = len(data)
    quotes_after = 0  # quote characters in data[pos + 1:end] as the search moves left
    total = data.count(b'"') + odd
    while (pos := data.rfind(b"\n", 0, end)) >= 0:
        quotes_after += data.count(b'"', pos + 1, end)
        if (total - quotes_after) % 2 == 0:
            return pos + 1
        end = pos
    return -1


def _first_boundary(data: bytes) -> int:
    """Index just after the first ``\n`` of ``data`` outside a quoted value (the end of the header), or -1."""
    start = 0
    quotes = 0
    while (pos := data.find(b"\n", start)) >= 0:
        quotes += data.count(b'"', start, pos)
        if quotes % 2 == 0:
            return pos + 1
        start = pos + 1
    return -1


def record_ranges(path: Path, slice_bytes: int, chunk: int = _READ_CHUNK) -> Iterator[tuple[int, int]]:
    """Byte ranges ``[start, end)`` of the CSV's records without its header, each cut after a record once it holds
    about ``slice_bytes`` bytes (quote-aware: a newline inside a quoted value is not a record end). One sequential
    pass that only counts quotes and finds newlines, in ``chunk``-sized reads. Always yields at least one range."""
    with path.open("rb") as src:
        head = b""
        while (cut := _first_boundary(head)) < 0:
            data = src.read(chunk)
            if not data:
                cut = len(head)  # a header with no record after it
                break
            head += data
        data, offset = head[cut:], cut  # ``data`` starts at file offset ``offset``
        del head
        start, written, odd, yielded = cut, 0, False, False
        while True:
            if not data:
                data = src.read(chunk)
                if not data:
                    break
                offset = src.tell() - len(data)
            if written + len(data) >= slice_bytes and (cut := _last_boundary(data, odd)) > 0:
                yield start, offset + cut
                yielded = True
                start, written, odd = offset + cut, 0, False
                data, offset = data[cut:], offset + cut
                continue
            written += len(data)
            odd ^= bool(data.count(b'"') & 1)
            data = b""
        end = src.tell()
        if end > start or not yielded:
            yield start, end


def _gzip_range(path: Path, bounds: tuple[int, int], target: Path, chunk: int) -> Path:
    start, end = bounds
    with path.open("rb") as src, _gzip_writer.open(target, "wb", compresslevel=GZIP_LEVEL) as out:
        src.seek(start)
        left = end - start
        while left > 0:
            data = src.read(min(chunk, left))
            if not data:
                raise UserException(f"The input file {path.name} changed while it was being read; run the job again.")
            out.write(data)
            left -= len(data)
    return target


def gzip_slices(
    path: Path, out_dir: Path, slice_bytes: int, chunk: int = _READ_CHUNK, workers: int = COMPRESS_WORKERS
) -> Iterator[Path]:
    """Yield gzip files of the CSV's records without the header, in order (``record_ranges``), compressed
    ``workers`` at a time (isal and zlib release the GIL). Memory holds a chunk per worker, whatever the file size;
    disk holds the slices being compressed plus those the caller has not consumed."""
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="gzip-slice") as pool:
        running: deque[Future] = deque()
        for index, bounds in enumerate(record_ranges(path, slice_bytes, chunk)):
            target = out_dir / f"part_{index:05d}.csv.gz"
            running.append(pool.submit(_gzip_range, path, bounds, target, chunk))
            if len(running) >= max(1, workers):
                yield running.popleft().result()
        while running:
            yield running.popleft().result()

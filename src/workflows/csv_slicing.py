"""Cutting a large plain CSV (with a header) into headerless gzip slices, quote-aware, compressed in parallel.

A plain CSV larger than ``SLICE_BYTES`` is uploaded as gzip slices of about this many CSV bytes each (~30 MB of
gzip at the usual 3:1): each slice is one PUT (below the multipart threshold), slices upload while the next one is
compressed, and the server decompresses and loads them in parallel.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from keboola.component.exceptions import UserException

from workflows.files import GZIP_LEVEL, MB, gzip_writer

SLICE_BYTES = int(os.environ.get("STORAGE_SYNC_IMPORT_SLICE_BYTES") or 96 * MB)
COMPRESS_WORKERS = min(2, os.cpu_count() or 1)  # slices compressed at a time
SLICES_AHEAD = 2  # finished slices uploading or waiting (disk: about SLICES_AHEAD + COMPRESS_WORKERS + 1 slices)
_READ_CHUNK = 4 * MB


def _quotes(data: bytes, quote: bytes, start: int = 0, end: int | None = None) -> int:
    """Enclosure characters in ``data[start:end]`` (none when the CSV has no enclosure)."""
    return data.count(quote, start, len(data) if end is None else end) if quote else 0


def _last_boundary(data: bytes, odd: bool, quote: bytes = b'"') -> int:
    """Index just after the last ``\n`` of ``data`` that is outside a quoted value, or -1; ``odd``: whether the
    bytes before ``data`` (since the last record boundary) hold an odd number of quote characters."""
    end = len(data)
    quotes_after = 0  # quote characters in data[pos + 1:end] as the search moves left
    total = _quotes(data, quote) + odd
    while (pos := data.rfind(b"\n", 0, end)) >= 0:
        quotes_after += _quotes(data, quote, pos + 1, end)
        if (total - quotes_after) % 2 == 0:
            return pos + 1
        end = pos
    return -1


def _first_boundary(data: bytes, quote: bytes = b'"') -> int:
    """Index just after the first ``\n`` of ``data`` outside a quoted value (the end of the header), or -1."""
    start = 0
    quotes = 0
    while (pos := data.find(b"\n", start)) >= 0:
        quotes += _quotes(data, quote, start, pos)
        if quotes % 2 == 0:
            return pos + 1
        start = pos + 1
    return -1


def record_ranges(
    path: Path, slice_bytes: int, chunk: int = _READ_CHUNK, quote: bytes = b'"'
) -> Iterator[tuple[int, int]]:
    """Byte ranges ``[start, end)`` of the CSV's records without its header, each cut after a record once it holds
    about ``slice_bytes`` bytes (quote-aware: a newline inside a quoted value is not a record end). One sequential
    pass that only counts quotes and finds newlines, in ``chunk``-sized reads. Always yields at least one range."""
    with path.open("rb") as src:
        head = b""
        while (cut := _first_boundary(head, quote)) < 0:
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
            if written + len(data) >= slice_bytes and (cut := _last_boundary(data, odd, quote)) > 0:
                yield start, offset + cut
                yielded = True
                start, written, odd = offset + cut, 0, False
                data, offset = data[cut:], offset + cut
                continue
            written += len(data)
            odd ^= bool(_quotes(data, quote) & 1)
            data = b""
        end = src.tell()
        if end > start or not yielded:
            yield start, end


def _gzip_range(path: Path, bounds: tuple[int, int], target: Path, chunk: int) -> Path:
    start, end = bounds
    with path.open("rb") as src, gzip_writer.open(target, "wb", compresslevel=GZIP_LEVEL) as out:
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
    path: Path,
    out_dir: Path,
    slice_bytes: int,
    chunk: int = _READ_CHUNK,
    workers: int = COMPRESS_WORKERS,
    quote: bytes = b'"',
) -> Iterator[Path]:
    """Yield gzip files of the CSV's records without the header, in order (``record_ranges``), compressed
    ``workers`` at a time (isal and zlib release the GIL). Memory holds a chunk per worker, whatever the file size;
    disk holds the slices being compressed plus those the caller has not consumed."""
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="gzip-slice") as pool:
        running: deque[Future] = deque()
        for index, bounds in enumerate(record_ranges(path, slice_bytes, chunk, quote)):
            target = out_dir / f"part_{index:05d}.csv.gz"
            running.append(pool.submit(_gzip_range, path, bounds, target, chunk))
            if len(running) >= max(1, workers):
                yield running.popleft().result()
        while running:
            yield running.popleft().result()

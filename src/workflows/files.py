"""Local files: gzip detection and writing, stream copies, removal of partial outputs, header-only CSVs."""

from __future__ import annotations

import csv
import gzip
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

try:  # isal's igzip is a drop-in, several times faster gzip
    from isal import igzip as gzip_writer
except ImportError:  # pragma: no cover
    gzip_writer = gzip

MB = 2**20
# Level 1: isal level 1 compresses as well as its default level 2 at about twice the speed (BENCHMARKS.md).
GZIP_LEVEL = 1
_COPY_BUFFER = 1 * MB


def is_gzip(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(2) == b"\x1f\x8b"


def copy_stream(src: BinaryIO, dst: BinaryIO) -> int:
    """Copy file objects in 1 MB chunks; returns the byte count."""
    total = 0
    while True:
        chunk = src.read(_COPY_BUFFER)
        if not chunk:
            return total
        dst.write(chunk)
        total += len(chunk)


def gzip_file(source: Path, target: Path) -> int:
    """Compress ``source`` into ``target`` (streamed); returns the size of ``target``."""
    with source.open("rb") as src, gzip_writer.open(target, "wb", compresslevel=GZIP_LEVEL) as dst:
        copy_stream(src, dst)
    return target.stat().st_size


def write_header_csv(path: Path, columns: Sequence[str]) -> Path:
    """A gzipped CSV holding only the header row (to create a table whose data is headerless slices)."""
    with gzip.open(path, "wt", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator="\n", quoting=csv.QUOTE_ALL).writerow(list(columns))
    return path


def remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

"""Import of a large plain CSV: quote-aware cutting into headerless gzip slices (workflows.csv_slicing.gzip_slices)."""

import csv
import gzip
import io
import random

import pytest

from workflows.csv_slicing import gzip_slices


def _csv_bytes(rows: int, seed: int, line_end: str = "\n", trailing_newline: bool = True) -> bytes:
    rnd = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=line_end, quoting=csv.QUOTE_MINIMAL)
    writer.writerow(["id", "text", "note"])
    for i in range(rows):
        text = rnd.choice(["plain", 'say "hi"', "multi\nline\nvalue", "comma, inside", "", '"', "\r\nx\n"])
        writer.writerow([i, text, "n" * rnd.randint(0, 40)])
    data = out.getvalue().encode()
    return data if trailing_newline else data.rstrip(b"\r\n")


@pytest.mark.parametrize("line_end", ["\n", "\r\n"])
@pytest.mark.parametrize(("slice_bytes", "chunk"), [(1, 7), (50, 13), (300, 64), (1000, 4096), (10**9, 256)])
@pytest.mark.parametrize("trailing_newline", [True, False])
@pytest.mark.parametrize("workers", [1, 3])
def test_slices_are_whole_records_without_header(tmp_path, line_end, slice_bytes, chunk, trailing_newline, workers):
    data = _csv_bytes(300, seed=slice_bytes + chunk, line_end=line_end, trailing_newline=trailing_newline)
    source = tmp_path / "in.csv"
    source.write_bytes(data)
    out = tmp_path / "slices"
    out.mkdir()
    paths = list(gzip_slices(source, out, slice_bytes, chunk=chunk, workers=workers))
    assert paths == sorted(paths)  # in record order, whatever finished first
    parts = [gzip.decompress(p.read_bytes()) for p in paths]
    assert all(parts)
    header_end = data.index(b"\n") + 1
    assert b"".join(parts) == data[header_end:]
    expected = list(csv.reader(io.StringIO(data[header_end:].decode(), newline="")))
    records = [row for part in parts for row in csv.reader(io.StringIO(part.decode(), newline=""))]
    assert records == expected  # every slice parses on its own: no record is cut
    if slice_bytes < 100:
        assert len(paths) > 10
    if slice_bytes >= 10**9:
        assert len(paths) == 1


def test_header_only_yields_one_empty_slice(tmp_path):
    source = tmp_path / "in.csv"
    source.write_bytes(b'"a","b\nc"\n')
    out = tmp_path / "slices"
    out.mkdir()
    paths = list(gzip_slices(source, out, 10, chunk=3))
    assert [gzip.decompress(p.read_bytes()) for p in paths] == [b""]

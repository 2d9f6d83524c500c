"""transfer/records.py: CSV records counted while a gzip slice streams through, however the stream is chunked."""

import csv
import gzip
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from storage_api.transfer.records import RecordCounter

values = st.text(alphabet='ab,"\n\r ', max_size=6)


def _csv(rows) -> bytes:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n", quoting=csv.QUOTE_ALL).writerows(rows)
    return text.getvalue().encode()


def _count(data: bytes, chunk: int) -> int:
    counter = RecordCounter(io.BytesIO(data))
    while counter.read(chunk):
        pass
    return counter.finish()


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.lists(values, min_size=1, max_size=3), max_size=20), chunk=st.integers(1, 64))
def test_counts_records_of_gzip_and_plain_slices_in_any_chunking(rows, chunk):
    data = _csv(rows)
    assert _count(gzip.compress(data), chunk) == len(rows)
    assert _count(data, chunk) == len(rows)


def test_multi_member_gzip_and_a_last_record_without_newline():
    data = gzip.compress(_csv([["a"], ["b"]])) + gzip.compress(b'"c"\n"d"')
    assert _count(data, 7) == 4


def test_the_wrapper_cannot_be_rewound():
    counter = RecordCounter(io.BytesIO(b'"a"\n'))
    assert not counter.seekable() and not hasattr(counter, "seek")

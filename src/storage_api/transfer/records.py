"""Counting the CSV records of a gzip slice while it streams past (a copy never decompresses to disk).

Storage exports are RFC-4180 with every value quoted: a record ends at a newline with an even number of quote
characters before it (a doubled quote counts twice, so escapes keep the parity).
"""

from __future__ import annotations

import zlib
from typing import BinaryIO

_GZIP = 16 + zlib.MAX_WBITS


class RecordCounter:
    """A read-only wrapper of a gzip (or plain) CSV stream that counts the records read through it."""

    def __init__(self, stream: BinaryIO):
        self._stream = stream
        self._inflate: zlib._Decompress | None = None
        self._plain = False
        self._head = b""
        self._in_quotes = False
        self._pending = False  # bytes after the last record end (a last record without a newline)
        self.records = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        if data:
            self._feed(data)
        return data

    def seekable(self) -> bool:
        return False  # a reread would be counted twice

    def __getattr__(self, name):  # close/... of the wrapped stream; never seek
        if name in ("seek", "tell"):
            raise AttributeError(name)
        return getattr(self._stream, name)

    def finish(self) -> int:
        """The record count once the stream is read to its end."""
        if self._head:
            self._plain = True
            self._count(self._head)
        if self._inflate is not None:
            self._count(self._inflate.flush())
        if self._pending:
            self.records += 1
            self._pending = False
        return self.records

    def _feed(self, data: bytes) -> None:
        if self._inflate is None and not self._plain:
            data = self._head + data
            if len(data) < 2:
                self._head = data  # the gzip magic may arrive one byte at a time
                return
            self._head = b""
            if data[:2] == b"\x1f\x8b":
                self._inflate = zlib.decompressobj(_GZIP)
            else:
                self._plain = True
        if self._plain:
            self._count(data)
            return
        while data:
            self._count(self._inflate.decompress(data))
            data = self._inflate.unused_data  # a multi-member gzip: the next member starts here
            if data:
                self._count(self._inflate.flush())
                self._inflate = zlib.decompressobj(_GZIP)

    def _count(self, text: bytes) -> None:
        if not text:
            return
        if not self._in_quotes and b'"' not in text:
            self.records += text.count(b"\n")
            self._pending = not text.endswith(b"\n")
            return
        start = 0
        while (newline := text.find(b"\n", start)) >= 0:
            if text.count(b'"', start, newline) & 1:
                self._in_quotes = not self._in_quotes
            if not self._in_quotes:
                self.records += 1
            start = newline + 1
        if text.count(b'"', start) & 1:
            self._in_quotes = not self._in_quotes
        self._pending = start < len(text)

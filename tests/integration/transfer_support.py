"""What the transfer integration tests share: the providers to run on, progress recorders, and ``HttpCuts``, which
cuts GET bodies mid-stream in urllib3 (also used by the reliability campaign, tests/reliability)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import urllib3
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.response import HTTPResponse

from emulator.filestorage.azure import azurite_binary

AZURITE_MISSING = azurite_binary() is None
PROVIDERS = [
    pytest.param(
        "azure",
        marks=pytest.mark.skipif(
            AZURITE_MISSING, reason="Azurite is not installed (node_modules/.bin/azurite-blob; run `npm ci`)"
        ),
    ),
    "gcp",
]
ALL_PROVIDERS = ["aws", *PROVIDERS]  # for what every adapter implements alike (resumed reads)


class Totals:
    """A progress callback summing the byte deltas it receives (from many threads)."""

    def __init__(self):
        self.total = 0
        self.lock = threading.Lock()

    def __call__(self, amount: int) -> None:
        with self.lock:
            self.total += amount


class Deltas(Totals):
    """Progress total plus every delta (a negative one: a restarted slice took its bytes back)."""

    def __init__(self):
        super().__init__()
        self.deltas: list[int] = []

    def __call__(self, amount: int) -> None:
        with self.lock:
            self.total += amount
            self.deltas.append(amount)


@dataclass
class Get:
    """One GET of a watched object, as sent and as answered."""

    path: str
    range: str | None  # Range (S3, GCS) or x-ms-range (Azure) header
    condition: str | None  # If-Match (S3, Azure) or ifGenerationMatch (GCS) of the request
    status: int
    version: str | None  # ETag / X-Goog-Generation of the answer
    length: int | None  # Content-Length of the answer
    start: int  # first byte of the answer
    cut_at: int | None = None  # absolute offset where its body was cut


class HttpCuts:
    """Cuts GET bodies mid-stream in urllib3 and records the GETs of the objects it watches.

    urllib3 is the HTTP layer under botocore, azure-core (requests) and google-auth's AuthorizedSession (requests)
    alike, so one injection serves the three SDKs. ``arm(match, *cuts)`` watches the GETs whose (unquoted) URL
    path ``match`` accepts: the next watched GET whose body is longer than ``cuts[0]`` bytes delivers that many
    bytes, then closes its connection and raises urllib3's ProtocolError ("connection broken"), what a server dying
    mid-body produces; the following one takes ``cuts[1]``, and so on. ``on_cut`` runs at the moment of each cut
    (e.g. to overwrite the object before the client resumes); ``flip`` corrupts the byte at that offset of the
    next watched GET instead. ``writes`` counts the other requests (PUT, POST ...) sent while armed.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.disarm()

    def arm(self, match, *cuts: int, on_cut=None, flip: int | None = None) -> None:
        with self.lock:
            self.match, self.cuts, self.on_cut, self.flip = match, list(cuts), on_cut, flip
            self.gets: list[Get] = []
            self.writes = 0

    def disarm(self) -> None:
        self.arm(lambda path: False)
        self.match = None

    @property
    def ranges(self) -> list[str | None]:
        return [get.range for get in self.gets]

    # urllib3 hooks ------------------------------------------------------------------------------------------------
    def urlopen(self, original, pool, method, url, body=None, headers=None, *args, **kwargs):
        response = original(pool, method, url, body, headers, *args, **kwargs)
        if self.match is None:
            return response
        parts = urlsplit(url)
        sent = {str(k).lower(): v.decode() if isinstance(v, bytes) else v for k, v in (headers or {}).items()}
        with self.lock:
            if method != "GET":
                if method != "HEAD":
                    self.writes += 1
                return response
            if not self.match(unquote(parts.path)):
                return response
            answered = response.headers
            length = answered.get("Content-Length")
            start = (
                int(answered.get("Content-Range", "bytes 0-").split()[1].split("-")[0]) if response.status == 206 else 0
            )
            get = Get(
                path=unquote(parts.path),
                range=sent.get("range") or sent.get("x-ms-range"),
                condition=sent.get("if-match") or (parse_qs(parts.query).get("ifGenerationMatch") or [None])[0],
                status=response.status,
                version=answered.get("ETag") or answered.get("X-Goog-Generation"),
                length=int(length) if length is not None else None,
                start=start,
            )
            self.gets.append(get)
            if response.status in (200, 206) and get.length is not None:
                if self.flip is not None and self.flip < get.length:
                    response._test_flip, self.flip = self.flip, None
                elif self.cuts and self.cuts[0] < get.length:
                    response._test_cut_left = self.cuts.pop(0)
                    response._test_get = get
        return response

    def read(self, original, response, amt=None, *args, **kwargs):
        left = getattr(response, "_test_cut_left", None)
        flip = getattr(response, "_test_flip", None)
        if left is None and flip is None:
            return original(response, amt, *args, **kwargs)
        if flip is not None:
            data = original(response, amt, *args, **kwargs)
            done = getattr(response, "_test_read", 0)
            response._test_read = done + len(data)
            if done <= flip < done + len(data):
                data = data[: flip - done] + bytes([data[flip - done] ^ 0xFF]) + data[flip - done + 1 :]
                response._test_flip = None
            return data
        if left <= 0:
            response._test_cut_left = None
            get = response._test_get
            get.cut_at = get.start + getattr(response, "_test_read", 0)
            if self.on_cut is not None:
                self.on_cut()
            response.close()  # the connection dies with the server
            raise urllib3.exceptions.ProtocolError("Connection broken: injected cut in the middle of the body")
        data = original(response, left if amt is None or amt < 0 else min(amt, left), *args, **kwargs)
        response._test_cut_left = left - len(data)
        response._test_read = getattr(response, "_test_read", 0) + len(data)
        return data


def install_http_cuts(monkeypatch) -> HttpCuts:
    """An ``HttpCuts`` hooked into urllib3 (undone with ``monkeypatch``); also used by the reliability campaign."""
    cuts = HttpCuts()
    urlopen, read = HTTPConnectionPool.urlopen, HTTPResponse.read
    monkeypatch.setattr(HTTPConnectionPool, "urlopen", lambda pool, *a, **kw: cuts.urlopen(urlopen, pool, *a, **kw))
    monkeypatch.setattr(HTTPResponse, "read", lambda response, *a, **kw: cuts.read(read, response, *a, **kw))
    return cuts

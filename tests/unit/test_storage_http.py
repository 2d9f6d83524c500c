"""StorageHttp against a real local HTTP server with scripted responses (no mocking of requests)."""

from __future__ import annotations

import json
import logging
import socket
import struct
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from storage_api import ConnectionFailed, RetryPolicy, StorageApiError, StorageHttp
from storage_api.buckets import Buckets
from storage_api.jobs import Jobs
from storage_api.tables import Tables

TOKEN = "123-secret-token-abcdef"
RESET = "reset"


@dataclass
class Received:
    method: str
    path: str
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16  # headers and body in one write: no Nagle / delayed-ACK stalls

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        server: ScriptedServer = self.server.owner
        server.received.append(Received(self.command, self.path, dict(self.headers), body))
        reply = server.replies.popleft() if server.replies else (418, {"error": "unscripted request"}, {})
        if reply == RESET:
            # RST instead of FIN: the client sees a reset connection after sending its request
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        status, payload, headers = reply
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _handle

    def log_message(self, *args) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # resets provoke errors in the handler thread; they are the point of the test


class ScriptedServer:
    """Answers requests, in order, with scripted replies: (status, json_or_bytes, headers) or RESET."""

    def __init__(self, port: int = 0):
        self.replies: deque = deque()
        self.received: list[Received] = []
        self.port = port
        self._httpd: _QuietServer | None = None

    def start(self) -> ScriptedServer:
        self._httpd = _QuietServer(("127.0.0.1", self.port), _Handler)
        self._httpd.owner = self
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, args=(0.01,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, *replies) -> None:
        for reply in replies:
            if reply == RESET or len(reply) == 3:
                self.replies.append(reply)
            else:
                self.replies.append((*reply, {}))


class FakeTime:
    """Clock + sleep for StorageHttp: sleeping advances the clock, so retry tests are instant."""

    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


POLICY = RetryPolicy(max_attempts=8, max_total=600, backoff_initial=0.5, backoff_max=4, retry_after_max=60)


@pytest.fixture
def server():
    srv = ScriptedServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def fake_time():
    return FakeTime()


@pytest.fixture
def http(server, fake_time):
    client = StorageHttp(
        server.url, TOKEN, run_id="run.123", retry=POLICY, clock=fake_time.clock, sleep=fake_time.sleep
    )
    yield client
    client.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# requests -------------------------------------------------------------------------------------------------------
def test_headers_base_url_and_json_body(server, http):
    server.script((202, {"id": 1, "status": "waiting"}))
    assert http.post("tables/in.c-a.t/export-async", {"columns": "a,b"}, idempotent=True) == {
        "id": 1,
        "status": "waiting",
    }
    request = server.received[0]
    assert (request.method, request.path) == ("POST", "/v2/storage/tables/in.c-a.t/export-async")
    assert request.headers["X-StorageApi-Token"] == TOKEN
    assert request.headers["X-KBC-RunId"] == "run.123"
    assert request.headers["Accept-Encoding"] == "gzip"
    assert request.headers["User-Agent"].startswith("keboola-storage-sync/")
    assert request.headers["Content-Type"] == "application/json"
    assert request.json() == {"columns": "a,b"}


def test_get_sends_params_in_query_string(server, http):
    server.script((200, [{"id": "in.c-a"}]))
    assert http.get("buckets", params={"include": "metadata"}) == [{"id": "in.c-a"}]
    assert server.received[0].path == "/v2/storage/buckets?include=metadata"


# retries --------------------------------------------------------------------------------------------------------
def test_transient_statuses_are_retried_and_retry_after_honoured(server, http, fake_time):
    server.script(
        (500, {"error": "Internal"}),
        (502, b"<html>bad gateway</html>"),
        (503, {"status": "maintenance", "reason": "upgrade"}, {"Retry-After": "7"}),
        (429, {"error": "Too many"}, {"Retry-After": "3"}),
        (504, {"error": "Timeout"}),
        (200, {"ok": True}),
    )
    assert http.get("tokens/verify") == {"ok": True}
    assert len(server.received) == 6
    waits = fake_time.sleeps
    assert waits[2:4] == [7.0, 3.0]  # Retry-After exactly
    # exponential backoff with jitter: base 0.5, 1, ..., 4 (capped), each within [base/2, base]
    assert 0.25 <= waits[0] <= 0.5 and 0.5 <= waits[1] <= 1.0 and 2.0 <= waits[4] <= 4.0


def test_retry_after_is_capped(server, http, fake_time):
    server.script((429, {"error": "slow down"}, {"Retry-After": "3600"}), (200, {}))
    http.get("buckets")
    assert fake_time.sleeps == [60.0]


def test_attempts_are_bounded(server, http, fake_time):
    server.script(*[(500, {"error": "down", "code": "internal"})] * 20)
    with pytest.raises(StorageApiError) as caught:
        http.get("buckets")
    assert len(server.received) == POLICY.max_attempts
    assert caught.value.status == 500 and not caught.value.is_user_error


def test_total_retry_time_is_bounded(server, fake_time):
    http = StorageHttp(
        server.url,
        TOKEN,
        retry=RetryPolicy(max_attempts=50, max_total=10),
        clock=fake_time.clock,
        sleep=fake_time.sleep,
    )
    server.script(*[(503, {"error": "busy"}, {"Retry-After": "4"})] * 20)
    with pytest.raises(StorageApiError):
        http.get("buckets")
    assert fake_time.sleeps == [4.0, 4.0]  # a third wait would end past the 10 s budget
    assert len(server.received) == 3


def test_501_is_not_retried(server, http):
    server.script((501, {"error": "Not implemented"}))
    with pytest.raises(StorageApiError) as caught:
        http.get("tables")
    assert caught.value.status == 501 and len(server.received) == 1


@pytest.mark.parametrize(
    "status,code",
    [(400, "storage.tables.validation"), (403, "accessDenied"), (404, "storage.tables.notFound")],
)
def test_client_errors_are_typed_and_not_retried(server, http, status, code):
    message = 'The table "t" was not found in the bucket "in.c-a"'
    server.script((status, {"error": message, "code": code, "exceptionId": "exception-42"}))
    with pytest.raises(StorageApiError) as caught:
        http.get("tables/in.c-a.t")
    error = caught.value
    assert len(server.received) == 1
    assert (error.status, error.code, error.exception_id) == (status, code, "exception-42")
    assert error.is_user_error and message in error.message and code in str(error)


def test_invalid_token_message_is_actionable(server, http):
    server.script((401, {"error": "Invalid access token", "code": "storage.tokenInvalid"}))
    with pytest.raises(StorageApiError) as caught:
        http.get("tokens/verify")
    assert str(caught.value).startswith(
        f"The Storage API token for {server.url} is invalid or expired (storage.tokenInvalid). Create a new token"
    )
    assert caught.value.is_user_error


def test_maintenance_and_non_json_bodies_are_readable(server, http):
    server.script(*[(503, {"status": "maintenance", "reason": "Upgrade", "estimatedEndTime": "12:00"})] * 8)
    with pytest.raises(StorageApiError) as caught:
        http.get("buckets")
    assert "under maintenance (Upgrade, estimated end 12:00)" in str(caught.value)
    assert caught.value.code == "maintenance"

    server.script((400, b"plain text problem"))
    with pytest.raises(StorageApiError, match="plain text problem"):
        http.get("buckets")


@pytest.mark.parametrize("failure", [(500, {"error": "boom"}), (502, b"<html/>"), (504, {}), RESET])
def test_job_creating_post_is_not_replayed_when_it_may_have_run(server, http, failure):
    server.script(failure if failure == RESET else (*failure, {}), (202, {"id": 2}))
    with pytest.raises(StorageApiError) as caught:
        http.post("tables/in.c-a.t/import-async", {"dataFileId": 1}, idempotent=False)
    assert len(server.received) == 1
    assert caught.value.maybe_applied


@pytest.mark.parametrize("refusal", [(503, {"error": "busy"}, {"Retry-After": "1"}), (429, {}, {"Retry-After": "2"})])
def test_job_creating_post_is_retried_when_refused(server, http, refusal):
    server.script(refusal, (202, {"id": 2, "status": "waiting"}))
    assert http.post("tables/in.c-a.t/import-async", {"dataFileId": 1}, idempotent=False)["id"] == 2
    assert len(server.received) == 2


def test_job_creating_post_is_retried_after_connection_refused(fake_time):
    late = ScriptedServer(port=_free_port())  # nothing listens yet: connection refused
    late.script((202, {"id": 3, "status": "waiting"}))

    def sleep(seconds: float) -> None:
        fake_time.sleep(seconds)
        if late._httpd is None:
            late.start()

    http = StorageHttp(late.url, TOKEN, retry=POLICY, clock=fake_time.clock, sleep=sleep)
    try:
        assert http.post("tables/in.c-a.t/import-async", {"dataFileId": 1}, idempotent=False)["id"] == 3
    finally:
        late.stop()
    assert len(fake_time.sleeps) == 1 and len(late.received) == 1


def test_idempotent_requests_are_retried_after_reset(server, http):
    server.script(RESET, (200, {"id": "in.c-a"}))
    assert http.get("buckets/in.c-a") == {"id": "in.c-a"}
    server.script(RESET, (201, {"id": 9}))
    assert http.post("files/prepare", {"name": "x"}, idempotent=True) == {"id": 9}
    assert len(server.received) == 4


@pytest.mark.parametrize("url", ["http://storage.invalid", "connection.keboola.com"])
def test_bad_url_is_a_user_error_without_retries(fake_time, url):
    http = StorageHttp(url, TOKEN, retry=POLICY, clock=fake_time.clock, sleep=fake_time.sleep)
    with pytest.raises(ConnectionFailed) as caught:
        http.get("tokens/verify")
    assert caught.value.is_user_error and url in str(caught.value)
    assert fake_time.sleeps == []


def test_token_never_in_errors_or_logs(server, http, caplog):
    caplog.set_level(logging.DEBUG)
    echo = {"error": f"Token {TOKEN} failed", "code": "internal"}
    server.script(*[(500, echo)] * 3, (401, {"error": f"Invalid access token {TOKEN}"}))
    with pytest.raises(StorageApiError) as caught:
        http.get("buckets")
    with pytest.raises(StorageApiError) as caught_401:
        http.get("tokens/verify")
    for error in (caught.value, caught_401.value):
        assert TOKEN not in str(error) and TOKEN not in repr(error.args)
    assert any(r.levelno == logging.WARNING and "GET buckets" in r.getMessage() for r in caplog.records)
    assert all(TOKEN not in record.getMessage() for record in caplog.records)


def test_retry_is_logged_with_method_path_status_and_wait(server, http, caplog):
    server.script((503, {"error": "busy"}, {"Retry-After": "5"}), (200, {}))
    with caplog.at_level(logging.WARNING, logger="storage_api.http"):
        http.get("jobs/12")
    (record,) = caplog.records
    assert record.getMessage() == "Storage API GET jobs/12 failed (HTTP 503); retry 1 of 7 in 5.0 s"


# resources built on StorageHttp ----------------------------------------------------------------------------------
@pytest.fixture
def tables(http, fake_time):
    return Tables(http, Jobs(http, clock=fake_time.clock, sleep=fake_time.sleep, reconcile_delay=0))


def _job(job_id, status, **fields):
    return {"id": job_id, "status": status, "operationName": "tableImport", "tableId": "in.c-a.t", **fields}


def test_load_reconciles_an_ambiguous_failure_with_the_created_job(server, tables):
    created = _job(7, "processing", operationParams={"source": {"type": "file", "fileId": 55}})
    other = _job(6, "success", operationParams={"source": {"type": "file", "fileId": 54}})
    server.script(
        (500, {"error": "gateway lost the answer"}),
        (200, [created, other]),
        (200, {**created, "status": "success", "results": {"importedColumns": ["a"]}}),
    )
    job = tables.load("in.c-a.t", 55, incremental=True, columns=["a"])
    assert job["id"] == 7 and job["results"]["importedColumns"] == ["a"]
    assert [(r.method, r.path) for r in server.received] == [
        ("POST", "/v2/storage/tables/in.c-a.t/import-async"),
        ("GET", "/v2/storage/jobs?limit=50"),
        ("GET", "/v2/storage/jobs/7"),
    ]
    assert server.received[0].json() == {
        "dataFileId": 55,
        "incremental": True,
        "withoutHeaders": False,
        "columns": ["a"],
    }


def test_load_resends_when_no_job_was_created(server, tables):
    server.script(
        RESET,
        (200, [_job(6, "success", operationParams={"source": {"fileId": 54}})]),
        (202, _job(8, "waiting")),
        (200, _job(8, "success")),
    )
    assert tables.load("in.c-a.t", 55, incremental=False)["id"] == 8
    assert [r.method for r in server.received] == ["POST", "GET", "POST", "GET"]


def test_export_and_create_encode_lists_as_the_api_expects(server, tables):
    export_job = {"id": 1, "status": "success", "operationName": "tableExport", "results": {"file": {"id": 99}}}
    create_job = {"id": 2, "status": "success", "operationName": "tableCreate", "results": {"id": "in.c-a.new"}}
    server.script(
        (202, export_job),
        (202, create_job),
        (200, {"id": "in.c-a.new", "columns": ["id", "name"]}),
    )
    result = tables.export("in.c-a.t", columns=["id", "name"], changed_since=1700000000, limit=10)
    assert (result.file_id, result.cache_hit, result.job["id"]) == (99, False, 1)
    assert server.received[0].json() == {"gzip": True, "columns": "id,name", "changedSince": "1700000000", "limit": 10}
    table = tables.create("in.c-a", "new", 5, primary_key=["id", "name"])
    assert table["columns"] == ["id", "name"]
    assert server.received[1].json() == {"name": "new", "dataFileId": 5, "primaryKey": "id,name"}


def test_detail_is_none_when_missing(server, http, tables):
    server.script(
        (404, {"error": "not found", "code": "storage.tables.notFound"}),
        (404, {"error": "not found", "code": "storage.buckets.notFound"}),
    )
    assert tables.detail("in.c-a.missing") is None
    assert Buckets(http).detail("in.c-missing") is None

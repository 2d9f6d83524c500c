"""The GCS server subprocess of the GCP adapter (``gcs.py``), and the bearer tokens and signed URLs both sides share.

The server is gcp-storage-emulator's storage and request handlers, run by ``serve()`` with three changes (the
stock server is single-threaded and holds whole objects in memory):

- a threading HTTP server; the stock handlers, which are not thread-safe, run under one lock;
- object downloads (media GETs, ranged or not) stream from the object's file on disk with ``sendfile``, outside the
  lock, so a slow reader never blocks other requests (a GCS -> GCS copy reads and writes at the same time);
- resumable-upload chunks are appended to a part file as they arrive (the stock handler re-reads and rewrites the
  whole upload per chunk) with incremental MD5/CRC32C; the finished part file is renamed into place;

and it checks the adapter's tokens (``mint_token`` / ``verify_token``, HMAC with the per-run secret passed in
``SECRET_ENV``) and signed URLs. This module loads only the standard library (and gcp_storage_emulator inside
``serve``): the launcher in ``gcs.py`` imports it without the rest of the emulator.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

SECRET_ENV = "KBC_GCS_EMULATOR_SECRET"
_IO_CHUNK = 2**20


# tokens and signed URLs ----------------------------------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mint_token(secret: bytes, *, bucket: str, prefix: str, mode: str, ttl: float, now: float | None = None) -> str:
    """Bearer token for ``bucket``/``prefix*``; ``mode`` "r" (read), "w" (read + write) or "admin" (everything)."""
    claims = {
        "b": bucket,
        "p": prefix,
        "m": mode,
        "e": int((time.time() if now is None else now) + ttl),
        "n": secrets.token_hex(8),  # two tokens issued in the same second still differ
    }
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())
    return f"ya29.kbc.{payload}.{signature}"


def verify_token(secret: bytes, token: str, now: float | None = None) -> dict:
    """Claims of a valid token; raises ``PermissionError`` (forged, malformed or expired)."""
    try:
        scheme, marker, payload, signature = token.split(".")
        if (scheme, marker) != ("ya29", "kbc"):
            raise ValueError
        expected = _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(expected, signature):
            raise ValueError
        claims = json.loads(_unb64(payload))
    except ValueError:
        raise PermissionError("Invalid Credentials") from None
    if (time.time() if now is None else now) >= claims["e"]:
        raise PermissionError("Invalid Credentials: the access token has expired")
    return claims


def url_signature(secret: bytes, bucket: str, name: str, date: str, expires: str) -> str:
    message = f"GET\n/{bucket}/{name}\n{date}\n{expires}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


# the server ----------------------------------------------------------------------------------------------------------
_MEDIA_ROUTES = [
    re.compile(r"^/download/storage/v1/b/(?P<bucket>[-.\w]+)/o/(?P<name>.*[^/]+)$"),
    re.compile(r"^/storage/v1/b/(?P<bucket>[-.\w]+)/o/(?P<name>.*[^/]+)$"),  # with alt=media
    re.compile(r"^/b/(?P<bucket>[-.\w]+)/o/(?P<name>.*[^/]+)$"),  # with alt=media
    re.compile(r"^/(?P<bucket>[-.\w]+)/(?P<name>.*[^/]+)$"),  # XML API / signed URLs
]
_UPLOAD_ROUTE = re.compile(r"^/upload/storage/v1/b/(?P<bucket>[-.\w]+)/o$")
_OBJECT_ROUTE = re.compile(r"^(?:/storage/v1)?/b/(?P<bucket>[-.\w]+)/o/(?P<name>[^/]+)(?P<rest>/.*)?$")
_LIST_ROUTE = re.compile(r"^(?:/storage/v1)?/b/(?P<bucket>[-.\w]+)/o$")
_BUCKET_ROUTE = re.compile(r"^(?:/(?:upload|download|batch))?(?:/storage/v1)?/b/(?P<bucket>[-.\w]+)(?:/.*)?$")
_RANGE = re.compile(r"^\s*bytes=(?P<start>\d*)-(?P<end>\d*)\s*$")


@dataclass
class _Upload:
    """A resumable upload in progress: bytes appended to ``path`` as they arrive, checksums kept incrementally."""

    path: Path
    received: int = 0
    md5: object = field(default_factory=hashlib.md5)
    crc32c: object = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address, storage, secret: bytes, data_dir: Path):
        super().__init__(address, _Handler)
        self.storage = storage
        self.secret = secret
        self.objects_root = Path(data_dir) / _storage_dir()
        self.parts_dir = Path(data_dir) / "_kbc_parts"
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()  # the stock Storage (dicts + a .meta JSON file) is not thread-safe
        self.uploads: dict[str, _Upload] = {}


def _storage_dir() -> str:
    from gcp_storage_emulator.settings import STORAGE_DIR

    return STORAGE_DIR


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "kbc-gcs-emulator"
    protocol_version = "HTTP/1.0"  # one request per connection, like the stock server

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def log_message(self, format, *args):
        pass

    # dispatch ----------------------------------------------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        self._consumed = False  # whether the request body has been read
        method = self.headers.get("x-http-method-override") or method
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        try:
            if parts.path == "/" and method in ("GET", "HEAD"):
                return self._send_json(HTTPStatus.OK, {"status": "OK"})
            media = self._media_target(method, parts.path, query)
            if media is not None:
                bucket, name = media
                if self._authorize(bucket, name, write=False, query=query, path=parts.path):
                    match = (query.get("ifGenerationMatch") or [None])[0]
                    self._send_object(bucket, name, head=method == "HEAD", if_generation_match=match)
                return
            upload = _UPLOAD_ROUTE.fullmatch(parts.path)
            if upload and "upload_id" in query and method in ("PUT", "POST"):
                return self._resumable_chunk(upload["bucket"], query["upload_id"][0])
            self._stock(method, parts.path, query)
        except (BrokenPipeError, ConnectionResetError):
            pass

    @staticmethod
    def _media_target(method: str, path: str, query: dict) -> tuple[str, str] | None:
        if method not in ("GET", "HEAD"):
            return None
        for index, route in enumerate(_MEDIA_ROUTES):
            match = route.fullmatch(path)
            if not match:
                continue
            if index in (1, 2) and query.get("alt", [""])[0] != "media":
                return None  # object metadata, served by the stock handler
            if index == 3 and match["bucket"] in ("b", "storage", "download", "upload", "batch"):
                return None
            return match["bucket"], unquote(match["name"])
        return None

    # authorization -----------------------------------------------------------------------------------------------
    def _authorize(self, bucket: str | None, name: str | None, *, write: bool, query: dict, path: str) -> bool:
        """Check the bearer token (or a signed URL); on refusal send 401/403 and return False.

        A token is scoped to one bucket and one key prefix: objects must start with the prefix, listings must ask
        for a prefix inside it, bucket-level calls are read-only."""
        if "X-Goog-Signature" in query and not write and name is not None:
            return self._authorize_signed_url(bucket, name, query)
        header = self.headers.get("Authorization") or ""
        if not header.lower().startswith("bearer "):
            return self._deny(HTTPStatus.UNAUTHORIZED, "Anonymous caller does not have storage.objects access.")
        try:
            claims = verify_token(self.server.secret, header[7:].strip())
        except PermissionError as exc:
            return self._deny(HTTPStatus.UNAUTHORIZED, str(exc))
        if claims["m"] == "admin":
            return True
        if bucket is not None and bucket != claims["b"]:
            return self._deny(HTTPStatus.FORBIDDEN, f"The token does not grant access to bucket {bucket}.")
        if write and claims["m"] != "w":
            return self._deny(HTTPStatus.FORBIDDEN, "The token grants read access only.")
        if name is not None:
            scoped = name
        elif _LIST_ROUTE.fullmatch(path):
            scoped = query.get("prefix", [""])[0]
        elif not write:
            return True  # bucket metadata
        else:
            scoped = None
        if scoped is None or not scoped.startswith(claims["p"]):
            return self._deny(HTTPStatus.FORBIDDEN, f'The token grants access to "{claims["p"]}*" only.')
        return True

    def _authorize_signed_url(self, bucket: str, name: str, query: dict) -> bool:
        date = query.get("X-Goog-Date", [""])[0]
        expires = query.get("X-Goog-Expires", [""])[0]
        signature = query.get("X-Goog-Signature", [""])[0]
        expected = url_signature(self.server.secret, bucket, name, date, expires)
        if not hmac.compare_digest(expected, signature):
            return self._deny(HTTPStatus.FORBIDDEN, "SignatureDoesNotMatch")
        try:
            issued = datetime.strptime(date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            expired = datetime.now(UTC) > issued + timedelta(seconds=int(expires))
        except ValueError:
            expired = True
        if expired:
            return self._deny(HTTPStatus.BAD_REQUEST, "ExpiredToken: the signed URL has expired")
        return True

    def _deny(self, status: HTTPStatus, message: str) -> bool:
        self._drain_body()
        reason = "authError" if status == HTTPStatus.UNAUTHORIZED else "forbidden"
        self._send_json(
            status,
            {"error": {"code": status.value, "message": message, "errors": [{"message": message, "reason": reason}]}},
        )
        return False

    def _write_target(self, method: str, path: str, query: dict, request) -> tuple[bool, str | None, str | None]:
        """(is a write, bucket, object name) of a request for the stock handlers (reads its JSON body if needed)."""
        write = method not in ("GET", "HEAD")
        bucket_match = _BUCKET_ROUTE.fullmatch(path)
        bucket = bucket_match["bucket"] if bucket_match else None
        name = None
        object_match = _OBJECT_ROUTE.fullmatch(path)
        if object_match:  # the object itself, or .../acl, .../compose, .../copyTo/b/{bucket}/o/{name} ...
            name = unquote(object_match["name"])
        elif "name" in query:
            name = query["name"][0]
        elif _UPLOAD_ROUTE.fullmatch(path) and write:
            data = request.data  # cached by the stock Request; the handler reuses it
            self._consumed = True
            if isinstance(data, dict):
                name = data.get("name") or (data.get("meta") or {}).get("name")
        if not bucket:
            match = _MEDIA_ROUTES[3].fullmatch(path)  # XML API PUT /bucket/name
            if match:
                bucket, name = match["bucket"], unquote(match["name"])
        return write, bucket, name

    # stock handlers ----------------------------------------------------------------------------------------------
    def _stock(self, method: str, path: str, query: dict) -> None:
        from gcp_storage_emulator import server as stock
        from gcp_storage_emulator.handlers import objects

        request = stock.Request(self, method)
        response = stock.Response(self)
        for regex, handlers in stock.HANDLERS:
            match = re.fullmatch(regex, request.path)
            if not match:
                continue
            request.set_match(match)
            handler = handlers.get(method)
            if handler is None and method == "POST" and request.query.get("uploadType") and path.endswith("/o"):
                handler = objects.insert  # uploads POSTed without the /upload prefix
            if handler is None:
                response.status = HTTPStatus.NOT_IMPLEMENTED
                break
            write, bucket, name = self._write_target(method, path, query, request)
            if not self._authorize(bucket, name, write=write, query=query, path=path):
                return
            with self.server.lock:
                handler(request, response, self.server.storage)
            break
        else:
            response.status = HTTPStatus.NOT_IMPLEMENTED
        response.close()

    # streaming download ------------------------------------------------------------------------------------------
    def _object_path(self, bucket: str, name: str) -> Path:
        parts = [p for p in name.replace("\\", "/").split("/") if p and p != "."]
        if ".." in parts:
            raise ValueError(f"invalid object name {name!r}")
        return self.server.objects_root.joinpath(bucket, *parts)

    def _send_object(self, bucket: str, name: str, *, head: bool, if_generation_match: str | None = None) -> None:
        with self.server.lock:
            obj = (self.server.storage.objects.get(bucket) or {}).get(name)
            try:
                # opened under the lock: a concurrent overwrite renames a new file into place, this one stays
                stream = open(self._object_path(bucket, name), "rb") if obj is not None else None  # noqa: SIM115
            except (FileNotFoundError, ValueError):
                stream = None
        if stream is None:
            message = f"No such object: {bucket}/{name}"
            return self._send_json(HTTPStatus.NOT_FOUND, {"error": {"code": 404, "message": message}})
        if if_generation_match is not None and if_generation_match != str(obj.get("generation", "")):
            stream.close()  # GCS refuses a read pinned to another generation
            message = "At least one of the pre-conditions you specified did not hold."
            error = {"code": 412, "message": message, "errors": [{"reason": "conditionNotMet", "message": message}]}
            return self._send_json(HTTPStatus.PRECONDITION_FAILED, {"error": error})
        with stream:
            size = os.fstat(stream.fileno()).st_size
            start, end = 0, size - 1
            status = HTTPStatus.OK
            headers = {"Content-Type": obj.get("contentType") or "application/octet-stream"}
            range_header = self.headers.get("Range")
            match = _RANGE.fullmatch(range_header) if range_header else None
            if match and (match["start"] or match["end"]):
                if match["start"]:
                    start = int(match["start"])
                    end = min(int(match["end"]), size - 1) if match["end"] else size - 1
                else:  # suffix range: the last N bytes
                    start = max(size - int(match["end"]), 0)
                if start >= size or start > end:
                    headers["Content-Range"] = f"bytes */{size}"
                    return self._send_json(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, {}, headers)
                status = HTTPStatus.PARTIAL_CONTENT
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            else:
                headers["X-Goog-Hash"] = f"crc32c={obj.get('crc32c')},md5={obj.get('md5Hash')}"
            headers["Content-Length"] = str(end - start + 1 if size else 0)
            headers["X-Goog-Generation"] = str(obj.get("generation", ""))
            headers["X-Goog-Stored-Content-Length"] = str(size)
            headers["Accept-Ranges"] = "bytes"
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            if head or not size:
                return
            self.wfile.flush()
            self.connection.sendfile(stream, start, end - start + 1)

    # streaming resumable upload ----------------------------------------------------------------------------------
    def _resumable_chunk(self, bucket: str, upload_id: str) -> None:
        from gcp_storage_emulator.handlers.objects import _parse_resumable_content_range

        server = self.server
        with server.lock:
            obj = server.storage.resumable.get(upload_id)
        if obj is None or obj.get("bucket") != bucket:
            self._drain_body()
            message = f"No such upload session: {upload_id}"
            return self._send_json(HTTPStatus.NOT_FOUND, {"error": {"code": 404, "message": message}})
        query = parse_qs(urlsplit(self.path).query)
        if not self._authorize(bucket, obj["name"], write=True, query=query, path=f"/b/{bucket}/o"):
            return
        with server.lock:
            upload = server.uploads.get(upload_id)
            if upload is None:
                part = server.parts_dir / hashlib.sha256(upload_id.encode()).hexdigest()
                part.unlink(missing_ok=True)
                upload = server.uploads[upload_id] = _Upload(part, crc32c=_new_crc32c())
        with upload.lock:
            content_range = _parse_resumable_content_range(self.headers.get("Content-Range") or "")
            total = content_range["total"] if content_range else None
            if content_range is None or content_range["kind"] != "status":
                start = content_range["start"] if content_range else 0
                if start > upload.received:
                    self._drain_body()
                    return self._send_incomplete(upload)
                self._append_body(upload, skip=upload.received - start)
                if content_range is None:
                    total = upload.received  # a single PUT with the whole object
            if total is None or upload.received < total:
                return self._send_incomplete(upload)
            if upload.received > total:
                message = f"Received {upload.received} bytes, more than the declared {total}."
                return self._send_json(HTTPStatus.BAD_REQUEST, {"error": {"code": 400, "message": message}})
            self._finish_upload(upload_id, upload, obj)

    def _append_body(self, upload: _Upload, *, skip: int) -> None:
        with open(upload.path, "ab") as out:
            for chunk in self._body_chunks():
                if skip:
                    dropped = min(skip, len(chunk))
                    chunk, skip = chunk[dropped:], skip - dropped
                if chunk:
                    out.write(chunk)
                    upload.md5.update(chunk)
                    upload.crc32c.update(chunk)
                    upload.received += len(chunk)

    def _finish_upload(self, upload_id: str, upload: _Upload, obj: dict) -> None:
        server = self.server
        md5 = base64.b64encode(upload.md5.digest()).decode("ascii")
        crc32c = base64.b64encode(upload.crc32c.digest()).decode("ascii")
        for name, value in (("md5Hash", md5), ("crc32c", crc32c)):
            if obj.get(name) and obj[name] != value:
                message = f'Provided {name} "{obj[name]}" does not match the calculated "{value}".'
                return self._send_json(HTTPStatus.BAD_REQUEST, {"error": {"code": 400, "message": message}})
        obj = dict(obj, md5Hash=md5, crc32c=crc32c, size=str(upload.received))
        obj["etag"] = obj.get("etag") or md5
        target = self._object_path(obj["bucket"], obj["name"])
        with server.lock:
            if obj["bucket"] not in server.storage.buckets:
                return self._send_json(HTTPStatus.NOT_FOUND, {"error": {"code": 404, "message": "No such bucket"}})
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(upload.path, target)
            server.storage.objects.setdefault(obj["bucket"], {})[obj["name"]] = obj
            server.storage.resumable.pop(upload_id, None)
            server.uploads.pop(upload_id, None)
            server.storage._write_config_to_file()
        self._send_json(HTTPStatus.OK, obj)

    def _send_incomplete(self, upload: _Upload) -> None:
        headers = {"Range": f"bytes=0-{upload.received - 1}"} if upload.received else {}
        self._send_json(308, None, headers)

    # request/response helpers ------------------------------------------------------------------------------------
    def _body_chunks(self):
        if self._consumed:
            return
        self._consumed = True
        length = self.headers.get("Content-Length")
        if length is not None:
            yield from self._read_exactly(int(length))
        elif (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return
                yield from self._read_exactly(size)
                self.rfile.readline()

    def _read_exactly(self, remaining: int):
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, _IO_CHUNK))
            if not chunk:
                raise ConnectionResetError("client closed the connection mid-body")
            remaining -= len(chunk)
            yield chunk

    def _drain_body(self) -> None:
        try:
            for _chunk in self._body_chunks():
                pass
        except (ConnectionResetError, ValueError):
            pass

    def _send_json(self, status, body, headers: dict | None = None) -> None:
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(int(status))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload and self.command != "HEAD":
            self.wfile.write(payload)


def _new_crc32c():
    import google_crc32c

    return google_crc32c.Checksum()


def serve(argv: list[str]) -> None:
    """Entry point of the server subprocess: ``--host H --port P --data-dir D --bucket B``."""
    import argparse

    from gcp_storage_emulator.handlers.buckets import create_bucket
    from gcp_storage_emulator.storage import Storage

    parser = argparse.ArgumentParser(prog="kbc-gcs-emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--bucket", action="append", default=[])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    secret = bytes.fromhex(os.environ.pop(SECRET_ENV))

    parent = os.getppid()

    def watchdog() -> None:  # exit when the parent dies without calling stop() (SIGKILL, SIGTERM without atexit)
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watchdog, daemon=True).start()
    data_dir = Path(args.data_dir).resolve()
    storage = Storage(data_dir=str(data_dir))
    for bucket in args.bucket:
        create_bucket(bucket, storage)
    parts = data_dir / "_kbc_parts"
    shutil.rmtree(parts, ignore_errors=True)  # unfinished uploads of an earlier run
    httpd = _Server((args.host, args.port), storage, secret, data_dir)
    import signal

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    httpd.serve_forever(poll_interval=0.2)

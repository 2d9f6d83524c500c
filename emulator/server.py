"""HTTP layer: the WSGI application and a threaded werkzeug server running it in a background thread.

For every request the application, in this order:

0. serves the test-harness control endpoints under ``/_emulator`` (the server clock), before maintenance and
   faults, without a token;
1. answers 503 in maintenance mode (``Retry-After`` + ``{"status": "maintenance", ...}``);
2. asks the FaultInjector ``match(method, path)``: ``status`` answers that status with the fault's body and
   ``Retry-After``; ``reset`` aborts the TCP connection without a response (RST); ``slow`` sleeps, then handles the
   request normally; ``job_error`` handles it normally but the job it creates ends in error with the fault's code;
   a ``late`` status/reset fault handles the request first and then answers the fault instead (lost response);
3. routes the request (unknown route 404, wrong method 405, both with a JSON error body);
4. authenticates the ``X-StorageApi-Token`` header;
5. calls the handler. A ``StorageError`` becomes ``{"error", "code", "exceptionId"}`` with its status; any other
   exception a 500 with the same body shape (the traceback goes to the log, never a token).
"""

from __future__ import annotations

import json
import logging
import socket
import struct
import threading
import time
from datetime import timedelta

from werkzeug.exceptions import MethodNotAllowed as WzMethodNotAllowed
from werkzeug.exceptions import NotFound as WzNotFound
from werkzeug.routing import Map
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from .errors import (
    ApplicationError,
    MaintenanceError,
    MethodNotAllowed,
    RouteNotFound,
    StorageError,
)
from .faults import JOB_ERROR
from .models import BRANCH, StorageBackend, fmt_time
from .responses import Context, json_response
from .routes import CONTROL_PREFIX, Route, build_control_map, build_url_map

log = logging.getLogger("emulator.server")

TOKEN_HEADER = "X-StorageApi-Token"
RUN_ID_HEADER = "X-KBC-RunId"


class ApiRequest(Request):
    """Generous form limits: a client may send thousands of ``whereValues[]`` as form fields."""

    max_form_parts = 100_000
    max_form_memory_size = 64 * 2**20


class AbortConnection(ConnectionAbortedError):
    """Raised by the application to make the request handler reset the connection (no HTTP response)."""


def _get(fault, name, default=None):
    if fault is None:
        return default
    if isinstance(fault, dict):
        return fault.get(name, default)
    return getattr(fault, name, default)


class StorageApiApp:
    """The WSGI application."""

    def __init__(self, backend: StorageBackend, faults=None):
        self.backend = backend
        self.faults = faults
        self.url_map = build_url_map()
        self.control_map = build_control_map()
        self.maintenance: dict | None = None

    # maintenance -----------------------------------------------------------------------------------------------
    def set_maintenance(self, enabled: bool, *, reason: str = "Scheduled maintenance", retry_after: int = 600):
        if enabled:
            end = self.backend.now() + timedelta(seconds=retry_after)
            self.maintenance = {"reason": reason, "retry_after": int(retry_after), "end": fmt_time(end)}
        else:
            self.maintenance = None

    # WSGI ---------------------------------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        request = ApiRequest(environ)
        response = self.handle(request, environ)
        return response(environ, start_response)

    def handle(self, request: Request, environ: dict) -> Response:
        try:
            if request.path == CONTROL_PREFIX or request.path.startswith(CONTROL_PREFIX + "/"):
                return self.control(request)
            maintenance = self.maintenance
            if maintenance is not None:
                err = MaintenanceError(maintenance["reason"], maintenance["end"], maintenance["retry_after"])
                return json_response(err.body(), err.status, {"Retry-After": str(err.retry_after)})
            fault = self._match_fault(request.method, request.path)
            job_fault = None
            if fault is not None and _get(fault, "late", False):
                # the request takes effect, then its response is lost (5xx instead of the answer, or a reset)
                self.dispatch(request, None)
                if _get(fault, "kind") == "reset":
                    self._reset(environ)
                return self._fault_status_response(fault)
            if fault is not None:
                kind = _get(fault, "kind")
                if kind == "status":
                    return self._fault_status_response(fault)
                if kind == "reset":
                    self._reset(environ)
                if kind == "slow":
                    time.sleep(float(_get(fault, "delay", 0) or 0))
                if kind == "job_error":
                    code = _get(fault, "code") or "storage.jobFailed"
                    message = _get(fault, "message") or f"Injected job failure ({code})"
                    job_fault = (code, message)
            return self.dispatch(request, job_fault)
        except AbortConnection:
            raise
        except StorageError as exc:
            return self.error_response(exc)
        except Exception:  # pragma: no cover - defensive: never let a bug kill the connection silently
            err = ApplicationError()
            log.exception("unhandled error on %s %s (exception id %s)", request.method, request.path, err.exception_id)
            return self.error_response(err)

    # test-harness control (not Storage API: no token, no maintenance, no faults) --------------------------------
    def control(self, request: Request) -> Response:
        route, args = self._route(self.control_map, request)
        return route.handler(Context(request=request, backend=self.backend, token=None, run_id=None), **args)

    def _match_fault(self, method: str, path: str):
        if self.faults is None:
            return None
        try:
            return self.faults.match(method, path)
        except Exception:  # a broken fault rule must not break the API
            log.exception("fault injector failed on %s %s", method, path)
            return None

    @staticmethod
    def _fault_status_response(fault) -> Response:
        status = int(_get(fault, "status", 500) or 500)
        body = _get(fault, "body")
        if body is None:
            err = StorageError("Injected fault", code="", status=status)
            body = err.body()
        headers_fn = _get(fault, "headers")
        headers = dict(headers_fn()) if callable(headers_fn) else {}
        retry_after = _get(fault, "retry_after")
        if retry_after is not None and "Retry-After" not in headers:
            headers["Retry-After"] = str(int(retry_after)) if isinstance(retry_after, int | float) else str(retry_after)
        if isinstance(body, dict | list):
            return json_response(body, status, headers)
        return Response(str(body), status=status, headers=headers, mimetype="application/json")

    @staticmethod
    def _reset(environ: dict) -> None:
        sock = environ.get("werkzeug.socket")
        if sock is not None:
            try:
                # linger on, timeout 0: close() sends RST instead of FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        raise AbortConnection("injected connection reset")

    def dispatch(self, request: Request, job_fault: tuple[str, str] | None) -> Response:
        try:
            route, args = self._route(self.url_map, request)
        except (MethodNotAllowed, RouteNotFound) as exc:  # answered, also when a late fault replaces the answer
            return self.error_response(exc)
        token = self.backend.authenticate(request.headers.get(TOKEN_HEADER))
        branch_ref = args.pop("branch", None)
        branch_token = BRANCH.set(None if branch_ref is None else self.backend.resolve_branch(token, branch_ref))
        try:
            return self._dispatch(request, route, args, token, job_fault)
        finally:
            BRANCH.reset(branch_token)

    def _dispatch(self, request: Request, route: Route, args: dict, token, job_fault) -> Response:
        if route.access is not None:
            self.backend.check_access(
                token, route.access, bucket_id=args.get("bucket_id"), table_id=args.get("table_id")
            )
        run_id = request.headers.get(RUN_ID_HEADER) or None
        ctx = Context(request=request, backend=self.backend, token=token, run_id=run_id)
        fault_token = JOB_ERROR.set(job_fault)  # read by the models when the handler creates a job
        try:
            return route.handler(ctx, **args)
        finally:
            JOB_ERROR.reset(fault_token)

    @staticmethod
    def _route(url_map: Map, request: Request) -> tuple[Route, dict]:
        adapter = url_map.bind_to_environ(request.environ)
        try:
            return adapter.match()
        except WzMethodNotAllowed as exc:
            raise MethodNotAllowed(request.method, exc.valid_methods or ()) from None
        except WzNotFound:
            raise RouteNotFound(request.path) from None

    @staticmethod
    def error_response(exc: StorageError) -> Response:
        headers = {}
        if isinstance(exc, MethodNotAllowed):
            headers["Allow"] = ", ".join(exc.extra.get("allowed", []))
        return Response(json.dumps(exc.body()), status=exc.status, mimetype="application/json", headers=headers)


class _RequestHandler(WSGIRequestHandler):
    """Quiet request logging; performs the connection reset asked for by ``AbortConnection``."""

    def log_request(self, code="-", size="-") -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s %s", self.command, self.path.split("?", 1)[0], code)

    def connection_dropped(self, error, environ=None) -> None:
        if isinstance(error, AbortConnection):
            self.close_connection = True
            try:
                self.connection.close()  # SO_LINGER (1, 0) was set: the kernel answers with RST
            except OSError:
                pass


class ServerThread:
    """A threaded werkzeug server on ``host:port`` (0 = a free port) serving in a daemon thread."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0):
        self.server = make_server(host, port, app, threaded=True, request_handler=_RequestHandler)
        self.server.daemon_threads = True
        self.host = host
        self.port = self.server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="storage-api", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self.server.shutdown()
            self._thread.join(10)
        self.server.server_close()

"""One HTTP session per Storage API project, with typed errors and safe retries.

Retry rules (see docs/peers.md: kbcstorage and the PHP client replay POSTs on 5xx and ignore 429):
- retried for every request: connection refused / connect timeout, HTTP 429 and 503 (the request did not run);
- retried only for idempotent requests (GET/PUT/DELETE, or POST with ``idempotent=True``): connection resets,
  read timeouts and the other 5xx except 501, because the server may have acted on the request already;
- never retried: invalid URL, DNS and TLS failures, 501, other 4xx.
``Retry-After`` is honoured (capped), otherwise exponential backoff with jitter; attempts and total time are bounded.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import requests
import tenacity
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NameResolutionError, NewConnectionError, ReadTimeoutError

from .branches import Branch
from .errors import ConnectionFailed, StorageApiError, error_from_response

logger = logging.getLogger(__name__)

USER_AGENT = "keboola-storage-sync/0.1"
_ALWAYS_RETRIED_STATUSES = {429, 503}  # the server refused before doing anything
_NEVER_RETRIED_STATUSES = {501}
_CONNECT_TIMEOUT_CAP = 30.0  # a dead host should not cost the full read timeout per attempt


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    max_total: float = 600.0  # seconds from the first attempt; no retry sleeps past it
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    retry_after_max: float = 60.0


# How a request failed without an HTTP response.
_BAD_URL, _DNS, _TLS = "invalid url", "dns", "tls"
_CONNECT, _READ_TIMEOUT, _RESET = "connect", "read timeout", "connection reset"
_TRANSPORT_TEXT = {
    _BAD_URL: "the URL is not a valid https:// address",
    _DNS: "the host name cannot be resolved",
    _TLS: "the TLS handshake failed",
    _CONNECT: "the connection was refused or timed out",
    _READ_TIMEOUT: "no response within the request timeout",
    _RESET: "the connection broke before a complete response",
}


class StorageHttp:
    """JSON over HTTP to ``{url}/v2/storage/``; one ``requests.Session`` (connection pool) per project."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        run_id: str | None = None,
        request_timeout: float = 120,
        retry: RetryPolicy = RetryPolicy(),
        pool_size: int = 10,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.base_url = url.rstrip("/")
        self.api_url = f"{self.base_url}/v2/storage/"
        self.retry = retry
        self._token = token
        self._timeout = (min(request_timeout, _CONNECT_TIMEOUT_CAP), request_timeout)
        self._clock = clock
        self._sleep = sleep
        self.branch = Branch()  # StorageClient.use_branch sets a development branch: paths get branch/{id}/
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(pool_size, 10))
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.headers.update({"X-StorageApi-Token": token, "Accept-Encoding": "gzip", "User-Agent": USER_AGENT})
        if run_id:
            self.session.headers["X-KBC-RunId"] = run_id

    def close(self) -> None:
        self.session.close()

    # public verbs ------------------------------------------------------------------------------------------------
    # ``plain=True``: the production (default-branch) path even when a development branch is set
    def get(self, path: str, params: dict | None = None, *, plain: bool = False) -> Any:
        return _json(self.request("GET", path, params=params, plain=plain))

    def get_text(self, path: str, params: dict | None = None, *, plain: bool = False) -> str:
        return self.request("GET", path, params=params, plain=plain).text

    def post(self, path: str, json: dict | None = None, *, idempotent: bool, plain: bool = False) -> Any:
        return _json(self.request("POST", path, json=json, idempotent=idempotent, plain=plain))

    def put(self, path: str, json: dict | None = None, *, plain: bool = False) -> Any:
        return _json(self.request("PUT", path, json=json, plain=plain))

    def delete(self, path: str, params: dict | None = None, *, plain: bool = False) -> Any:
        return _json(self.request("DELETE", path, params=params, plain=plain))

    # core ---------------------------------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict | None = None,
        json: Any = None,
        idempotent: bool | None = None,
        plain: bool = False,
    ) -> requests.Response:
        """Send with retries; returns the 2xx response or raises a typed StorageApiError. In a development branch
        the path gets ``branch/{id}/`` (jobs and the other unbranched paths excepted) unless ``plain``."""
        if idempotent is None:
            idempotent = method != "POST"
        path = path.lstrip("/") if plain else self.branch.path(path)
        deadline = self._clock() + self.retry.max_total

        def attempt() -> requests.Response:
            return self._attempt(method, path, params, json, idempotent)

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda exc: getattr(exc, "retryable", False)),
            wait=self._wait,
            stop=lambda state: self._should_stop(state, deadline),
            before_sleep=lambda state: self._log_retry(state, method, path),
            sleep=self._sleep,
            reraise=True,
        )
        return retrying(attempt)

    def _attempt(self, method: str, path: str, params: Any, json: Any, idempotent: bool) -> requests.Response:
        try:
            response = self.session.request(
                method, self.api_url + path, params=params, json=json, timeout=self._timeout
            )
        except requests.RequestException as exc:
            kind = _transport_kind(exc)
            # Only a connection that was never established proves the server did not see the request.
            safe = kind == _CONNECT or (idempotent and kind in (_READ_TIMEOUT, _RESET))
            error = ConnectionFailed(
                self._redact(
                    f"Cannot reach the Storage API at {self.base_url} ({method} {path}): {_TRANSPORT_TEXT[kind]}; "
                    f"check the URL and the network, then run again."
                ),
                maybe_applied=not idempotent and kind in (_READ_TIMEOUT, _RESET),
            )
            error.retryable, error.retry_after, error.reason = safe, None, kind
            raise error from exc
        if response.ok:
            return response
        status = response.status_code
        error = error_from_response(
            status, response.text, response.reason, base_url=self.base_url, method=method, path=path
        )
        error.message = self._redact(error.message)
        error.args = (error.message,)
        ambiguous = status >= 500 and status not in _ALWAYS_RETRIED_STATUSES | _NEVER_RETRIED_STATUSES
        error.maybe_applied = not idempotent and ambiguous
        error.retryable = status in _ALWAYS_RETRIED_STATUSES or (idempotent and ambiguous)
        error.retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
        error.reason = f"HTTP {status}" + (f" {error.code}" if error.code else "")
        raise error

    def _wait(self, state: tenacity.RetryCallState) -> float:
        retry_after = getattr(state.outcome.exception(), "retry_after", None)
        if retry_after is not None:
            return min(retry_after, self.retry.retry_after_max)
        base = min(self.retry.backoff_max, self.retry.backoff_initial * 2 ** (state.attempt_number - 1))
        return base / 2 + random.uniform(0, base / 2)  # "equal jitter": spreads clients, keeps a minimum

    def _should_stop(self, state: tenacity.RetryCallState, deadline: float) -> bool:
        if state.attempt_number >= self.retry.max_attempts:
            return True
        return self._clock() + state.upcoming_sleep > deadline

    def _log_retry(self, state: tenacity.RetryCallState, method: str, path: str) -> None:
        exc = state.outcome.exception()
        logger.warning(
            "Storage API %s %s failed (%s); retry %d of %d in %.1f s",
            method,
            path,
            getattr(exc, "reason", type(exc).__name__),
            state.attempt_number,
            self.retry.max_attempts - 1,
            state.upcoming_sleep,
        )

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text


def _json(response: requests.Response) -> Any:
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise StorageApiError(
            f"The Storage API returned a response that is not JSON for {response.request.method} "
            f"{response.request.path_url.split('?')[0]} (HTTP {response.status_code}); run the job again.",
            status=response.status_code,
        ) from None


def _transport_kind(exc: requests.RequestException) -> str:
    if isinstance(
        exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema)
    ):
        return _BAD_URL
    if isinstance(exc, requests.exceptions.SSLError):
        return _TLS
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return _CONNECT
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return _READ_TIMEOUT
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    if isinstance(reason, NameResolutionError):
        return _DNS
    if isinstance(reason, NewConnectionError):
        return _CONNECT
    if isinstance(reason, ReadTimeoutError):
        return _READ_TIMEOUT
    return _RESET


def _retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None

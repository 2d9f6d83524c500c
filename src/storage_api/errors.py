"""Typed failures of the Storage API client.

Every message is one actionable sentence and never contains the token (StorageHttp redacts it before raising).
"""

from __future__ import annotations

import json
from typing import Any

# 4xx are the caller's to fix (token, permissions, validation); 408 and 429 are transient, not user errors.
_NOT_USER_ERRORS = {408, 429}


class StorageApiError(Exception):
    """Any failure talking to the Storage API.

    ``maybe_applied`` is True when a request that changes state failed after it may have reached the server
    (connection reset, read timeout, 500/502/504): the caller must reconcile before repeating it.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        exception_id: str | None = None,
        user_error: bool | None = None,
        maybe_applied: bool = False,
        body: Any = None,
    ):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.exception_id = exception_id
        self.maybe_applied = maybe_applied
        self.body = body
        self._user_error = user_error
        # Set by StorageHttp for its retry decisions and log lines.
        self.retryable = False
        self.retry_after: float | None = None
        self.reason: str | None = None

    @property
    def is_user_error(self) -> bool:
        if self._user_error is not None:
            return self._user_error
        return self.status is not None and 400 <= self.status < 500 and self.status not in _NOT_USER_ERRORS

    def __str__(self) -> str:
        return self.message


class ConnectionFailed(StorageApiError):
    """The Storage API URL is unreachable (DNS, refused, timeouts, resets) after retries."""

    def __init__(self, message: str, *, maybe_applied: bool = False):
        super().__init__(message, user_error=True, maybe_applied=maybe_applied)


class JobFailed(StorageApiError):
    """A storage job ended in status "error"; code/message/exception_id come from ``job["error"]``."""

    def __init__(self, job: dict):
        error = job.get("error") or {}
        self.job = job
        self.job_id = job.get("id")
        self.results = job.get("results") or {}
        code = str(error["code"]) if error.get("code") not in (None, "") else None
        detail = (error.get("message") or "no error message").strip().rstrip(".")
        exception_id = error.get("exceptionId")
        message = f"Storage job {self.job_id} ({describe_job(job)}) failed: {detail}{_tag(code, exception_id)}."
        # Job errors such as csvImport.columnsNotMatch are caused by the data or configuration; internal
        # application errors (no code, or an "application"/"internal" code) are not.
        user_error = bool(code) and not any(word in str(code).lower() for word in ("application", "internal"))
        super().__init__(message, code=code, exception_id=exception_id, user_error=user_error, body=error)


class JobTimeout(StorageApiError):
    """A storage job did not finish before the client's deadline; it may still finish on the server."""

    def __init__(self, job: dict, timeout: float):
        self.job = job
        self.job_id = job.get("id")
        self.timeout = timeout
        message = (
            f"Storage job {self.job_id} ({describe_job(job)}) did not finish within {timeout:.0f} s and may still "
            f"finish on the server: check the job in the project before running again, or raise the job timeout."
        )
        super().__init__(message, user_error=False)


class TransferError(StorageApiError):
    """Downloading or uploading file data (S3/ABS/GCS) failed after retries."""

    def __init__(self, message: str, *, user_error: bool = False):
        super().__init__(message, user_error=user_error)


def describe_job(job: dict) -> str:
    """'tableImport of in.c-main.data' style label for messages."""
    operation = job.get("operationName") or "job"
    table_id = job.get("tableId")
    return f"{operation} of {table_id}" if table_id else str(operation)


def error_from_response(status: int, body_text: str, reason: str, *, base_url: str, method: str, path: str):
    """Build the typed error for an HTTP error response (JSON error body, maintenance body or plain text)."""
    body = _json_or_none(body_text)
    if isinstance(body, dict) and body.get("status") == "maintenance":
        return _maintenance_error(status, body, base_url)
    if isinstance(body, dict):
        detail = body.get("error") or body.get("message") or reason
        code = body.get("code")
        code = str(code) if code not in (None, "") else None
        exception_id = body.get("exceptionId")
    else:
        detail, code, exception_id = _plain_detail(body_text, reason, status), None, None
    detail = " ".join(str(detail).split()).rstrip(".")
    where = f"{method} {path}"
    tag = _tag(code, exception_id)
    if status == 401:
        message = (
            f"The Storage API token for {base_url} is invalid or expired ({code or 'storage.tokenInvalid'}). "
            f"Create a new token in the project (Settings > API Tokens) and put it in the configuration."
        )
    elif status == 403:
        message = (
            f"The Storage API token for {base_url} is not allowed to {where}: {detail}{tag}; "
            f"give the token access to the bucket or use a token with more permissions."
        )
    elif status == 429:
        message = f"The Storage API at {base_url} kept rate-limiting {where} (HTTP 429){tag}; run the job again later."
    elif 400 <= status < 500:
        message = f"The Storage API rejected {where} (HTTP {status}): {detail}{tag}."
    else:
        message = (
            f"The Storage API at {base_url} failed on {where} with HTTP {status}: {detail}{tag}; "
            f"if it persists, report the exceptionId to Keboola support."
        )
    return StorageApiError(message, code=code, status=status, exception_id=exception_id, body=body)


def _maintenance_error(status: int, body: dict, base_url: str) -> StorageApiError:
    reason = " ".join(str(body.get("reason") or "maintenance").split()).rstrip(".")
    end = body.get("estimatedEndTime")
    until = f", estimated end {end}" if end else ""
    message = f"The Storage API at {base_url} is under maintenance ({reason}{until}); run the job again later."
    return StorageApiError(message, code="maintenance", status=status, user_error=False, body=body)


def _tag(code: str | None, exception_id: str | None) -> str:
    parts = [p for p in (code, exception_id and f"exceptionId {exception_id}") if p]
    return f" ({', '.join(parts)})" if parts else ""


def _plain_detail(text: str, reason: str, status: int) -> str:
    text = (text or "").strip()
    # HTML error pages of proxies carry nothing useful; short plain text does.
    if text and not text.startswith("<") and len(text) <= 300:
        return text
    return reason or f"HTTP {status}"


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None

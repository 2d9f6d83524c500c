"""Secrets never reach a log line, an error message or a file.

Two layers, both applied by ``redact``:

- registered values: the Storage API tokens (registered by the configuration as soon as it reads them) and the
  file-storage credentials the Storage API hands out at run time (``register_file_credentials``, called by the
  client where it receives files/prepare, files/{id}?federationToken=1 and files/{id}/refresh answers);
- credential shapes, for values nobody registered: S3 security tokens, signatures and access key ids, Azure SAS
  signatures and account keys, GCS bearer tokens, Storage API token headers, in the forms that botocore, urllib3
  and the Azure and Google SDKs print at debug level (``X-Amz-Security-Token': b'...'``, ``sig=...``,
  ``Authorization: Bearer ...``).

``install_log_redaction`` makes every log record pass through ``redact`` (message, arguments, traceback, extra
fields) whatever handler prints it (console, GELF), and routes uncaught exceptions and warnings through logging.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import traceback
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote

from keboola.component.exceptions import UserException

HIDDEN = "[hidden]"
_MIN_SECRET_LENGTH = 4  # shorter values are not worth redacting (and would hide ordinary text)
_SECRETS: set[str] = set()

# Keys whose value is a credential, in headers, query strings, connection strings, Python reprs and JSON:
# ``key=value``, ``key: value``, ``'key': b'value'``, ``"key": "value"`` (also JSON-escaped).
_SECRET_KEYS = (
    "x-amz-security-token",
    "x-amz-signature",
    "x-amz-credential",
    "x-goog-signature",
    "x-goog-credential",
    "x-storageapi-token",
    "x-kbc-manageapitoken",
    "aws_secret_access_key",
    "aws_session_token",
    "secretaccesskey",
    "sessiontoken",
    "accesskeyid",
    "sasconnectionstring",
    "sharedaccesssignature",
    "accountkey",
    "access_token",
    "credential",
    "signature",
    "sig",
)
_KEY_VALUE_RE = re.compile(
    r"(?i)(?<![\w-])(?P<key>" + "|".join(re.escape(k) for k in _SECRET_KEYS) + r")"
    r"(?P<sep>\\?[\"']?\s*[:=]\s*(?>(?:b?\\?[\"'])?))"  # atomic: an opening quote is never taken for the value
    r"(?P<value>[^\s\"'\\&,;<>(){}\[\]]+)"
)
_SHAPES = (
    # Authorization: Bearer <GCS access token> / SharedKey <account>:<signature>
    re.compile(r"\b(?P<key>Bearer|SharedKey)(?P<sep>\s+)(?P<value>[A-Za-z0-9._~+/:-]{8,}=*)"),
    # AWS access key ids (long-term AKIA, temporary ASIA)
    re.compile(r"(?P<key>)(?P<sep>)(?P<value>\b(?:AKIA|ASIA)[A-Z0-9]{16}\b)"),
    # Google OAuth access tokens
    re.compile(r"(?P<key>)(?P<sep>)(?P<value>\bya29\.[A-Za-z0-9._-]+)"),
    # Keboola Storage API tokens: <project>-<token id>-<40 characters>
    re.compile(r"(?P<key>)(?P<sep>)(?P<value>\b\d+-\d+-[A-Za-z0-9]{40}\b)"),
)


def _hide(match: re.Match) -> str:
    return f"{match.group('key')}{match.group('sep')}{HIDDEN}"


def register_secret(value: str | None) -> None:
    """Remember a secret so that ``redact`` hides it (with its URL-encoded and URL-decoded forms)."""
    if not isinstance(value, str):
        return
    value = value.strip()
    if len(value) < _MIN_SECRET_LENGTH:
        return
    for form in (value, quote(value, safe=""), unquote(value)):
        if len(form) >= _MIN_SECRET_LENGTH:
            _SECRETS.add(form)


def registered_secrets() -> frozenset[str]:
    return frozenset(_SECRETS)


def redact(text: str) -> str:
    """``text`` with every registered secret and every credential-shaped value replaced by ``[hidden]``."""
    if not text:
        return text
    if _SECRETS:
        for secret in sorted(_SECRETS, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, HIDDEN)
    text = _KEY_VALUE_RE.sub(_hide, text)
    for shape in _SHAPES:
        text = shape.sub(_hide, text)
    return text


# ---------------------------------------------------------------------------------------------------------------
# file-storage credentials (they arrive from the Storage API during the run)

_CREDENTIAL_KEYS = {
    "accesskeyid",
    "secretaccesskey",
    "sessiontoken",
    "sasconnectionstring",
    "sastoken",
    "access_token",
    "accountkey",
}
# the parts of a SAS connection string that appear alone in URLs and logs: the SAS token and its signature
_SAS_PARTS = (re.compile(r"(?i)SharedAccessSignature=([^;]+)"), re.compile(r"(?i)(?<![\w-])sig=([^&;\s]+)"))


def register_file_credentials(answer: Any) -> Any:
    """Register the credentials in a Storage API files answer (S3 ``credentials``, ``absCredentials``,
    ``gcsCredentials``, ``uploadParams``...) and return the answer unchanged."""
    _register_credentials(answer, 0)
    return answer


def _register_credentials(value: Any, depth: int) -> None:
    if depth > 8:
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(item, str) and str(key).lower() in _CREDENTIAL_KEYS:
                register_secret(item)
                for part in _SAS_PARTS:
                    for match in part.finditer(item):
                        register_secret(match.group(1))
            else:
                _register_credentials(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _register_credentials(item, depth + 1)


# ---------------------------------------------------------------------------------------------------------------
# logging: secrets never reach a log record; user errors are shown without a traceback


class SecretRedactingFilter(logging.Filter):
    """Redacts the message, arguments, traceback, stack and extra fields of a record.

    The traceback is rendered here (and ``exc_info`` dropped), because handlers such as GELF format
    ``exc_info`` themselves. ``user_error`` marks records of UserException so consoles can omit the traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string must not break logging
            message = str(record.msg)
        record.msg, record.args = redact(message), ()
        if record.exc_info and record.exc_info[1] is not None:
            record.user_error = isinstance(record.exc_info[1], UserException)
            record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if isinstance(value, str) and key not in ("msg", "exc_text", "stack_info"):
                setattr(record, key, redact(value))
        return True


class ConsoleFormatter(logging.Formatter):
    """Plain message; the traceback of a UserException is not printed (users see one sentence, exit code 1)."""

    def format(self, record: logging.LogRecord) -> str:
        exc = record.exc_info[1] if record.exc_info else None
        if getattr(record, "user_error", False) or isinstance(exc, UserException):
            clone = logging.makeLogRecord(vars(record))
            clone.exc_info, clone.exc_text = None, None
            return super().format(clone)
        return super().format(record)


_FILTER = SecretRedactingFilter()
_logger = logging.getLogger(__name__)


def _log_uncaught(exc_type, exc, tb) -> None:
    if issubclass(exc_type, KeyboardInterrupt):
        sys.__excepthook__(exc_type, exc, tb)
        return
    _logger.error("Uncaught %s", exc_type.__name__, exc_info=(exc_type, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    thread = args.thread.name if args.thread else "a thread"
    _logger.error(
        "Uncaught %s in %s",
        args.exc_type.__name__,
        thread,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


def install_log_redaction() -> None:
    """Redact secrets in every record (record factory, so also handlers added later, and a filter on every root
    handler); console handlers omit tracebacks of user errors; uncaught exceptions (main thread and others) and
    warnings are logged, so they are redacted too."""
    current = logging.getLogRecordFactory()
    if not getattr(current, "_storage_sync", False):

        def factory(*args, **kwargs):
            record = current(*args, **kwargs)
            _FILTER.filter(record)
            return record

        factory._storage_sync = True
        logging.setLogRecordFactory(factory)
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
        if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stdout, sys.stderr):
            handler.setFormatter(ConsoleFormatter())
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread
    logging.captureWarnings(True)

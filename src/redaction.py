"""Secrets never reach a log line or an error message.

``register_secret`` remembers a secret (the configuration registers every Storage API token as soon as it reads
it); ``redact`` hides the registered secrets in a text; ``install_log_redaction`` makes every log record pass
through ``redact`` (message, arguments, traceback, extra fields) whatever handler prints it (console, GELF).
"""

from __future__ import annotations

import logging
import sys
import traceback

from keboola.component.exceptions import UserException

HIDDEN = "[hidden]"
_MIN_SECRET_LENGTH = 4  # shorter values are not worth redacting (and would hide ordinary text)
_SECRETS: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret so that ``redact`` hides it."""
    if value and len(value) >= _MIN_SECRET_LENGTH:
        _SECRETS.add(value)


def registered_secrets() -> frozenset[str]:
    return frozenset(_SECRETS)


def redact(text: str) -> str:
    """Replace every registered secret in ``text`` with ``[hidden]``."""
    if not text or not _SECRETS:
        return text
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, HIDDEN)
    return text


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


def install_log_redaction() -> None:
    """Redact secrets in every record (record factory, so also handlers added later, and a filter on every root
    handler); console handlers omit tracebacks of user errors."""
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

"""Typed errors of the emulated Storage API.

Every rule violation in the models raises one of these; the HTTP layer turns it into the real error body
``{"error": message, "code": code, "exceptionId": ...}`` with the status below. Inside a job, the same
exception ends the job in ``error`` with ``error{code, message, exceptionId}``.
"""

from __future__ import annotations

import uuid


def new_exception_id() -> str:
    return f"exception-{uuid.uuid4().hex[:24]}"


class StorageError(Exception):
    status = 400
    code = "storage.validation"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None, **extra):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.extra = extra  # extra keys of the error body / job results (e.g. missingColumns)
        self.exception_id = new_exception_id()

    def body(self) -> dict:
        return {"error": self.message, "code": self.code, "exceptionId": self.exception_id}


class MissingToken(StorageError):
    status = 401
    code = ""

    def __init__(self):
        super().__init__("Access token must be set")


class InvalidToken(StorageError):
    status = 401
    code = "storage.tokenInvalid"

    def __init__(self):
        super().__init__("Invalid access token")


class Forbidden(StorageError):
    status = 403
    code = "accessDenied"


class NotFound(StorageError):
    status = 404
    code = "notFound"


class BucketNotFound(NotFound):
    code = "storage.buckets.notFound"

    def __init__(self, bucket_id: str):
        super().__init__(f'Bucket "{bucket_id}" not found')


class TableNotFound(NotFound):
    code = "storage.tables.notFound"

    def __init__(self, table_id: str):
        bucket, _, name = table_id.rpartition(".")
        super().__init__(f'The table "{name}" was not found in the bucket "{bucket}"')


class FileNotFound(NotFound):
    code = "storage.files.notFound"

    def __init__(self, file_id=None):
        super().__init__("File not found")


class JobNotFound(NotFound):
    code = "storage.jobs.notFound"

    def __init__(self, job_id=None):
        super().__init__(f"Job {job_id} not found")


class ValidationError(StorageError):
    """400 with a caller-chosen code, e.g. storage.tables.validation."""

    status = 400
    code = "storage.validation"


class ColumnsNotMatch(StorageError):
    code = "csvImport.columnsNotMatch"

    def __init__(self, missing: list[str], expected: list[str], delimiter: str = ","):
        super().__init__(
            f"Some columns are missing in the csv file. Missing columns: {','.join(missing)}. "
            f"Expected columns: {','.join(expected)}. "
            f'Please check if the expected delimiter "{delimiter}" is used in the csv file.',
            missingColumns=missing,
            expectedColumns=expected,
        )


class Maintenance(StorageError):
    status = 503
    code = "maintenance"


class AccessDenied(Forbidden):
    """403 for a bucket/table/file the token has no (or too weak) permission on."""

    def __init__(self, message: str = "You don't have access to the resource.", **kw):
        super().__init__(message, **kw)


class RouteNotFound(NotFound):
    code = "notFound"

    def __init__(self, path: str):
        super().__init__(f'Route "{path}" not found')


class MethodNotAllowed(StorageError):
    status = 405
    code = "methodNotAllowed"

    def __init__(self, method: str, allowed: list[str] | tuple[str, ...] = ()):
        super().__init__(
            f'Method "{method}" is not allowed. Allowed methods: {", ".join(sorted(allowed))}', allowed=list(allowed)
        )


class ApplicationError(StorageError):
    """An unexpected failure: 500 with the real API's wording and an exception id to report."""

    status = 500
    code = "APPLICATION_ERROR"

    def __init__(self, message: str | None = None):
        super().__init__("Internal error")
        self.message = message or (
            "Application error. Please contact our support support@keboola.com "
            f"with following exception id ({self.exception_id}) and we will investigate the problem."
        )


class MaintenanceError(Maintenance):
    """503 of the maintenance mode: the body differs from the usual error body (APIB l.114-141)."""

    def __init__(self, reason: str = "Scheduled maintenance", estimated_end_time: str | None = None, retry_after=600):
        super().__init__(reason)
        self.reason = reason
        self.estimated_end_time = estimated_end_time
        self.retry_after = int(retry_after)

    def body(self) -> dict:
        return {"status": "maintenance", "reason": self.reason, "estimatedEndTime": self.estimated_end_time}

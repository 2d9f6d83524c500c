"""Keboola Storage API client: typed errors, safe retries, job polling and parallel streamed file transfer."""

from .client import StorageClient
from .errors import ConnectionFailed, JobFailed, JobTimeout, StorageApiError, TransferError
from .http import RetryPolicy, StorageHttp
from .jobs import PollPolicy
from .tables import ExportResult

__all__ = [
    "ConnectionFailed",
    "ExportResult",
    "JobFailed",
    "JobTimeout",
    "PollPolicy",
    "RetryPolicy",
    "StorageApiError",
    "StorageClient",
    "StorageHttp",
    "TransferError",
]

"""Provider-neutral interface of the emulator's file storage.

The Storage API keeps every file (uploads, table exports, sliced files and their manifests) in the stack's object
storage: S3 on AWS stacks, Azure Blob Storage on Azure stacks, GCS on GCP stacks. The emulator runs a local
stand-in for one of them and speaks to it through this interface, so models and handlers never see a provider:

- ``prepare_block`` / ``detail_block`` shape the provider part of ``files/prepare`` and ``files/{id}`` responses
  (``uploadParams``, ``s3Path`` + ``credentials``, ``absUploadParams``, ``gcsPath`` ... per provider);
- ``url`` is the presigned download URL of a file (of its manifest when sliced);
- ``entry_url`` / ``entry_key`` convert between an object key and the URL a sliced-file manifest entry uses.

Object keys are plain strings. A missing object makes ``fetch`` and ``read_bytes`` raise ``FileNotFoundError``;
``exists`` / ``size`` answer ``False`` / ``None``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Self


class FileStorage(ABC):
    provider: str  # "aws" | "azure" | "gcp"
    env: dict[str, str]  # what a client process needs to reach the storage, e.g. AWS_ENDPOINT_URL_S3

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.env = {}

    # lifecycle -------------------------------------------------------------------------------------------------
    @abstractmethod
    def start(self) -> None:
        """Start the local storage service; afterwards ``env`` is filled in."""

    @abstractmethod
    def stop(self) -> None:
        """Stop the service and release its resources. Idempotent."""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # API response blocks ---------------------------------------------------------------------------------------
    @abstractmethod
    def prepare_block(self, key: str, *, name: str, sliced: bool, encrypted: bool) -> dict:
        """Provider upload block merged into the ``files/prepare`` response (e.g. ``{"uploadParams": ...}``)."""

    @abstractmethod
    def detail_block(self, key: str, *, sliced: bool) -> dict:
        """Provider block merged into ``GET files/{id}?federationToken=1`` (location + credentials)."""

    @abstractmethod
    def url(self, key: str, *, sliced: bool) -> str:
        """Presigned GET URL (1 hour) of ``key``, or of ``key + "manifest"`` when sliced."""

    @abstractmethod
    def entry_url(self, key: str) -> str:
        """URL of ``key`` as written in a sliced-file manifest entry."""

    @abstractmethod
    def entry_key(self, url: str) -> str:
        """Inverse of ``entry_url``; raises ``errors.ValidationError`` for a URL outside this storage."""

    # objects ---------------------------------------------------------------------------------------------------
    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def size(self, key: str) -> int | None:
        """Size in bytes, ``None`` when the object does not exist."""

    @abstractmethod
    def put_file(self, key: str, path: Path) -> None:
        """Upload a local file, streaming (never reads the whole file into memory)."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def fetch(self, key: str, dest: Path) -> None:
        """Download ``key`` into the local file ``dest``, streaming. Missing object -> ``FileNotFoundError``."""

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """Whole content of a small object (manifests). Missing object -> ``FileNotFoundError``."""

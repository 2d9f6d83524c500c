"""Fixtures of the transfer integration tests: the emulator's file storages (moto S3, Azurite, gcp-storage-emulator),
started once per test module on first use, and urllib3-level cuts of GET bodies."""

from __future__ import annotations

import pytest

from emulator.filestorage import create_file_storage
from tests.integration.transfer_support import PROVIDERS, install_http_cuts


@pytest.fixture(scope="module")
def storages():
    started = {}
    yield started
    for storage in started.values():
        storage.stop()


def _started(storages: dict, provider: str, tmp_path_factory):
    if provider not in storages:
        storage = create_file_storage(provider, tmp_path_factory.mktemp(f"files-{provider}"))
        storage.start()
        storages[provider] = storage
    return storages[provider]


@pytest.fixture(params=PROVIDERS)
def fs(request, storages, tmp_path_factory, monkeypatch):
    """The started file storage of the provider (one per module); its env applied like in a client process.
    Parametrize with ``@pytest.mark.parametrize("fs", ALL_PROVIDERS, indirect=True)`` to include S3."""
    storage = _started(storages, request.param, tmp_path_factory)
    for name, value in storage.env.items():
        monkeypatch.setenv(name, value)
    return storage


@pytest.fixture
def gcs(storages, tmp_path_factory, monkeypatch):
    storage = _started(storages, "gcp", tmp_path_factory)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", storage.env["STORAGE_EMULATOR_HOST"])
    return storage


@pytest.fixture
def http_cuts(monkeypatch):
    return install_http_cuts(monkeypatch)

"""The backend on the azure and gcp file storages: upload, table create, export, download blocks."""

from __future__ import annotations

import pytest
import requests

from emulator import Emulator

from .conftest import Api

BLOCKS = {
    "azure": ("absUploadParams", "absPath", "absCredentials"),
    "gcp": ("gcsUploadParams", "gcsPath", "gcsCredentials"),
}


@pytest.mark.parametrize("provider", ["azure", "gcp"])
def test_other_provider_end_to_end(provider):
    upload_block, path_block, credentials_block = BLOCKS[provider]
    with Emulator(provider=provider) as emu:
        project = emu.create_project("p")
        api = Api(emu.url, project.token)
        assert api.get("/tokens/verify").json()["owner"]["fileStorageProvider"] == provider
        emu.create_bucket(project.id, "main")
        emu.create_table(project.id, "in.c-main.t", "id,name\n1,a\n2,b\n", primary_key=["id"])
        prepared = api.prepare("x.csv")
        assert prepared["provider"] == provider
        assert upload_block in prepared and prepared["isEncrypted"] is True
        job = api.job_post("/tables/in.c-main.t/export-async", json={})
        assert job["status"] == "success", job
        detail = api.get(f"/files/{job['results']['file']['id']}", params={"federationToken": 1}).json()
        assert detail["provider"] == provider and detail["isSliced"] is True
        assert path_block in detail and credentials_block in detail
        manifest = requests.get(detail["url"], timeout=10).json()
        assert manifest["entries"]
        assert sorted(r["id"] for r in emu.table_rows(project.id, "in.c-main.t")) == ["1", "2"]
        if provider == "gcp":
            refreshed = api.put(f"/files/{prepared['id']}/refresh")
            assert refreshed.status_code == 200
            assert upload_block in refreshed.json()

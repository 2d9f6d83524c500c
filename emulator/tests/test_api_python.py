"""The Python API of the emulator (seeding and inspection without HTTP)."""

from __future__ import annotations

import pytest

from emulator.errors import StorageError


def test_seed_and_inspect(emu, project, tmp_path):
    assert emu.create_bucket(project.id, "x") == "in.c-x"
    path = tmp_path / "seed.csv"
    path.write_text("id,name\n1,a\n2,b\n")
    detail = emu.create_table(project.id, "in.c-x.t", path, primary_key=["id"])
    assert detail["id"] == "in.c-x.t" and detail["rowsCount"] == 2
    emu.load_table(project.id, "in.c-x.t", "id,name\n2,B\n3,c\n", incremental=True)
    rows = sorted(emu.table_rows(project.id, "in.c-x.t"), key=lambda r: r["id"])
    assert rows == [{"id": "1", "name": "a"}, {"id": "2", "name": "B"}, {"id": "3", "name": "c"}]
    assert emu.table_detail(project.id, "in.c-x.t")["primaryKey"] == ["id"]
    with pytest.raises(StorageError) as info:
        emu.create_table(project.id, "in.c-x.t", "id\n1\n")
    assert info.value.code == "storage.buckets.tableAlreadyExists"
    emu.delete_table(project.id, "in.c-x.t")
    with pytest.raises(StorageError):
        emu.table_detail(project.id, "in.c-x.t")


def test_tokens_and_switches(emu, project, api):
    token = emu.create_token(project.id, {"in.c-y": "write"}, False, "writer")
    assert token.startswith(f"{project.id}-")
    assert api.with_token(token).get("/tokens/verify").json()["description"] == "writer"
    emu.job_delay = 0.25
    assert emu.job_delay == 0.25
    assert emu.url.startswith("http://127.0.0.1:")
    assert "AWS_ENDPOINT_URL_S3" in emu.env

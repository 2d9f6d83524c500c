"""HTTP layer: routing errors, error bodies, maintenance, parameter decoding."""

from __future__ import annotations

import requests

from emulator.responses import nest_params


def test_unknown_route_404_json(api):
    resp = api.get("/nothing-here")
    assert resp.status_code == 404
    body = resp.json()
    assert set(body) >= {"error", "code", "exceptionId"}


def test_wrong_method_405_json(api):
    resp = api.put("/buckets")
    assert resp.status_code == 405
    body = resp.json()
    assert body["code"] == "methodNotAllowed"
    assert "GET" in resp.headers["Allow"]


def test_unexpected_exception_500_with_body(api, emu, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("secret detail")

    monkeypatch.setattr(emu.backend, "list_buckets", boom)
    resp = api.get("/buckets")
    assert resp.status_code == 500
    body = resp.json()
    assert body["exceptionId"]
    assert "secret detail" not in body["error"]


def test_maintenance_503(api, emu):
    emu.set_maintenance(True, reason="upgrade", retry_after=30)
    resp = api.get("/tokens/verify")
    assert resp.status_code == 503
    assert resp.headers["Retry-After"] == "30"
    body = resp.json()
    assert body["status"] == "maintenance"
    assert body["reason"] == "upgrade"
    assert body["estimatedEndTime"]
    assert api.with_token(None).get("/buckets").status_code == 503
    emu.set_maintenance(False)
    assert api.get("/tokens/verify").status_code == 200


def test_invalid_json_body_400(api):
    resp = api.post("/buckets", data="{not json", headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.json()["code"]


def test_trailing_slash_is_accepted(api):
    api.create_bucket("slash")
    assert api.get("/buckets/in.c-slash/").status_code == 200


def test_nest_params_php_style():
    pairs = [
        ("tags[]", "a"),
        ("tags[]", "b"),
        ("whereFilters[0][column]", "id"),
        ("whereFilters[0][values][0]", "1"),
        ("whereFilters[0][values][1]", "2"),
        ("whereFilters[1][column]", "x"),
        ("whereFilters[1][values][]", "y"),
        ("columnsMetadata[id][0][key]", "k"),
        ("plain", "1"),
        ("plain", "2"),
    ]
    assert nest_params(pairs) == {
        "tags": ["a", "b"],
        "whereFilters": [{"column": "id", "values": ["1", "2"]}, {"column": "x", "values": ["y"]}],
        "columnsMetadata": {"id": [{"key": "k"}]},
        "plain": "2",
    }


def test_gzip_accept_encoding_is_fine(api):
    resp = requests.get(api.url + "/v2/storage/tokens/verify", headers={**api.headers(), "Accept-Encoding": "gzip"})
    assert resp.status_code == 200


def test_many_form_fields_are_accepted(api):
    """kbcstorage sends whereValues[] as form fields; thousands of them must not hit a form-parts limit."""
    bucket = api.create_bucket("many")
    api.create_table(bucket, "t", "id\n1\n2\n")
    values = [str(i) for i in range(3000)]
    job = api.job_post(f"/tables/{bucket}.t/export-async", data={"whereColumn": "id", "whereValues[]": values})
    assert job["status"] == "success", job

"""FaultInjector: scripted and seeded-random rules, specs, counters, thread safety (no HTTP involved)."""

from __future__ import annotations

import json
import threading

import pytest

from emulator.faults import Fault, FaultInjector, FaultRule

IMPORT = "POST /v2/storage/tables/*/import-async"


@pytest.fixture(autouse=True)
def _reset_emulator():
    """Overrides the package conftest's autouse fixture: these tests need no Emulator."""
    yield


def _kinds(injector: FaultInjector, calls) -> list[str | None]:
    out = []
    for method, path in calls:
        fault = injector.match(method, path)
        out.append(None if fault is None else fault.label)
    return out


def test_scripted_times_and_after():
    inj = FaultInjector(seed=1)
    rule = inj.add(
        FaultRule(endpoint="GET /v2/storage/jobs/*", fault=Fault(kind="status", status=503), after=2, times=2)
    )
    got = _kinds(inj, [("GET", "/v2/storage/jobs/1")] * 6)
    assert got == [None, None, "503", "503", None, None]
    assert rule.exhausted and rule not in inj.rules  # retired


def test_glob_matching_on_method_and_path():
    inj = FaultInjector(seed=1)
    inj.add(IMPORT, kind="reset")
    assert inj.match("GET", "/v2/storage/tables/in.c-a.t/import-async") is None  # method differs
    assert inj.match("POST", "/v2/storage/tables/in.c-a.t/export-async") is None
    assert inj.match("post", "/v2/storage/tables/in.c-a.t/import-async?x=1").kind == "reset"
    inj.clear()
    inj.add("*", kind="slow", delay=0.25)
    fault = inj.match("DELETE", "/v2/storage/buckets/in.c-a")
    assert fault.kind == "slow" and fault.delay == 0.25


def test_first_firing_rule_wins_and_every_matching_rule_counts():
    inj = FaultInjector(seed=1)
    inj.add("GET /v2/storage/jobs/*", kind="status", status=500, times=1)
    late = inj.add("GET *", kind="status", status=502, after=1, times=1)
    assert _kinds(inj, [("GET", "/v2/storage/jobs/1")] * 3) == ["500", "502", None]
    assert late.seen == 2


def test_status_fault_body_and_headers():
    f503 = Fault(kind="status", status=503)
    assert f503.retry_after == 1 and f503.headers() == {"Retry-After": "1"}
    body = f503.body()
    assert set(body) == {"error", "code", "exceptionId"} and body["exceptionId"].startswith("exception-")
    assert f503.body is not None and f503.body["error"]  # attribute access works too (dict)
    f500 = Fault(kind="status", status=500)
    assert f500.retry_after is None and f500.headers() == {}
    assert f500.body()["code"] == "APPLICATION_ERROR"
    body = f500.body()
    assert body["exceptionId"] in body["error"]  # the real 500 message quotes the exception id
    assert Fault(kind="status", status=429, retry_after=5).headers() == {"Retry-After": "5"}
    maintenance = Fault(kind="status", status=503, maintenance=True, retry_after=30, message="Upgrade")
    assert set(maintenance.body()) == {"status", "reason", "estimatedEndTime"}
    assert maintenance.body()["status"] == "maintenance" and maintenance.body()["reason"] == "Upgrade"
    job = Fault(kind="job_error")
    assert job.code == "storage.jobs.error" and job.message


def test_random_with_seed_is_reproducible_and_near_rate():
    calls = [("GET", f"/v2/storage/jobs/{i}") for i in range(2000)]
    first = FaultInjector(seed=42)
    first.random(0.2)
    second = FaultInjector(seed=42)
    second.random(0.2)
    a, b = _kinds(first, calls), _kinds(second, calls)
    assert a == b
    fired = [k for k in a if k is not None]
    assert 0.16 < len(fired) / len(calls) < 0.24
    assert set(fired) == {"500", "502", "503", "429", "reset"}
    other = FaultInjector(seed=43)
    other.random(0.2)
    assert _kinds(other, calls) != a


def test_random_respects_endpoint_and_kinds():
    inj = FaultInjector(seed=3)
    inj.random(1.0, kinds=["503"], endpoint=IMPORT, retry_after=4)
    assert inj.match("GET", "/v2/storage/jobs/1") is None
    fault = inj.match("POST", "/v2/storage/tables/in.c-a.t/import-async")
    assert fault.status == 503 and fault.headers() == {"Retry-After": "4"}
    with pytest.raises(ValueError, match="Unknown random fault kind"):
        inj.random(0.1, kinds=["418x"])


def test_probability_rule_with_times():
    inj = FaultInjector(seed=5)
    inj.add(FaultRule(endpoint="*", fault=Fault(kind="reset"), probability=0.5, times=3))
    got = _kinds(inj, [("GET", "/x")] * 200)
    assert got.count("reset") == 3


def test_from_spec_json_string_and_file(tmp_path):
    spec = {
        "seed": 7,
        "random": {"rate": 0.1, "kinds": ["500", "reset"], "endpoint": "GET *"},
        "rules": [
            {"endpoint": IMPORT, "kind": "status", "status": 503, "retry_after": 2, "times": 1},
            {
                "endpoint": "POST /v2/storage/tables/*/export-async",
                "kind": "job_error",
                "code": "storage.x",
                "after": 1,
            },
        ],
    }
    inj = FaultInjector.from_spec(json.dumps(spec))
    assert inj.seed == 7
    fault = inj.match("POST", "/v2/storage/tables/in.c-a.t/import-async")
    assert fault.kind == "status" and fault.status == 503 and fault.retry_after == 2
    assert inj.match("POST", "/v2/storage/tables/in.c-a.t/import-async") is None
    assert inj.match("POST", "/v2/storage/tables/in.c-a.t/export-async") is None
    assert inj.match("POST", "/v2/storage/tables/in.c-a.t/export-async").code == "storage.x"

    path = tmp_path / "faults.json"
    path.write_text(json.dumps(spec))
    from_file = FaultInjector.from_spec(str(path))
    from_json = FaultInjector.from_spec(json.dumps(spec))
    calls = [("GET", f"/v2/storage/jobs/{i}") for i in range(300)]
    assert _kinds(from_file, calls) == _kinds(from_json, calls)
    assert FaultInjector.from_spec('{"rules": []}', seed=11).seed == 11  # the CLI --seed when the spec has none


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{not json", "not valid JSON"),
        ("/nonexistent/faults.json", "neither a JSON object nor a readable file"),
        ("[1, 2]", "neither a JSON object"),
        ('{"seed": "x"}', "seed must be an integer"),
        ('{"bogus": 1}', "unknown keys"),
        ('{"rules": {}}', "rules must be a list"),
        ('{"rules": [{"endpoint": "*"}]}', "needs endpoint and kind"),
        ('{"rules": [{"endpoint": "*", "kind": "explode"}]}', "Unknown fault kind"),
        ('{"rules": [{"endpoint": "*", "kind": "status", "status": 200}]}', "HTTP error status"),
        ('{"rules": [{"endpoint": "*", "kind": "reset", "times": 0}]}', "times must be a positive integer"),
        ('{"rules": [{"endpoint": "*", "kind": "reset", "probability": 2}]}', "probability must be between"),
        ('{"rules": [{"endpoint": "*", "kind": "reset", "colour": "red"}]}', "unknown keys"),
        ('{"random": {"kinds": ["500"]}}', "needs a rate"),
        ('{"random": {"rate": 0.1, "kinds": ["teapot"]}}', "Unknown random fault kind"),
    ],
)
def test_invalid_specs(spec, message):
    with pytest.raises(ValueError, match=message):
        FaultInjector.from_spec(spec)


def test_counters_and_log():
    inj = FaultInjector(seed=1)
    inj.add("GET /a", kind="status", status=500, times=2)
    inj.add("GET /b", kind="job_error", times=1)
    inj.add("GET /c", kind="slow", delay=0, times=1)
    _kinds(inj, [("GET", "/a"), ("GET", "/a"), ("GET", "/a"), ("GET", "/b"), ("GET", "/c"), ("GET", "/d")])
    assert inj.injected == {"status": 2, "reset": 0, "slow": 1, "job_error": 1, "total": 4}
    assert [(e.seq, e.path, e.kind) for e in inj.log] == [
        (0, "/a", "status"),
        (1, "/a", "status"),
        (3, "/b", "job_error"),
        (4, "/c", "slow"),
    ]
    report = inj.report()
    assert report["requests"] == 6 and report["by_label"] == {"500": 2, "job_error": 1, "slow": 1}
    inj.clear()
    assert inj.rules == [] and inj.injected["total"] == 4  # clear() removes rules, keeps counts


def test_add_validation():
    inj = FaultInjector()
    assert isinstance(inj.seed, int)  # a random seed is still recorded for reproduction
    with pytest.raises(ValueError):
        inj.add("*")
    with pytest.raises(ValueError):
        inj.add("", kind="reset")
    with pytest.raises(ValueError):
        Fault(kind="reset", status=500)
    with pytest.raises(ValueError):
        Fault(kind="status", status=500, maintenance=True)


def test_thread_safety_smoke():
    inj = FaultInjector(seed=9)
    inj.add("GET /x", kind="status", status=500, times=500)
    inj.random(0.1, endpoint="GET /y")
    fired = []
    lock = threading.Lock()

    def worker():
        local = 0
        for _ in range(250):
            if inj.match("GET", "/x") is not None:
                local += 1
            inj.match("GET", "/y")
        with lock:
            fired.append(local)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(fired) == 500  # exactly `times`, no double firing
    assert inj.requests == 8 * 250 * 2
    assert inj.injected["total"] == len(inj.log) > 500
    assert inj.injected["status"] + inj.injected["reset"] == inj.injected["total"]

"""The benchmark harness works end to end on a tiny table (quick mode); nothing is timed or compared here."""

from __future__ import annotations

from tests.unit.bench_support import run_benchmark


def test_benchmark_harness_runs_in_quick_mode(tmp_path):
    report = tmp_path / "BENCHMARKS.md"
    env = {
        "BENCH_QUICK": "1",
        "BENCH_ROWS": "2000",
        "BENCH_SYNC_SMALL": "1000",
        "BENCH_POLL": "0.2",
        "BENCH_POLL_REPS": "1",
        "BENCH_OUT": str(report),
        "BENCH_TMP": str(tmp_path / "work"),
    }
    run_benchmark("run.py", env)
    text = report.read_text()
    for section in ("### Export", "### Import", "### Sync", "## Incremental sync", "## Job polling", "## Targets"):
        assert section in text
    for tool in ("component", "kbcstorage", "raw limit"):
        assert f"| {tool} |" in text

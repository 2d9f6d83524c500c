"""The benchmark harness works end to end on a tiny table (quick mode); nothing is timed or compared here."""

from __future__ import annotations

import json

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
    # the figures as JSON, and the chart drawn from them and linked from the report
    figures = json.loads((tmp_path / "BENCHMARKS.json").read_text())
    assert [e["rows"] for e in figures["ops"]["sync"]] == [2000]
    assert all(figures["ops"]["sync"][0][tool]["wall"] > 0 for tool in ("component", "kbcstorage", "raw"))
    assert "](charts/modes.png)" in text
    assert (tmp_path / "charts" / "modes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_new_report_keeps_the_sections_other_scripts_wrote():
    from benchmarks.report import kept_sections

    previous = (
        "# Benchmarks\n\n## Targets\n\nold\n\n## Typed tables (issue 12)\n\ntyped\n\n## Analysis (x)\n\nold notes\n"
    )
    kept = kept_sections(previous, "# Benchmarks\n\n## Targets\n\nnew\n")
    assert kept == ["## Typed tables (issue 12)", "", "typed", "", ""]
    assert kept_sections("", "## Targets") == []

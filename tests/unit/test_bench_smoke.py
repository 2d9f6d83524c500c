"""The benchmark harness works end to end on a tiny table (quick mode); nothing is timed or compared here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_benchmark_harness_runs_in_quick_mode(tmp_path):
    report = tmp_path / "BENCHMARKS.md"
    env = {
        **os.environ,
        "BENCH_QUICK": "1",
        "BENCH_ROWS": "2000",
        "BENCH_SYNC_SMALL": "1000",
        "BENCH_POLL": "0.2",
        "BENCH_POLL_REPS": "1",
        "BENCH_OUT": str(report),
        "BENCH_TMP": str(tmp_path / "work"),
    }
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run.py")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = report.read_text()
    for section in ("### Export", "### Import", "### Sync", "## Incremental sync", "## Job polling", "## Targets"):
        assert section in text
    for tool in ("component", "kbcstorage", "raw limit"):
        assert f"| {tool} |" in text

"""Running a benchmark script as a process in a smoke test (quick settings in ``env``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_benchmark(script: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``benchmarks/<script>`` with ``env`` on top of this process's environment; it must succeed."""
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script)],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc

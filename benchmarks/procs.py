"""Run a benchmark subprocess and measure its wall time and peak RSS (the process and its children).

Peak RSS is the kernel's high-water mark ``VmHWM`` of each process in the tree, read from /proc while it runs
(every 20 ms; the mark only grows). ``ru_maxrss`` from wait4 is not used: on Linux it includes the RSS of the
parent image the child was forked from before exec (here the benchmark process, which hosts the emulator).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil


@dataclass
class Measured:
    label: str
    wall: float
    peak_rss_mb: float
    returncode: int
    output: str = ""
    server_s: float | None = None  # storage jobs of the run (the emulator's work): the same for every client
    samples: list[float] = field(default_factory=list)  # wall times of all runs when this is their median

    @property
    def client_s(self) -> float | None:
        return None if self.server_s is None else max(0.0, self.wall - self.server_s)

    def mb_s(self, num_bytes: int) -> float:
        return num_bytes / 2**20 / self.wall if self.wall > 0 else 0.0


def _hwm(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_measured(label: str, argv: list[str], *, env: dict[str, str], cwd: Path, log: Path | None = None) -> Measured:
    """Wall time and peak RSS (sum of the VmHWM of the process and its children)."""
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115
    try:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        sampled = 0
        peaks: dict[int, int] = {}
        stop = threading.Event()

        def sample() -> None:
            nonlocal sampled
            try:
                root = psutil.Process(proc.pid)
            except psutil.Error:
                return
            while not stop.is_set():
                try:
                    for pid in [root.pid] + [c.pid for c in root.children(recursive=True)]:
                        peaks[pid] = max(peaks.get(pid, 0), _hwm(pid))
                    sampled = sum(peaks.values())
                except psutil.Error:
                    return
                stop.wait(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, _usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        stop.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if log:
            out.close()
    peak = sampled / 2**20
    text = log.read_text(errors="replace")[-3000:] if log else ""
    return Measured(label, wall, peak, proc.returncode, text)


def median_run(runs: list[Measured]) -> Measured:
    """The run of median wall time (odd counts), carrying the wall times of all of them."""
    chosen = sorted(runs, key=lambda m: m.wall)[len(runs) // 2]
    chosen.samples = [m.wall for m in runs]
    return chosen

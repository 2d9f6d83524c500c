"""Row-delete propagation benchmark: ``propagate_deletes`` vs the two key-only exports it starts with.

    .venv/bin/python benchmarks/deletes.py                          # 10M rows, 1 % deleted in the source
    BENCH_DELETE_ROWS=1000000 .venv/bin/python benchmarks/deletes.py

A table of BENCH_DELETE_ROWS rows (benchmarks/datagen.py, primary key ``id``) is created in a source and a
destination project of one emulator; BENCH_DELETE_SHARE (0.01) of the source rows are deleted. Then, each run a
separate process measured for wall time and peak RSS (benchmarks/procs.py), BENCH_DELETE_REPS times interleaved:
- ``exports``: the two key-only exports alone (``export_key_pair``: two export jobs and downloads in parallel);
- ``keep``: ``propagate_deletes(apply=False)``: the same exports, then the DuckDB diff;
and once ``apply``: ``propagate_deletes(apply=True)``, which also runs the delete jobs, and once ``baseline``: the
same imports, clients and an idle DuckDB connection (what the memory figures start from). The export cache is
invalidated before every run (each run exports as a first run would). Goals: keep <= 2x exports, peak RSS
<= 150 MB. Knobs: BENCH_DELETE_MEMORY (DuckDB memory_limit), BENCH_DELETE_THREADS, BENCH_TMP (scratch dir).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "src")]

PY = sys.executable
TABLE = "in.c-bench.t"
RESULT = "RESULT "


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", flush=True)


# the measured process --------------------------------------------------------------------------------------------
class AnonPeak:
    """The process's peak anonymous memory (``RssAnon``, sampled every 20 ms): RSS without the file-backed pages
    of shared libraries (DuckDB's library alone is ~60 MB of them once a connection has touched it)."""

    def __init__(self):
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            with open("/proc/self/status") as fh:
                for line in fh:
                    if line.startswith("RssAnon:"):
                        self.peak = max(self.peak, int(line.split()[1]) * 1024)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / 2**20


def worker(args: dict) -> None:
    from storage_api import StorageClient
    from workflows.deletes import propagate_deletes
    from workflows.keys import export_key_pair

    work = Path(args["work_dir"])
    anon = AnonPeak()
    started = time.perf_counter()
    with StorageClient(args["url"], args["source"]) as src, StorageClient(args["url"], args["destination"]) as dst:
        if args["kind"] == "baseline":  # the same imports, a client and a DuckDB connection, no work
            import boto3  # what the exports load (the benchmark's emulator is S3)

            from workflows.keys import KeyDiff

            boto3.session.Session().client("s3", region_name="us-east-1")
            with KeyDiff(work) as diff:
                out = {"one": diff.con.execute("SELECT 1").fetchone()[0]}
        elif args["kind"] == "exports":
            pair = export_key_pair((dst, TABLE, ()), (src, TABLE, ()), ["id"], work)
            out = {"bytes": sum(k.bytes for k in pair)}
        else:
            outcome = propagate_deletes(
                src,
                dst,
                source_id=TABLE,
                destination_id=TABLE,
                key_columns=["id"],
                where_filters=[],
                apply=args["kind"] == "apply",
                work_dir=work,
                memory_limit=args["memory_limit"],
                threads=args["threads"],
            )
            out = {
                "found": outcome.found,
                "deleted": outcome.deleted,
                "jobs": outcome.jobs,
                "export_s": outcome.export_seconds,
                "diff_s": outcome.diff_seconds,
            }
    wall_inside = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out |= {"wall_inside": wall_inside, "anon_mb": anon.stop(), "cpu_s": usage.ru_utime + usage.ru_stime}
    print(RESULT + json.dumps(out), flush=True)


# the parent: emulator, seeding, runs, report ---------------------------------------------------------------------
def _invalidate_export_cache(emu, projects) -> None:
    backend = emu.backend
    with backend.lock:
        for project in projects:
            backend.table_for(project.id, TABLE).data_version += 1


def _delete_share(emu, project, share: float) -> int:
    """Delete every row whose id falls in the first ``share`` of each hundred (engine SQL: setup, not measured)."""
    backend, engine = emu.backend, emu.engine
    table = backend.table_for(project.id, TABLE)
    cut = max(1, round(share * 100))
    with engine._cursor() as cur:
        deleted = cur.execute(f"DELETE FROM {engine._table(table.handle)} WHERE CAST(id AS BIGINT) % 100 < {cut}")
        count = int(deleted.fetchone()[0])
    engine._changed(table.handle)
    backend._table_changed(table)
    return count


def _jobs_since(emu, after: int, operation: str) -> list[float]:
    jobs = [j for i, j in list(emu.backend.jobs.items()) if i > after and j.operation_name == operation]
    return [(j.end_time - j.start_time).total_seconds() for j in jobs if j.start_time and j.end_time]


def main() -> None:
    from benchmarks.datagen import write_csv
    from benchmarks.procs import run_measured
    from emulator import Emulator

    rows = int(os.environ.get("BENCH_DELETE_ROWS", "10000000"))
    share = float(os.environ.get("BENCH_DELETE_SHARE", "0.01"))
    reps = int(os.environ.get("BENCH_DELETE_REPS", "3"))
    memory_limit = os.environ.get("BENCH_DELETE_MEMORY") or None
    threads = os.environ.get("BENCH_DELETE_THREADS")
    tmp = Path(os.environ.get("BENCH_TMP") or tempfile.mkdtemp(prefix="storage-sync-bench-deletes-"))
    tmp.mkdir(parents=True, exist_ok=True)
    from workflows.keys import DEFAULT_MEMORY_LIMIT, DEFAULT_THREADS

    memory_limit = memory_limit or DEFAULT_MEMORY_LIMIT
    threads = int(threads or DEFAULT_THREADS)
    try:
        with Emulator(job_delay=0.0, workdir=tmp / "emulator") as emu:
            src, dst = emu.create_project("source"), emu.create_project("destination")
            csv_path = tmp / "seed.csv"
            started = time.perf_counter()
            write_csv(csv_path, rows)
            for project in (src, dst):
                emu.create_bucket(project.id, "bench")
                emu.create_table(project.id, TABLE, csv_path, primary_key=["id"])
            csv_path.unlink()
            gone = _delete_share(emu, src, share)
            log(
                f"seeded {rows:,} rows in both projects, deleted {gone:,} in the source ({time.perf_counter() - started:.0f} s)"
            )
            env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), **emu.env}
            base = {"url": emu.url, "source": src.token, "destination": dst.token}
            base |= {"memory_limit": memory_limit, "threads": threads}

            def run(kind: str) -> dict:
                work = tmp / f"work-{kind}"
                shutil.rmtree(work, ignore_errors=True)
                work.mkdir()
                _invalidate_export_cache(emu, (src, dst))
                last_job = max(emu.backend.jobs, default=0)
                argv = [
                    PY,
                    str(Path(__file__).resolve()),
                    "worker",
                    json.dumps(base | {"kind": kind, "work_dir": str(work)}),
                ]
                m = run_measured(kind, argv, env=env, cwd=REPO, log=tmp / f"{kind}.log")
                if m.returncode != 0:
                    raise RuntimeError(f"{kind} failed (rc {m.returncode}):\n{m.output}")
                line = next(x for x in reversed(m.output.splitlines()) if x.startswith(RESULT))
                result = json.loads(line[len(RESULT) :]) | {"wall": m.wall, "rss": m.peak_rss_mb}
                result["export_jobs"] = _jobs_since(emu, last_job, "tableExport")
                result["delete_jobs"] = _jobs_since(emu, last_job, "tableRowsDelete")
                shutil.rmtree(work, ignore_errors=True)
                log(f"  {kind}: {m.wall:.2f} s, peak RSS {m.peak_rss_mb:.0f} MB, {json.dumps(result)}")
                return result

            samples = {"exports": [], "keep": []}
            for _ in range(reps):
                for kind, runs in samples.items():
                    runs.append(run(kind))
            applied = run("apply")
            baseline = run("baseline")
            left = emu.table_detail(dst.id, TABLE)["rowsCount"]
            expected = emu.table_detail(src.id, TABLE)["rowsCount"]
        _report(rows, gone, samples, applied, baseline, left, expected, memory_limit, threads)
    finally:
        if not os.environ.get("BENCH_TMP"):
            shutil.rmtree(tmp, ignore_errors=True)


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _report(rows, gone, samples, applied, baseline, left, expected, memory_limit, threads) -> None:
    exports, keep = _median(samples["exports"], "wall"), _median(samples["keep"], "wall")
    rss = max(r["rss"] for r in samples["keep"] + [applied])
    delete_jobs = sum(applied["delete_jobs"])
    load = os.getloadavg()[0]
    print()
    print(f"## Row-delete propagation: {rows:,} rows, {gone:,} deleted in the source")
    print()
    print(f"DuckDB memory_limit {memory_limit}, threads {threads}; {os.cpu_count()} CPUs, load average {load:.1f}.")
    print(f"Wall times are medians of {len(samples['keep'])} interleaved runs (samples in seconds).")
    print()
    print(
        "| run | wall s | samples | of which exports s | diff s | delete jobs (server) s | client CPU s "
        "| peak RSS MB | anon MB |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for name, runs in (("key exports alone", samples["exports"]), ("propagate, keep", samples["keep"])):
        walls = " / ".join(f"{r['wall']:.1f}" for r in runs)
        ex = _median(runs, "export_s") if "export_s" in runs[0] else _median(runs, "wall_inside")
        diff = f"{_median(runs, 'diff_s'):.2f}" if "diff_s" in runs[0] else ""
        print(
            f"| {name} | {_median(runs, 'wall'):.2f} | {walls} | {ex:.2f} | {diff} | | {_median(runs, 'cpu_s'):.1f} | {max(r['rss'] for r in runs):.0f} "
            f"| {max(r['anon_mb'] for r in runs):.0f} |"
        )
    print(
        f"| propagate, apply ({applied['jobs']} delete jobs) | {applied['wall']:.2f} | | {applied['export_s']:.2f} "
        f"| {applied['diff_s']:.2f} | {delete_jobs:.2f} | {applied['cpu_s']:.1f} | {applied['rss']:.0f} "
        f"| {applied['anon_mb']:.0f} |"
    )
    print()
    ratio = keep / exports
    inside = _median(samples["keep"], "wall_inside") / _median(samples["exports"], "wall_inside")
    print(f"- propagate (keep) / exports alone: **{ratio:.2f}x** (goal <= 2x: {'met' if ratio <= 2 else 'not met'}); ")
    print(f"  {inside:.2f}x without the processes' start (interpreter and imports)")
    cpu = _median(samples["keep"], "cpu_s") - _median(samples["exports"], "cpu_s")
    print(
        f"- the diff's own CPU: {cpu:.1f} s (on {os.cpu_count()} otherwise idle cores ~{cpu / os.cpu_count():.1f} s of wall)"
    )
    apply_client = applied["wall"] - delete_jobs
    print(f"- propagate (apply) without the delete jobs' server time / exports alone: {apply_client / exports:.2f}x")
    anon = max(r["anon_mb"] for r in samples["keep"] + [applied])
    print(f"- peak RSS of propagate: **{rss:.0f} MB** (goal <= 150 MB: {'met' if rss <= 150 else 'not met'}); ")
    print(f"  anonymous memory at most {anon:.0f} MB (the rest is file-backed: Python, boto3 and DuckDB libraries)")
    print(
        f"- a process with the same imports, a client and an idle DuckDB connection: {baseline['rss']:.0f} MB RSS, "
        f"{baseline['anon_mb']:.0f} MB anonymous"
    )
    print(
        f"- found {applied['found']:,}, deleted {applied['deleted']:,}; destination rows {left:,} (source {expected:,})"
    )


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "worker":
        worker(json.loads(sys.argv[2]))
    else:
        main()

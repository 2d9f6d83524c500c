"""Typed tables vs untyped (issue 12): sync and export of the same rows, as an untyped and as a typed table.

    .venv/bin/python benchmarks/typed.py                        # 10M rows (~1 GB of CSV)
    BENCH_TYPED_ROWS=1000000 .venv/bin/python benchmarks/typed.py

The rows of benchmarks/datagen.py are loaded into two source tables of one emulator: ``untyped`` (VARCHAR columns)
and ``typed`` (``tables-definition``: NUMBER(38,0) key, VARCHARs, VARCHAR(2), NUMBER(12,2), TIMESTAMP_NTZ(0)). Both
tables' exports are made once before the timing (the emulator's export cache), so the compared runs measure the
component; the emulator's export and load jobs are reported apart (``storage jobs``). Then, BENCH_TYPED_REPS (3)
times interleaved, each a separate process measured for wall time and peak RSS (benchmarks/procs.py, the helpers
of benchmarks/run.py): an export of each table to out/tables, and a full sync of each into a new table of a
destination project (typed: ``tables-definition`` + load). Goal: typed wall and peak RSS within 10 % of untyped.
The medians are printed as a table (and written to BENCH_TYPED_OUT when set). BENCH_TMP: scratch folder.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "src")]

from benchmarks.datagen import PRIMARY_KEY
from benchmarks.procs import Measured, median_run
from benchmarks.run import Bench, Results, Settings, log
from emulator import Emulator

TYPED_COLUMNS = [
    {"name": "id", "definition": {"type": "NUMBER", "length": "38,0", "nullable": False}},
    {"name": "name", "definition": {"type": "VARCHAR"}},
    {"name": "email", "definition": {"type": "VARCHAR"}},
    {"name": "country", "definition": {"type": "VARCHAR", "length": "2"}},
    {"name": "amount", "definition": {"type": "NUMBER", "length": "12,2"}},
    {"name": "created_at", "definition": {"type": "TIMESTAMP_NTZ", "length": "0"}},
    {"name": "note", "definition": {"type": "VARCHAR"}},
]


def seed(bench: Bench, rows: int) -> dict[str, str]:
    """The two source tables of ``rows`` rows, their exports made once (cached); returns kind -> table id."""
    csv_path = bench.generate(rows)
    tables = {"untyped": f"in.c-bench.untyped{rows}", "typed": f"in.c-bench.typed{rows}"}
    started = time.perf_counter()
    bench.emu.create_table(bench.src.id, tables["untyped"], csv_path, primary_key=PRIMARY_KEY)
    bench.results.emulator.append(("load untyped", time.perf_counter() - started))
    started = time.perf_counter()
    bench.emu.create_typed_table(bench.src.id, tables["typed"], TYPED_COLUMNS, primary_key=PRIMARY_KEY)
    bench.emu.load_table(bench.src.id, tables["typed"], csv_path)
    bench.results.emulator.append(("load typed", time.perf_counter() - started))
    bench.forget(rows)
    for kind, table_id in tables.items():
        detail = bench.emu.table_detail(bench.src.id, table_id)
        assert int(detail["rowsCount"]) == rows and bool(detail.get("isTyped")) == (kind == "typed"), detail
        columns = ",".join(detail["columns"])
        started = time.perf_counter()
        job = bench.api(
            bench.src.token, "POST", f"tables/{table_id}/export-async", json={"gzip": True, "columns": columns}
        )
        bench.wait_job(bench.src.token, job)
        bench.results.emulator.append((f"export {kind}", time.perf_counter() - started))
        log(f"emulator export of {kind} {rows:,} rows: {bench.results.emulator[-1][1]:.1f} s")
    return tables


def measure(bench: Bench, rows: int, tables: dict[str, str], reps: int) -> dict[tuple[str, str], Measured]:
    runs: dict[tuple[str, str], list[Measured]] = {}
    for rep in range(reps):
        for kind, table_id in tables.items():  # interleaved: a slow moment of the machine hits both kinds
            data = bench.scratch(f"typed-export-{kind}")
            params = {"mode": "export", "source": bench.conn(bench.src), "tables": [{"source": table_id}]}
            runs.setdefault(("export", kind), []).append(bench.component(f"export {kind} {rows}", data, params))
            shutil.rmtree(data)
        for kind, table_id in tables.items():
            data = bench.scratch(f"typed-sync-{kind}")
            dest = f"in.c-sync.{kind}{rows}r{rep}"
            params = {
                "mode": "sync",
                "source": bench.conn(bench.src),
                "destination": bench.conn(bench.dst),
                "tables": [{"source": table_id, "destination": dest}],
            }
            runs.setdefault(("sync", kind), []).append(bench.component(f"sync {kind} {rows}", data, params))
            detail = bench.emu.table_detail(bench.dst.id, dest)
            assert int(detail["rowsCount"]) == rows and bool(detail.get("isTyped")) == (kind == "typed"), detail
            shutil.rmtree(data)
            bench.drop(bench.dst, dest)
            _delete_uploads(bench.emu, bench.dst)
    return {key: median_run(items) for key, items in runs.items()}


def _delete_uploads(emu: Emulator, project) -> None:
    """Remove the objects of the files a sync uploaded into ``project`` (setup, not measured): the S3 emulator keeps
    objects in memory, and each 10M-row sync adds ~1 GB, which slowed every later run (the runs drifted 40 %)."""
    storage = emu.backend.storage
    space = emu.backend.projects[project.id].spaces[None]
    with emu.backend.lock:
        keys = [file.key for file in space.files.values()]
        space.files.clear()
    for key in keys:
        listed = storage.client.list_objects_v2(Bucket=storage.bucket, Prefix=key)
        for item in listed.get("Contents", []):
            storage.client.delete_object(Bucket=storage.bucket, Key=item["Key"])


def report(rows: int, medians: dict[tuple[str, str], Measured], emulator: list[tuple[str, float]]) -> str:
    lines = [
        f"Typed vs untyped, {rows:,} rows (median of {len(next(iter(medians.values())).samples)} runs each)",
        "",
        "| operation | kind | wall s | storage jobs s | client s | peak RSS MB | wall vs untyped | RSS vs untyped |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for operation in ("export", "sync"):
        base = medians[(operation, "untyped")]
        for kind in ("untyped", "typed"):
            m = medians[(operation, kind)]
            samples = ", ".join(f"{s:.1f}" for s in m.samples)
            lines.append(
                f"| {operation} | {kind} | {m.wall:.2f} ({samples}) | {m.server_s or 0:.2f} | {m.client_s or 0:.2f} | "
                f"{m.peak_rss_mb:.0f} | {m.wall / base.wall:.2f}x | {m.peak_rss_mb / base.peak_rss_mb:.2f}x |"
            )
    lines += ["", "Emulator (not the component): " + ", ".join(f"{label} {s:.1f} s" for label, s in emulator)]
    return "\n".join(lines)


def main() -> None:
    rows = int(os.environ.get("BENCH_TYPED_ROWS", "10000000"))
    reps = max(1, int(os.environ.get("BENCH_TYPED_REPS", "3")))
    tmp = Path(os.environ.get("BENCH_TMP") or tempfile.mkdtemp(prefix="storage-sync-typed-"))
    tmp.mkdir(parents=True, exist_ok=True)
    settings = Settings.from_env()
    try:
        with Emulator(job_delay=0.0) as emu:
            bench = Bench(emu, tmp, settings, Results(settings))
            tables = seed(bench, rows)
            text = report(rows, measure(bench, rows, tables, reps), bench.results.emulator)
    finally:
        if not os.environ.get("BENCH_TMP"):
            shutil.rmtree(tmp, ignore_errors=True)
    print(text, flush=True)
    if os.environ.get("BENCH_TYPED_OUT"):
        Path(os.environ["BENCH_TYPED_OUT"]).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

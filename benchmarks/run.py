"""Storage Sync benchmark: this component vs kbcstorage vs the raw file-storage limit, against the emulator.

    make bench                                 # 1M and 10M rows (~100 MB, ~1 GB), memory check at BENCH_BIG_ROWS
    BENCH_QUICK=1 make bench                   # 200k rows only, short polling set (a smoke run)
    BENCH_ROWS=1000000 BENCH_BIG_ROWS=0 make bench

Knobs: BENCH_ROWS (comma list), BENCH_BIG_ROWS (0 = skip the memory-flatness table), BENCH_POLL (durations, s),
BENCH_POLL_REPS, BENCH_OUT (report path, default BENCHMARKS.md), BENCH_TMP (scratch dir), BENCH_ONLY (comma list of
export, import, sync, incremental, memory, polling; default all: a partial run for iterating on one operation).
Every export/import/sync is a separate process (as Keboola runs the component); the parent measures wall time
and peak RSS (wait4 ru_maxrss and psutil sampling of the process tree).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "src")]

import requests
from isal import igzip

from benchmarks import polling
from benchmarks.datagen import COLUMNS, PRIMARY_KEY, write_csv
from benchmarks.procs import Measured, median_run, run_measured
from emulator import Emulator
from storage_api.jobs import PollPolicy

PY = sys.executable
COMPONENT = REPO / "src" / "component.py"
WORKERS = REPO / "benchmarks" / "workers.py"
CHANGED_ROWS = 10_000


def _env_list(name: str, default: str, cast=int) -> list:
    return [cast(x) for x in os.environ.get(name, default).split(",") if x.strip()]


@dataclass
class Settings:
    quick: bool
    rows: list[int]
    big_rows: int
    poll_durations: list[float]
    poll_reps: int
    sync_small: int
    out: Path
    repeat: int  # runs of each export and incremental sync (the median is reported): they take about a second
    only: frozenset[str] = frozenset(("export", "import", "sync", "incremental", "memory", "polling"))

    def wants(self, part: str) -> bool:
        return part in self.only

    @classmethod
    def from_env(cls) -> Settings:
        quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
        return cls(
            quick=quick,
            rows=_env_list("BENCH_ROWS", "200000" if quick else "1000000,10000000"),
            big_rows=int(os.environ.get("BENCH_BIG_ROWS", "0" if quick else "50000000")),
            poll_durations=_env_list("BENCH_POLL", "0.5,1" if quick else "0.5,1,2,3,4,8,20,60", float),
            poll_reps=int(os.environ.get("BENCH_POLL_REPS", "2" if quick else "4")),
            sync_small=int(os.environ.get("BENCH_SYNC_SMALL", "20000" if quick else "100000")),
            out=Path(os.environ.get("BENCH_OUT", REPO / "BENCHMARKS.md")),
            repeat=max(1, int(os.environ.get("BENCH_REPEAT", "1" if quick else "3"))),
            **({"only": frozenset(_env_list("BENCH_ONLY", "", str))} if os.environ.get("BENCH_ONLY") else {}),
        )


@dataclass
class Results:
    settings: Settings
    emulator: list[tuple[str, float]] = field(default_factory=list)
    ops: dict[str, list[tuple[int, int, Measured, Measured | None, Measured | None]]] = field(default_factory=dict)
    sync_incremental: list[tuple[int, Measured]] = field(default_factory=list)
    memory: list[tuple[str, int, int, Measured]] = field(default_factory=list)  # mode, rows, CSV bytes, run
    poll: list[polling.PollRow] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)
    chart: Path | None = None  # modes.png, linked from the report


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", flush=True)


class Bench:
    def __init__(self, emu: Emulator, tmp: Path, settings: Settings, results: Results):
        self.emu = emu
        self.tmp = tmp
        self.settings = settings
        self.results = results
        self.src = emu.create_project("source")
        self.dst = emu.create_project("destination")
        for project in (self.src, self.dst):
            for name in ("bench", "imp", "sync"):
                emu.create_bucket(project.id, name)
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "PYTHONUNBUFFERED": "1",
            **emu.env,
        }
        self.csv: dict[int, Path] = {}

    # helpers ------------------------------------------------------------------------------------------------------
    def api(self, token: str, method: str, path: str, **kwargs):
        response = requests.request(
            method, f"{self.emu.url}/v2/storage/{path}", headers={"X-StorageApi-Token": token}, **kwargs
        )
        response.raise_for_status()
        return response.json() if response.content else None

    def wait_job(self, token: str, job: dict) -> dict:
        while job["status"] not in ("success", "error"):
            time.sleep(0.02)
            job = self.api(token, "GET", f"jobs/{job['id']}")
        assert job["status"] == "success", job
        return job

    def run(self, label: str, argv: list[str], *, env: dict | None = None, cwd: Path | None = None) -> Measured:
        logfile = self.tmp / f"{label.replace(' ', '_').replace('/', '_')}.log"
        last_job = max(self.emu.backend.jobs, default=0)
        measured = run_measured(label, argv, env={**self.env, **(env or {})}, cwd=cwd or REPO, log=logfile)
        measured.server_s = self.job_seconds(after=last_job)
        log(
            f"  {label}: {measured.wall:.2f} s (storage jobs {measured.server_s:.2f} s), "
            f"peak RSS {measured.peak_rss_mb:.0f} MB, rc {measured.returncode}"
        )
        if measured.returncode != 0:
            raise RuntimeError(f"{label} failed (rc {measured.returncode}):\n{measured.output}")
        return measured

    def job_seconds(self, *, after: int) -> float:
        """Time the storage jobs created after job ``after`` ran (the process runs its jobs one after another)."""
        jobs = [job for job_id, job in list(self.emu.backend.jobs.items()) if job_id > after]
        return sum((j.end_time - j.start_time).total_seconds() for j in jobs if j.start_time and j.end_time)

    def worker(self, label: str, kind: str, args: dict, cwd: Path | None = None) -> Measured:
        if kind.startswith("raw-"):  # the raw limit waits for storage jobs on the component's schedule
            args = {**args, "poll": asdict(PollPolicy())}
        return self.run(label, [PY, str(WORKERS), kind, json.dumps(args)], cwd=cwd)

    def component(self, label: str, data_dir: Path, parameters: dict, storage: dict | None = None) -> Measured:
        for sub in ("in/tables", "out/tables"):
            (data_dir / sub).mkdir(parents=True, exist_ok=True)
        config = {"parameters": parameters, "action": "run", "storage": storage or {}, "image_parameters": {}}
        (data_dir / "config.json").write_text(json.dumps(config))
        return self.run(label, [PY, "-u", str(COMPONENT)], env={"KBC_DATADIR": str(data_dir), "KBC_RUNID": "1"})

    def conn(self, project, **extra) -> dict:
        return {"url": self.emu.url, "#token": project.token, **extra}

    def scratch(self, name: str) -> Path:
        path = self.tmp / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    # seeding ------------------------------------------------------------------------------------------------------
    def generate(self, rows: int) -> Path:
        path = self.tmp / f"t{rows}.csv"
        started = time.perf_counter()
        write_csv(path, rows)
        log(f"generated {rows:,} rows ({path.stat().st_size / 2**20:.0f} MB) in {time.perf_counter() - started:.1f} s")
        self.csv[rows] = path
        return path

    def forget(self, rows: int) -> None:
        """Delete the generated CSV of ``rows`` rows (disk)."""
        path = self.csv.pop(rows, None)
        if path is not None:
            path.unlink(missing_ok=True)

    def seed(self, rows: int) -> str:
        table_id = f"in.c-bench.t{rows}"
        path = self.generate(rows)
        started = time.perf_counter()
        self.emu.create_table(self.src.id, table_id, path, primary_key=PRIMARY_KEY)
        load = time.perf_counter() - started
        self.results.emulator.append((f"emulator load of {rows:,} rows (create_table, DuckDB)", load))
        log(f"emulator load of {rows:,} rows: {load:.1f} s")
        self._backdate(self.src.id, table_id)
        # export-async over HTTP, timed; also fills the export cache for the component's and kbcstorage's
        # parameters, so the compared runs measure the client side (the job itself is reported here)
        for body in ({"gzip": True, "columns": ",".join(COLUMNS)}, {"gzip": 1}):
            started = time.perf_counter()
            self.wait_job(
                self.src.token, self.api(self.src.token, "POST", f"tables/{table_id}/export-async", json=body)
            )
            took = time.perf_counter() - started
            if "columns" in body:
                self.results.emulator.append((f"emulator export of {rows:,} rows (export-async job via HTTP)", took))
                log(f"emulator export of {rows:,} rows: {took:.1f} s")
        return table_id

    def _backdate(self, project_id: int, table_id: str) -> None:
        """Pretend the table was loaded two hours ago, so an incremental sync's overlap window (300 s) does not
        cover the seed rows (a real source table is not loaded minutes before its first sync)."""
        engine = self.emu.engine
        handle = self.emu.backend.table_for(project_id, table_id).handle
        with engine._cursor() as cur:
            cur.execute(f'UPDATE {engine._table(handle)} SET "_timestamp" = "_timestamp" - INTERVAL 2 HOUR')
        engine._changed(handle)

    def drop(self, project, table_id: str) -> None:
        try:
            self.emu.delete_table(project.id, table_id)
        except Exception as exc:  # noqa: BLE001
            log(f"  (could not drop {table_id}: {exc})")

    # operations ---------------------------------------------------------------------------------------------------
    def export(self, rows: int, table_id: str) -> None:
        size = self.csv[rows].stat().st_size
        log(f"export of {rows:,} rows")
        comps, kbcs, raws = [], [], []
        for _ in range(self.settings.repeat):  # interleaved, so a slow moment of the machine hits every tool
            data = self.scratch("export-component")
            comps.append(
                self.component(
                    f"export {rows} component",
                    data,
                    {"mode": "export", "source": self.conn(self.src), "tables": [{"source": table_id}]},
                )
            )
            out = data / "out" / "tables" / f"t{rows}.csv"
            assert out.is_dir() and any(out.iterdir()), f"no sliced output in {out}"
            gz_bytes = sum(p.stat().st_size for p in out.iterdir())
            shutil.rmtree(data)
            work = self.scratch("export-kbc")
            kbcs.append(
                self.worker(
                    f"export {rows} kbcstorage",
                    "kbc-export",
                    {"url": self.emu.url, "token": self.src.token, "table_id": table_id, "out_dir": str(work / "out")},
                    cwd=work,
                )
            )
            shutil.rmtree(work)
            raws.append(
                self.worker(
                    f"export {rows} raw",
                    "raw-export",
                    {"url": self.emu.url, "token": self.src.token, "table_id": table_id, "columns": COLUMNS},
                )
            )
        entry = (rows, size, median_run(comps), median_run(kbcs), median_run(raws))
        self.results.ops.setdefault("export", []).append(entry)
        self.results.facts[f"export gz bytes {rows}"] = f"{gz_bytes / 2**20:.0f} MB"

    def import_(self, rows: int) -> None:
        csv_path = self.csv[rows]
        size = csv_path.stat().st_size
        log(f"import of {rows:,} rows")
        data = self.scratch("import-component")
        (data / "in" / "tables").mkdir(parents=True)
        os.link(csv_path, data / "in" / "tables" / "bench.csv")  # same file system: no copy
        name = f"comp{rows}"
        comp = self.component(
            f"import {rows} component",
            data,
            {
                "mode": "import",
                "destination": self.conn(self.dst),
                "tables": [{"source": "bench.csv", "destination": f"in.c-imp.{name}", "primaryKey": PRIMARY_KEY}],
            },
            storage={"input": {"tables": [{"source": "in.c-x.bench", "destination": "bench.csv"}]}},
        )
        shutil.rmtree(data)
        self.drop(self.dst, f"in.c-imp.{name}")
        kbc = self.worker(
            f"import {rows} kbcstorage",
            "kbc-import",
            {
                "url": self.emu.url,
                "token": self.dst.token,
                "bucket": "in.c-imp",
                "name": f"kbc{rows}",
                "csv": str(csv_path),
                "primary_key": PRIMARY_KEY,
            },
        )
        self.drop(self.dst, f"in.c-imp.kbc{rows}")
        # the raw limit sends what the component sends: the CSV gzipped (isal level 1, made outside the timing)
        gz = self.tmp / f"t{rows}.csv.gz"
        started = time.perf_counter()
        with open(csv_path, "rb") as src, igzip.open(gz, "wb", compresslevel=1) as dst:
            shutil.copyfileobj(src, dst, 1024 * 1024)
        gzip_s = time.perf_counter() - started
        self.results.facts[f"isal level 1 gzip of {rows}"] = (
            f"{gzip_s:.2f} s, {size / 2**20 / gzip_s:.0f} MB/s, {size / 2**20:.0f} -> {gz.stat().st_size / 2**20:.0f} MB"
        )
        raw = self.worker(
            f"import {rows} raw",
            "raw-import",
            {
                "url": self.emu.url,
                "token": self.dst.token,
                "bucket": "in.c-imp",
                "name": f"raw{rows}",
                "file": str(gz),
                "primary_key": PRIMARY_KEY,
            },
        )
        gz.unlink()
        self.drop(self.dst, f"in.c-imp.raw{rows}")
        self.results.ops.setdefault("import", []).append((rows, size, comp, kbc, raw))

    def sync(self, rows: int, table_id: str) -> None:
        size = self.csv[rows].stat().st_size
        log(f"sync of {rows:,} rows")
        data = self.scratch(f"sync-component-{rows}")
        comp = self.component(f"sync {rows} component", data, self._sync_params(table_id, f"in.c-sync.comp{rows}"))
        self.drop(self.dst, f"in.c-sync.comp{rows}")
        work = self.scratch("sync-kbc")
        kbc = self.worker(
            f"sync {rows} kbcstorage",
            "kbc-sync",
            {
                "url": self.emu.url,
                "token": self.src.token,
                "table_id": table_id,
                "out_dir": str(work / "out"),
                "dst_url": self.emu.url,
                "dst_token": self.dst.token,
                "bucket": "in.c-sync",
                "name": f"kbc{rows}",
                "primary_key": PRIMARY_KEY,
            },
            cwd=work,
        )
        shutil.rmtree(work)
        self.drop(self.dst, f"in.c-sync.kbc{rows}")
        raw = self.worker(
            f"sync {rows} raw",
            "raw-sync",
            {
                "url": self.emu.url,
                "token": self.src.token,
                "table_id": table_id,
                "columns": COLUMNS,
                "dst_url": self.emu.url,
                "dst_token": self.dst.token,
                "bucket": "in.c-sync",
                "name": f"raw{rows}",
                "primary_key": PRIMARY_KEY,
            },
        )
        self.drop(self.dst, f"in.c-sync.raw{rows}")
        self.results.ops.setdefault("sync", []).append((rows, size, comp, kbc, raw))

    def _sync_params(self, table_id: str, dest: str) -> dict:
        return {
            "mode": "sync",
            "source": self.conn(self.src),
            "destination": self.conn(self.dst),
            "tables": [{"source": table_id, "destination": dest, "incremental": True}],
        }

    def sync_incremental(self, rows: int, table_id: str) -> None:
        """Full sync, then 10,000 rows change in the source, then the timed incremental sync."""
        log(f"incremental sync of {CHANGED_ROWS:,} changed rows in {rows:,}")
        data = self.scratch(f"sync-incremental-{rows}")
        dest = f"in.c-sync.inc{rows}"
        self.component(f"sync {rows} full (setup)", data, self._sync_params(table_id, dest))
        (data / "in" / "state.json").write_text((data / "out" / "state.json").read_text())
        shutil.rmtree(data / "out")
        runs = []
        for rep in range(self.settings.repeat):  # each time other values in the same 10,000 rows
            changes = self.tmp / f"changes{rows}.csv"
            write_csv(changes, min(CHANGED_ROWS, rows // 2), first_id=rows // 2, variant=f"v{rep + 2}-")  # updates
            self.emu.load_table(self.src.id, table_id, changes, incremental=True)
            runs.append(self.component(f"sync {rows} incremental", data, self._sync_params(table_id, dest)))
            (data / "in" / "state.json").write_text((data / "out" / "state.json").read_text())
            shutil.rmtree(data / "out")
            detail = self.emu.table_detail(self.dst.id, dest)
            assert int(detail["rowsCount"]) == rows, detail["rowsCount"]
        self.drop(self.dst, dest)
        self.results.sync_incremental.append((rows, median_run(runs)))

    def memory(self, rows: int, table_id: str) -> None:
        """The component alone in each mode, for the memory-flatness table (big_rows against the largest size)."""
        size = self.csv[rows].stat().st_size
        data = self.scratch("memory-export")
        export = self.component(
            f"export {rows} component (memory)",
            data,
            {"mode": "export", "source": self.conn(self.src), "tables": [{"source": table_id}]},
        )
        shutil.rmtree(data)
        self.results.memory.append(("export", rows, size, export))

        data = self.scratch("memory-import")
        (data / "in" / "tables").mkdir(parents=True)
        os.link(self.csv[rows], data / "in" / "tables" / "bench.csv")
        dest = f"in.c-imp.mem{rows}"
        imported = self.component(
            f"import {rows} component (memory)",
            data,
            {
                "mode": "import",
                "destination": self.conn(self.dst),
                "tables": [{"source": "bench.csv", "destination": dest, "primaryKey": PRIMARY_KEY}],
            },
            storage={"input": {"tables": [{"source": "in.c-x.bench", "destination": "bench.csv"}]}},
        )
        shutil.rmtree(data)
        self.drop(self.dst, dest)
        self.results.memory.append(("import", rows, size, imported))

        data = self.scratch("memory-sync")
        dest = f"in.c-sync.mem{rows}"
        synced = self.component(f"sync {rows} component (memory)", data, self._sync_params(table_id, dest))
        shutil.rmtree(data)
        self.drop(self.dst, dest)
        self.results.memory.append(("sync", rows, size, synced))


def main() -> Results:
    settings = Settings.from_env()
    tmp = Path(os.environ.get("BENCH_TMP") or tempfile.mkdtemp(prefix="storage-sync-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    res = Results(settings)
    res.facts["machine"] = f"{os.cpu_count()} CPUs, {_mem_gb():.0f} GB RAM, {platform.platform()}"
    res.facts["python"] = platform.python_version()
    sizes = sorted(set(settings.rows))
    wants = settings.wants
    try:
        with Emulator(job_delay=0.0) as emu:
            bench = Bench(emu, tmp, settings, res)
            needs_tables = any(wants(part) for part in ("export", "sync", "incremental"))
            tables = {rows: bench.seed(rows) if needs_tables else None for rows in sizes}
            if not needs_tables:
                for rows in sizes:
                    bench.generate(rows)
            for rows in sizes if wants("export") else ():
                bench.export(rows, tables[rows])
            for rows in sizes if wants("import") else ():
                bench.import_(rows)
            for rows in sizes if wants("sync") else ():
                bench.sync(rows, tables[rows])
            if wants("incremental"):
                small = settings.sync_small
                if small not in tables:
                    tables[small] = bench.seed(small)
                for rows in sorted({small, max(sizes)}):
                    bench.sync_incremental(rows, tables[rows])
            if wants("polling"):
                log(f"polling: durations {settings.poll_durations}, {settings.poll_reps} jobs each")
                res.poll = polling.measure(emu, bench.src, settings.poll_durations, settings.poll_reps)
        if settings.big_rows and wants("memory"):
            # a fresh emulator (the first one's file storage and tables are gone): 5 GB of CSV, its table, exports
            # and loads need tens of GB of disk. The component runs in each mode on the largest compared table
            # and on the big one.
            ref = max(sizes)
            with Emulator(job_delay=0.0) as emu:
                bench = Bench(emu, tmp, settings, res)
                for rows in (ref, settings.big_rows):
                    bench.memory(rows, bench.seed(rows))
                    bench.forget(rows)
    finally:
        if not os.environ.get("BENCH_TMP"):
            shutil.rmtree(tmp, ignore_errors=True)
    res.facts["benchmark wall time"] = f"{time.perf_counter() - started:.0f} s"
    from benchmarks.charts import draw_modes
    from benchmarks.report import write_report

    figures = results_path(settings.out)
    figures.write_text(json.dumps(results_json(res), indent=1) + "\n")
    res.chart = draw_modes(results_json(res), figures.parent / "charts" / "modes.png")
    write_report(res, settings.out)
    log(f"wrote {settings.out}, {figures} and {res.chart}")
    return res


def results_path(report: Path) -> Path:
    """The figures of a run as JSON (what the charts are drawn from): benchmarks/results.json beside BENCHMARKS.md,
    else beside the report BENCH_OUT names."""
    return REPO / "benchmarks" / "results.json" if report == REPO / "BENCHMARKS.md" else report.with_suffix(".json")


def _measured(m: Measured | None) -> dict | None:
    if m is None:
        return None
    return {"wall": m.wall, "peak_rss_mb": m.peak_rss_mb, "server_s": m.server_s, "samples": m.samples}


def results_json(res: Results) -> dict:
    """Results without the runs' output: per mode the rows, CSV bytes and the three tools' runs."""
    return {
        "facts": res.facts,
        "ops": {
            mode: [
                {
                    "rows": rows,
                    "csv_bytes": size,
                    "component": _measured(c),
                    "kbcstorage": _measured(k),
                    "raw": _measured(r),
                }
                for rows, size, c, k, r in entries
            ]
            for mode, entries in res.ops.items()
        },
        "sync_incremental": [{"rows": rows, **_measured(m)} for rows, m in res.sync_incremental],
        "memory": [
            {"mode": mode, "rows": rows, "csv_bytes": size, **_measured(m)} for mode, rows, size, m in res.memory
        ],
    }


def _mem_gb() -> float:
    import psutil

    return psutil.virtual_memory().total / 2**30


if __name__ == "__main__":
    main()

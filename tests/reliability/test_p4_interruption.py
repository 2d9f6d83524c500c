"""Part 4: SIGTERM (how Keboola stops a job) at seeded random points of a run, in every mode.

Storage jobs last >= 0.7 s (job_delay) so a run spans several seconds. The process must exit within 10 s with a
non-zero code (or 0 if it finished first), leave no partial output, never advance the watermark of a table whose
data is not committed, and the next run must complete the work (destination equals source, export complete).
"""

from __future__ import annotations

import random
import signal
import time

import pytest

from tests.e2e.harness import as_dicts, read_output_table
from tests.reliability.conftest import CAMPAIGN, RUNS, env_for, new_data_dir, new_project, rows, sync_params, variants

TABLES = ("in.c-int.a", "in.c-int.b")


def _source(emu):
    project = new_project(emu, "intsrc")
    emu.create_bucket(project.id, "int")
    emu.create_table(project.id, TABLES[0], "id,v\n" + "".join(f"{i},a{i}\n" for i in range(100)), primary_key=["id"])
    emu.create_table(project.id, TABLES[1], "k,v\n" + "".join(f"{i},b{i}\n" for i in range(80)))
    return project


def _params(emu, mode, source, destination):
    if mode == "export":
        return {
            "mode": "export",
            "source": {"url": emu.url, "#token": source.token},
            "tables": [{"source": "in.c-int", "changedSince": "last"}],
        }
    if mode == "import":
        return {
            "mode": "import",
            "destination": {"url": emu.url, "#token": destination.token, "bucket": "in.c-int"},
            "tables": [{"source": "a.csv", "primaryKey": ["id"]}, {"source": "b.csv"}],
        }
    return sync_params(emu, source, emu, destination, [{"source": "in.c-int"}])


def _check_export(emu, source, data):
    for table in TABLES:
        columns, body = read_output_table(data.root / "out" / "tables" / f"{table.rsplit('.', 1)[1]}.csv")
        assert as_dicts(columns, body) == rows(emu, source, table)


@pytest.mark.parametrize("mode", ["export", "import", "sync"])
@pytest.mark.parametrize("runs", variants(1, max(3, RUNS // 10)))
def test_sigterm_at_random_points(emu, tmp_path, mode, runs):
    interrupted = 0
    for seed in range(runs):
        rng = random.Random(f"{mode}-{seed}")
        source, destination = _source(emu), new_project(emu, "intdst")
        data = new_data_dir(tmp_path / f"{mode}-{seed}")
        for table in TABLES:
            name = table.rsplit(".", 1)[1]
            header = emu.table_detail(source.id, table)["columns"]
            data.add_input_table(f"{name}.csv", header, [list(r.values()) for r in emu.table_rows(source.id, table)])
        data.write_config(_params(emu, mode, source, destination))
        emu.job_delay = 0.7
        proc = data.start(env_for(emu))
        time.sleep(rng.uniform(0.8, 4.0))  # the component needs ~0.7 s to start
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        run = data.finish(proc, timeout=60)
        took = time.monotonic() - sent
        emu.job_delay = 0.0
        assert took < 10, f"exit took {took:.1f} s"
        if run.returncode == -signal.SIGTERM:  # stopped while Python was still importing: nothing happened yet
            assert not run.stdout.strip(), run.output
            interrupted += 1
        elif run.returncode != 0:
            interrupted += 1
            assert run.returncode == 143, run.output
            assert "Traceback" not in run.output, run.output
            assert "stopped (SIGTERM)" in run.output
        leftovers = [p.name for p in (data.root / "out" / "tables").glob(".*")]
        assert not leftovers, f"partial outputs left: {leftovers}"
        # a watermark in the state means that table's data is committed
        for table in run.state.get("tables") or {}:
            if mode == "sync":
                assert rows(emu, destination, table) == rows(emu, source, table), f"{table} advanced, not copied"
            else:
                name = table.rsplit(".", 1)[1]
                assert (data.root / "out" / "tables" / f"{name}.csv.manifest").exists(), f"{table} advanced"
        if mode == "export":  # a manifest is written only with complete data
            for manifest in (data.root / "out" / "tables").glob("*.manifest"):
                assert manifest.with_suffix("").exists()
        # the next run completes the work
        data.carry_state()
        data.clean_out()
        again = data.run(env_for(emu))
        assert again.returncode == 0, again.output
        if mode == "export":
            _check_export(emu, source, data)
        else:
            for table in TABLES:
                assert rows(emu, destination, table) == rows(emu, source, table), table
    CAMPAIGN.add(f"4 SIGTERM / {mode}", runs=2 * runs, interrupted=interrupted)

"""Part 7: tokens never leak. Every component run of the campaign already goes through DataDir.run / the fork
runner, which assert that no token reaches stdout, stderr, out/ files or state. Here: runs at debug level (SDK and
HTTP library logging on) under faults (retry warnings), and the emulator's own logs (request log included) and job
records of the whole session so far (this file runs last).
"""

from __future__ import annotations

import json

from tests.reliability.conftest import (
    CAMPAIGN,
    EMULATOR_LOG,
    SECRETS,
    env_for,
    new_data_dir,
    new_project,
    sync_params,
)


def test_debug_runs_under_faults_do_not_leak(emu, tmp_path):
    source, destination = new_project(emu, "secsrc"), new_project(emu, "secdst")
    emu.create_bucket(source.id, "s")
    emu.create_table(source.id, "in.c-s.t", "id,v\n1,a\n", primary_key=["id"])
    emu.faults.reseed(7)
    emu.faults.random(0.1, retry_after=0)
    configs = {
        "export": {
            "mode": "export",
            "source": {"url": emu.url, "#token": source.token},
            "tables": [{"source": "in.c-s.t"}],
        },
        "sync": sync_params(emu, source, emu, destination, [{"source": "in.c-s.t"}]),
        "import": {
            "mode": "import",
            "destination": {"url": emu.url, "#token": destination.token, "bucket": "in.c-imp"},
            "tables": [],
        },
        "bad token": {
            "mode": "export",
            "source": {"url": emu.url, "#token": source.token + "x"},
            "tables": [{"source": "in.c-s.t"}],
        },
    }
    for name, params in configs.items():
        data = new_data_dir(tmp_path / name.replace(" ", "-"))
        data.secrets.add(source.token + "x")
        data.add_input_table("t.csv", ["id", "v"], [["1", "a"]])
        data.write_config({**params, "debug": True})
        run = data.run(env_for(emu))  # asserts: no token in stdout, stderr, out/ (state included)
        assert run.returncode in (0, 1), run.output
        assert "Starting new HTTP connection" in run.output, f"{name}: debug logging (urllib3) is off: {run.output}"
    CAMPAIGN.add("7 secrets", debug_runs=len(configs))


def test_emulator_logs_and_jobs_do_not_hold_tokens(emu):
    texts = list(EMULATOR_LOG.texts)
    with emu.backend.lock:
        jobs = [emu.backend.job_json(job) for job in emu.backend.jobs.values()]
    texts.append(json.dumps(jobs))
    leaks = [secret[:6] for secret in SECRETS if any(secret in text for text in texts)]
    assert not leaks, f"tokens in the emulator's logs or job records: {leaks}"
    CAMPAIGN.add(
        "7 secrets", tokens_checked=len(SECRETS), emulator_log_lines=len(EMULATOR_LOG.texts), jobs_checked=len(jobs)
    )

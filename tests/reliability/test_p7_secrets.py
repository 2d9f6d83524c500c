"""Part 7: tokens never leak. Every component run of the campaign already goes through DataDir.run / the fork
runner, which assert that no token reaches stdout, stderr, out/ files or state. Here: runs at debug level (SDK and
HTTP library logging on) under faults (retry warnings), as Keboola debug runs (KBC_COMPONENT_RUN_MODE=debug: nothing
recorded into out/files) and as plain runs, with the file-storage credentials the emulator hands out counted as
secrets too; and the emulator's own logs (request log included) and job records of the whole session so far (this
file runs last). tests/e2e/test_debug_mode.py runs the same on all three providers without faults.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest

from tests.reliability.conftest import (
    CAMPAIGN,
    EMULATOR_LOG,
    SECRETS,
    env_for,
    new_data_dir,
    new_project,
    sync_params,
)

_CREDENTIAL_KEYS = {"AccessKeyId", "SecretAccessKey", "SessionToken", "SASConnectionString", "access_token"}


@pytest.fixture
def issued_credentials(emu, monkeypatch):
    """The file-storage credentials of every files/prepare and files/{id} answer of the emulator during the test."""
    values: set[str] = set()

    def collect(block):
        for key, value in block.items() if isinstance(block, dict) else ():
            if key in _CREDENTIAL_KEYS and isinstance(value, str):
                values.update({value, quote(value, safe=""), *re.findall(r"(?<![\w-])sig=([^&;]+)", value)})
            else:
                collect(value)

    for name in ("prepare_block", "detail_block"):
        original = getattr(emu.storage, name)

        def recording(*args, _original=original, **kwargs):
            block = _original(*args, **kwargs)
            collect(block)
            return block

        monkeypatch.setattr(emu.storage, name, recording)
    return values


@pytest.mark.parametrize("run_mode", ["run", "debug"])
def test_debug_runs_under_faults_do_not_leak(emu, tmp_path, issued_credentials, run_mode):
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
        run = data.run({**env_for(emu), "KBC_COMPONENT_RUN_MODE": run_mode})  # asserts: no token in stdout, ...
        data.secrets |= issued_credentials
        data.assert_no_secrets(run)  # ... stderr, out/ (state included), file-storage credentials now too
        assert run.returncode in (0, 1), run.output
        assert "Starting new HTTP connection" in run.output, f"{name}: debug logging (urllib3) is off: {run.output}"
        assert not any((data.root / "out" / "files").iterdir()), f"{name}: out/files holds a recording"
    assert issued_credentials, "no run received file-storage credentials"
    CAMPAIGN.add("7 secrets", debug_runs=len(configs), file_credentials_checked=len(issued_credentials))


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

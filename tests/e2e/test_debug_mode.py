"""Debug runs (Keboola's debug mode, ``KBC_COMPONENT_RUN_MODE=debug``) and ``debug: true`` (DEBUG logging of the
component and the SDKs) work on every provider, and no credential of any kind reaches stdout, stderr or out/:
neither the Storage tokens nor the file-storage credentials the emulator hands out during the run (S3 key id,
secret key and session token; Azure SAS; GCS access token), in any of the forms they are printed in.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

import pytest

from tests.e2e.harness import read_output_table, sorted_dicts

_CREDENTIAL_KEYS = {"AccessKeyId", "SecretAccessKey", "SessionToken", "SASConnectionString", "access_token"}


@pytest.fixture
def issued(emulator, monkeypatch):
    """Every file-storage credential the emulator issues during the test (files/prepare and files/{id} answers)."""
    values: set[str] = set()

    def collect(block):
        if isinstance(block, dict):
            for key, value in block.items():
                if key in _CREDENTIAL_KEYS and isinstance(value, str):
                    values.add(value)
                    values.update(re.findall(r"SharedAccessSignature=([^;]+)", value))
                    values.update(re.findall(r"(?<![\w-])sig=([^&;]+)", value))
                else:
                    collect(value)

    storage = emulator.storage
    for name in ("prepare_block", "detail_block"):
        original = getattr(storage, name)

        def recording(*args, _original=original, **kwargs):
            block = _original(*args, **kwargs)
            collect(block)
            return block

        monkeypatch.setattr(storage, name, recording)
    return values


def _run(data_dir, env, issued, *, run_mode="debug", debug_logging=True):
    """A run (Keboola's debug mode by default); every issued credential (and its URL-encoded forms) is checked."""
    run = data_dir.run({**env, "KBC_COMPONENT_RUN_MODE": run_mode})
    assert issued, "the run received no file-storage credentials"
    data_dir.secrets |= {form for value in issued for form in (value, quote(value, safe=""), unquote(value))}
    data_dir.assert_no_secrets(run)
    assert run.returncode == 0, run.output
    assert ("Debug run: the HTTP traffic is not recorded" in run.output) == (run_mode == "debug")
    assert ("Starting new HTTP connection" in run.output) == debug_logging, "debug logging (urllib3)"
    recorded = [p.name for p in (data_dir.root / "out" / "files").iterdir()]
    assert recorded == [], f"out/files holds a recording: {recorded}"
    return run


def _provider_lines_are_redacted(emulator, run):
    """The SDK lines that carried credentials before redaction are still logged, redacted."""
    if emulator.provider == "aws":
        assert re.search(r"X-Amz-Security-Token': b?'\[hidden\]'", run.output), run.output[-3000:]
        assert "Signature=[hidden]" in run.output
    elif emulator.provider == "azure":
        assert "sig=[hidden]" in run.output


@pytest.mark.parametrize(
    "run_mode, debug_logging",
    [("debug", True), ("debug", False), ("run", True)],
    ids=["debug-run-and-debug-logging", "debug-run", "debug-logging"],
)
def test_debug_sync(emulator, source, destination, data_dir, env, issued, run_mode, debug_logging):
    data_dir.write_config(
        {
            "mode": "sync",
            "source": {"url": emulator.url, "#token": source.token},
            "destination": {"url": emulator.url, "#token": destination.token},
            "tables": [{"source": "in.c-sales"}],
            "debug": debug_logging,
        }
    )
    run = _run(data_dir, env, issued, run_mode=run_mode, debug_logging=debug_logging)
    for table_id in ("in.c-sales.customers", "in.c-sales.events"):
        assert sorted_dicts(emulator.table_rows(destination.id, table_id)) == sorted_dicts(
            emulator.table_rows(source.id, table_id)
        )
    if debug_logging:
        _provider_lines_are_redacted(emulator, run)


def test_debug_export(emulator, source, data_dir, env, issued):
    data_dir.write_config(
        {
            "mode": "export",
            "source": {"url": emulator.url, "#token": source.token},
            "tables": [{"source": "in.c-sales.customers"}],
            "debug": True,
        }
    )
    _run(data_dir, env, issued)
    columns, rows = read_output_table(data_dir.root / "out" / "tables" / "customers.csv")
    assert columns == ["id", "name", "city"] and len(rows) == 3


def test_debug_import(emulator, destination, data_dir, env, issued):
    data_dir.add_input_table("people.csv", ["id", "name"], [["1", "Ann"], ["2", "Ben"]])
    data_dir.write_config(
        {
            "mode": "import",
            "destination": {"url": emulator.url, "#token": destination.token, "bucket": "in.c-pushed"},
            "tables": [{"source": "people.csv", "primaryKey": ["id"]}],
            "debug": True,
        }
    )
    run = _run(data_dir, env, issued)
    assert len(emulator.table_rows(destination.id, "in.c-pushed.people")) == 2
    _provider_lines_are_redacted(emulator, run)

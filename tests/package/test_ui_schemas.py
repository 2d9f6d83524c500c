"""The UI schemas in a real browser: what a form saves is what the component accepts, and what the form shows is
what the component does.

``render_schemas.mjs`` renders ``component_config/configSchema.json`` and ``configRowSchema.json`` with
@json-editor/json-editor in headless Chromium (Debian's package, driven by playwright-core) and returns the value
each form would save. A user who only picks the mode and a source table and leaves everything else untouched gets
a configuration (root and row merged, as Keboola does) that ``Configuration.from_parameters`` accepts.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from configuration import Configuration

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("render_schemas.mjs")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
NODE = shutil.which("node")
# Untouched URL and token fields mean "this project, the token Keboola forwards".
FORWARDED = {"KBC_URL": "https://connection.keboola.com", "KBC_TOKEN": "forwarded-token-of-the-ui-test"}
SOURCES = {"export": "in.c-sales.orders", "sync": "in.c-sales.orders", "import": "orders.csv"}
ROW_FIELDS = ("incremental", "limit", "deletes", "schemaChanges", "destination", "changedSince")

pytestmark = [
    pytest.mark.skipif(
        not Path(CHROMIUM).is_file(),
        reason=f"no Chromium at {CHROMIUM}: `make browser` installs Debian's chromium package (or set CHROMIUM)",
    ),
    pytest.mark.skipif(NODE is None, reason="Node.js is not installed (needed to drive the browser)"),
    pytest.mark.skipif(
        not (REPO / "node_modules" / "playwright-core").is_dir()
        or not (REPO / "node_modules" / "@json-editor" / "json-editor").is_dir(),
        reason="playwright-core and @json-editor/json-editor are not installed: run `make install`",
    ),
]


def _schema(name: str) -> dict:
    return json.loads((REPO / "component_config" / name).read_text())


def _with_loaded_options(schema: dict, source: str) -> dict:
    """The row schema as the UI has it after the 'Load tables' sync action: ``source`` offers ``source``."""
    schema = copy.deepcopy(schema)
    schema["properties"]["table"]["properties"]["source"]["enum"] = [source]
    return schema


def _cases() -> list[dict]:
    root, row = _schema("configSchema.json"), _schema("configRowSchema.json")
    cases = []
    for mode in ("sync", "export", "import"):
        cases.append(
            {
                "name": f"root-{mode}",
                "schema": root,
                # sync is the default mode: its form is left untouched
                "set": [] if mode == "sync" else [["root.mode", mode]],
                "observe": ["root.mode", "root.mergedOutput", "root.verify", "root.parallelism"],
            }
        )
        cases.append(
            {
                "name": f"row-{mode}",
                "schema": _with_loaded_options(row, SOURCES[mode]),
                "set": [["root.table.source", SOURCES[mode]]],
                "observe": [f"root.table.{field}" for field in ROW_FIELDS],
            }
        )
    # a sync where the user changes every new setting away from its default
    cases.append(
        {
            "name": "root-sync-changed",
            "schema": root,
            "set": [["root.verify", True], ["root.parallelism", 16]],
            "observe": ["root.verify", "root.parallelism"],
        }
    )
    cases.append(
        {
            "name": "row-sync-changed",
            "schema": _with_loaded_options(row, SOURCES["sync"]),
            "set": [
                ["root.table.source", SOURCES["sync"]],
                ["root.table.incremental", False],
                ["root.table.deletes", "keep"],
                ["root.table.schemaChanges", "rebuild"],
            ],
            "observe": [f"root.table.{field}" for field in ROW_FIELDS],
        }
    )
    cases.append(
        {
            "name": "row-filter",
            "schema": _with_loaded_options(row, SOURCES["export"]),
            "set": [
                ["root.table.source", SOURCES["export"]],
                # a filter row with only its column and values filled in
                ["root.table.whereFilters", [{"column": "country", "values": ["CZ", "SK"]}]],
            ],
            "observe": ["root.table.whereFilters.0.operator", "root.table.whereFilters.0.dataType"],
        }
    )
    return cases


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict:
    env = {**os.environ, "CHROMIUM": CHROMIUM}
    proc = subprocess.run(
        [NODE, str(SCRIPT)],
        input=json.dumps({"cases": _cases()}),
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout)
    assert out["pageErrors"] == [], out["pageErrors"]
    return out["results"]


def _parse(parameters: dict, caplog) -> Configuration:
    """The component's configuration; a warning (e.g. an unknown parameter that is ignored) fails the test."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="configuration"):
        config = Configuration.from_parameters(parameters, env=FORWARDED)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    return config


def test_forms_render_and_validate(rendered):
    for name, result in rendered.items():
        assert result["errors"] == [], (name, result["errors"])


def test_untouched_row_saves_what_the_component_accepts(rendered):
    for mode in ("sync", "export", "import"):
        table = rendered[f"row-{mode}"]["value"]["table"]
        assert table["source"] == SOURCES[mode]
        # the bug of issue 15: a new row saved "limit": 0, which the component refuses
        assert table.get("limit") is None, table
        assert table.get("incremental") is True, table
        assert table.get("deletes") == "propagate" and table.get("schemaChanges") == "follow", table
        shown = rendered[f"row-{mode}"]["observed"]
        assert shown["root.table.incremental"]["shown"] is True  # the checkbox is ticked
        assert shown["root.table.limit"]["value"] is None


def test_root_form_defaults(rendered):
    for mode in ("sync", "export", "import"):
        value = rendered[f"root-{mode}"]["value"]
        shown = rendered[f"root-{mode}"]["observed"]
        assert value["mode"] == mode
        assert value["parallelism"] == 8 and shown["root.parallelism"]["shown"] == "8"
        # merged output only exists in export mode, verification only in sync (hidden and not saved otherwise)
        assert ("mergedOutput" in value) == (mode == "export"), value
        assert shown["root.mergedOutput"]["hidden"] == (mode != "export")
        assert ("verify" in value) == (mode == "sync"), value
        assert shown["root.verify"]["hidden"] == (mode != "sync")
        if mode == "sync":
            assert value["verify"] is False and shown["root.verify"]["shown"] is False


@pytest.mark.parametrize("mode", ["sync", "export", "import"])
def test_saved_configuration_is_accepted_and_matches_the_form(rendered, mode, caplog, clean_secrets):
    root = rendered[f"root-{mode}"]["value"]
    row = rendered[f"row-{mode}"]["value"]
    config = _parse({**root, **row}, caplog)  # Keboola merges the root and the row parameters (row wins)
    assert config.mode == mode
    assert config.source is not None and config.destination is not None  # the forwarded project and token
    (table,) = config.tables
    assert table.source == SOURCES[mode]
    assert table.limit is None and table.changed_since is None and table.destination is None
    assert table.where_filters == () and table.columns is None and table.primary_key is None
    # what the checkbox shows is what the component does
    assert table.incremental is rendered[f"row-{mode}"]["observed"]["root.table.incremental"]["shown"]
    assert (config.verify, config.parallelism) == (False, 8)
    assert table.schema_changes == "follow"
    assert table.deletes == ("propagate" if mode == "sync" else None)  # rows are deleted only by a sync


def test_changed_settings_reach_the_component(rendered, caplog, clean_secrets):
    row = rendered["row-sync-changed"]
    assert row["observed"]["root.table.incremental"]["shown"] is False
    assert row["observed"]["root.table.deletes"]["shown"].startswith("Keep")
    config = _parse({**rendered["root-sync-changed"]["value"], **row["value"]}, caplog)
    (table,) = config.tables
    assert (config.verify, config.parallelism) == (True, 16)
    assert (table.incremental, table.deletes, table.schema_changes) == (False, "keep", "rebuild")


def test_filter_row_saves_what_the_component_accepts(rendered, caplog, clean_secrets):
    result = rendered["row-filter"]
    (saved,) = result["value"]["table"]["whereFilters"]
    # the untouched data type ("Text") is not saved: the filter compares as text
    assert saved == {"column": "country", "operator": "eq", "values": ["CZ", "SK"]}
    assert result["observed"]["root.table.whereFilters.0.dataType"]["shown"] == "Text"
    config = _parse({**rendered["root-export"]["value"], **result["value"]}, caplog)
    (where,) = config.tables[0].where_filters
    assert (where.column, where.operator, where.values) == ("country", "eq", ("CZ", "SK"))

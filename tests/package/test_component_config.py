"""The Developer Portal properties in component_config/ are what update_properties.sh pushes: each must parse."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

CONFIG = Path(__file__).resolve().parents[2] / "component_config"
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "developer_portal" / "update_properties.sh"


@pytest.mark.parametrize(
    "name", ["configSchema.json", "configRowSchema.json", "loggerConfiguration.json", "uiOptions.md"]
)
def test_json_properties_parse(name):
    json.loads((CONFIG / name).read_text())


def test_configuration_description_does_not_start_with_a_header():
    text = (CONFIG / "configuration_description.md").read_text()
    assert text.strip() and not text.lstrip().startswith("#")
    # the UI renders only ### and #### headers in this text
    assert all(re.match(r"#{3,4} ", line) for line in text.splitlines() if line.startswith("#"))


def test_ui_options():
    options = json.loads((CONFIG / "uiOptions.md").read_text())
    assert {"genericDockerUI", "genericDockerUI-rows", "genericDockerUI-resetState"} <= set(options)


def test_update_properties_pushes_every_property_and_the_sync_actions(tmp_path):
    """A dry run of update_properties.sh names every file of component_config (sample-config/ is an example for
    humans, not a property) and the @sync_action names of src/component.py."""
    env = {
        "PATH": os.environ["PATH"],
        "DRY_RUN": "1",
        "KBC_DEVELOPERPORTAL_VENDOR": "v",
        "KBC_DEVELOPERPORTAL_APP": "a",
    }
    proc = subprocess.run(
        ["bash", str(SCRIPT)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 0, proc.stderr
    for path in CONFIG.iterdir():
        if path.is_file():
            assert f"from component_config/{path.name} (" in proc.stdout, path.name
    actions = re.findall(r"@sync_action\(\s*[\"']([^\"']+)", (CONFIG.parent / "src" / "component.py").read_text())
    assert actions
    assert (
        f"would set actions from the sync actions of src/component.py: {json.dumps(sorted(set(actions)))}"
        in proc.stdout
    )


def test_schemas_have_titles_and_order():
    """Publishing checklist: every property has a title (buttons excepted) and a propertyOrder."""

    def walk(schema, where):
        for key, prop in schema.get("properties", {}).items():
            assert "propertyOrder" in prop, f"{where}.{key}"
            assert prop.get("title") or prop.get("type") == "button", f"{where}.{key}"
            walk(prop, f"{where}.{key}")
            if isinstance(prop.get("items"), dict):
                walk(prop["items"], f"{where}.{key}[]")

    for name in ("configSchema.json", "configRowSchema.json"):
        walk(json.loads((CONFIG / name).read_text()), name)

"""The tests run the versions production ships: requirements-dev.lock pins every package that requirements.lock
(the production image) pins at the same version, and this environment has them installed. The kbcstorage reference
client, whose exact pins differ, lives only in requirements-kbcstorage.lock (.venv-kbcstorage)."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


def _pins(name: str) -> dict[str, set[tuple[str, str]]]:
    pins: dict[str, set[tuple[str, str]]] = {}
    for line in (REPO / name).read_text().splitlines():
        match = PIN.match(line)
        if match:
            package = re.sub(r"[-_.]+", "-", match.group(1)).lower()
            pins.setdefault(package, set()).add((match.group(2), match.group(3) or ""))
    assert pins, f"{name} pins nothing"
    return pins


def test_dev_lock_pins_the_production_versions():
    production, dev = _pins("requirements.lock"), _pins("requirements-dev.lock")
    missing = sorted(set(production) - set(dev))
    assert missing == [], f"requirements-dev.lock lacks production packages: {missing}"
    differ = {name: (production[name], dev[name]) for name in production if production[name] != dev[name]}
    assert differ == {}, f"run `make lock`; production vs dev: {differ}"


def test_this_environment_runs_the_production_google_cloud_storage():
    (version, _marker), *_ = _pins("requirements.lock")["google-cloud-storage"]
    assert metadata.version("google-cloud-storage") == version, "run `make install`"


def test_the_reference_client_has_its_own_lock():
    assert "kbcstorage" not in _pins("requirements-dev.lock")
    assert "kbcstorage" in _pins("requirements-kbcstorage.lock")


def test_moto_server_dependencies_without_moto_server_extra():
    """moto[s3] plus what `python -m moto.server` imports (flask, flask-cors), not moto[server]'s other services."""
    dev = _pins("requirements-dev.lock")
    assert {"moto", "flask", "flask-cors", "werkzeug"} <= set(dev)
    assert not {"cfn-lint", "docker", "aws-xray-sdk", "openapi-spec-validator"} & set(dev)

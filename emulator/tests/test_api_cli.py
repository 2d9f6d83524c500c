"""The CLI: ``python -m emulator serve`` prints one JSON line, serves, exits 0 on SIGTERM with its ports closed."""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import requests

ROOT = Path(__file__).resolve().parents[2]


def _read_line(proc: subprocess.Popen, timeout: float) -> str:
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if selector.select(timeout=0.5):
            return proc.stdout.readline()
        if proc.poll() is not None:
            break
    raise AssertionError(f"no JSON line from the CLI (exit code {proc.poll()}): {proc.stderr.read()}")


def _port_open(url: str) -> bool:
    parsed = urlparse(url)
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((parsed.hostname, parsed.port)) == 0


def test_cli_serve_seed_demo_and_sigterm(tmp_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emulator",
            "serve",
            "--port",
            "0",
            "--projects",
            "2",
            "--seed-demo",
            "--seed",
            "7",
            "--faults",
            json.dumps({"rules": [{"endpoint": "GET /v2/storage/buckets", "kind": "503", "times": 1}]}),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = _read_line(proc, timeout=60)
        info = json.loads(line)
        assert set(info) == {"url", "projects", "env"}
        assert len(info["projects"]) == 2
        assert "AWS_ENDPOINT_URL_S3" in info["env"]
        headers = {"X-StorageApi-Token": info["projects"][0]["token"]}
        verify = requests.get(info["url"] + "/v2/storage/tokens/verify", headers=headers, timeout=10)
        assert verify.status_code == 200
        assert verify.json()["owner"]["id"] == info["projects"][0]["id"]
        faulted = requests.get(info["url"] + "/v2/storage/buckets", headers=headers, timeout=10)
        assert faulted.status_code == 503 and faulted.headers["Retry-After"] == "1"  # --faults, times=1
        assert requests.get(info["url"] + "/v2/storage/buckets", headers=headers, timeout=10).status_code == 200
        tables = requests.get(info["url"] + "/v2/storage/tables", headers=headers, timeout=10).json()
        by_id = {t["id"]: t for t in tables}
        assert set(by_id) == {"in.c-demo.customers", "in.c-demo.orders", "in.c-demo.events"}
        assert by_id["in.c-demo.customers"]["primaryKey"] == ["id"]
        assert by_id["in.c-demo.customers"]["rowsCount"] == 1000
        assert by_id["in.c-demo.orders"]["primaryKey"] == ["order_id"]
        assert by_id["in.c-demo.orders"]["rowsCount"] == 5000
        assert by_id["in.c-demo.events"]["primaryKey"] == []
        assert by_id["in.c-demo.events"]["rowsCount"] == 2000
        other = {"X-StorageApi-Token": info["projects"][1]["token"]}
        assert requests.get(info["url"] + "/v2/storage/tables", headers=other, timeout=10).json() == []
        assert _port_open(info["url"]) and _port_open(info["env"]["AWS_ENDPOINT_URL_S3"])
        # advance-clock moves the server clock of the running emulator (POST /_emulator/clock)
        moved = subprocess.run(
            [sys.executable, "-m", "emulator", "advance-clock", "--url", info["url"], "7200"],
            cwd=ROOT,
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert moved.returncode == 0, moved.stderr
        assert json.loads(moved.stdout)["offsetSeconds"] == 7200
        created = requests.post(
            info["url"] + "/v2/storage/buckets", json={"name": "later"}, headers=headers, timeout=10
        )
        assert created.json()["created"] >= json.loads(moved.stdout)["now"]  # same +0000 format: text order is time
        # SIGUSR1 toggles maintenance mode
        proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while requests.get(info["url"] + "/v2/storage/tokens/verify", headers=headers, timeout=10).status_code != 503:
            assert time.monotonic() < deadline, "maintenance mode not switched on"
            time.sleep(0.05)
        proc.send_signal(signal.SIGUSR1)
        while requests.get(info["url"] + "/v2/storage/tokens/verify", headers=headers, timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "maintenance mode not switched off"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0, proc.stderr.read()
    assert proc.stdout.read() == ""  # exactly one line on stdout
    assert not _port_open(info["url"])
    assert not _port_open(info["env"]["AWS_ENDPOINT_URL_S3"])


def test_cli_serve_project_backends():
    """--default-backend / --backends: the projects' owner.defaultBackend and assignedBackends."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emulator",
            "serve",
            "--default-backend",
            "bigquery",
            "--backends",
            "bigquery,snowflake",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        info = json.loads(_read_line(proc, timeout=60))
        headers = {"X-StorageApi-Token": info["projects"][0]["token"]}
        owner = requests.get(info["url"] + "/v2/storage/tokens/verify", headers=headers, timeout=10).json()["owner"]
        assert (owner["defaultBackend"], owner["assignedBackends"]) == ("bigquery", ["bigquery", "snowflake"])
        bucket = requests.post(info["url"] + "/v2/storage/buckets", json={"name": "b"}, headers=headers, timeout=10)
        assert bucket.json()["backend"] == "bigquery"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0, proc.stderr.read()

"""`make demo`: start the emulator with a seeded demo project and run export, import and sync through
src/component.py, exactly as Keboola runs it (a process reading KBC_DATADIR/config.json)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "data" / "demo"


def start_emulator() -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator", "serve", "--port", "0", "--projects", "2", "--seed-demo"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    info = json.loads(proc.stdout.readline())
    return proc, info


def run_component(name: str, parameters: dict, env: dict, state_from: Path | None = None) -> Path:
    data = DEMO / name
    shutil.rmtree(data / "out", ignore_errors=True)
    for sub in ("in/tables", "out/tables"):
        (data / sub).mkdir(parents=True, exist_ok=True)
    if state_from and (state_from / "out" / "state.json").exists():
        shutil.copy(state_from / "out" / "state.json", data / "in" / "state.json")
    (data / "config.json").write_text(json.dumps({"parameters": parameters, "action": "run"}, indent=2))
    print(f"\n=== {name}: mode={parameters['mode']} ===", flush=True)
    proc = subprocess.run(
        [sys.executable, "-u", "src/component.py"],
        cwd=REPO,
        env={**os.environ, **env, "KBC_DATADIR": str(data), "KBC_RUNID": f"demo-{name}"},
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed with exit code {proc.returncode}")
    return data


def rows_count(url: str, token: str, table_id: str) -> int:
    response = requests.get(f"{url}/v2/storage/tables/{table_id}", headers={"X-StorageApi-Token": token}, timeout=30)
    response.raise_for_status()
    return response.json()["rowsCount"]


def main() -> None:
    shutil.rmtree(DEMO, ignore_errors=True)
    emulator, info = start_emulator()
    try:
        url = info["url"]
        source, destination = info["projects"][0], info["projects"][1]
        env = info["env"]
        print(f"Emulator at {url}: projects {[p['name'] for p in info['projects']]}")

        run_component(
            "export",
            {"mode": "export", "source": {"url": url, "#token": source["token"]}, "tables": [{"source": "in.c-demo"}]},
            env,
        )
        for path in sorted((DEMO / "export" / "out" / "tables").glob("*.manifest")):
            print(f"  exported {path.name.removesuffix('.manifest')}: {json.loads(path.read_text())['columns']}")

        # Import: push new orders into the source project (incremental upsert by primary key).
        import_dir = DEMO / "import"
        (import_dir / "in" / "tables").mkdir(parents=True, exist_ok=True)
        with (import_dir / "in" / "tables" / "orders.csv").open("w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["order_id", "customer_id", "amount", "status", "ordered_at"])
            writer.writerows(
                [[f"new-{i}", str(i % 7 + 1), f"{i * 3}.50", "new", "2026-11-22 10:00:00"] for i in range(1, 101)]
            )
        run_component(
            "import",
            {
                "mode": "import",
                "destination": {"url": url, "#token": source["token"], "bucket": "in.c-demo"},
                "tables": [{"source": "orders.csv", "incremental": True}],
            },
            env,
        )

        sync_params = {
            "mode": "sync",
            "source": {"url": url, "#token": source["token"]},
            "destination": {"url": url, "#token": destination["token"]},
            "tables": [{"source": "in.c-demo"}],
        }
        first = run_component("sync", sync_params, env)
        run_component("sync-again", sync_params, env, state_from=first)

        print("\n=== What moved ===")
        for table in ("in.c-demo.customers", "in.c-demo.orders", "in.c-demo.events"):
            print(
                f"  {table}: source {rows_count(url, source['token'], table)} rows, "
                f"destination {rows_count(url, destination['token'], table)} rows"
            )
        state = json.loads((DEMO / "sync-again" / "out" / "state.json").read_text())
        print(f"  sync state: {json.dumps(state.get('tables', {}), indent=None)[:400]}")
        print(f"\nData folders are in {DEMO.relative_to(REPO)}/")
    finally:
        emulator.send_signal(signal.SIGTERM)
        emulator.wait(timeout=30)


if __name__ == "__main__":
    main()

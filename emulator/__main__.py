"""CLI: ``python -m emulator serve --port 0 --projects 2 --seed-demo``.

Prints exactly one JSON line to stdout, ``{"url": ..., "projects": [{"id", "name", "token"}], "env": {...}}``,
then serves until SIGTERM/SIGINT and shuts everything down (exit code 0). ``--maintenance`` starts in maintenance
mode; SIGUSR1 toggles maintenance mode at runtime.

``python -m emulator advance-clock --url URL SECONDS`` moves the server clock of a running emulator forward
(``POST /_emulator/clock``) and prints ``{"now", "offsetSeconds"}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import signal
import sys
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

from .api import Emulator
from .jobs import DEFAULT_PARALLELISM

DEMO_BUCKET = "demo"


def _demo_csvs(seed: int) -> dict[str, tuple[str, list[str]]]:
    """Deterministic demo tables: name -> (csv text with header, primary key)."""
    rng = random.Random(seed)
    base = datetime(2024, 1, 1, tzinfo=UTC)
    first = ["Alice", "Bob", "Carol", "Dan", "Eva", "Frank", "Gita", "Hugo", "Ivana", "Jan", "Kim", "Lena"]
    last = ["Novak", "Smith", "Garcia", "Muller", "Rossi", "Dvorak", "Kowalski", "Silva", "Jensen", "Tanaka"]
    countries = ["CZ", "US", "DE", "GB", "FR", "ES", "IT", "PL", "SE", "JP"]
    statuses = ["new", "paid", "shipped", "delivered", "cancelled"]
    event_types = ["page_view", "click", "signup", "login", "purchase", "logout"]

    def rows_to_csv(header, rows):
        lines = [",".join(header)]
        for row in rows:
            lines.append(",".join('"' + str(v).replace('"', '""') + '"' for v in row))
        return "\n".join(lines) + "\n"

    customers = []
    for cid in range(1, 1001):
        name = f"{rng.choice(first)} {rng.choice(last)}"
        email = f"{name.lower().replace(' ', '.')}{cid}@example.com"
        created = base + timedelta(minutes=rng.randint(0, 60 * 24 * 365))
        customers.append([cid, name, email, rng.choice(countries), created.strftime("%Y-%m-%d %H:%M:%S")])
    orders = []
    for oid in range(1, 5001):
        ordered = base + timedelta(minutes=rng.randint(0, 60 * 24 * 365))
        orders.append(
            [
                oid,
                rng.randint(1, 1000),
                f"{rng.randint(100, 99999) / 100:.2f}",
                rng.choice(statuses),
                ordered.strftime("%Y-%m-%d %H:%M:%S"),
            ]
        )
    events = []
    for _ in range(2000):
        occurred = base + timedelta(seconds=rng.randint(0, 3600 * 24 * 365))
        events.append(
            [
                rng.choice(event_types),
                rng.randint(1, 1000),
                occurred.strftime("%Y-%m-%d %H:%M:%S"),
                json.dumps({"page": f"/p/{rng.randint(1, 50)}"}),
            ]
        )
    return {
        "customers": (rows_to_csv(["id", "name", "email", "country", "created_at"], customers), ["id"]),
        "orders": (
            rows_to_csv(["order_id", "customer_id", "amount", "status", "ordered_at"], orders),
            ["order_id"],
        ),
        "events": (rows_to_csv(["event_type", "customer_id", "occurred_at", "payload"], events), []),
    }


def seed_demo(emu: Emulator, project_id: int, seed: int = 42) -> list[str]:
    bucket_id = emu.create_bucket(project_id, DEMO_BUCKET)
    created = []
    for name, (text, pk) in _demo_csvs(seed).items():
        emu.create_table(project_id, f"{bucket_id}.{name}", text, primary_key=pk)
        created.append(f"{bucket_id}.{name}")
    return created


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m emulator", description="Local Keboola Storage API emulator")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the emulator until SIGTERM/SIGINT")
    serve.add_argument("--port", type=int, default=0, help="HTTP port (0 = a free port)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--projects", type=int, default=1, help="number of projects to create")
    serve.add_argument("--provider", default="aws", choices=["aws", "azure", "gcp"])
    serve.add_argument("--seed-demo", action="store_true", help="create in.c-demo with demo tables in project 1")
    serve.add_argument("--faults", default=None, help="fault rules (FaultInjector.from_spec)")
    serve.add_argument("--seed", type=int, default=None, help="seed of random faults (and of the demo data)")
    serve.add_argument("--job-delay", type=float, default=0.0, help="minimum duration of every storage job (s)")
    serve.add_argument(
        "--jobs-parallelism",
        type=int,
        default=DEFAULT_PARALLELISM,
        help="storage jobs one project processes at once, the others wait (storage.jobsParallelism, default 10)",
    )
    serve.add_argument(
        "--default-backend",
        default="snowflake",
        choices=["snowflake", "bigquery"],
        help="the projects' default backend (tokens/verify owner.defaultBackend), where buckets are created",
    )
    serve.add_argument(
        "--backends",
        default=None,
        help="the projects' assigned backends, comma-separated (default: just the default backend)",
    )
    serve.add_argument("--workdir", default=None, help="working directory (default: a temporary one)")
    serve.add_argument(
        "--maintenance", action="store_true", help="start in maintenance mode (503); SIGUSR1 toggles it at runtime"
    )
    serve.add_argument("--verbose", action="store_true", help="log requests to stderr")
    clock = sub.add_parser("advance-clock", help="move the server clock of a running emulator forward")
    clock.add_argument("--url", required=True, help="the emulator's url (the url of the serve JSON line)")
    clock.add_argument("seconds", type=float, help="seconds to let pass (>= 0)")
    return parser.parse_args(argv)


def advance_clock(url: str, seconds: float) -> int:
    """POST {url}/_emulator/clock; prints the answer ``{"now", "offsetSeconds"}`` as one JSON line."""
    request = urllib.request.Request(
        url.rstrip("/") + "/_emulator/clock",
        data=json.dumps({"advanceSeconds": seconds}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            sys.stdout.write(response.read().decode() + "\n")
    except urllib.error.HTTPError as exc:
        sys.stderr.write(exc.read().decode() + "\n")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.command == "advance-clock":
        return advance_clock(args.url, args.seconds)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr)
    stop = threading.Event()

    def on_signal(signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    emu = Emulator(
        provider=args.provider,
        seed=args.seed,
        job_delay=args.job_delay,
        port=args.port,
        workdir=args.workdir,
        host=args.host,
        faults=args.faults,
        jobs_parallelism=args.jobs_parallelism,
    )
    try:
        emu.start()
        backends = [b.strip() for b in args.backends.split(",") if b.strip()] if args.backends else None
        project_options = {"default_backend": args.default_backend, "backends": backends}
        projects = [emu.create_project(f"Project {i}", **project_options) for i in range(1, max(args.projects, 0) + 1)]
        if args.seed_demo:
            if not projects:
                projects.append(emu.create_project("Project 1", **project_options))
            seed_demo(emu, projects[0].id, seed=args.seed if args.seed is not None else 42)
        line = {
            "url": emu.url,
            "projects": [{"id": p.id, "name": p.name, "token": p.token} for p in projects],
            "env": emu.env,
        }
        maintenance = {"on": bool(args.maintenance)}
        emu.set_maintenance(maintenance["on"])

        def toggle_maintenance(signum, _frame):
            maintenance["on"] = not maintenance["on"]
            emu.set_maintenance(maintenance["on"])

        signal.signal(signal.SIGUSR1, toggle_maintenance)
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

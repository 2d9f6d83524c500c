"""Run src/component.py as Keboola runs it (a process reading KBC_DATADIR/config.json) and read its output."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COMPONENT = REPO / "src" / "component.py"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    data_dir: Path

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def state(self) -> dict:
        path = self.data_dir / "out" / "state.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def error_lines(self) -> list[str]:
        """The lines a user sees as the error event (stderr without traceback frames)."""
        return [line for line in self.stderr.splitlines() if line.strip() and not line.startswith(" ")]


@dataclass
class DataDir:
    """A Keboola data folder: config.json, in/tables, in/state.json, out/tables."""

    root: Path
    secrets: set[str] = field(default_factory=set)

    def __post_init__(self):
        for sub in ("in/tables", "in/files", "out/tables", "out/files"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def write_config(self, parameters: dict, action: str = "run", storage: dict | None = None) -> None:
        config = {"parameters": parameters, "action": action, "storage": storage or {}, "image_parameters": {}}
        (self.root / "config.json").write_text(json.dumps(config, indent=2))

    def carry_state(self) -> None:
        """Next run starts from this run's out/state.json, as Keboola does between jobs."""
        out_state = self.root / "out" / "state.json"
        in_state = self.root / "in" / "state.json"
        if out_state.exists():
            in_state.write_text(out_state.read_text())
            out_state.unlink()

    def clean_out(self) -> None:
        import shutil

        shutil.rmtree(self.root / "out", ignore_errors=True)
        for sub in ("out/tables", "out/files"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def add_input_table(self, name: str, header: list[str], rows: list[list[str]], manifest: dict | None = None):
        path = self.root / "in" / "tables" / name
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n", quoting=csv.QUOTE_ALL)
            writer.writerow(header)
            writer.writerows(rows)
        if manifest is not None:
            (path.parent / f"{name}.manifest").write_text(json.dumps(manifest))
        return path

    def process_env(self, env: dict[str, str] | None = None) -> dict[str, str]:
        full_env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "KBC_DATADIR": str(self.root),
            "KBC_RUNID": "1001",
            "PYTHONUNBUFFERED": "1",
        }
        full_env.update(env or {})
        return full_env

    def run(self, env: dict[str, str] | None = None, timeout: float = 300) -> Run:
        proc = subprocess.run(
            [sys.executable, "-u", str(COMPONENT)],
            cwd=REPO,
            env=self.process_env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        run = Run(proc.returncode, proc.stdout, proc.stderr, self.root)
        self.assert_no_secrets(run)
        return run

    def start(self, env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start the component without waiting (to signal it); finish with ``finish``."""
        return subprocess.Popen(
            [sys.executable, "-u", str(COMPONENT)],
            cwd=REPO,
            env=self.process_env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finish(self, proc: subprocess.Popen, timeout: float = 300) -> Run:
        stdout, stderr = proc.communicate(timeout=timeout)
        run = Run(proc.returncode, stdout, stderr, self.root)
        self.assert_no_secrets(run)
        return run

    def assert_no_secrets(self, run: Run) -> None:
        """Secrets never reach stdout, stderr, out/ files or state (issue: secrets across the whole suite)."""
        leaks = []
        texts = {"stdout": run.stdout, "stderr": run.stderr}
        for path in (self.root / "out").rglob("*"):
            if path.is_file() and path.stat().st_size < 50 * 2**20:
                data = path.read_bytes()
                if path.suffix == ".gz" or data[:2] == b"\x1f\x8b":
                    data = gzip.decompress(data)
                texts[str(path)] = data.decode("utf-8", "replace")
        for secret in self.secrets:
            for where, text in texts.items():
                if secret and secret in text:
                    leaks.append(where)
        assert not leaks, f"a token leaked into: {leaks}"


def read_output_table(path: Path) -> tuple[list[str], list[list[str]]]:
    """Read out/tables/<name>.csv (single CSV with header, or a folder of headerless slices + manifest)."""
    manifest = json.loads(Path(f"{path}.manifest").read_text())
    if path.is_dir():
        columns = manifest["columns"]
        rows: list[list[str]] = []
        for slice_path in sorted(path.iterdir()):
            raw = slice_path.read_bytes()
            if raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
            rows.extend(csv.reader(io.StringIO(raw.decode("utf-8"))))
        return columns, rows
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        return header, list(reader)


def as_dicts(columns: list[str], rows: list[list[str]]) -> list[dict]:
    return sorted((dict(zip(columns, row)) for row in rows), key=lambda d: json.dumps(d, sort_keys=True))


def sorted_dicts(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda d: json.dumps(d, sort_keys=True))

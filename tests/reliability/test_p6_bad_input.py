"""Part 6: bad input. Fuzzed config.json files (hypothesis) and malformed input CSVs.

A config run ends with exit code 1 and one clear error line (or 0 when the fuzzer happened to write a valid
config), never 2 or a traceback, and never writes a file outside out/ (the data folder and its parent are
compared before and after). A malformed CSV is either refused (exit 1, destination untouched) or loaded exactly
as a strict RFC 4180 parse reads it; never a silent partial load.

Runs go through ``fork_runner.py``: src/component.py executed as ``__main__`` in a forked process (same code path
as ``python src/component.py``, imports paid once, ~50 ms instead of ~1 s a run).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.harness import REPO, DataDir, Run, as_dicts
from tests.reliability.conftest import CAMPAIGN, RUNS, env_for, new_data_dir, new_project, rows, variants

_count = itertools.count()


class Forker:
    def __init__(self, logs: Path):
        self.logs = logs
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("fork_runner.py"))],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, data: DataDir, env: dict) -> Run:
        n = next(_count)
        out, err = self.logs / f"{n}.out", self.logs / f"{n}.err"
        request = {"env": data.process_env(env), "stdout": str(out), "stderr": str(err)}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        rc = json.loads(self.proc.stdout.readline())["rc"]
        run = Run(rc, out.read_text(errors="replace"), err.read_text(errors="replace"), data.root)
        data.assert_no_secrets(run)
        return run

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(30)


@pytest.fixture(scope="module")
def forker(tmp_path_factory):
    logs = tmp_path_factory.mktemp("fork-logs")
    worker = Forker(logs)
    yield worker
    worker.close()


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _assert_one_clear_error(run: Run):
    assert run.returncode in (0, 1), f"exit code {run.returncode}: {run.output[-2000:]}"
    assert "Traceback" not in run.output, run.output[-3000:]
    if run.returncode == 1:
        lines = run.error_lines()  # warnings (e.g. an ignored unknown key) may precede the one error line
        assert lines, run.output
        assert len(lines[-1]) < 1000 and lines[-1].rstrip().endswith("."), lines[-1][:300]


# ---------------------------------------------------------------------------------------------------------------
# config fuzzer

PATHY = [
    "../x",
    "../../etc/passwd",
    "/tmp/x",
    "in.c-f/../../x",
    "in.c-../x.y",
    "..",
    ".",
    "",
    " ",
    "in.c-f.t",
    "in.c-f",
    "out.c-x.y",
    "é😀\u202e",
    "C:\\x",
    "\x00",
    "a" * 5000,
    "in.c-f.t.csv",
    "t.csv",
]


def _configs(emu, token):
    leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
    junk = st.recursive(
        leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3), max_leaves=6
    )
    name = st.sampled_from(PATHY) | st.text(max_size=12)
    huge = st.sampled_from([10**30, -1, 0, 2**63, 1e308, "9" * 400])
    conn = st.fixed_dictionaries(
        {},
        optional={
            "url": st.sampled_from([emu.url, emu.url + "/", "ftp://x", "https://", "file:///etc", "", "x"]) | junk,
            "#token": st.sampled_from([token, "bad-token", ""]) | junk,
            "bucket": name | junk,
        },
    )
    table = st.fixed_dictionaries(
        {},
        optional={
            "source": name | junk,
            "destination": name | junk,
            "columns": st.lists(name, max_size=3) | junk,
            "primaryKey": st.lists(name, max_size=2) | junk,
            "incremental": st.booleans() | junk,
            "limit": huge | junk,
            "changedSince": st.sampled_from(["last", "-2 days", "yesterday", "0", "9" * 30]) | junk,
            "whereFilters": st.lists(
                st.fixed_dictionaries({"column": name, "operator": st.sampled_from(["eq", "xx"]), "values": junk}),
                max_size=2,
            )
            | junk,
            "unknownKey": junk,
        },
    )
    parameters = st.fixed_dictionaries(
        {},
        optional={
            "mode": st.sampled_from(["export", "import", "sync", "copy", "", "EXPORT"]) | junk,
            "source": conn | junk,
            "destination": conn | junk,
            "tables": st.lists(table, max_size=3) | junk,
            "timeouts": st.fixed_dictionaries({}, optional={"job": huge | junk, "request": huge | junk}) | junk,
            "mergedOutput": st.booleans() | junk,
            "debug": st.booleans() | junk,
            "incremental": st.booleans() | junk,
            "primaryKey": junk,
            "changedSince": junk,
        },
    )
    unknown = st.dictionaries(st.text(max_size=8), junk, max_size=2)
    parameters = st.tuples(parameters, unknown).map(lambda pair: {**pair[1], **pair[0]})
    action = st.sampled_from(["run", "run", "run", "testConnection", "listTables", "listBuckets", "nope"]) | junk
    return st.fixed_dictionaries(
        {"parameters": parameters | junk, "action": action},
        optional={"storage": junk, "image_parameters": junk},
    )


@pytest.mark.parametrize("runs", variants(25, max(300, 3 * RUNS)))
def test_fuzzed_config(emu, forker, tmp_path_factory, runs):
    project = new_project(emu, "fuzz")
    emu.create_bucket(project.id, "f")
    emu.create_table(project.id, "in.c-f.t", "id,v\n1,a\n2,b\n", primary_key=["id"])
    base = tmp_path_factory.mktemp("fuzz")
    outcomes = {0: 0, 1: 0}

    @settings(
        max_examples=runs,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(config=_configs(emu, project.token))
    def check(config):
        parent = base / f"ex-{next(_count)}"
        data = new_data_dir(parent / "data")
        data.add_input_table("t.csv", ["id", "v"], [["1", "x"]])
        (data.root / "config.json").write_text(json.dumps(config))
        before = _tree(parent)
        run = forker.run(data, env_for(emu))
        _assert_one_clear_error(run)
        outcomes[run.returncode] += 1
        new = {p for p in _tree(parent) - before if not p.startswith("data/out")}
        assert not new, f"files written outside out/: {sorted(new)}"

    check()
    assert not list(base.parent.glob("x")), "a file escaped the data folder"
    CAMPAIGN.add("6 config fuzzer", runs=runs, exit_1=outcomes[1], exit_0=outcomes[0])


# ---------------------------------------------------------------------------------------------------------------
# malformed CSVs (import mode)

CSVS = {
    "ragged rows": b"id,name\n1,a\n2\n3,c,extra\n",
    "unterminated quote": b'id,name\n1,"a\n2,b\n',
    "quote inside a field": b'id,name\n1,a"b\n2,c\n',
    "garbage after a quoted field": b'id,name\n1,"a"b\n2,c\n',
    "NUL byte": b"id,name\n1,a\x00b\n2,c\n",
    "non-UTF-8": b"id,name\n1,caf\xe9\n",
    "empty file": b"",
    "header only": b"id,name\n",
    "duplicate header": b"id,id\n1,2\n",
    "empty header cell": b"id,\n1,2\n",
}


def _strict_parse(raw: bytes):
    """What a correct load contains, or None when the file is not valid UTF-8 RFC 4180 with a uniform width
    (NUL is a character like any other: loaded, it must be kept)."""
    try:
        text = raw.decode("utf-8")
        parsed = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except (UnicodeDecodeError, csv.Error):
        return None
    if not parsed or any(len(r) != len(parsed[0]) for r in parsed):
        return None
    return parsed[0], parsed[1:]


@pytest.mark.parametrize("existing", [False, True], ids=["new-table", "existing-table"])
@pytest.mark.parametrize("case", sorted(CSVS))
def test_malformed_csv(emu, forker, tmp_path, case, existing):
    raw = CSVS[case]
    destination = new_project(emu, "csv")
    emu.create_bucket(destination.id, "csv")
    before = None
    if existing:
        emu.create_table(destination.id, "in.c-csv.t", "id,name\nold,row\n")
        before = rows(emu, destination, "in.c-csv.t")
    data = new_data_dir(tmp_path / "data")
    (data.root / "in" / "tables" / "t.csv").write_bytes(raw)
    data.write_config(
        {
            "mode": "import",
            "destination": {"url": emu.url, "#token": destination.token},
            "tables": [{"source": "t.csv", "destination": "in.c-csv.t"}],
        }
    )
    run = forker.run(data, env_for(emu))
    _assert_one_clear_error(run)
    expected = _strict_parse(raw)
    exists = "in.c-csv.t" in {t["id"] for t in emu.backend.list_tables(emu.backend.master_token(destination.id))}
    if run.returncode == 0:
        assert expected is not None, f"{case}: loaded although a strict parse rejects it"
        header, body = expected
        assert rows(emu, destination, "in.c-csv.t") == as_dicts(header, body), f"{case}: partial or wrong load"
    else:
        assert "t.csv" in run.error_lines()[-1] or "in.c-csv.t" in run.error_lines()[-1], run.error_lines()
        if existing:
            assert rows(emu, destination, "in.c-csv.t") == before, f"{case}: a failed load changed the table"
        else:
            assert not exists, f"{case}: a failed import left a table behind"
    CAMPAIGN.add("6 malformed CSV", runs=1, refused=int(run.returncode == 1), loaded=int(run.returncode == 0))

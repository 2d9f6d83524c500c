"""The many-tables benchmark (issue 13) works end to end on two tiny tables (quick mode, the component only, no
job delay); nothing is timed or compared here."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks.many_tables import BEGIN, END, SECTION, Figures, render, replace_section
from tests.unit.bench_support import run_benchmark


def test_many_tables_benchmark_runs_in_quick_mode(tmp_path):
    report = tmp_path / "BENCHMARKS.md"
    report.write_text("# Benchmarks\n\n## Other section\n\nkept\n")
    env = {
        "MANY_QUICK": "1",
        "MANY_TABLES": "2",
        "MANY_ROWS": "5",
        "MANY_PARALLELISM": "2",
        "MANY_OUT": str(report),
        "MANY_TMP": str(tmp_path / "work"),
    }
    run_benchmark("many_tables.py", env)
    text = report.read_text()
    assert "## Other section\n\nkept" in text and text.count(SECTION) == 1
    for mode in ("sync", "incremental", "export", "import"):
        assert f"| {mode} | 0 | 2 |" in text
    assert "### Goals" in text and "Misbehaviour" not in text
    chart = tmp_path / "charts" / "many_tables.png"
    assert "](charts/many_tables.png)" in text and chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # every cell ran (no failure), with the storage jobs of each mode, and the report renders again from the JSON
    dump = json.loads((tmp_path / "work" / "many_tables.json").read_text())
    cells = {c["mode"]: c for c in dump["cells"]}
    assert all(len(c["walls"]) == 1 and not c["failure"] and len(c["table_seconds"]) == 2 for c in cells.values())
    assert cells["export"]["jobs"] == 2 and cells["import"]["jobs"] == 2
    assert render(Figures.from_json(dump)).startswith(BEGIN)


def test_the_section_keeps_what_is_around_its_generated_block():
    hand = f"# Benchmarks\n\n{SECTION}\n\nhand-written analysis\n\n## Next\n\nkept\n"
    once = replace_section(hand, f"{BEGIN}\nfirst\n{END}")
    assert once.index("hand-written analysis") < once.index("first") < once.index("## Next")
    twice = replace_section(once, f"{BEGIN}\nsecond\n{END}")
    assert "first" not in twice and "second" in twice and "hand-written analysis" in twice and "kept" in twice
    assert replace_section("# Benchmarks\n", f"{BEGIN}\nx\n{END}").endswith(f"{SECTION}\n\n{BEGIN}\nx\n{END}\n")

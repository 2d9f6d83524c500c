"""The benchmarks' main comparisons as PNG charts (matplotlib, drawn without a screen), shown in BENCHMARKS.md.

- ``modes.png`` (``make bench``): wall seconds of the component, kbcstorage and the raw limit per mode and size;
- ``many_tables.png`` (``make bench-tables``): wall seconds against the number of tables, one line per
  ``parallelism`` and one for kbcstorage, per mode, at the shortest storage job length measured.

    python benchmarks/charts.py modes benchmarks/results.json benchmarks/charts/modes.png
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: the image only
import matplotlib.pyplot as plt

TOOLS = (
    ("component", "component", "#1f77b4"),
    ("kbcstorage", "kbcstorage", "#d62728"),
    ("raw", "raw limit", "#7f7f7f"),
)
MODES = ("export", "import", "sync")


def relative_link(image: Path, report: Path) -> str:
    """The image's path as the report links it (relative to the report's folder)."""
    return Path(os.path.relpath(image, report.parent)).as_posix()


def draw_modes(results: dict, path: Path) -> Path | None:
    """Grouped bars: per mode a panel, per size a group, per tool a bar (wall s, its value written on it)."""
    modes = [m for m in MODES if results.get("ops", {}).get(m)]
    if not modes:
        return None
    fig, axes = plt.subplots(1, len(modes), figsize=(4.2 * len(modes), 3.8), squeeze=False)
    for ax, mode in zip(axes[0], modes, strict=True):
        entries = results["ops"][mode]
        width = 0.8 / len(TOOLS)
        for i, (key, label, colour) in enumerate(TOOLS):
            walls = [(e.get(key) or {}).get("wall") for e in entries]
            xs = [n + (i - (len(TOOLS) - 1) / 2) * width for n in range(len(entries))]
            bars = ax.bar(xs, [w or 0 for w in walls], width, label=label, color=colour)
            for bar, wall in zip(bars, walls, strict=True):
                if wall is not None:
                    ax.annotate(
                        f"{wall:.1f}",
                        (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center",
                        va="bottom",
                        fontsize=7,
                    )
        ax.set_xticks(range(len(entries)), [f"{e['rows']:,} rows" for e in entries], fontsize=8)
        ax.set_title(mode)
        ax.set_ylabel("wall s (lower is better)")
        ax.margins(y=0.15)
    fig.suptitle("One process per run, against the emulator (storage jobs included)", fontsize=9)
    return _save(fig, path, axes[0][0])


def draw_many_tables(figures, path: Path) -> Path | None:
    """Per mode a panel: wall s against tables (log-log), a line per component parallelism and one for kbcstorage;
    extrapolated cells are hollow markers on a dotted line. ``figures``: ``many_tables.Figures``."""
    modes = figures.axis(1)
    delays = figures.axis(3)
    if not modes or not delays:
        return None
    delay = delays[0]
    series = [("kbcstorage", 1, "kbcstorage (one table after another)")]
    series += [("component", p, f"component, parallelism {p}") for p in figures.axis(4, "component")]
    fig, axes = plt.subplots(1, len(modes), figsize=(4.2 * len(modes), 3.8), squeeze=False)
    for ax, mode in zip(axes[0], modes, strict=True):
        for tool, p, label in series:
            points = []
            for tables in figures.axis(2):
                cell = figures.get(tool, mode, tables, delay, p)
                if cell is not None and cell.runs:
                    points.append((tables, cell.wall, True))
                elif cell is not None and cell.extrapolated is not None:
                    points.append((tables, cell.extrapolated, False))
            if len(points) < 1:
                continue
            line = ax.plot([t for t, _, _ in points], [w for _, w, _ in points], ":", linewidth=1)[0]
            colour = line.get_color()
            measured = [(t, w) for t, w, real in points if real]
            guessed = [(t, w) for t, w, real in points if not real]
            if measured:
                ax.plot(*zip(*measured, strict=True), "o-", color=colour, label=label, markersize=4)
            if guessed:
                ax.plot(*zip(*guessed, strict=True), "o", color=colour, markerfacecolor="none", markersize=5)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("tables")
        ax.set_ylabel("wall s")
        ax.set_title(f"{mode} ({delay:g} s storage jobs)")
        ax.grid(True, which="both", linewidth=0.3)
    fig.suptitle("Many small tables: hollow markers are extrapolated (not run)", fontsize=9)
    return _save(fig, path, axes[0][0])


def _save(fig, path: Path, legend_of) -> Path:
    """One legend under the panels (inside one, it hides bars and lines)."""
    handles, labels = legend_of.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


if __name__ == "__main__":
    if sys.argv[1:2] != ["modes"] or len(sys.argv) != 4:
        sys.exit(__doc__)
    draw_modes(json.loads(Path(sys.argv[2]).read_text()), Path(sys.argv[3]))

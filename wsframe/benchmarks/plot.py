"""Benchmark results as charts (PNG or SVG, by the file's suffix), with matplotlib.

matplotlib is optional (``pip install wsframe[plot]``). :func:`plot_codec`
draws the codec table (``python -m wsframe bench --plot FILE``);
:func:`plot_bars` is the generic grouped bar chart the end-to-end benchmarks
under ``bench/`` use. Every chart says when and on what it was measured.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from .cases import REFERENCES
from .report import JSONObject, label

__all__ = ["plot_bars", "plot_codec", "require_matplotlib"]


def require_matplotlib() -> Any:
    """``matplotlib.pyplot`` on a file-only backend, or ImportError saying what to install."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install wsframe[plot]") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.fonttype"] = "none"  # text stays text in SVG files

    return plt


def _stamp(machine: str, when: Optional[str] = None) -> str:
    date = when or datetime.date.today().isoformat()
    return f"measured {date} on {machine}"


def plot_bars(
    path: str,
    *,
    title: str,
    categories: Sequence[str],
    series: Mapping[str, Sequence[Optional[float]]],
    ylabel: str,
    machine: str,
    when: Optional[str] = None,
    log: bool = False,
    highlight: str = "wsframe",
) -> None:
    """A grouped bar chart: one group per category, one bar per series.

    Missing values (None) leave a gap. The series whose name starts with
    ``highlight`` is drawn first, in a strong colour; every bar is labelled
    with its value.
    """
    plt = require_matplotlib()
    names = sorted(
        series, key=lambda name: (not name.startswith(highlight), list(series).index(name))
    )
    figure, axes = plt.subplots(figsize=(max(8.0, 1.8 * len(categories) + 3), 4.6), dpi=110)
    width = 0.8 / max(1, len(names))
    palette = ["#2f6fed", "#9aa5b1", "#f29e4c", "#6cc08b", "#c06c84", "#7f6cc0", "#c0a36c"]
    for index, name in enumerate(names):
        values = series[name]
        xs = [c + (index - (len(names) - 1) / 2) * width for c in range(len(categories))]
        heights = [v if v is not None else 0.0 for v in values]
        bars = axes.bar(xs, heights, width, label=name, color=palette[index % len(palette)])
        axes.bar_label(
            bars,
            labels=[f"{v:.3g}" if v is not None else "" for v in values],
            fontsize=7,
            fontweight="bold" if name.startswith(highlight) else "normal",
        )
    axes.set_xticks(range(len(categories)), categories)
    axes.set_ylabel(ylabel)
    if log:
        axes.set_yscale("log")
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8, ncols=min(4, len(names)))
    axes.grid(axis="y", alpha=0.3)
    figure.text(0.99, 0.01, _stamp(machine, when), ha="right", va="bottom", fontsize=7, alpha=0.7)
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    figure.savefig(path)
    plt.close(figure)


def plot_codec(document: JSONObject, path: str) -> None:
    """The codec benchmark (``python -m wsframe bench --json`` output) as one chart.

    One panel per table; each bar is a library's speed relative to the
    fastest peer of that row (wsframe's columns and every peer, higher is
    faster), on a log scale, so tables with different units share a picture.
    """
    plt = require_matplotlib()
    groups = [g for g in document["groups"] if g["rows"]]
    meta = document["meta"]
    figure, panels = plt.subplots(
        len(groups), 1, figsize=(11, 2.6 * len(groups) + 0.6), dpi=100, squeeze=False
    )
    palette = ["#2f6fed", "#7fa6f5", "#9aa5b1", "#f29e4c", "#6cc08b", "#c06c84", "#7f6cc0"]
    for axes, group in zip((row[0] for row in panels), groups):
        columns = [c for c in group["columns"] if c not in REFERENCES]
        rows = group["rows"]
        width = 0.8 / max(1, len(columns))
        for index, column in enumerate(columns):
            values = []
            for row in rows:
                speeds = {
                    c: 1.0 / r["ns_per_op_best"]
                    for c, r in row["results"].items()
                    if r.get("status") == "ok" and r.get("ns_per_op_best")
                }
                reference = max(
                    (v for c, v in speeds.items() if c in columns and not c.startswith("wsframe")),
                    default=None,
                )
                value = speeds.get(column)
                values.append(value / reference if value and reference else 0.0)
            xs = [r + (index - (len(columns) - 1) / 2) * width for r in range(len(rows))]
            axes.bar(xs, values, width, label=label(column), color=palette[index % len(palette)])
        axes.set_xticks(
            range(len(rows)),
            [row["label"] for row in rows],
            fontsize=7,
            rotation=12 if len(rows) > 6 else 0,
        )
        axes.set_yscale("log")
        axes.axhline(1.0, color="#444", linewidth=0.6)
        axes.set_ylabel("speed / fastest peer", fontsize=8)
        axes.set_title(group["title"], fontsize=9, loc="left")
        axes.grid(axis="y", alpha=0.3)
        axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1.0), frameon=False)
    machine = (
        f"{meta.get('platform', '?')}, {meta.get('cpu_count', '?')} CPUs, {meta.get('python', '?')}"
    )
    figure.suptitle(
        f"wsframe {meta.get('wsframe_version', '')} codec vs peers (higher is faster)", fontsize=11
    )
    figure.text(
        0.99,
        0.005,
        _stamp(machine, str(meta.get("date", ""))[:10] or None),
        ha="right",
        va="bottom",
        fontsize=7,
        alpha=0.7,
    )
    figure.tight_layout(rect=(0, 0.02, 1, 0.98))
    figure.savefig(path)
    plt.close(figure)

"""Markdown table of two pytest-benchmark runs: the base branch vs a pull request.

Used by ``.github/workflows/bench.yml`` to put the comparison in the job
summary::

    python bench/compare_summary.py BASE.json PR.json --threshold 25 \
        --summary "$GITHUB_STEP_SUMMARY" --annotate

Compares the **min** of each benchmark (the least noisy statistic on a shared
machine) and the mean for reference, and marks rows more than ``--threshold``
percent slower. Without ``--summary`` the table goes to stdout. With
``--annotate`` each such row also becomes a GitHub ``::warning::`` annotation
(shown on the pull request's checks). Always exits 0: a slowdown is reported,
never a failure, because shared CI machines are too noisy for a hard limit.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _load(path: str) -> dict[str, dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    return {bench["name"]: bench for bench in data.get("benchmarks", [])}


def _time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _change(base: float, new: float) -> float:
    return 100.0 * (new - base) / base if base else 0.0


def slower_rows(
    base: dict[str, dict[str, Any]], pr: dict[str, dict[str, Any]], threshold: float
) -> list[tuple[str, float]]:
    """(name, percent) of the benchmarks whose min is more than ``threshold``% slower."""
    out = []
    for name in sorted(set(base) & set(pr)):
        change = _change(base[name]["stats"]["min"], pr[name]["stats"]["min"])
        if change > threshold:
            out.append((name, change))
    return out


def render(base: dict[str, dict[str, Any]], pr: dict[str, dict[str, Any]], threshold: float) -> str:
    """The markdown report."""
    lines = [
        "## Codec micro-benchmarks: this pull request vs its base",
        "",
        f"Time per call (lower is better); a row more than {threshold:g}% slower on `min` "
        "is marked :red_circle: (a warning: shared runners are noisy, re-run to confirm).",
        "",
        "| benchmark | base min | PR min | change (min) | base mean | PR mean | change (mean) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    slower = 0
    for name in sorted(set(base) | set(pr)):
        if name not in base or name not in pr:
            where = "PR" if name in pr else "base"
            lines.append(f"| `{name}` | | | only in {where} | | | |")
            continue
        b, p = base[name]["stats"], pr[name]["stats"]
        change_min = _change(b["min"], p["min"])
        change_mean = _change(b["mean"], p["mean"])
        mark = ""
        if change_min > threshold:
            mark, slower = " :red_circle:", slower + 1
        elif change_min < -threshold:
            mark = " :green_circle:"
        lines.append(
            f"| `{name}` | {_time(b['min'])} | {_time(p['min'])} | {change_min:+.1f}%{mark} "
            f"| {_time(b['mean'])} | {_time(p['mean'])} | {change_mean:+.1f}% |"
        )
    lines += ["", f"{slower} benchmark(s) slower than the threshold.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="pytest-benchmark JSON of the base branch")
    parser.add_argument("pr", help="pytest-benchmark JSON of the pull request")
    parser.add_argument("--threshold", type=float, default=25.0, help="percent (default 25)")
    parser.add_argument("--summary", metavar="PATH", help="append the table to this file")
    parser.add_argument(
        "--annotate", action="store_true", help="print a ::warning:: line per slower benchmark"
    )
    args = parser.parse_args(argv)
    base, pr = _load(args.base), _load(args.pr)
    report = render(base, pr, args.threshold)
    if args.summary:
        with open(args.summary, "a", encoding="utf-8") as f:
            f.write(report)
    else:
        sys.stdout.write(report)
    if args.annotate:
        for name, change in slower_rows(base, pr, args.threshold):
            print(f"::warning title=benchmark slower::{name}: min {change:+.1f}% vs base")
    return 0


if __name__ == "__main__":
    sys.exit(main())

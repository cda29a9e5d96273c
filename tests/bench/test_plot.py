"""``python -m wsframe bench --plot FILE``: the benchmark table drawn as a chart."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("matplotlib")

from wsframe.benchmarks.plot import plot_bars

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _bench(*options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wsframe", "bench", *options],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_bench_plot_measures_and_draws(tmp_path: pathlib.Path) -> None:
    chart = tmp_path / "codec.png"
    data = tmp_path / "codec.json"
    result = _bench(
        "--quick", "--seconds-per-cell", "0.002", "--json", str(data), "--plot", str(chart)
    )
    assert result.returncode == 0, result.stderr
    assert f"wrote {chart}" in result.stdout
    image = chart.read_bytes()
    assert image.startswith(PNG_MAGIC) and len(image) > 20_000
    # The same results drawn again, as SVG, without measuring.
    svg = tmp_path / "codec.svg"
    result = _bench("--from-json", str(data), "--plot", str(svg))
    assert result.returncode == 0, result.stderr
    text = svg.read_text(encoding="utf-8")
    document = json.loads(data.read_text(encoding="utf-8"))
    assert "<svg" in text
    for group in document["groups"]:
        assert group["title"].split()[0] in text  # every table has its panel


def test_from_json_alone_is_refused(tmp_path: pathlib.Path) -> None:
    result = _bench("--from-json", str(tmp_path / "x.json"))
    assert result.returncode == 2
    assert "--from-json only goes with --plot" in result.stderr


def test_plot_bars_marks_gaps_and_the_date(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "echo.svg"
    plot_bars(
        str(path),
        title="echo",
        categories=["256 B", "16 KiB"],
        series={"picows": [6.6, 12.1], "wsframe": [6.5, None]},
        ylabel="µs per message",
        machine="test machine",
        when="2026-11-26",
    )
    text = path.read_text(encoding="utf-8")
    assert "measured 2026-11-26 on test machine" in text

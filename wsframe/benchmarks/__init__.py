"""Micro-benchmarks of the frame codec: wsframe's C codec next to its pure-Python twin.

``python -m wsframe bench [--quick] [--json PATH]`` calls :func:`run`. Only
the standard library is needed. The rows are defined in
:mod:`wsframe.benchmarks.cases`, the measuring is in
:mod:`wsframe.benchmarks.timing` and the table and JSON in
:mod:`wsframe.benchmarks.report`. The same tables with the peer libraries
(picows, aiohttp, websockets, wsproto, wsaccel) side by side are in the source
checkout's ``bench/codec_peers/``, which passes its own :class:`Suite` to
:func:`run`; nothing in the package imports a peer.
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
import time
from dataclasses import dataclass
from typing import Callable, Optional, TextIO

from . import cases, report, timing
from .cases import Case, CheckFailed, Group, NotAvailable
from .report import Cell, GroupResult, JSONObject
from .timing import Runner

__all__ = ["SUITE", "Suite", "measure_group", "metadata", "run"]


@dataclass(frozen=True)
class Suite:
    """What a run measures: its tables, how a cell is run, and the libraries it shows."""

    groups: Callable[[bool], list[Group]]
    make_runner: Callable[[Case, str], Runner]
    #: Column key -> ``{"version": ...}`` or ``{"unavailable": reason}``.
    libraries: Callable[[], dict[str, dict[str, str]]]


#: wsframe's own tables: the C codec, the pure-Python codec and the references.
SUITE = Suite(cases.groups, cases.make_runner, cases.libraries)


def measure_group(
    group: Group,
    settings: timing.Settings,
    progress: Optional[TextIO] = None,
    suite: Suite = SUITE,
) -> GroupResult:
    """Measure every cell of ``group``; a failing column never stops the run."""
    result = GroupResult(group)
    for case in group.cases:
        row = result.cells.setdefault(case.key, {})
        for column in group.columns:
            try:
                runner = suite.make_runner(case, column)
                row[column] = Cell(column, "ok", timing=timing.measure(runner, settings))
            except NotAvailable as exc:
                row[column] = Cell(column, "n/a", str(exc))
            except CheckFailed as exc:
                row[column] = Cell(column, "error", f"wrong result: {exc}")
            except Exception as exc:  # a peer's surprise must not end the run
                row[column] = Cell(column, "error", f"{exc.__class__.__name__}: {exc}")
            if progress is not None:
                progress.write(".")
                progress.flush()
    return result


def metadata(quick: bool, settings: timing.Settings, suite: Suite = SUITE) -> JSONObject:
    """Where and how the numbers were taken."""
    import wsframe

    try:
        simd_path = getattr(cases.codec("wsframe-c"), "SIMD_PATH", None)
    except NotAvailable:
        simd_path = None
    return {
        "wsframe_version": wsframe.__version__,
        "default_implementation": wsframe.implementation,
        "c_simd_path": simd_path,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": quick,
        "timing": {
            "clock": "time.perf_counter_ns",
            "statistic": "best (minimum) of the samples; median also recorded",
            "target_sample_seconds": settings.target_s,
            "samples": settings.samples,
            "budget_seconds_per_cell": settings.budget_s,
            "gc": "disabled during each sample",
        },
        "libraries": suite.libraries(),
        "decode_chunk_size": cases.CHUNK_SIZE,
        "encode_key_pool_size": cases.KEY_POOL_SIZE,
    }


def run(
    quick: bool = False,
    json_path: Optional[str] = None,
    *,
    seconds_per_cell: Optional[float] = None,
    suite: Suite = SUITE,
) -> int:
    """Run every benchmark, print the tables, optionally write JSON.

    ``seconds_per_cell`` caps the time spent on one cell (a smoke test passes
    a few milliseconds). Returns the exit code: 1 if a wsframe column gave a
    wrong result, else 0.
    """
    settings = timing.QUICK if quick else timing.FULL
    if seconds_per_cell is not None:
        settings = timing.Settings(
            target_s=min(settings.target_s, seconds_per_cell / 4),
            samples=settings.samples,
            budget_s=seconds_per_cell,
        )
    meta = metadata(quick, settings, suite)
    out = sys.stdout
    print(
        f"wsframe {meta['wsframe_version']} benchmarks ({'quick' if quick else 'full'}) "
        f"on {meta['python']}, {meta['machine']}, {meta['cpu_count']} CPUs",
        file=out,
    )
    for key, info in meta["libraries"].items():
        state = info.get("version") or f"n/a ({info['unavailable']})"
        print(f"  {report.label(key)}: {state}", file=out)
    if meta["c_simd_path"]:
        print(f"  wsframe-C SIMD path: {meta['c_simd_path']}", file=out)
    print(
        f"  each cell: best of up to {settings.samples} samples of >= "
        f"{settings.target_s * 1000:.0f} ms after warmup and calibration",
        file=out,
    )
    out.flush()

    started = time.perf_counter()
    results = []
    exit_code = 0
    for group in suite.groups(quick):
        sys.stderr.write(f"{group.title} ")
        result = measure_group(group, settings, progress=sys.stderr, suite=suite)
        sys.stderr.write("\n")
        results.append(result)
        report.print_group(result, out)
        out.flush()
        for row in result.cells.values():
            for column in cases.WSFRAME:
                if column in row and row[column].status == "error":
                    exit_code = 1
    elapsed = time.perf_counter() - started
    meta["elapsed_seconds"] = round(elapsed, 1)
    print(f"\n({elapsed:.0f} s)", file=out)
    if json_path:
        report.to_json(meta, results, json_path)
        print(f"wrote {json_path}", file=out)
    return exit_code

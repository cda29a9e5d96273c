"""Micro-benchmarks of the frame codec: wsframe C, wsframe pure Python, peers.

``python -m wsframe bench [--quick] [--json PATH]`` calls :func:`run`. Only
the standard library is needed; each peer library (picows, aiohttp,
websockets, wsproto, wsaccel) is used when it is installed and shown as "n/a"
with the reason otherwise. The rows are defined in
:mod:`wsframe.benchmarks.cases`, the measuring is in
:mod:`wsframe.benchmarks.timing` and the table and JSON in
:mod:`wsframe.benchmarks.report`.
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
import time
from typing import Any, Optional, TextIO

from . import cases, peers, report, timing
from .cases import CheckFailed, NotAvailable, groups, make_runner
from .report import Cell, GroupResult

__all__ = ["groups", "make_runner", "measure_group", "metadata", "run"]


def measure_group(
    group: cases.Group, settings: timing.Settings, progress: Optional[TextIO] = None
) -> GroupResult:
    """Measure every cell of ``group``; a failing column never stops the run."""
    result = GroupResult(group)
    for case in group.cases:
        row = result.cells.setdefault(case.key, {})
        for column in group.columns:
            try:
                runner = make_runner(case, column)
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


def metadata(quick: bool, settings: timing.Settings) -> dict[str, Any]:
    """Where and how the numbers were taken."""
    import wsframe

    libraries = {}
    for key in ("wsframe-c", "wsframe-py", *peers.PEERS):
        loaded = peers.load(key)
        libraries[key] = (
            {"version": loaded.version} if loaded.ok else {"unavailable": loaded.reason}
        )
    c_codec = peers.load("wsframe-c").module
    return {
        "wsframe_version": wsframe.__version__,
        "default_implementation": wsframe.implementation,
        "c_simd_path": getattr(c_codec, "SIMD_PATH", None),
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
        "libraries": libraries,
        "decode_chunk_size": cases.CHUNK_SIZE,
        "encode_key_pool_size": cases.KEY_POOL_SIZE,
    }


def run(quick: bool = False, json_path: Optional[str] = None) -> int:
    """Run every benchmark, print the tables, optionally write JSON.

    Returns the exit code: 1 if a wsframe column gave a wrong result, else 0.
    """
    settings = timing.QUICK if quick else timing.FULL
    meta = metadata(quick, settings)
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
    for group in groups(quick):
        sys.stderr.write(f"{group.title} ")
        result = measure_group(group, settings, progress=sys.stderr)
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

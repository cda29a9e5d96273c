"""A handful of representative codec benchmarks for pytest-benchmark.

Meant for CI comparing a pull request against main::

    python -m pytest bench/test_bench_codec.py --benchmark-save=main
    python -m pytest bench/test_bench_codec.py --benchmark-compare

It lives in ``bench/`` so the normal test run (``testpaths = ["tests"]``)
never collects it, and it is skipped as a whole when pytest-benchmark is not
installed. The rows come from :mod:`wsframe.benchmarks.cases`; each test runs
wsframe's C codec or its pure-Python codec (skipped when not available). One
call of the benchmarked function does ``ops_per_call`` operations (recorded in
``extra_info``), so that calls on tiny payloads are not all call overhead.
No test asserts anything about time.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pytest_benchmark")

try:
    import wsframe  # noqa: F401
except ImportError:  # a source checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wsframe.benchmarks import cases

#: (group, row label) of the representative rows.
SELECTED = [
    ("mask_inplace", "16 B"),
    ("mask_inplace", "64 KiB"),
    ("mask_inplace", "1 MiB"),
    ("decode_server", "125 B"),
    ("encode", "125 B masked"),
    ("encode", "125 B unmasked"),
    ("utf8", "1 MiB ASCII"),
    ("utf8", "1 MiB mixed"),
]

#: Operations per benchmarked call: about 64 KiB of payload, at most 1000.
_BYTES_PER_CALL = 64 * 1024


def _selected_cases() -> list[cases.Case]:
    by_key = {(c.group, c.label): c for g in cases.groups(quick=False) for c in g.cases}
    return [by_key[key] for key in SELECTED]


@pytest.mark.parametrize("column", ["wsframe-c", "wsframe-py"])
@pytest.mark.parametrize("case", _selected_cases(), ids=lambda c: c.key)
def test_codec(benchmark: Any, case: cases.Case, column: str) -> None:
    """Benchmark one row with one of wsframe's codecs."""
    reason = cases.unavailable(case, column)
    if reason is not None:
        pytest.skip(f"{column}: {reason}")
    run = cases.make_runner(case, column)  # checks the result once
    ops = max(1, min(1000, _BYTES_PER_CALL // max(1, case.bytes_per_op)))
    benchmark.group = case.key
    benchmark.extra_info.update(
        {
            "column": column,
            "ops_per_call": ops,
            "payload_size": case.size,
            "frames_per_op": case.frames,
        }
    )
    benchmark(run, ops)

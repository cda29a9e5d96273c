"""The codec benchmarks of ``python -m wsframe bench``, run through pyperf.

pyperf spawns worker processes, calibrates loops, and records every value, so
its numbers are steadier than the in-process table. The rows and the way each
library is driven come from :mod:`wsframe.benchmarks.cases` (wsframe's
columns) and :mod:`codec_peers.cases` (the peers'); nothing is redefined here.

    python bench/bench_codec.py -o results.json            # everything
    python bench/bench_codec.py --fast --quick -o q.json   # fewer rows and runs
    python bench/bench_codec.py --group encode --column wsframe-c --column picows
    python -m pyperf compare_to main.json pr.json --table

Each benchmark is named ``<group>/<row>/<column>``, e.g.
``decode_server/125B/wsframe-c``; one value is the time of one operation (one
mask, one frame encoded, one pass over a pre-encoded frame stream for decode:
divide by ``frames_per_op`` in the metadata for the time per frame).
Columns that are not available here (peer not installed, C codec not built)
are skipped with a message.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable

try:
    import wsframe  # noqa: F401
except ImportError:  # run from a source checkout that is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyperf
from codec_peers import SUITE, cases

from wsframe.benchmarks import metadata, timing

Runner = Callable[[int], object]


class _Lazy:
    """Builds a case's runner (input data, peer setup, check) on first use.

    pyperf runs the script in every worker process and each worker times one
    benchmark, so setting up only the benchmark actually timed saves minutes.
    """

    def __init__(self, case: cases.Case, column: str) -> None:
        self.case = case
        self.column = column
        self.runner: Runner | None = None

    def __call__(self, loops: int) -> float:
        if self.runner is None:
            self.runner = cases.make_runner(self.case, self.column)
        run = self.runner
        start = time.perf_counter()
        run(loops)
        return time.perf_counter() - start


def _add_arguments(runner: pyperf.Runner) -> None:
    parser = runner.argparser
    parser.add_argument(
        "--quick", action="store_true", help="the --quick row set of python -m wsframe bench"
    )
    parser.add_argument(
        "--group",
        action="append",
        default=[],
        help="only this group (mask_inplace, apply_mask, decode_server, "
        "decode_client, encode, utf8); repeatable",
    )
    parser.add_argument(
        "--column",
        action="append",
        default=[],
        help="only this column (wsframe-c, wsframe-py, picows, aiohttp, websockets, "
        "wsproto, wsaccel, copy, decode); repeatable",
    )


def _pass_to_workers(cmd: list[str], args: Any) -> None:
    """Give worker processes the same selection as the main process."""
    if args.quick:
        cmd.append("--quick")
    for group in args.group:
        cmd.extend(("--group", group))
    for column in args.column:
        cmd.extend(("--column", column))


def main() -> None:
    """Register every available (group, row, column) with pyperf."""
    runner = pyperf.Runner(add_cmdline_args=_pass_to_workers)
    _add_arguments(runner)
    args = runner.parse_args()
    info: dict[str, Any] = metadata(args.quick, timing.FULL, SUITE)
    runner.metadata["wsframe_version"] = info["wsframe_version"]
    runner.metadata["wsframe_c_simd_path"] = str(info["c_simd_path"])
    for name, lib in info["libraries"].items():
        runner.metadata[f"lib_{name}"] = str(lib.get("version") or lib.get("unavailable"))

    for group in cases.groups(args.quick):
        if args.group and group.name not in args.group:
            continue
        for case in group.cases:
            for column in group.columns:
                if args.column and column not in args.column:
                    continue
                name = f"{case.key}/{column}"
                reason = cases.unavailable(case, column)
                if reason is not None:
                    if not args.worker:
                        print(f"skip {name}: {reason}", file=sys.stderr)
                    continue
                runner.bench_time_func(
                    name,
                    _Lazy(case, column),
                    metadata={
                        "payload_size": case.size,
                        "bytes_per_op": case.bytes_per_op,
                        "frames_per_op": case.frames,
                    },
                )


if __name__ == "__main__":
    main()

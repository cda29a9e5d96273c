"""Every hostile attack, many times in a row against one server: does its RSS grow?

    python bench/hostile_repeat.py                        # 200 rounds of each, both codecs
    python bench/hostile_repeat.py --reps 30 --impl c     # a quicker look
    python bench/hostile_repeat.py --attack compression_bomb --setting echo --reps 500
    python bench/hostile_repeat.py --json out.json

The attacks are those of tests/hostile/test_hostile.py (tests/hostile/hostile_attacks.py).
Two settings: ``serve`` is tests/hostile/hostile_server.py, ``serve()`` with its
defaults (permessage-deflate, 1 MiB messages), run without tracemalloc;
``echo`` is ``python -m wsframe echo`` (64 MiB messages), attacked with the
compression bomb only. One server process per setting and codec takes every
series in turn. The server's RSS is read from /proc (Linux) after the first
round and after the last, without asking the server anything, so nothing
forces a garbage collection in it.

Prints a Markdown table (attack, rounds, RSS after round 1, after the last,
growth, time) and exits with status 1 if a series grew by more than its bound:
5 MiB for an attack on ``serve``, 10 MiB for the bomb on ``echo`` (issue 13),
with at least 200 rounds; the bounds are not checked with fewer.

Many attacks take a few milliseconds a round, a handful about a second (a
timeout to wait for, 2000 connections, 300,000 frames): 200 rounds of
everything take some 20 minutes with the C codec and 35 with the pure-Python
one (``--impl c`` to skip it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "hostile"))

from hostile_attacks import (  # noqa: E402
    ATTACKS,
    ECHO_ATTACKS,
    IDLE_CONNECTIONS,
    EchoProcess,
    Series,
    ServerProcess,
    raise_nofile,
    repeat,
)

MIB = 1 << 20
#: Growth allowed over a series of at least FULL_REPS rounds (issue 13).
BOUNDS = {"serve": 5 * MIB, "echo": 10 * MIB}
FULL_REPS = 200


def _mib(value: int) -> str:
    return f"{value / MIB:.1f}"


def table(results: list[Series]) -> str:
    lines = [
        "| setting | codec | attack | rounds | RSS after round 1 (MiB) "
        "| RSS after last (MiB) | growth (MiB) | time (s) |",
        "|---|---|---|--:|--:|--:|--:|--:|",
    ]
    for s in results:
        lines.append(
            f"| {s.server} | {s.implementation} | {s.attack} | {s.reps} | {_mib(s.rss_first)} "
            f"| {_mib(s.rss_last)} | {s.growth / MIB:+.2f} | {s.seconds:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=FULL_REPS, help="rounds of each attack")
    parser.add_argument("--impl", nargs="+", default=["c", "python"], choices=["c", "python"])
    parser.add_argument("--setting", nargs="+", default=["serve", "echo"], choices=BOUNDS)
    parser.add_argument(
        "--attack", nargs="+", default=None, choices=sorted(ATTACKS), help="default: all"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if not sys.platform.startswith("linux"):
        print("RSS is read from /proc: Linux only", file=sys.stderr)
        return 2
    problem = raise_nofile(IDLE_CONNECTIONS + 1024)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    results: list[Series] = []
    failed: list[str] = []
    for implementation in args.impl:
        for setting in args.setting:
            names = ECHO_ATTACKS if setting == "echo" else list(ATTACKS)
            names = [name for name in names if args.attack is None or name in args.attack]
            if not names:
                continue
            server: Any = (
                EchoProcess(implementation)
                if setting == "echo"
                else ServerProcess(implementation, trace=False)
            )
            try:
                for name in names:
                    started = time.monotonic()
                    print(f"{setting}/{implementation}: {name} x{args.reps}...", file=sys.stderr)
                    series = repeat(server, name, args.reps)
                    results.append(series)
                    print(
                        f"  {_mib(series.rss_first)} -> {_mib(series.rss_last)} MiB "
                        f"({time.monotonic() - started:.0f} s)",
                        file=sys.stderr,
                    )
                    if args.reps >= FULL_REPS and series.growth >= BOUNDS[setting]:
                        failed.append(f"{setting}/{implementation}/{name}")
            finally:
                server.close()
    print(table(results))
    if args.json:
        with open(args.json, "w") as out:
            json.dump([dataclasses.asdict(s) for s in results], out, indent=2)
    if failed:
        print(f"\nover the bound: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

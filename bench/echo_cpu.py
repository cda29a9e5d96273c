"""Server CPU time per echoed message, wsframe next to its peers in one run.

    python bench/echo_cpu.py [--sizes 256,16384] [--conns 16] [--inflight 4]
                             [--duration 5] [--warmup 1] [--reps 3]
                             [--kinds raw,wsframe,picows,aiohttp,websockets]
                             [--server-cpu 0] [--client-cpu 1] [--json PATH]

Each server runs alone on one core (``--server-cpu``), on uvloop, started by
``bench/e2e/servers.py`` (compression refused, no heartbeat: the echo
benchmark's settings). This process is the client, pinned to the other core
(``--client-cpu``): a picows client (``raw``: a raw TCP client sending the
same masked frames) keeps ``--conns`` connections with ``--inflight``
messages each in flight: every echo received sends the next message. After
``--warmup`` seconds, the server's utime+stime (``/proc/PID/stat``) over
``--duration`` seconds is divided by the echoes completed meanwhile.

The ``raw`` row (an asyncio Protocol echoing bytes back, no WebSocket work)
is the floor: what the event loop and the kernel cost per message. Kinds
are measured in turn, repetition after repetition, so drift hits all alike;
the table gives the median per kind and size, and the ratio to picows.
Nothing compares a number with a threshold: a measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "e2e"))

from clients import echo_window  # noqa: E402
from servers import raise_nofile  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid``, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def start_server(kind: str, cpu: int, loop: str) -> tuple[subprocess.Popen[str], int]:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    command = [sys.executable, os.path.join(HERE, "e2e", "servers.py"), kind, "--loop", loop]
    proc = subprocess.Popen(
        ["taskset", "-c", str(cpu), *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if len(line) != 2 or line[0] != "READY":
        proc.kill()
        raise RuntimeError(f"{kind}: server did not start")
    return proc, int(line[1])


async def measure(
    kind: str, pid: int, port: int, size: int, conns: int, inflight: int, args: Any
) -> dict[str, float]:
    messages, seconds, cpu = await echo_window(
        kind,
        port,
        "picows",
        os.urandom(size),
        conns,
        args.warmup,
        args.duration,
        inflight=inflight,
        probe=lambda: cpu_seconds(pid),
    )
    if not messages:
        raise RuntimeError(f"{kind}: no echo completed")
    return {
        "us_per_message": cpu / messages * 1e6,
        "messages_per_s": messages / seconds,
        "server_cpu": cpu / seconds,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    kinds = args.kinds.split(",")
    sizes = [int(s) for s in args.sizes.split(",")]
    servers: dict[str, tuple[subprocess.Popen[str], int]] = {}
    results: dict[str, dict[int, list[dict[str, float]]]] = {
        k: {s: [] for s in sizes} for k in kinds
    }
    try:
        for kind in kinds:
            servers[kind] = start_server(kind, args.server_cpu, args.loop)
        for rep in range(args.reps):
            for size in sizes:
                for kind in kinds:
                    proc, port = servers[kind]
                    row = await measure(kind, proc.pid, port, size, args.conns, args.inflight, args)
                    results[kind][size].append(row)
                    print(
                        f"  rep {rep + 1} {kind:>10} {size:>6} B: "
                        f"{row['us_per_message']:.2f} us/msg, "
                        f"{row['messages_per_s']:,.0f} msg/s, cpu {row['server_cpu']:.2f}",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        for proc, _ in servers.values():
            proc.terminate()
        for proc, _ in servers.values():
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
    return {"args": vars(args), "results": results}


def table(report: dict[str, Any]) -> str:
    results = report["results"]
    sizes = sorted({size for rows in results.values() for size in rows})
    lines = [
        "| server | " + " | ".join(f"{s} B: us/msg | x picows" for s in sizes) + " |",
        "|---|" + "---|---|" * len(sizes),
    ]
    medians = {
        kind: {
            size: statistics.median(r["us_per_message"] for r in rows)
            for size, rows in by_size.items()
            if rows
        }
        for kind, by_size in results.items()
    }
    for kind, by_size in medians.items():
        cells = []
        for size in sizes:
            value = by_size.get(size)
            base = medians.get("picows", {}).get(size)
            ratio = f"{value / base:.2f}" if value and base else "-"
            cells.append(f"{value:.2f} | {ratio}" if value else "- | -")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,16384")
    parser.add_argument("--conns", type=int, default=16)
    parser.add_argument("--inflight", type=int, default=4)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--kinds", default="raw,wsframe,picows,aiohttp,websockets")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--json", help="write every repetition's numbers here")
    args = parser.parse_args()
    raise_nofile()
    os.sched_setaffinity(0, {args.client_cpu})
    import uvloop

    report = uvloop.run(run(args))
    print(table(report))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

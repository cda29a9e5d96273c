"""Server CPU time per echoed message, wsframe next to its peers in one run.

    python bench/echo_cpu.py [--sizes 256,16384] [--conns 16] [--inflight 4]
                             [--duration 5] [--warmup 1] [--reps 3]
                             [--kinds raw,wsframe,picows,aiohttp,websockets]
                             [--server-cpu 0] [--client-cpu 1] [--tls] [--json PATH]

Each server runs alone on one core (``--server-cpu``), on uvloop, started by
``bench/e2e/servers.py`` (compression refused, no heartbeat: the echo
benchmark's settings). This process is the client, pinned to the other core
(``--client-cpu``): a picows client (``raw``: a raw TCP client sending the
same masked frames) keeps ``--conns`` connections with ``--inflight``
messages each in flight: every echo received sends the next message. After
``--warmup`` seconds, the server's utime+stime (``/proc/PID/stat``) over
``--duration`` seconds is divided by the echoes completed meanwhile.

``--tls``: every server serves TLS (a certificate made by trustme for the
run) and the client connects with TLS. A kind ``NAME+aiofastnet`` is NAME's
server on aiofastnet's transports instead of uvloop's (picows' fastest
TLS). A kind ``wsframe@TREE`` is wsframe's server from another source tree
(a checkout with its extensions built, e.g. the commit before a change):
``--kinds wsframe,wsframe@../base`` gives the change's before/after in one
run. ``--server-cpu 0 --client-cpu 0`` puts both on one core: the rate is
then what one core does for both ends, steady whatever else the machine runs.

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
import tempfile
from typing import Any, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "e2e"))

from clients import echo_window, use_tls  # noqa: E402
from servers import HOST, raise_nofile  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid``, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def start_server(
    kind: str, cpu: int, loop: str, tls: Optional[str]
) -> tuple[subprocess.Popen[str], int]:
    kind, _, tree = kind.partition("@")
    root = os.path.abspath(tree) if tree else ROOT
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    name, _, transport = kind.partition("+")
    command = [sys.executable, os.path.join(HERE, "e2e", "servers.py"), name, "--loop", loop]
    if transport == "aiofastnet":
        command.append("--aiofastnet")
    elif transport:
        raise ValueError(f"unknown transport {transport!r} in {kind!r}")
    if tls is not None:
        command += ["--tls", tls]
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
        kind.partition("@")[0].partition("+")[0],
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
    tls: Optional[str] = None
    certificates = tempfile.TemporaryDirectory()
    if args.tls:
        import trustme

        authority = trustme.CA()
        chain = authority.issue_cert(HOST)
        cert = os.path.join(certificates.name, "cert.pem")
        key = os.path.join(certificates.name, "key.pem")
        ca = os.path.join(certificates.name, "ca.pem")
        chain.private_key_and_cert_chain_pem.write_to_path(cert)
        chain.private_key_pem.write_to_path(key)
        authority.cert_pem.write_to_path(ca)
        tls = f"{cert},{key}"
        use_tls(ca)
    try:
        for kind in kinds:
            servers[kind] = start_server(kind, args.server_cpu, args.loop, tls)
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
        certificates.cleanup()
        for proc, _ in servers.values():
            proc.terminate()
        for proc, _ in servers.values():
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
    import datetime

    return {
        "args": vars(args),
        "results": results,
        "machine": _machine(),
        "date": datetime.date.today().isoformat(),
    }


def _machine() -> dict[str, str]:
    import platform

    import picows
    import uvloop

    import wsframe

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "wsframe": f"{wsframe.__version__} ({wsframe.implementation})",
        "picows": getattr(picows, "__version__", "?"),
        "uvloop": uvloop.__version__,
    }


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
    parser.add_argument("--tls", action="store_true", help="wss:// (certificates by trustme)")
    parser.add_argument("--json", help="write every repetition's numbers here")
    parser.add_argument(
        "--plot",
        metavar="FILE",
        help="draw the medians as a chart (PNG/SVG; matplotlib; kinds with @TREE left out)",
    )
    parser.add_argument("--from-json", metavar="PATH", help="with --plot: draw an earlier --json")
    args = parser.parse_args()
    if args.from_json:
        report = json.loads(pathlib.Path(args.from_json).read_text())
        print(table(report))
        if args.plot:
            plot(report, args.plot)
        return 0
    raise_nofile()
    os.sched_setaffinity(0, {args.client_cpu})
    import uvloop

    report = uvloop.run(run(args))
    print(table(report))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    if args.plot:
        plot(report, args.plot)
    return 0


def plot(report: dict[str, Any], path: str) -> None:
    """The medians of server CPU per message, one bar per server and size."""
    sys.path.insert(0, ROOT)
    from wsframe.benchmarks.plot import plot_bars

    results = report["results"]
    sizes = sorted({int(size) for rows in results.values() for size in rows})
    names = {"raw": "raw TCP echo (the floor)"}
    order = sorted(results, key=lambda kind: kind == "raw")  # the floor last
    series = {
        names.get(kind, kind): [
            statistics.median(r["us_per_message"] for r in rows)
            if (rows := by_size.get(str(size), by_size.get(size)))
            else None
            for size in sizes
        ]
        for kind in order
        if "@" not in kind and (by_size := results[kind])
    }
    machine = report["machine"]
    args = report["args"]
    plot_bars(
        path,
        title=(
            "Server CPU per echoed message, lower is better\n"
            f"({args['conns']} connections x {args['inflight']} in flight, {args['loop']}"
            f"{', TLS' if args.get('tls') else ''}, server alone on one core)"
        ),
        categories=[f"{size:,} B" for size in sizes],
        series=series,
        ylabel="µs of server CPU per message",
        machine=f"{machine['platform']}, Python {machine['python']}, wsframe {machine['wsframe']}",
        when=report.get("date"),
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())

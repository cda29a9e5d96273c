"""Bounded loopback soak: many concurrent connections for minutes, verified.

    python bench/soak.py                  # 10,000 connections, 180 s
    python bench/soak.py --quick          # 20 s
    python bench/soak.py --connections 2000 --duration 60 --clients 2 --json out.json

An echo server (``wsframe.asyncio.serve``, uvloop if installed) runs in this
process; ``--clients`` processes open ``--connections`` connections between
them (ramping up), and every connection sends numbered messages (a few in
flight at a time, text and binary, some compressed) and checks that each echo
comes back, complete and in order. Now and then a connection closes and a new
one takes its place (``--churn``). At the end it prints throughput, the
server's memory per connection (RSS), and the number of messages lost or
reordered, which must be 0 (exit status 1 otherwise).

RLIMIT_NOFILE is raised to its hard limit (it must allow the connections).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import random
import resource
import sys
import time
from typing import Any

try:
    import uvloop
except ImportError:  # pragma: no cover - optional
    uvloop = None

from wsframe.asyncio import connect, serve
from wsframe.asyncio.connection import ConnectionClosed


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def raise_nofile(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return max(soft, target)


def run(main: Any) -> Any:
    if uvloop is not None:
        return uvloop.run(main) if hasattr(uvloop, "run") else _uvloop_run(main)
    return asyncio.run(main)


def _uvloop_run(main: Any) -> Any:  # uvloop < 0.18
    uvloop.install()
    return asyncio.run(main)


# ------------------------------------------------------------------ clients


def _text(message: Any) -> str:
    return message if isinstance(message, str) else bytes(message).decode(errors="replace")


class Stats:
    def __init__(self) -> None:
        self.sent = self.received = self.bytes = 0
        self.lost = self.reordered = self.corrupt = 0
        self.dropped = 0  # closed by the server while we were well-behaved
        self.connect_failures = 0
        self.reconnects = 0
        self.open = 0
        self.peak_open = 0


async def one_connection(
    uri: str, cid: str, stop: float, args: argparse.Namespace, stats: Stats, rng: random.Random
) -> None:
    """A connection's life: numbered messages, echoes checked, maybe a churn."""
    try:
        ws = await connect(
            uri, open_timeout=60, compression="deflate" if rng.random() < 0.2 else None
        )
    except Exception:
        stats.connect_failures += 1
        await asyncio.sleep(rng.uniform(0.5, 2.0))
        return
    stats.open += 1
    stats.peak_open = max(stats.peak_open, stats.open)
    seq = 0
    try:
        # Spread the first messages over a second so the load is smooth.
        await asyncio.sleep(rng.uniform(0, 1 / args.rate))
        while time.monotonic() < stop:
            burst = rng.randint(1, 3)
            expected = []
            for _ in range(burst):
                body = f"{cid}:{seq}:" + "x" * rng.choice((0, 10, 100, 1000))
                message: Any = body if seq % 2 else body.encode()
                expected.append(message)
                await ws.send(message)
                seq += 1
            stats.sent += burst
            for want in expected:
                got = await asyncio.wait_for(ws.recv(), 60)
                stats.received += 1
                stats.bytes += len(got)
                if got != want:
                    # Another message of this connection: out of order.
                    same = _text(got).split(":")[0] == cid
                    stats.reordered += same
                    stats.corrupt += not same
            if rng.random() < args.churn:
                stats.reconnects += 1
                return  # closed below; the caller opens a new one
            await asyncio.sleep(rng.expovariate(args.rate / 2) if args.rate else 0)
    except ConnectionClosed:
        stats.dropped += 1
    except asyncio.TimeoutError:
        stats.lost += 1
    finally:
        stats.open -= 1
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 10)


async def client_main(
    index: int, count: int, port: int, args: argparse.Namespace
) -> dict[str, Any]:
    stats = Stats()
    rng = random.Random(index)
    uri = f"ws://127.0.0.1:{port}/"
    start = time.monotonic()
    stop = start + args.duration
    gate = asyncio.Semaphore(100)  # handshakes in flight: a ramp, not a SYN flood
    serial = 0

    async def slot(slot_id: int) -> None:
        nonlocal serial
        await asyncio.sleep(slot_id * args.ramp / count)
        while time.monotonic() < stop:
            serial += 1
            async with gate:
                pass
            await one_connection(uri, f"{index}.{slot_id}.{serial}", stop, args, stats, rng)

    await asyncio.gather(*(slot(i) for i in range(count)))
    out = dict(vars(stats))
    out["elapsed"] = time.monotonic() - start
    return out


def client_process(index: int, count: int, port: int, args: argparse.Namespace, queue: Any) -> None:
    raise_nofile(count + 1024)
    queue.put(run(client_main(index, count, port, args)))


# ------------------------------------------------------------------- server


async def echo(ws: Any) -> None:
    async for message in ws:
        await ws.send(message)


async def server_main(args: argparse.Namespace) -> int:
    base_rss = rss()
    server = await serve(
        echo, "127.0.0.1", 0, backlog=4096, max_connections=args.connections + 1000
    )
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    share = [args.connections // args.clients] * args.clients
    share[0] += args.connections - sum(share)
    procs = [
        ctx.Process(target=client_process, args=(i, n, server.port, args, queue), daemon=True)
        for i, n in enumerate(share)
    ]
    for proc in procs:
        proc.start()
    loop = asyncio.get_running_loop()
    peak = {"connections": 0, "rss": base_rss, "rss_at_peak": base_rss}
    results: list[dict[str, Any]] = []
    started = time.monotonic()
    while len(results) < len(procs):
        await asyncio.sleep(1)
        n = len(server.websockets)
        if n >= peak["connections"]:
            peak["connections"] = n
            peak["rss_at_peak"] = rss()
        peak["rss"] = max(peak["rss"], rss())
        while True:
            try:
                results.append(await loop.run_in_executor(None, queue.get, True, 0.01))
            except Exception:
                break
        if time.monotonic() - started > args.duration + 300:
            print("clients did not finish", file=sys.stderr)
            break
    for proc in procs:
        proc.join(10)
    await server.close()
    total: dict[str, Any] = {}
    for result in results:
        for key, value in result.items():
            if key in ("peak_open",):
                total[key] = total.get(key, 0) + value
            elif key == "elapsed":
                total[key] = max(total.get(key, 0), value)
            else:
                total[key] = total.get(key, 0) + value
    elapsed = total.get("elapsed", 1.0)
    report = {
        "implementation": __import__("wsframe").implementation,
        "loop": "uvloop" if uvloop is not None else "asyncio",
        "connections_target": args.connections,
        "peak_server_connections": peak["connections"],
        "duration_s": round(elapsed, 1),
        "messages_echoed": total.get("received", 0),
        "messages_per_s": round(total.get("received", 0) / elapsed),
        "mb_per_s": round(total.get("bytes", 0) / elapsed / 1e6, 2),
        "reconnects": total.get("reconnects", 0),
        "connect_failures": total.get("connect_failures", 0),
        "dropped_by_server": total.get("dropped", 0),
        "lost": total.get("lost", 0),
        "reordered": total.get("reordered", 0),
        "corrupt": total.get("corrupt", 0),
        "server_rss_base_mb": round(base_rss / 1e6, 1),
        "server_rss_peak_mb": round(peak["rss"] / 1e6, 1),
        "server_kb_per_connection": round(
            (peak["rss_at_peak"] - base_rss) / max(peak["connections"], 1) / 1024, 1
        ),
        "server_rss_end_mb": round(rss() / 1e6, 1),
    }
    for key, value in report.items():
        print(f"{key:28} {value}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)
    bad = report["lost"] + report["reordered"] + report["corrupt"] + report["dropped_by_server"]
    ok = bad == 0 and len(results) == len(procs) and report["messages_echoed"] > 0
    print("OK" if ok else "FAILED: messages lost, reordered or connections dropped")
    return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--duration", type=float, default=180.0)
    parser.add_argument("--quick", action="store_true", help="20 s")
    parser.add_argument("--clients", type=int, default=2, help="client processes (2-4)")
    parser.add_argument("--rate", type=float, default=0.5, help="bursts per second per connection")
    parser.add_argument(
        "--churn", type=float, default=0.02, help="chance to reconnect after a burst"
    )
    parser.add_argument("--ramp", type=float, default=None, help="seconds to open all connections")
    parser.add_argument("--json", help="write the report here")
    args = parser.parse_args()
    if args.quick:
        args.duration = 20.0
    if args.ramp is None:
        args.ramp = min(20.0, args.duration / 4)
    raise_nofile(args.connections + 2048)
    sys.exit(run(server_main(args)))


if __name__ == "__main__":
    main()

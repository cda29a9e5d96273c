"""Rooms in one process vs rooms shared by two processes through Redis (loopback).

1000 clients (one client process) in 10 rooms; each client sends ``--rate``
messages per second to its room for ``--duration`` seconds, and every member
of the room (the sender included) receives it. Two runs:

* ``single``: one server process with local :class:`wsframe.asyncio.Rooms`;
* ``redis``: two server processes with :class:`RedisRooms` (half of the
  clients on each), a ``redis-server`` started on a free loopback port.

Reported per run: messages delivered per second, delivery latency (p50, p99,
max; sender's wall clock in the message vs the receiver's, same machine),
and lost/duplicated deliveries. The servers, the client process and Redis
share the machine's cores: on a 2-core machine the ``redis`` run has four busy
processes on two cores, so it measures the overhead under CPU contention,
not the scaling that separate machines would give.

    python bench/redis_rooms_bench.py [--clients 1000] [--rooms 10] [--rate 0.5]
                                      [--duration 8] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SERVER = r"""
import asyncio, sys
from wsframe.asyncio import Rooms, serve
from wsframe.asyncio.redis_rooms import RedisRooms

async def main():
    url = sys.argv[1]
    rooms = Rooms() if url == "-" else RedisRooms(url, prefix="bench")
    if url != "-":
        await rooms.start()
        await rooms.wait_connected(10)

    async def handler(ws):
        room = await ws.recv()
        rooms.join(room, ws)
        await ws.send("joined")
        async for message in ws:
            rooms.send(room, message)

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        print(server.port, flush=True)
        await asyncio.Future()

try:
    import uvloop
    uvloop.run(main())
except ImportError:
    asyncio.run(main())
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_server(url: str) -> tuple[subprocess.Popen[bytes], int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-c", SERVER, url], stdout=subprocess.PIPE, env=env)
    assert process.stdout is not None
    return process, int(process.stdout.readline())


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _clients(ports: list[int], args: argparse.Namespace) -> dict[str, Any]:
    from wsframe.asyncio import connect

    n = args.clients
    sockets = []
    for i in range(n):
        uri = f"ws://127.0.0.1:{ports[i % len(ports)]}/"
        ws = await connect(uri, compression=None).__aenter__()
        await ws.send(f"room{i % args.rooms}")
        sockets.append(ws)
    for ws in sockets:
        assert await ws.recv() == "joined"
    await asyncio.sleep(1.0)  # subscriptions and presence settle
    latencies: list[float] = []
    seen: dict[int, dict[int, int]] = {}  # receiver -> {sender: last seq}
    counts = {"delivered": 0, "out_of_order": 0}
    stop = asyncio.Event()

    async def receive(index: int, ws: Any) -> None:
        last = seen.setdefault(index, {})
        while True:
            try:
                message = await ws.recv()
            except Exception:
                return
            now = time.time()
            sender, seq, sent = message.split(" ")
            s, q = int(sender), int(seq)
            if last.get(s, -1) >= q:
                counts["out_of_order"] += 1
            last[s] = q
            counts["delivered"] += 1
            latencies.append(now - float(sent))

    readers = [asyncio.ensure_future(receive(i, ws)) for i, ws in enumerate(sockets)]
    interval = 1.0 / (args.rate * n)
    seqs = [0] * n
    sent_per_room = [0] * args.rooms
    start = time.monotonic()
    next_at = start
    k = 0
    while time.monotonic() - start < args.duration:
        now = time.monotonic()
        while next_at <= now:
            i = k % n
            sockets[i].send_nowait(f"{i} {seqs[i]} {time.time()!r}")
            seqs[i] += 1
            sent_per_room[i % args.rooms] += 1
            k += 1
            next_at += interval
        await asyncio.sleep(0.002)
    elapsed = time.monotonic() - start
    members = n // args.rooms
    expected = sum(sent * members for sent in sent_per_room)
    deadline = time.monotonic() + 10
    while counts["delivered"] < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    drain = time.monotonic() - start
    stop.set()
    for ws in sockets:
        await ws.close()
    for reader in readers:
        reader.cancel()
    return {
        "sent": k,
        "expected_deliveries": expected,
        "delivered": counts["delivered"],
        "lost": expected - counts["delivered"],
        "out_of_order_or_duplicate": counts["out_of_order"],
        "delivered_per_s": counts["delivered"] / drain,
        "offered_per_s": expected / elapsed,
        "p50_ms": _percentile(latencies, 0.50) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies, default=float("nan")) * 1000,
    }


def _run(mode: str, args: argparse.Namespace, redis_url: str) -> dict[str, Any]:
    servers = (
        [_start_server("-")] if mode == "single" else [_start_server(redis_url) for _ in range(2)]
    )
    try:
        result = asyncio.run(_clients([port for _, port in servers], args))
    finally:
        for process, _ in servers:
            _stop(process)
    result["mode"] = mode
    return result


def main() -> int:
    """Run both modes and print a table; exit 1 if a message was lost or reordered."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--rate", type=float, default=0.5, help="messages/s per client")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per run")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        print("redis-server not found (apt-get install redis-server)", file=sys.stderr)
        return 2
    port = _free_port()
    redis = subprocess.Popen(
        [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(0.3)
    try:
        results = [_run(mode, args, f"redis://127.0.0.1:{port}/0") for mode in ("single", "redis")]
    finally:
        redis.terminate()
        redis.wait()
    print(
        f"{args.clients} clients, {args.rooms} rooms, {args.rate} msg/s per client, "
        f"{args.duration:g} s per run, {os.cpu_count()} CPUs shared by servers, clients, Redis"
    )
    print(f"{'mode':8} {'offered/s':>10} {'delivered/s':>12} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'max ms':>8} {'lost':>6} {'reorder/dup':>11}")  # fmt: skip
    for r in results:
        print(
            f"{r['mode']:8} {r['offered_per_s']:10.0f} {r['delivered_per_s']:12.0f} "
            f"{r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['max_ms']:8.1f} {r['lost']:6d} "
            f"{r['out_of_order_or_duplicate']:11d}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    bad = any(r["lost"] or r["out_of_order_or_duplicate"] for r in results)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

"""Threaded (blocking) WebSocket clients and servers: echo round trips per second.

    python bench/sync_echo.py client [--sizes 256,65536] [--runs 5] [--duration 2]
    python bench/sync_echo.py server [--sizes 256,65536] [--connections 1,8]
        [--runs 3] [--duration 2]
    python bench/sync_echo.py all    # both, with the defaults

``client``: one echo server — ``python -m wsframe echo`` (asyncio, uvloop if
installed, compression off) — and, one at a time in a process of their own,
the blocking clients ``wsframe.sync``, ``websocket-client`` and
``websockets.sync``: each sends a binary message of N bytes, waits for its
echo and sends again, for ``--duration`` seconds after a warm-up.

``server``: the threaded servers ``wsframe.sync`` (``python -m wsframe echo
--api sync``) and ``websockets.sync.server``, each in its own process, with
compression and heartbeats off; the client is one asyncio process (picows
if installed, else wsframe's asyncio client) with C connections doing the
same round trips.

Runs interleave the implementations (slow drift of the machine hits each
alike); the table shows the median of the runs and the ratio of wsframe to
the better of the others. On a shared machine, run it when nothing else
loads it, and read the ratios rather than the absolute numbers. Every
process listens on 127.0.0.1 and is stopped by its PID.

Internal entry points (one process each): ``--serve websockets-sync --port
P``, ``--drive IMPL --port P --size N --duration D``, ``--drive-async
--port P --size N --connections C --duration D``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
CLIENTS = ("wsframe-sync", "websocket-client", "websockets-sync")
SERVERS = ("wsframe-sync", "websockets-sync")
WARMUP = 0.3


# ----------------------------------------------------------- one process each


def serve_websockets_sync(port: int) -> None:
    from websockets.sync.server import serve

    def echo(ws: Any) -> None:
        for message in ws:
            ws.send(message)

    with serve(echo, HOST, port, compression=None, ping_interval=None, max_size=None) as server:
        print(f"listening on ws://{HOST}:{server.socket.getsockname()[1]}", flush=True)
        server.serve_forever()


def blocking_client(impl: str, url: str) -> tuple[Callable[[bytes], Any], Callable[[], Any], Any]:
    """``(send, recv, close)`` of a connected blocking client."""
    if impl == "wsframe-sync":
        from wsframe.sync import connect

        ws = connect(url, proxy=None, compression=None, ping_interval=None, max_message_size=None)
        return ws.send, ws.recv, ws.close
    if impl == "websocket-client":
        import websocket

        client = websocket.create_connection(url, enable_multithread=False)
        return client.send_binary, client.recv, client.close
    if impl == "websockets-sync":
        from websockets.sync.client import connect as ws_connect

        peer = ws_connect(url, compression=None, ping_interval=None, max_size=None)
        return peer.send, peer.recv, peer.close
    raise ValueError(impl)


def drive(impl: str, port: int, size: int, duration: float) -> dict[str, float]:
    send, recv, close = blocking_client(impl, f"ws://{HOST}:{port}/")
    payload = os.urandom(size)
    end = time.perf_counter() + WARMUP
    while time.perf_counter() < end:
        send(payload)
        recv()
    count = 0
    started = time.perf_counter()
    end = started + duration
    cpu = time.process_time()
    while True:
        for _ in range(20):
            send(payload)
            recv()
        count += 20
        now = time.perf_counter()
        if now >= end:
            break
    elapsed = now - started
    cpu_used = time.process_time() - cpu
    close()
    return {"rt_per_s": count / elapsed, "cpu_us_per_rt": cpu_used / count * 1e6}


async def _rate_after_warmup(counts: list[int], duration: float) -> float:
    """Round trips per second over ``duration`` seconds, after the warm-up."""
    await asyncio.sleep(WARMUP)
    before = sum(counts)
    started = time.perf_counter()
    await asyncio.sleep(duration)
    return (sum(counts) - before) / (time.perf_counter() - started)


async def drive_async(port: int, size: int, connections: int, duration: float) -> dict[str, float]:
    payload = os.urandom(size)
    url = f"ws://{HOST}:{port}/"
    counts = [0] * connections
    try:
        from picows import WSListener, WSMsgType, ws_connect
    except ImportError:
        ws_connect = None
    stop = asyncio.Event()

    if ws_connect is not None:

        class Echo(WSListener):  # type: ignore[misc]
            def __init__(self, index: int) -> None:
                self.index = index

            def on_ws_connected(self, transport: Any) -> None:
                self.transport = transport
                transport.send(WSMsgType.BINARY, payload)

            def on_ws_frame(self, transport: Any, frame: Any) -> None:
                if not frame.fin:
                    return  # (large messages arrive in one frame from these servers)
                counts[self.index] += 1
                if not stop.is_set():
                    transport.send(WSMsgType.BINARY, payload)

        clients = [
            await ws_connect(lambda i=i: Echo(i), url, max_frame_size=1 << 30)
            for i in range(connections)
        ]
        rate = await _rate_after_warmup(counts, duration)
        stop.set()
        for transport, _ in clients:
            transport.disconnect()
    else:
        from wsframe.asyncio import connect

        async def one(index: int) -> None:
            async with connect(
                url, proxy=None, compression=None, ping_interval=None, max_message_size=None
            ) as ws:
                while not stop.is_set():
                    await ws.send(payload)
                    await ws.recv()
                    counts[index] += 1

        tasks = [asyncio.ensure_future(one(i)) for i in range(connections)]
        rate = await _rate_after_warmup(counts, duration)
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {"rt_per_s": rate}


# ------------------------------------------------------------------ runner


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Process:
    """A server started for a run, stopped by its PID."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=child_env(),
            cwd=str(ROOT),
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        line = ""
        deadline = time.monotonic() + 30
        while "listening on" not in line:
            line = self.proc.stdout.readline().decode()
            if (not line and self.proc.poll() is not None) or time.monotonic() > deadline:
                raise RuntimeError(f"{argv} did not start")
        self.port = int(line.strip().rsplit(":", 1)[1])
        # Keep reading its output so that it never blocks on a full pipe.
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)


def server_argv(impl: str) -> list[str]:
    if impl == "wsframe-sync":
        api = ["--api", "sync"]
    elif impl == "wsframe-asyncio":
        api = []
    else:
        return [sys.executable, __file__, "--serve", impl, "--port", "0"]
    base = [sys.executable, "-m", "wsframe", "echo", "--port", "0", "--no-compression"]
    return [*base, "--ping-interval", "0", *api]


def measure(argv: list[str]) -> dict[str, float]:
    out = subprocess.run(
        argv, capture_output=True, text=True, env=child_env(), cwd=str(ROOT), timeout=120
    )
    if out.returncode != 0:
        raise RuntimeError(f"{argv} failed:\n{out.stderr[-2000:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def available(impl: str) -> bool:
    module = {"websocket-client": "websocket", "websockets-sync": "websockets.sync.client"}
    try:
        __import__(module.get(impl, "wsframe.sync"))
    except ImportError:
        return False
    return True


def table(title: str, rows: dict[str, dict[str, list[float]]], names: list[str]) -> None:
    print(f"\n{title}")
    header = f"{'scenario':<14}" + "".join(f"{name:>18}" for name in names)
    print(header + f"{'wsframe / best peer':>22}")
    for scenario, results in rows.items():
        medians = {n: statistics.median(results[n]) for n in names if results.get(n)}
        line = f"{scenario:<14}" + "".join(
            f"{medians[n]:>16.0f}/s" if n in medians else f"{'n/a':>18}" for n in names
        )
        peers = [v for n, v in medians.items() if not n.startswith("wsframe")]
        ours = [v for n, v in medians.items() if n.startswith("wsframe")]
        ratio = f"x{ours[0] / max(peers):.2f}" if peers and ours else "n/a"
        print(line + f"{ratio:>22}", flush=True)


def run_clients(args: argparse.Namespace) -> None:
    names = [n for n in CLIENTS if available(n)]
    server = Process(server_argv("wsframe-asyncio"))
    rows: dict[str, dict[str, list[float]]] = {}
    cpu: dict[str, dict[str, list[float]]] = {}
    try:
        for size in args.sizes:
            scenario = f"{size} B"
            rows[scenario] = {n: [] for n in names}
            cpu[scenario] = {n: [] for n in names}
            for _ in range(args.runs):
                for name in names:
                    argv = ["--drive", name, "--port", str(server.port), "--size", str(size)]
                    result = measure(
                        [sys.executable, __file__, *argv, "--duration", str(args.duration)]
                    )
                    rows[scenario][name].append(result["rt_per_s"])
                    cpu[scenario][name].append(result["cpu_us_per_rt"])
                    print(".", end="", file=sys.stderr, flush=True)
    finally:
        server.stop()
    table("blocking clients, round trips per second (server: python -m wsframe echo)", rows, names)
    print("client CPU per round trip (us, median):")
    for scenario, results in cpu.items():
        print(
            f"  {scenario:<12}"
            + "  ".join(f"{n}={statistics.median(v):.1f}" for n, v in results.items())
        )


def run_servers(args: argparse.Namespace) -> None:
    names = [n for n in SERVERS if available(n)]
    rows: dict[str, dict[str, list[float]]] = {}
    for size in args.sizes:
        for connections in args.connections:
            rows[f"{connections}x{size} B"] = {n: [] for n in names}
    for _ in range(args.runs):
        for name in names:
            server = Process(server_argv(name))
            try:
                for size in args.sizes:
                    for connections in args.connections:
                        argv = ["--drive-async", "--port", str(server.port), "--size", str(size)]
                        argv += [
                            "--connections",
                            str(connections),
                            "--duration",
                            str(args.duration),
                        ]
                        result = measure([sys.executable, __file__, *argv])
                        rows[f"{connections}x{size} B"][name].append(result["rt_per_s"])
                        print(".", end="", file=sys.stderr, flush=True)
            finally:
                server.stop()
    table("threaded servers, round trips per second (CxN: C connections, N bytes)", rows, names)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="?", choices=("client", "server", "all"), default="all")
    parser.add_argument("--sizes", default="256,65536")
    parser.add_argument("--connections", default="1,8")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--serve", choices=("websockets-sync",))
    parser.add_argument("--drive", choices=CLIENTS)
    parser.add_argument("--drive-async", action="store_true")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    if args.serve:
        serve_websockets_sync(args.port)
        return 0
    connections = [int(c) for c in str(args.connections).split(",")]
    if args.drive:
        print(json.dumps(drive(args.drive, args.port, args.size, args.duration)))
        return 0
    if args.drive_async:
        result = asyncio.run(drive_async(args.port, args.size, connections[0], args.duration))
        print(json.dumps(result))
        return 0
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.connections = connections
    if args.what in ("client", "all"):
        run_clients(args)
    if args.what in ("server", "all"):
        run_servers(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Echo round trips per second through uvicorn, per WebSocket implementation.

    python bench/uvicorn_echo.py [--impls wsframe,websockets,wsproto] [--runs 3]
        [--duration 3] [--warmup 0.5] [--scenarios 1x64,1x16384,32x64] [--json PATH]

For each run and each implementation, a uvicorn server (uvloop, httptools,
``--ws`` = the implementation, permessage-deflate off, heartbeats at uvicorn's
defaults) starts in a separate process with a raw ASGI echo application; the
client, in this process on uvloop, is picows (a fast C client: the client's
cost barely varies, so the server's shows). A scenario ``CxN`` opens C
connections; each sends a binary message of N bytes, waits for its echo and
sends again. Round trips completed during ``--duration`` seconds (after
``--warmup``) are counted over all connections. Runs interleave the
implementations, so that slow drift of the machine hits each alike; the table
shows the median of the runs and the ratio of wsframe to the better of the
others.

Implementations: ``wsframe`` = ``wsframe.uvicorn:WSFrameProtocol``,
``websockets`` = uvicorn's ``--ws websockets`` (the legacy websockets
protocol), ``websockets-sansio`` = uvicorn's websockets sans-I/O protocol
(what ``--ws auto`` picks in recent uvicorn), ``wsproto`` = ``--ws wsproto``.

The server side alone: ``python bench/uvicorn_echo.py --serve IMPL --port P``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

HOST = "127.0.0.1"

WS_IMPLS = {
    "wsframe": "wsframe.uvicorn:WSFrameProtocol",
    "websockets": "websockets",
    "websockets-sansio": "websockets-sansio",
    "wsproto": "wsproto",
}


# ------------------------------------------------------------------ server


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Raw ASGI: accept, then send every message back as it came."""
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("bytes") is not None:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
        else:
            await send({"type": "websocket.send", "text": message["text"]})


def serve(impl: str, port: int) -> None:
    """Run uvicorn with ``impl`` on ``port`` until killed."""
    # wsframe from this checkout, even when not installed.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import uvicorn

    uvicorn.run(
        echo_app,
        host=HOST,
        port=port,
        loop="uvloop",
        http="httptools",
        ws=WS_IMPLS[impl],
        ws_per_message_deflate=False,
        ws_max_size=16 * 1024 * 1024,
        lifespan="off",
        log_level="warning",
        access_log=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def start_server(impl: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = dict(os.environ)
    # The server imports wsframe from this checkout.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--serve", impl, "--port", str(port)],
        env=env,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the {impl} server exited with {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"the {impl} server did not start")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ------------------------------------------------------------------ client


async def measure(port: int, conns: int, size: int, duration: float, warmup: float) -> float:
    """Round trips per second over ``conns`` picows connections echoing ``size`` bytes."""
    from picows import WSListener, WSMsgType, ws_connect

    payload = os.urandom(size)
    counting = False
    count = 0

    class Client(WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            nonlocal count
            if frame.msg_type == WSMsgType.BINARY:
                if counting:
                    count += 1
                transport.send(WSMsgType.BINARY, payload)

    transports = []
    for _ in range(conns):
        transport, _listener = await ws_connect(Client, f"ws://{HOST}:{port}/")
        transports.append(transport)
    for transport in transports:
        transport.send(WSMsgType.BINARY, payload)
    await asyncio.sleep(warmup)
    counting = True
    start = time.perf_counter()
    await asyncio.sleep(duration)
    counting = False
    elapsed = time.perf_counter() - start
    for transport in transports:
        transport.disconnect()
    await asyncio.sleep(0.1)
    return count / elapsed


def parse_scenario(text: str) -> tuple[int, int]:
    conns, size = text.lower().split("x")
    return int(conns), int(size)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import uvloop

    impls = [name.strip() for name in args.impls.split(",") if name.strip()]
    for name in impls:
        if name not in WS_IMPLS:
            raise SystemExit(f"unknown implementation {name!r}; known: {', '.join(WS_IMPLS)}")
    scenarios = [parse_scenario(s) for s in args.scenarios.split(",")]
    results: dict[str, dict[str, list[float]]] = {
        f"{c}x{n}": {impl: [] for impl in impls} for c, n in scenarios
    }
    for run_index in range(args.runs):
        for impl in impls:
            proc, port = start_server(impl)
            try:
                for conns, size in scenarios:
                    rate = uvloop.run(measure(port, conns, size, args.duration, args.warmup))
                    results[f"{conns}x{size}"][impl].append(rate)
                    print(
                        f"run {run_index + 1}/{args.runs} {impl:>18} {conns:>3} conn x "
                        f"{size:>6} B: {rate:10.0f} round trips/s",
                        file=sys.stderr,
                    )
            finally:
                stop_server(proc)
    return {
        scenario: {
            "median": {impl: statistics.median(rates) for impl, rates in by_impl.items()},
            "runs": by_impl,
        }
        for scenario, by_impl in results.items()
    }


def table(summary: dict[str, Any], impls: list[str]) -> str:
    head = f"{'scenario':<10}" + "".join(f"{impl:>19}" for impl in impls)
    if "wsframe" in impls and len(impls) > 1:
        head += f"{'wsframe / best other':>22}"
    lines = [head, "-" * len(head)]
    for scenario, entry in summary.items():
        medians = entry["median"]
        line = f"{scenario:<10}" + "".join(f"{medians[impl]:>19.0f}" for impl in impls)
        others = [medians[impl] for impl in impls if impl != "wsframe"]
        if "wsframe" in impls and others:
            line += f"{medians['wsframe'] / max(others):>21.2f}x"
        lines.append(line)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", choices=sorted(WS_IMPLS), help="run the server only")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--impls", default="wsframe,websockets,wsproto")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--scenarios", default="1x64,1x16384,32x64")
    parser.add_argument("--json", help="write the medians and every run here")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    summary = run(args)
    impls = [name.strip() for name in args.impls.split(",") if name.strip()]
    print(f"echo round trips/s through uvicorn (median of {args.runs} runs, uvloop + httptools)")
    print(table(summary, impls))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)


if __name__ == "__main__":
    main()

"""The clients of the end-to-end benchmarks; each prints one JSON document.

    python bench/e2e/clients.py echo --target NAME=KIND:PORT ... --size N --conns C
        [--duration S] [--warmup S] [--reps R] [--client picows|wsframe]
    python bench/e2e/clients.py idle --port P --server-pid PID [--n 1000] [--deflate] [--tcp]
    python bench/e2e/clients.py broadcast --port P [--n 1000] [--reps R] [--size 128]

``echo``: request/response. Each of ``C`` connections sends one binary message
of ``N`` bytes, waits for its echo, sends again, and so on. After ``--warmup``
seconds the round trips completed during ``--duration`` seconds are counted,
over all connections. Targets are measured in turn, repetition after
repetition (interleaved, so that slow drift of the machine hits every target
alike). KIND ``raw`` targets a raw TCP echo: the client sends the same bytes a
WebSocket client would (a masked frame of N bytes) and waits for as many
bytes back; the other kinds are WebSocket servers, driven by a picows client
(default) or wsframe's own client.

``idle``: opens ``--n`` connections (WebSocket handshakes, offering
permessage-deflate with ``--deflate``; plain TCP connections with ``--tcp``)
and reads the server's VmRSS from /proc before and after.

``broadcast``: opens ``--n`` receiving connections and one control
connection; each repetition sends one message on the control connection, the
server broadcasts it to the others (see servers.py) and answers with the time
of its broadcast call; every receiving connection records
``time.monotonic_ns()`` on arrival (one clock for all processes on Linux).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import os
import statistics
import sys
import time
from typing import Any, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from servers import HOST, new_loop, raise_nofile

# ---------------------------------------------------------------- helpers


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def masked_frame(payload: bytes) -> bytes:
    from wsframe import encode_frame

    return encode_frame(2, payload, mask=os.urandom(4))


#: The client's SSLContext for TLS servers (set by the runner), or None.
CLIENT_SSL: Optional[Any] = None


def use_tls(cafile: Optional[str]) -> None:
    """Connect with TLS from now on, trusting ``cafile`` (None: plain TCP)."""
    global CLIENT_SSL
    if cafile is None:
        CLIENT_SSL = None
        return
    import ssl

    CLIENT_SSL = ssl.create_default_context(cafile=cafile)


# ------------------------------------------------------------------- echo


class Counter:
    """Round trips of one connection; ``running`` false stops the ping-pong."""

    __slots__ = ("count", "done", "running")

    def __init__(self) -> None:
        self.count = 0
        self.running = True
        self.done: Optional[asyncio.Future[None]] = None

    def finish(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(None)


async def open_raw(port: int, payload: bytes) -> tuple[Counter, Any, Any]:
    """A raw TCP peer: sends one masked frame, waits for its length back."""
    frame = masked_frame(payload)
    expected = len(frame)
    counter = Counter()

    class RawClient(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.pending = 0

        def data_received(self, data: bytes) -> None:
            self.pending += len(data)
            if self.pending >= expected:
                self.pending -= expected
                counter.count += 1
                if counter.running:
                    self.transport.write(frame)
                else:
                    counter.finish()

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(RawClient, HOST, port, ssl=CLIENT_SSL)

    def start() -> None:
        transport.write(frame)

    def stop() -> None:
        transport.abort()

    return counter, start, stop


async def open_picows(port: int, payload: bytes) -> tuple[Counter, Any, Any]:
    from picows import WSCloseCode, WSListener, WSMsgType, ws_connect

    counter = Counter()
    size = len(payload)

    class Client(WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type != WSMsgType.BINARY:
                return
            if frame.payload_size != size:
                raise RuntimeError(f"echo of {frame.payload_size} bytes, sent {size}")
            counter.count += 1
            if counter.running:
                transport.send(WSMsgType.BINARY, payload)
            else:
                counter.finish()

    scheme = "wss" if CLIENT_SSL is not None else "ws"
    transport, _ = await ws_connect(
        Client, f"{scheme}://{HOST}:{port}/", max_frame_size=64 << 20, ssl_context=CLIENT_SSL
    )

    def start() -> None:
        transport.send(WSMsgType.BINARY, payload)

    def stop() -> None:
        transport.send_close(WSCloseCode.OK)
        transport.disconnect()

    return counter, start, stop


async def open_wsframe(port: int, payload: bytes) -> tuple[Counter, Any, Any]:
    from wsframe.asyncio import Listener, connect

    counter = Counter()
    size = len(payload)

    class Client(Listener):
        def on_message(self, ws: Any, message: Any) -> None:
            if len(message) != size:
                raise RuntimeError(f"echo of {len(message)} bytes, sent {size}")
            counter.count += 1
            if counter.running:
                ws.send_nowait(payload)
            else:
                counter.finish()

    ws = await connect(
        f"ws://{HOST}:{port}/",
        compression=None,
        ping_interval=None,
        max_message_size=64 << 20,
        listener=Client,
        close_timeout=1,
    )

    def start() -> None:
        ws.send_nowait(payload)

    def stop() -> None:
        ws.abort()

    return counter, start, stop


async def echo_window(
    kind: str,
    port: int,
    client: str,
    payload: bytes,
    conns: int,
    warmup: float,
    duration: float,
    inflight: int = 1,
    probe: Optional[Any] = None,
) -> tuple[int, float, Any]:
    """Echo with ``conns`` connections and ``inflight`` messages in flight on each.

    After ``warmup`` seconds, counts the round trips completed during
    ``duration`` seconds; returns ``(round trips, seconds, probed)`` where
    ``probed`` is ``probe()`` at the end of the window minus at its start
    (None without a probe: e.g. the server's CPU time).
    """
    opener = open_raw if kind == "raw" else open_wsframe if client == "wsframe" else open_picows
    peers = [await opener(port, payload) for _ in range(conns)]
    counters = [counter for counter, _, _ in peers]
    loop = asyncio.get_running_loop()
    for counter in counters:
        counter.done = loop.create_future()
    for _, start, _ in peers:
        for _ in range(inflight):
            start()
    await asyncio.sleep(warmup)
    p0 = probe() if probe is not None else None
    c0, t0 = sum(c.count for c in counters), time.perf_counter()
    await asyncio.sleep(duration)
    c1, t1 = sum(c.count for c in counters), time.perf_counter()
    p1 = probe() if probe is not None else None
    for counter in counters:
        counter.running = False
    await asyncio.wait([c.done for c in counters if c.done is not None], timeout=5)
    for _, _, stop in peers:
        stop()
    await asyncio.sleep(0.05)
    probed = p1 - p0 if probe is not None else None
    return c1 - c0, t1 - t0, probed


async def measure_echo(
    kind: str, port: int, client: str, payload: bytes, conns: int, warmup: float, duration: float
) -> float:
    """Round trips per second, one message in flight per connection."""
    count, seconds, _ = await echo_window(kind, port, client, payload, conns, warmup, duration)
    return count / seconds


async def run_echo(args: argparse.Namespace) -> dict[str, Any]:
    payload = os.urandom(args.size)
    targets = []
    for spec in args.target:
        name, _, rest = spec.partition("=")
        kind, _, port = rest.partition(":")
        targets.append((name, kind, int(port)))
    rates: dict[str, list[float]] = {name: [] for name, _, _ in targets}
    errors: dict[str, str] = {}
    for _ in range(args.reps):
        for name, kind, port in targets:
            if name in errors:
                continue
            try:
                rate = await asyncio.wait_for(
                    measure_echo(
                        kind, port, args.client, payload, args.conns, args.warmup, args.duration
                    ),
                    args.warmup + args.duration + 30,
                )
                if not rate:
                    raise RuntimeError("no round trip completed")
            except Exception as exc:
                errors[name] = f"{type(exc).__name__}: {exc}"
                print(f"  {name}: error {errors[name]}", file=sys.stderr, flush=True)
                continue
            rates[name].append(rate)
            print(f"  {name}: {rate:,.0f}/s", file=sys.stderr, flush=True)
    return {
        "size": args.size,
        "conns": args.conns,
        "client": args.client,
        "rates": rates,
        "errors": errors,
    }


async def run_check(args: argparse.Namespace) -> dict[str, Any]:
    """One WebSocket echo of 16 bytes, or an error."""
    try:
        counter, start, stop = await asyncio.wait_for(open_picows(args.port, os.urandom(16)), 5)
        counter.running = False
        counter.done = asyncio.get_running_loop().create_future()
        start()
        await asyncio.wait_for(counter.done, 5)
        stop()
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": True}


# ------------------------------------------------------------------- idle


def handshake_request(port: int, deflate: bool) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET / HTTP/1.1",
        f"Host: {HOST}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if deflate:
        lines.append("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class IdleClient(asyncio.Protocol):
    """Sends the opening handshake, waits for the 101, then does nothing."""

    def __init__(self, request: Optional[bytes], opened: asyncio.Future[bool]) -> None:
        self.request = request
        self.opened = opened
        self.buffer = b""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        if self.request is None:
            self.opened.set_result(False)
        else:
            transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self.opened.done():
            return  # a ping, say: ignored, the connection idles
        self.buffer += data
        head, sep, _ = self.buffer.partition(b"\r\n\r\n")
        if not sep:
            return
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            self.opened.set_exception(RuntimeError(f"handshake refused: {status!r}"))
            return
        self.buffer = b""
        self.opened.set_result(b"permessage-deflate" in head.lower())

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed during the handshake: {exc}"))


async def open_idle(port: int, n: int, deflate: bool, tcp: bool) -> tuple[list[Any], list[bool]]:
    loop = asyncio.get_running_loop()
    transports: list[Any] = []
    negotiated: list[bool] = []
    batch = 50
    for first in range(0, n, batch):
        futures = []
        for _ in range(first, min(n, first + batch)):
            opened: asyncio.Future[bool] = loop.create_future()
            request = None if tcp else handshake_request(port, deflate)
            transport, _ = await loop.create_connection(
                lambda request=request, opened=opened: IdleClient(request, opened), HOST, port
            )
            transports.append(transport)
            futures.append(opened)
        negotiated += await asyncio.wait_for(asyncio.gather(*futures), 30)
    return transports, negotiated


async def run_idle(args: argparse.Namespace) -> dict[str, Any]:
    # Warm up the server: first connections import modules and fill caches.
    warm, _ = await open_idle(args.port, 20, args.deflate, args.tcp)
    for transport in warm:
        transport.abort()
    await asyncio.sleep(args.settle)
    before = rss_kib(args.server_pid)
    transports, negotiated = await open_idle(args.port, args.n, args.deflate, args.tcp)
    await asyncio.sleep(args.settle)
    after = rss_kib(args.server_pid)
    for transport in transports:
        transport.abort()
    return {
        "n": args.n,
        "deflate_offered": args.deflate and not args.tcp,
        "deflate_negotiated": sum(negotiated),
        "rss_before_kib": before,
        "rss_after_kib": after,
        "kib_per_conn": (after - before) / args.n,
    }


# -------------------------------------------------------------- broadcast


async def run_broadcast(args: argparse.Namespace) -> dict[str, Any]:
    from picows import WSListener, WSMsgType, ws_connect

    loop = asyncio.get_running_loop()
    state: dict[str, Any] = {"times": [], "tag": b"", "all": None}
    n = args.n
    size = args.size

    class Receiver(WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type != WSMsgType.BINARY:
                return
            now = time.monotonic_ns()
            if frame.payload_size == size and frame.get_payload_as_bytes()[:8] == state["tag"]:
                times = state["times"]
                times.append(now)
                if len(times) == n and not state["all"].done():
                    state["all"].set_result(None)

    class Control(WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == WSMsgType.TEXT:
                state["reply"].set_result(frame.get_payload_as_ascii_text())

    transports = []
    for first in range(0, n, 50):
        batch = [
            ws_connect(Receiver, f"ws://{HOST}:{args.port}/")
            for _ in range(first, min(n, first + 50))
        ]
        transports += [transport for transport, _ in await asyncio.gather(*batch)]
    control, _ = await ws_connect(Control, f"ws://{HOST}:{args.port}/")
    await asyncio.sleep(0.5)
    reps = []
    gc.disable()
    for rep in range(args.reps + 1):  # the first one is a warmup
        tag = rep.to_bytes(8, "big")
        state.update(times=[], tag=tag, all=loop.create_future(), reply=loop.create_future())
        control.send(WSMsgType.BINARY, tag + b"x" * (size - 8))
        await asyncio.wait_for(asyncio.gather(state["all"], state["reply"]), 30)
        t0, t1, sent = (int(x) for x in state["reply"].result().split())
        if sent != n:
            raise RuntimeError(f"broadcast sent to {sent} connections, expected {n}")
        times = sorted(state["times"])
        if rep:
            reps.append(
                {
                    "call_us": (t1 - t0) / 1e3,
                    "first_us": (times[0] - t0) / 1e3,
                    "median_us": (statistics.median(times) - t0) / 1e3,
                    "all_us": (times[-1] - t0) / 1e3,
                }
            )
        await asyncio.sleep(0.1)
    gc.enable()
    for transport in [*transports, control]:
        transport.disconnect(graceful=False)
    return {"n": n, "size": size, "reps": reps}


# ------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default=None)
    commands = parser.add_subparsers(dest="command", required=True)
    echo = commands.add_parser("echo")
    echo.add_argument("--target", action="append", required=True, help="NAME=KIND:PORT")
    echo.add_argument("--size", type=int, default=256)
    echo.add_argument("--conns", type=int, default=1)
    echo.add_argument("--duration", type=float, default=3.0)
    echo.add_argument("--warmup", type=float, default=1.0)
    echo.add_argument("--reps", type=int, default=3)
    echo.add_argument("--client", choices=("picows", "wsframe"), default="picows")
    idle = commands.add_parser("idle")
    idle.add_argument("--port", type=int, required=True)
    idle.add_argument("--server-pid", type=int, required=True)
    idle.add_argument("--n", type=int, default=1000)
    idle.add_argument("--deflate", action="store_true")
    idle.add_argument("--tcp", action="store_true")
    idle.add_argument("--settle", type=float, default=1.0)
    check = commands.add_parser("check")
    check.add_argument("--port", type=int, required=True)
    bcast = commands.add_parser("broadcast")
    bcast.add_argument("--port", type=int, required=True)
    bcast.add_argument("--n", type=int, default=1000)
    bcast.add_argument("--reps", type=int, default=10)
    bcast.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    raise_nofile()
    loop_name = args.loop
    if loop_name is None:
        try:
            import uvloop  # noqa: F401
        except ImportError:
            loop_name = "asyncio"
        else:
            loop_name = "uvloop"
    commands_run = {
        "echo": run_echo,
        "idle": run_idle,
        "broadcast": run_broadcast,
        "check": run_check,
    }
    run = commands_run[args.command]
    loop = new_loop(loop_name)
    asyncio.set_event_loop(loop)
    try:
        result = loop.run_until_complete(run(args))
    finally:
        loop.close()
    result["client_loop"] = loop_name
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
